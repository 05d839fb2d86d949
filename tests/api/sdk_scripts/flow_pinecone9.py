"""End-to-end flow with pinecone 9.x (built-in assistants), run by that SDK's own venv python.

Standalone: it cannot import the project (a different venv). tests/api/test_sdk_legacy.py runs it as
    python flow_pinecone9.py --url URL --api-key KEY --pdf falconry.pdf --txt teapots.txt --md kites.md
9.x takes the control-plane host from Pinecone(host=URL) and the data-plane host from the assistant's `host`.
It speaks X-Pinecone-Api-Version 2025-10 for most calls and 2026-04 for list calls. Every check that fails exits
non-zero with a message naming the step; on success the last line of stdout is a JSON object of observations.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
import urllib.request
import uuid
from pathlib import Path

from pinecone import Pinecone
from pinecone.errors import ApiError, NotFoundError, UnauthorizedError

OBSERVED: dict = {"client": "pinecone 9.x"}
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


def expect_error(call, exc_type: type[ApiError], status: int, contains: str = "") -> str:
    """Run `call`; it must raise `exc_type` with HTTP `status` (and `contains` in the message)."""
    try:
        result = call()
    except ApiError as exc:
        check(isinstance(exc, exc_type), f"expected {exc_type.__name__}, got {type(exc).__name__}: {exc}")
        check(exc.status_code == status, f"expected HTTP {status}, got {exc.status_code}: {exc}")
        check(contains in str(exc), f"expected {contains!r} in the error, got {exc}")
        return f"{type(exc).__name__}: {exc}"
    check(False, f"expected {exc_type.__name__} (HTTP {status}), but the call returned {result!r}")
    return f"no error: {result!r}"


def run(args: argparse.Namespace) -> None:
    import pinecone

    OBSERVED["versions"] = {"pinecone": pinecone.__version__}
    check(pinecone.__version__.startswith("9."), f"expected pinecone 9.x, got {pinecone.__version__}")

    pc = Pinecone(api_key=args.api_key, host=args.url)
    assistants = pc.assistants
    name = f"sdk9-{uuid.uuid4().hex[:8]}"

    step("create assistant")
    assistant = assistants.create(name=name, instructions="be brief", metadata={"team": "x"}, timeout=30)
    require(assistant.status == "Ready", f"create status {assistant.status!r}, expected 'Ready'")
    check(assistant.host == args.url, f"assistant host {assistant.host!r} != {args.url!r}")
    check(assistant.metadata == {"team": "x"}, f"assistant metadata {assistant.metadata!r}")

    step("describe/list assistants")
    check(assistants.describe(name=name).status == "Ready", "describe status is not Ready")
    check(name in [a.name for a in assistants.list()], "new assistant missing from assistants.list()")

    step("upload_file x3 (metadata in the query string)")
    uploads = {}
    started = time.monotonic()
    for path, metadata in (
        (args.pdf, {"topic": "birds", "year": 2024}),
        (args.txt, {"topic": "tea", "year": 2019}),
        (args.md, {"topic": "toys", "year": 2021}),
    ):
        file = assistants.upload_file(assistant_name=name, file_path=str(path), metadata=metadata, timeout=60)
        check(file.status == "Available", f"upload of {path.name}: status {file.status!r}, expected 'Available'")
        check(file.name == path.name, f"upload of {path.name}: name {file.name!r}")
        check(file.metadata == metadata, f"upload of {path.name}: metadata {file.metadata!r} != {metadata!r}")
        check(file.size == path.stat().st_size, f"upload of {path.name}: size {file.size!r} != {path.stat().st_size}")
        uploads[path.name] = file
    OBSERVED["upload_seconds"] = round(time.monotonic() - started, 2)
    pdf, txt = uploads[args.pdf.name], uploads[args.txt.name]

    step("list_files with filters (2026-04)")
    all_names = sorted(f.name for f in assistants.list_files(assistant_name=name))
    check(all_names == sorted(uploads), f"list_files() -> {all_names}")
    recent = sorted(f.name for f in assistants.list_files(assistant_name=name, filter={"year": {"$gte": 2021}}))
    check(recent == sorted([args.pdf.name, args.md.name]), f"list_files(year >= 2021) -> {recent}")
    tea = [f.name for f in assistants.list_files(assistant_name=name, filter={"topic": "tea"})]
    check(tea == [args.txt.name], f"list_files(topic == tea) -> {tea}")
    OBSERVED["listed_recent"] = recent

    step("describe_file (include_url)")
    described = assistants.describe_file(assistant_name=name, file_id=pdf.id, include_url=True)
    check(described.id == pdf.id and described.name == args.pdf.name, f"describe_file -> {described!r}")
    check(described.metadata == {"topic": "birds", "year": 2024}, f"describe_file metadata {described.metadata!r}")
    url = described.signed_url
    check(bool(url) and url.startswith(args.url), f"signed_url {url!r} should start with {args.url!r}")
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - the local test server
        downloaded = response.read()
    check(downloaded == args.pdf.read_bytes(), f"signed_url served {len(downloaded)} bytes, not the uploaded PDF")
    plain = assistants.describe_file(assistant_name=name, file_id=txt.id)
    check(plain.signed_url is None, f"describe_file without include_url has signed_url {plain.signed_url!r}")

    step("context with a filter")
    context = assistants.context(
        assistant_name=name, query="How is the falcon calmed with a hood?", top_k=3, filter={"topic": "birds"}
    )
    require(len(context.snippets) > 0, f"context returned no snippets: {context!r}")
    best = context.snippets[0]
    check(best.reference.file.name == args.pdf.name, f"best snippet from {best.reference.file.name!r}")
    check(best.reference.pages == [2], f"best snippet pages {best.reference.pages!r}, expected [2]")
    check("hood" in best.content.lower(), f"best snippet does not mention the hood: {best.content!r}")
    OBSERVED["context_best"] = {"file": best.reference.file.name, "pages": best.reference.pages, "score": best.score}
    birds_only = assistants.context(assistant_name=name, query="zisha clay teapots", filter={"topic": "birds"})
    names = {s.reference.file.name for s in birds_only.snippets}
    check(names <= {args.pdf.name}, f"filter topic=birds leaked snippets from {names}")
    teapots = assistants.context(assistant_name=name, query="zisha clay teapots")
    check(teapots.snippets and teapots.snippets[0].reference.file.name == args.txt.name, f"teapot query -> {teapots!r}")
    kites = assistants.context(assistant_name=name, query="box kite Lawrence Hargrave", filter={"year": {"$gte": 2021}})
    check(kites.snippets and kites.snippets[0].reference.file.name == args.md.name, f"kite query -> {kites!r}")

    step("delete_file (9.x: 404 or 'Deleting' after DELETE; anything else is 'File deletion failed')")
    started = time.monotonic()
    assistants.delete_file(assistant_name=name, file_id=txt.id)
    OBSERVED["delete_file_seconds"] = round(time.monotonic() - started, 2)
    expect_error(lambda: assistants.describe_file(assistant_name=name, file_id=txt.id), NotFoundError, 404)
    remaining = sorted(f.name for f in assistants.list_files(assistant_name=name))
    check(remaining == sorted([args.pdf.name, args.md.name]), f"after delete_file list_files -> {remaining}")

    step("error cases")
    errors = {}
    errors["list_files_invalid_filter"] = expect_error(
        lambda: list(assistants.list_files(assistant_name=name, filter={"metadata": {"version": "v1"}})),
        ApiError,
        400,
        "Invalid filter",
    )
    errors["context_invalid_filter"] = expect_error(
        lambda: assistants.context(assistant_name=name, query="falcon", filter={"year": {"$bogus": 1}}), ApiError, 400
    )
    errors["unknown_assistant"] = expect_error(
        lambda: assistants.describe(name=f"no-such-{uuid.uuid4().hex[:8]}"), NotFoundError, 404
    )
    errors["unknown_file"] = expect_error(
        lambda: assistants.describe_file(assistant_name=name, file_id="no-such-file"), NotFoundError, 404
    )
    bad = Pinecone(api_key="wrong-key", host=args.url)
    errors["bad_key"] = expect_error(lambda: list(bad.assistants.list()), UnauthorizedError, 401)
    OBSERVED["errors"] = errors

    step("delete assistant")
    started = time.monotonic()
    assistants.delete(name=name)
    OBSERVED["delete_assistant_seconds"] = round(time.monotonic() - started, 2)
    expect_error(lambda: assistants.describe(name=name), NotFoundError, 404)
    check(name not in [a.name for a in assistants.list()], "deleted assistant still listed")
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
