"""Untrusted files are parsed in a separate process with resource limits, so that no file can exhaust the caller.

Ingestion calls `parse_contained` where it used to call `parsers.parse_document`. A child Python process
(`python -m assistant_chat.knowledge.sandbox`) caps its own address space (RLIMIT_AS) and CPU time (RLIMIT_CPU)
before it reads the file, parses it under `parsers.ParseLimits` (pages, text, a DOCX's unpacked size and
compression ratio), and streams progress and the pages back as JSON lines; the caller kills it at a wall-clock
deadline. Every way it can fail is a `ParseError` whose message names the limit and its setting. Imports nothing
from Django at module level (the child never loads it); settings are read only by `ParseLimits` defaults.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .parsers import Page, ParsedDocument, ParseError, ParseLimits, ProgressCallback, parse_document

ROOT = Path(__file__).resolve().parents[2]
# The child's own failures (its limits hit in a way it could not report) and what they mean.
_CPU_SIGNALS = {signal.SIGXCPU, signal.SIGKILL}


@dataclass(frozen=True)
class SandboxLimits:
    """The parser's limits plus what only a process boundary can enforce."""

    parse: ParseLimits
    timeout_seconds: float = 60.0  # PARSE_TIMEOUT_SECONDS: wall clock, and the CPU-time limit
    memory_bytes: int = 1024 * 1024 * 1024  # PARSE_MAX_MEMORY_BYTES: the child's address space

    @classmethod
    def from_settings(cls) -> SandboxLimits:
        from django.conf import settings

        return cls(
            parse=ParseLimits(
                max_pages=settings.PARSE_MAX_PAGES,
                max_text_chars=settings.PARSE_MAX_TEXT_CHARS,
                max_unpacked_bytes=settings.PARSE_MAX_UNPACKED_BYTES,
                max_compression_ratio=settings.PARSE_MAX_COMPRESSION_RATIO,
            ),
            timeout_seconds=settings.PARSE_TIMEOUT_SECONDS,
            memory_bytes=settings.PARSE_MAX_MEMORY_BYTES,
        )


def parse_contained(
    filename: str, data: bytes, progress: ProgressCallback | None = None, limits: SandboxLimits | None = None
) -> ParsedDocument:
    """`parsers.parse_document` in a child process under `limits` (from settings when not given). Returns the
    document or raises `ParseError`; never lets a file take more than the limits from the calling process."""
    limits = limits or SandboxLimits.from_settings()
    header = json.dumps({"name": filename, "size": len(data), "limits": asdict(limits)}).encode() + b"\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    child = subprocess.Popen(
        [sys.executable, "-m", "assistant_chat.knowledge.sandbox"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        env=env,
        start_new_session=True,  # a kill reaches nothing else
    )
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        child.kill()

    watchdog = threading.Timer(limits.timeout_seconds, expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        feeder = threading.Thread(target=_feed, args=(child.stdin, header, data), daemon=True)
        feeder.start()
        result = _read_result(child.stdout, progress)  # type: ignore[arg-type]
        child.wait()
        feeder.join(timeout=1)
    finally:
        watchdog.cancel()
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout:
            child.stdout.close()
    if timed_out.is_set():
        raise ParseError(
            f"Parsing the file took longer than {limits.timeout_seconds:g} s, the limit (PARSE_TIMEOUT_SECONDS)"
        )
    if result is not None:
        if "error" in result:
            raise ParseError(result["error"])
        pages = [Page(number=page[0], text=page[1]) for page in result["pages"]]
        return ParsedDocument(kind=result["kind"], pages=pages)
    code = child.returncode
    if code is not None and -code in _CPU_SIGNALS:
        raise ParseError(
            f"Parsing the file needed more than {limits.timeout_seconds:g} s of CPU, the limit (PARSE_TIMEOUT_SECONDS)"
        )
    raise ParseError(
        f"The parser stopped on this file (exit {code}); it may need more than "
        f"{limits.memory_bytes / 1048576:,.0f} MB of memory, the limit (PARSE_MAX_MEMORY_BYTES)"
    )


def _feed(pipe: BinaryIO | None, header: bytes, data: bytes) -> None:
    assert pipe is not None
    try:
        pipe.write(header)
        pipe.write(data)
    except (BrokenPipeError, OSError):
        pass  # the child stopped early (killed, or refused the file on its header)
    finally:
        try:
            pipe.close()
        except OSError:
            pass


def _read_result(pipe: BinaryIO, progress: ProgressCallback | None) -> dict[str, Any] | None:
    """The child's JSON lines: progress fractions, then one result (pages or an error)."""
    for line in pipe:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if "progress" in message:
            if progress is not None:
                progress(float(message["progress"]))
            continue
        return message
    return None


# --- the child ------------------------------------------------------------------------------------------------


def _limit_self(limits: dict[str, Any]) -> None:
    memory = int(limits["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = max(1, int(limits["timeout_seconds"] + 0.999))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


def _child_main() -> int:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    header = json.loads(stdin.readline())
    limits = header["limits"]
    _limit_self(limits)

    def emit(message: dict[str, Any]) -> None:
        stdout.write(json.dumps(message, ensure_ascii=False).encode() + b"\n")
        stdout.flush()

    last = [0.0]

    def report(fraction: float) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.1 or fraction >= 1.0:
            last[0] = now
            emit({"progress": fraction})

    try:
        data = stdin.read(int(header["size"]))
        document = parse_document(header["name"], data, progress=report, limits=ParseLimits(**limits["parse"]))
        emit({"kind": document.kind, "pages": [[page.number, page.text] for page in document.pages]})
    except ParseError as exc:
        emit({"error": str(exc)})
    except MemoryError:
        memory = int(limits["memory_bytes"]) / 1048576
        emit(
            {
                "error": f"Parsing the file needed more than {memory:,.0f} MB of memory, the limit (PARSE_MAX_MEMORY_BYTES)"
            }
        )
    except RecursionError:
        emit({"error": "The file is nested too deeply to parse"})
    except Exception as exc:  # a parser bug: the file fails with a reason, the caller carries on
        emit({"error": f"Processing failed unexpectedly: {type(exc).__name__}: {str(exc)[:160]}"})
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
