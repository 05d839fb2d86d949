"""The import rules of DESIGN §3, checked on the source: every import, module level or inside a function, relative
imports resolved. Data flows browser -> consumer -> service -> turn -> provider; imports follow the same arrows."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "assistant_chat"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, as absolute dotted names (`from .x import y` gives both `pkg.x` and `pkg.x.y`)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def _sources(*roots: Path) -> list[Path]:
    return sorted(p for root in roots for p in root.rglob("*.py") if "migrations" not in p.parts)


def _importers_of(target: str, paths: list[Path]) -> list[str]:
    return [
        _module_name(p) for p in paths if any(name == target or name.startswith(target + ".") for name in _imports(p))
    ]


def test_the_resolver_sees_relative_and_function_level_imports() -> None:
    imports = _imports(PACKAGE / "rooms" / "routing.py")
    assert "assistant_chat.rooms.consumer" in imports
    assert "assistant_chat.review.search" in _imports(PACKAGE / "selectors.py")  # imported inside a function


def test_only_routing_imports_the_consumer() -> None:
    paths = _sources(PACKAGE, ROOT / "chatsite", ROOT / "tests", ROOT / "bench")
    importers = set(_importers_of("assistant_chat.rooms.consumer", paths))
    assert importers == {"assistant_chat.rooms.routing"}


@pytest.mark.parametrize("package", ["providers", "knowledge", "embedders", "jobs", "monitoring"])
def test_lower_layers_import_neither_rooms_nor_review(package: str) -> None:
    paths = _sources(PACKAGE / package) if (PACKAGE / package).exists() else []
    for banned in ("assistant_chat.rooms", "assistant_chat.review", "assistant_chat.api"):
        assert _importers_of(banned, paths) == [], f"{package}/ imports {banned}"


def test_review_never_imports_the_live_room() -> None:
    assert _importers_of("assistant_chat.rooms", _sources(PACKAGE / "review")) == []


def test_the_domain_core_imports_no_room_internals() -> None:
    """The core (`models`, `services`, `selectors`, `turns`, ...) must not depend on the live room's machinery:
    only the pages (`views`) read the protocol's payload builders to render a room's first state."""
    core = [p for p in PACKAGE.glob("*.py") if p.name != "views.py"]
    assert _importers_of("assistant_chat.rooms", core) == []


@pytest.mark.parametrize("package", ["providers", "embedders"])
def test_providers_and_embedders_import_no_django(package: str) -> None:
    paths = _sources(PACKAGE / package) if (PACKAGE / package).exists() else []
    for path in paths:
        for name in _imports(path):
            assert not name.startswith(("django", "channels")), f"{path.name} imports {name}"
            # Providers may use the embedders (the offline model reads by meaning); embedders use nothing else.
            inside = (f"assistant_chat.{package}",) + (("assistant_chat.embedders",) if package == "providers" else ())
            assert not name.startswith("assistant_chat") or name.startswith(inside), f"{path.name} imports {name}"


def test_every_project_import_resolves_to_a_module() -> None:
    """A moved module leaves no import behind pointing at its old place (imports inside functions included)."""
    missing = []
    for path in _sources(PACKAGE, ROOT / "chatsite", ROOT / "tests", ROOT / "bench"):
        for name in _imports(path):
            if not name.startswith(("assistant_chat", "chatsite")):
                continue
            candidates = [ROOT.joinpath(*name.split(".")), ROOT.joinpath(*name.split(".")[:-1])]
            if not any(c.with_suffix(".py").exists() or (c / "__init__.py").exists() for c in candidates):
                missing.append(f"{_module_name(path)} imports {name}")
    assert missing == []
