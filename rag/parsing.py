"""Reading documents in child processes under CPU-time, memory and wall-clock limits.

A small hostile file can make a parser burn CPU or memory out of all proportion to its size. In the
backend's own process that would hold the GIL (every request waits) or take the process down; a
child can be limited by the kernel and killed. Children are forked from a "forkserver": forking
the backend itself (threaded, torch loaded) is unsafe, and "spawn" would pay Python's start-up and
the parsers' imports for every document.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import resource
import signal
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from rag.errors import CorruptDocument, DocumentError, DocumentTooComplex
from rag.loaders import LoadedDocument, load_document

# Imported once in the fork server, so that each child starts with the parsers loaded.
_PRELOAD = ["rag.parsing", "bs4", "docx", "pypdf", "lxml.etree"]
_MB = 1024 * 1024
CHILD_START_SECONDS = 30.0
# Every `Process.start()` also reaps the finished children of every thread: one started while another
# thread waits for its own child could read that child's exit status first, and that thread a wrong one.
_REAPING = threading.Lock()


@dataclass(frozen=True)
class ChildLimits:
    cpu_seconds: int
    memory_bytes: int
    wall_seconds: float
    concurrency: int


class DocumentReader:
    """`load_document` in a child process per document, at most `concurrency` at once."""

    def __init__(self, limits: ChildLimits) -> None:
        self.limits = limits
        self._slots = asyncio.Semaphore(limits.concurrency)
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(_PRELOAD)

    async def read(self, filename: str, data: bytes, **document_limits: Any) -> LoadedDocument:
        """As `load_document(filename, data, **document_limits)`; a document over a child limit
        raises `DocumentTooComplex`."""
        async with self._slots:
            return await asyncio.to_thread(self._read_in_child, filename, data, document_limits)

    def _read_in_child(self, filename: str, data: bytes, document_limits: dict[str, Any]) -> LoadedDocument:
        limits = self.limits
        receiver, sender = self._context.Pipe(duplex=False)
        child = self._context.Process(
            target=_read,
            args=(sender, filename, data, document_limits, limits.cpu_seconds, limits.memory_bytes),
            name="document-reader",
            daemon=True,
        )
        with _REAPING:
            child.start()
        sender.close()
        outcome, finished = None, False
        try:
            # The clock starts once the child runs: a busy machine's slow start is not the document's fault.
            started = False
            if receiver.poll(CHILD_START_SECONDS):
                with contextlib.suppress(EOFError):  # it died before it began
                    started = receiver.recv() == "started"
            finished = receiver.poll(limits.wall_seconds) if started else True
            if finished and started:
                with contextlib.suppress(EOFError):  # it died without a word: killed by a limit
                    outcome = receiver.recv()
        finally:
            with _REAPING:
                if not finished:
                    child.kill()
                child.join(timeout=5)
                if child.is_alive():
                    child.kill()
                    child.join()
                exitcode = child.exitcode
            receiver.close()
        if not finished:
            raise DocumentTooComplex(_too_slow(filename, f"more than {_seconds(limits.wall_seconds)}"))
        if outcome is None:
            if exitcode in (-signal.SIGXCPU, -signal.SIGKILL):  # the soft, then the hard CPU limit
                raise DocumentTooComplex(_too_slow(filename, f"more than {_seconds(limits.cpu_seconds)} of CPU time"))
            raise CorruptDocument(f"'{filename}' could not be read: the reader stopped (exit code {exitcode}).")
        kind, value = outcome
        if kind == "document":
            return value
        if kind == "memory":
            raise DocumentTooComplex(
                f"'{filename}' needs more than {limits.memory_bytes // _MB:,} MB of memory to read; "
                "split it into smaller files or save it in a simpler format (plain text or Markdown)."
            )
        raise value


def _seconds(count: float) -> str:
    return f"{count:g} second{'' if count == 1 else 's'}"


def _too_slow(filename: str, took: str) -> str:
    return (
        f"This file takes too long to read: '{filename}' needed {took}. Split it into smaller files "
        "or save it in a simpler format (plain text or Markdown)."
    )


def _read(sender: Connection, filename: str, data: bytes, document_limits: dict[str, Any], cpu: int, memory: int) -> None:
    """The child: limit itself, read, send back ("document", LoadedDocument), ("error", DocumentError)
    or ("memory", None)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGXCPU would otherwise dump the whole process
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU at the soft limit, SIGKILL at the hard
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    sender.send("started")
    try:
        outcome: tuple[str, Any] = ("document", load_document(filename, data, **document_limits))
    except DocumentError as exc:
        outcome = ("error", exc)
    except MemoryError:
        outcome = ("memory", None)
    try:
        sender.send(outcome)
    except MemoryError:  # the document read, but its text does not fit in the pipe's buffer
        sender.send(("memory", None))
    sender.close()
