"""Untrusted files are parsed in a separate process with resource limits, so that no file can exhaust the caller.

Ingestion calls `parse_contained` where it used to call `parsers.parse_document`. A fresh child process per file,
forked from a template (`python -m assistant_chat.knowledge.sandbox --template`, started once per calling
process, which imports the parsers and never reads a file: a new interpreter per file cost ~60 ms, a quarter of
ingesting a 400 KB text), caps its own address space (RLIMIT_AS) and CPU time (RLIMIT_CPU)
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
import socket
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
    child = _fork_child()
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


class _ForkedChild:
    """A child forked by the template, as `subprocess.Popen` shows one: its pipes, `kill`, `wait`, `poll`. Its
    exit status comes from the monitor process that forked it (a fork of the template that waits for it)."""

    def __init__(self, pid: int, stdin: BinaryIO, stdout: BinaryIO, reply: BinaryIO) -> None:
        self.pid = pid
        self.stdin: BinaryIO | None = stdin
        self.stdout: BinaryIO | None = stdout
        self.returncode: int | None = None
        self._reply = reply

    def kill(self) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def wait(self) -> int:
        if self.returncode is None:
            line = self._reply.readline().strip()
            # No status: the monitor itself was killed; the child is then gone too (or about to be).
            self.returncode = int(line) if line else -signal.SIGKILL
            self._reply.close()
        return self.returncode

    def poll(self) -> int | None:
        return self.returncode


_template_lock = threading.Lock()
_template: tuple[subprocess.Popen, socket.socket] | None = None


def _start_template() -> tuple[subprocess.Popen, socket.socket]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "assistant_chat.knowledge.sandbox", "--template", str(theirs.fileno())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=[theirs.fileno()],
        cwd=ROOT,
        env=env,
        start_new_session=True,  # a kill reaches nothing else
    )
    theirs.close()
    return process, ours


def _fork_child() -> _ForkedChild:
    """Ask the template (started on first use, again if it died) for a fresh child reading `stdin_r` and writing
    `stdout_w`; the monitor's socket gives its pid, then its exit status."""
    global _template
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    reply_ours, reply_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _template_lock:
            for attempt in (1, 2):
                if _template is None or _template[0].poll() is not None:
                    _template = _start_template()
                try:
                    socket.send_fds(_template[1], [b"f"], [stdin_r, stdout_w, reply_theirs.fileno()])
                    break
                except OSError:
                    if attempt == 2:
                        raise
                    _template = None  # it died between requests: start another
    finally:
        os.close(stdin_r)
        os.close(stdout_w)
        reply_theirs.close()
    reply = reply_ours.makefile("rb")
    reply_ours.close()  # the file object keeps the socket open
    line = reply.readline().strip()
    if not line:
        reply.close()
        os.close(stdin_w)
        os.close(stdout_r)
        raise ParseError("The parser could not be started")
    return _ForkedChild(int(line), os.fdopen(stdin_w, "wb"), os.fdopen(stdout_r, "rb"), reply)


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


def _template_main(fd: int) -> int:
    """The template: for each request (three descriptors: the child's stdin and stdout, a reply socket) fork a
    monitor, which forks the child, reports its pid, waits for it and reports its exit status. It never parses:
    each file gets a fresh copy of this process, nothing of an earlier file. Ends when its caller goes."""
    control = socket.socket(fileno=fd)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # monitors are reaped by the kernel
    while True:
        try:
            message, fds, _flags, _address = socket.recv_fds(control, 16, 3)
        except OSError:
            return 0
        if not message:
            return 0  # the caller exited
        if len(fds) != 3:
            for descriptor in fds:
                os.close(descriptor)
            continue
        if os.fork() == 0:
            _monitor(control, *fds)
        for descriptor in fds:
            os.close(descriptor)


def _monitor(control: socket.socket, child_in: int, child_out: int, reply: int) -> None:
    code = 1
    try:
        control.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # this one waits for its child
        pid = os.fork()
        if pid == 0:
            os.setsid()  # a kill reaches nothing else
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(child_in, 0)
            os.dup2(child_out, 1)
            os.dup2(devnull, 2)
            for descriptor in (child_in, child_out, reply, devnull):
                os.close(descriptor)
            os._exit(_child_main())
        os.close(child_in)
        os.close(child_out)
        os.write(reply, f"{pid}\n".encode())
        _pid, status = os.waitpid(pid, 0)
        os.write(reply, f"{os.waitstatus_to_exitcode(status)}\n".encode())
        code = 0
    except BaseException:  # noqa: S110 - the caller sees no status and reports the child as killed
        pass
    finally:
        os._exit(code)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--template":
        sys.exit(_template_main(int(sys.argv[2])))
    sys.exit(_child_main())
