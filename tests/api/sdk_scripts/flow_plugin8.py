"""End-to-end flow with pinecone 8.x + pinecone-plugin-assistant 3.0.3, run by that SDK's own venv python.

Standalone: it cannot import the project (a different venv). tests/api/test_sdk_legacy.py runs it as
    python flow_plugin8.py --url URL --api-key KEY --pdf falconry.pdf --txt teapots.txt --md kites.md
with PINECONE_PLUGIN_ASSISTANT_CONTROL_HOST and PINECONE_PLUGIN_ASSISTANT_DATA_HOST set to URL (the plugin
ignores Pinecone(host=...)). Every check that fails exits non-zero with a message naming the step; on success
the last line of stdout is a JSON object of observations.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
import urllib.request
import uuid
from pathlib import Path

from pinecone import Pinecone
from pinecone_plugins.assistant.control.core.client import exceptions as control_exc
from pinecone_plugins.assistant.data.core.client import exceptions as data_exc

OBSERVED: dict = {"client": "pinecone 8.x + pinecone-plugin-assistant 3.0.3"}
STEP = ["start"]
FAILURES: list[str] = []


class CheckFailed(Exception):
    pass


def step(name: str) -> None:
    STEP[0] = name
    print(f"[step] {name}", flush=True)


def check(condition: bool, message: str) -> None:
    """Record a failed check and go on, so that one run shows every problem; main() exits non-zero at the end."""
    if not condition:
        failure = f"CHECK FAILED at step '{STEP[0]}': {message}"
        print(failure, file=sys.stderr, flush=True)
        FAILURES.append(failure)


def require(condition: bool, message: str) -> None:
    """A check that later steps depend on: stop here."""
    if not condition:
        raise CheckFailed(message)


def expect_error(call, exc_types, status: int, contains: str = ""):
    """Run `call`; it must raise one of `exc_types` with HTTP `status` (and `contains` in the body)."""
    try:
        result = call()
    except exc_types as exc:
        check(getattr(exc, "status", None) == status, f"expected HTTP {status}, got {type(exc).__name__}: {exc}")
        body = exc.body.decode() if isinstance(exc.body, bytes) else str(exc.body)
        check(contains in body, f"expected {contains!r} in the error body, got {body!r}")
        return type(exc).__name__, body
    check(False, f"expected {[t.__name__ for t in exc_types]} (HTTP {status}), but the call returned {result!r}")
    return "no error", repr(result)


def run(args: argparse.Namespace) -> None:
    for var in ("PINECONE_PLUGIN_ASSISTANT_CONTROL_HOST", "PINECONE_PLUGIN_ASSISTANT_DATA_HOST"):
        check(os.environ.get(var) == args.url, f"{var} must be {args.url!r}, is {os.environ.get(var)!r}")
    from importlib.metadata import version

    import pinecone

    OBSERVED["versions"] = {"pinecone": pinecone.__version__, "plugin": version("pinecone-plugin-assistant")}
    check(pinecone.__version__.startswith("8."), f"expected pinecone 8.x, got {pinecone.__version__}")

    pc = Pinecone(api_key=args.api_key)
    name = f"plugin8-{uuid.uuid4().hex[:8]}"

    step("create_assistant")
    assistant = pc.assistant.create_assistant(assistant_name=name, instructions="be brief", timeout=30)
    require(assistant.status == "Ready", f"create_assistant status {assistant.status!r}, expected 'Ready'")
    check(assistant.assistant.host == args.url, f"assistant host {assistant.assistant.host!r} != {args.url!r}")
    check(assistant.name == name, f"assistant name {assistant.name!r} != {name!r}")

    step("describe/list assistants")
    described = pc.assistant.describe_assistant(assistant_name=name)
    check(described.status == "Ready", f"describe_assistant status {described.status!r}")
    check(name in [a.name for a in pc.assistant.list_assistants()], "new assistant missing from list_assistants")
    same = pc.assistant.Assistant(assistant_name=name)
    check(same.name == name, "pc.assistant.Assistant(assistant_name=...) returned another assistant")

    step("upload_file x3 (metadata in the query string)")
    uploads = {}
    started = time.monotonic()
    for path, metadata in (
        (args.pdf, {"topic": "birds", "year": 2024}),
        (args.txt, {"topic": "tea", "year": 2019}),
        (args.md, {"topic": "toys", "year": 2021}),
    ):
        file = assistant.upload_file(file_path=str(path), metadata=metadata, timeout=60)
        check(file.status == "Available", f"upload of {path.name}: status {file.status!r}, expected 'Available'")
        check(file.name == path.name, f"upload of {path.name}: name {file.name!r}")
        check(file.metadata == metadata, f"upload of {path.name}: metadata {file.metadata!r} != {metadata!r}")
        check(file.size == path.stat().st_size, f"upload of {path.name}: size {file.size!r} != {path.stat().st_size}")
        check(isinstance(file.multimodal, bool), f"upload of {path.name}: multimodal {file.multimodal!r} not a bool")
        uploads[path.name] = file
    OBSERVED["upload_seconds"] = round(time.monotonic() - started, 2)
    pdf, txt = uploads[args.pdf.name], uploads[args.txt.name]

    step("list_files with filters")
    all_names = sorted(f.name for f in assistant.list_files())
    check(all_names == sorted(uploads), f"list_files() -> {all_names}")
    recent = sorted(f.name for f in assistant.list_files(filter={"year": {"$gte": 2021}}))
    check(recent == sorted([args.pdf.name, args.md.name]), f"list_files(year >= 2021) -> {recent}")
    tea = [f.name for f in assistant.list_files(filter={"topic": "tea"})]
    check(tea == [args.txt.name], f"list_files(topic == tea) -> {tea}")
    OBSERVED["listed_recent"] = recent

    step("describe_file (include_url)")
    described_file = assistant.describe_file(file_id=pdf.id, include_url=True)
    check(described_file.id == pdf.id and described_file.name == args.pdf.name, f"describe_file -> {described_file}")
    check(
        described_file.metadata == {"topic": "birds", "year": 2024},
        f"describe_file metadata {described_file.metadata!r}",
    )
    check(described_file.status == "Available", f"describe_file status {described_file.status!r}")
    url = described_file.signed_url
    check(bool(url) and url.startswith(args.url), f"signed_url {url!r} should start with {args.url!r}")
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - the local test server
        downloaded = response.read()
    check(downloaded == args.pdf.read_bytes(), f"signed_url served {len(downloaded)} bytes, not the uploaded PDF")
    plain = assistant.describe_file(file_id=txt.id)
    check(plain.signed_url is None, f"describe_file without include_url has signed_url {plain.signed_url!r}")

    step("context with a filter")
    context = assistant.context(query="How is the falcon calmed with a hood?", top_k=3, filter={"topic": "birds"})
    require(not isinstance(context, Exception), f"context() returned {context!r}")
    require(len(context.snippets) > 0, f"context returned no snippets: {context}")
    best = context.snippets[0]
    check(best.type == "text", f"snippet type {best.type!r}")
    check(best.reference.type == "pdf", f"reference type {best.reference.type!r}, expected 'pdf'")
    check(best.reference.file.name == args.pdf.name, f"best snippet from {best.reference.file.name!r}")
    check(best.reference.pages == [2], f"best snippet pages {best.reference.pages!r}, expected [2]")
    check("hood" in best.content.lower(), f"best snippet does not mention the hood: {best.content!r}")
    OBSERVED["context_best"] = {"file": best.reference.file.name, "pages": best.reference.pages, "score": best.score}
    birds_only = assistant.context(query="zisha clay teapots", filter={"topic": "birds"})
    names = {s.reference.file.name for s in birds_only.snippets}
    check(names <= {args.pdf.name}, f"filter topic=birds leaked snippets from {names}")
    teapots = assistant.context(query="zisha clay teapots")
    check(
        teapots.snippets and teapots.snippets[0].reference.file.name == args.txt.name,
        f"unfiltered teapot query -> {teapots}",
    )
    if teapots.snippets:
        check(teapots.snippets[0].reference.type == "text", f"txt reference {teapots.snippets[0].reference.type!r}")
    kites = assistant.context(query="box kite Lawrence Hargrave", filter={"year": {"$gte": 2021}})
    check(kites.snippets and kites.snippets[0].reference.file.name == args.md.name, f"kite query -> {kites}")
    if kites.snippets:
        check(kites.snippets[0].reference.type == "markdown", f"md reference {kites.snippets[0].reference.type!r}")

    step("delete_file (plugin describes right after DELETE: needs the Deleting tombstone)")
    started = time.monotonic()
    assistant.delete_file(file_id=txt.id)
    OBSERVED["delete_file_seconds"] = round(time.monotonic() - started, 2)
    expect_error(lambda: assistant.describe_file(file_id=txt.id), (data_exc.NotFoundException,), 404)
    remaining = sorted(f.name for f in assistant.list_files())
    check(remaining == sorted([args.pdf.name, args.md.name]), f"after delete_file list_files -> {remaining}")

    step("error cases")
    errors = {}
    errors["list_files_invalid_filter"] = expect_error(
        lambda: assistant.list_files(filter={"metadata": {"version": "v1"}}),
        (data_exc.PineconeApiException,),
        400,
        "Invalid filter",
    )[0]
    errors["context_invalid_filter"] = expect_error(
        lambda: assistant.context(query="falcon", filter={"year": {"$bogus": 1}}), (data_exc.PineconeApiException,), 400
    )[0]
    errors["unknown_assistant"] = expect_error(
        lambda: pc.assistant.describe_assistant(assistant_name=f"no-such-{uuid.uuid4().hex[:8]}"),
        (control_exc.NotFoundException,),
        404,
    )[0]
    errors["unknown_file"] = expect_error(
        lambda: assistant.describe_file(file_id="no-such-file"), (data_exc.NotFoundException,), 404
    )[0]
    bad = Pinecone(api_key="wrong-key")
    errors["bad_key"] = expect_error(
        lambda: bad.assistant.list_assistants(), (control_exc.UnauthorizedException,), 401
    )[0]
    OBSERVED["errors"] = errors

    step("delete_assistant (plugin describes right after DELETE: needs the Terminating tombstone)")
    started = time.monotonic()
    pc.assistant.delete_assistant(assistant_name=name)
    OBSERVED["delete_assistant_seconds"] = round(time.monotonic() - started, 2)
    expect_error(lambda: pc.assistant.describe_assistant(assistant_name=name), (control_exc.NotFoundException,), 404)
    check(name not in [a.name for a in pc.assistant.list_assistants()], "deleted assistant still listed")
    OBSERVED["assistant"] = name


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--pdf", type=Path, required=True)
    parser.add_argument("--txt", type=Path, required=True)
    parser.add_argument("--md", type=Path, required=True)
    args = parser.parse_args()
    status = 0
    try:
        run(args)
    except CheckFailed as exc:
        FAILURES.append(f"CHECK FAILED at step '{STEP[0]}' (stopped there): {exc}")
        status = 1
    except Exception as exc:
        traceback.print_exc()
        FAILURES.append(f"UNEXPECTED {type(exc).__name__} at step '{STEP[0]}' (stopped there): {exc}")
        status = 2
    OBSERVED["failures"] = FAILURES
    print(json.dumps(OBSERVED, sort_keys=True, default=str))
    if FAILURES:
        print(f"{len(FAILURES)} failed check(s):\n" + "\n".join(FAILURES), file=sys.stderr)
        return status or 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
