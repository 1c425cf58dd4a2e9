"""What one visitor may cost the server outside the events' own checks: upload bytes per client address, the size of
Gradio's file cache, and the log lines a refused request writes.

Gradio bounds one file (launch's max_file_size) but not how fast a client uploads, and its cache only by age:
one client stored 380 MB in 4.4 s. UploadBudget (an ASGI middleware, given to the app as launch's app_kwargs)
lets each client address upload UPLOAD_BYTES per UPLOAD_WINDOW seconds and refuses the rest with a 429 that
says when to retry, before a byte is stored; CacheCap keeps the cache folder under CACHE_BYTES whatever the
rate, oldest files first. quiet_logs() makes a refusal one line with no input and no traceback.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from pathlib import Path

UPLOAD_BYTES = 40_000_000  # per address and window: four of the largest photos Classify takes (core.upload)
UPLOAD_WINDOW = 60.0  # seconds
MAX_ADDRESSES = 10_000  # addresses remembered; the least recently seen is forgotten first
CACHE_BYTES = 1_000_000_000  # Gradio's cache folder (uploads and served files) stays under 1 GB
CACHE_EVERY = 10.0  # seconds between two looks at the cache's size


def first_hop(forwarded: str | None, peer: str | None) -> str | None:
    """The client's address: the first X-Forwarded-For hop (a Space sits behind the Hub's proxy), else the
    socket's peer. A forged header only splits one client into several, each with its own budget or place."""
    return (forwarded or "").split(",")[0].strip() or peer


def client_address(scope: dict) -> str:
    """first_hop of an ASGI request's scope; "?" when neither is known."""
    forwarded = dict(scope.get("headers") or []).get(b"x-forwarded-for")
    client = scope.get("client")
    return first_hop(forwarded.decode("latin-1") if forwarded else None, client[0] if client else None) or "?"


class UploadBudget:
    """ASGI middleware: POST .../upload requests from one address may carry at most UPLOAD_BYTES (their
    Content-Length) per UPLOAD_WINDOW seconds; one that would pass it is answered 429 before its body is read,
    and one without a Content-Length 411 (a browser and gradio_client always send one)."""

    def __init__(self, app, budget: int = UPLOAD_BYTES, window: float = UPLOAD_WINDOW, clock=time.monotonic):
        self.app, self.budget, self.window, self.clock = app, budget, window, clock
        self._spent: OrderedDict[str, list[tuple[float, int]]] = OrderedDict()  # address -> (time, bytes)
        self._lock = threading.Lock()

    def charge(self, address: str, size: int) -> float:
        """Book `size` bytes to `address`; 0.0 when within its budget, else how many seconds until it would be."""
        now = self.clock()
        with self._lock:
            spent = [(t, n) for t, n in self._spent.pop(address, []) if now - t < self.window]
            self._spent[address] = spent  # most recently seen last
            while len(self._spent) > MAX_ADDRESSES:
                self._spent.popitem(last=False)
            used = sum(n for _, n in spent)
            if used + size > self.budget:
                freed, wait = used + size - self.budget, 0.0
                for t, n in spent:  # the oldest uploads leave the window first
                    freed -= n
                    wait = t + self.window - now
                    if freed <= 0:
                        break
                return max(wait, 1.0) if size <= self.budget else self.window
            spent.append((now, size))
            return 0.0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "POST" or not scope.get("path", "").endswith("/upload"):
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is None or not length.isdigit():
            return await _refuse(send, 411, "Uploads need a Content-Length header.")
        wait = self.charge(client_address(scope), int(length))
        if wait:
            logging.getLogger("vgl.limits").warning("upload refused: over the per-address budget")
            return await _refuse(send, 429, f"Upload limit: at most {self.budget / 1e6:g} MB per "
                                 f"{self.window:.0f} s from one address. Try again in {wait:.0f} s.",
                                 [(b"retry-after", str(round(wait)).encode())])
        return await self.app(scope, receive, send)


async def _refuse(send, status: int, message: str, headers=()) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


def trim_cache(folder: Path, limit: int = CACHE_BYTES, keep: Collection[str] = ()) -> int:
    """Delete the oldest files under `folder` until what is left is at most `limit` bytes; the bytes deleted.
    Gradio's own delete_cache removes files by age only, so a fast client could fill the disk in between.
    `keep`: files never deleted (page_files: the page's own, copied once at build; the oldest, so the first
    to go otherwise, and then gone for every visitor)."""
    kept = {os.path.realpath(k) for k in keep}
    files = []
    for path in folder.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink() and os.path.realpath(path) not in kept:
                st = path.stat()
                files.append((st.st_mtime, st.st_size, path))
        except OSError:  # deleted meanwhile (Gradio's own clean-up)
            continue
    total, deleted = sum(size for _, size, _ in files), 0
    for _, size, path in sorted(files, key=lambda f: f[0]):
        if total <= limit:
            break
        try:
            path.unlink()
        except OSError:
            continue
        total, deleted = total - size, deleted + size
    return deleted


def page_files(demo) -> set[str]:
    """The files of the page itself in Gradio's cache (components' default values, copied once at build),
    which Gradio's own delete_cache keeps too."""
    return {str(p) for block in demo.blocks.values() for p in getattr(block, "keep_in_cache", ())}


def keep_cache_small(folder: Path, limit: int = CACHE_BYTES, every: float = CACHE_EVERY,
                     keep: Callable[[], Collection[str]] = frozenset) -> threading.Thread:
    """A daemon thread that trims `folder` to `limit` bytes every `every` seconds, never deleting keep()."""
    def loop():
        while True:
            time.sleep(every)
            if folder.is_dir():
                trim_cache(folder, limit, keep())
    thread = threading.Thread(target=loop, name="cache-cap", daemon=True)
    thread.start()
    return thread


class OneLine(logging.Filter):
    """A refused request's record, one line: no traceback, and no more than 200 characters of its message (an
    error may quote what was sent: a 60 MB body must not become a 60 MB log line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info or record.exc_text:
            kind = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else "error"
            record.msg, record.args = f"{record.getMessage()[:200]} ({kind}; traceback not logged)", None
            record.exc_info = record.exc_text = None
        elif len(msg := record.getMessage()) > 200:
            record.msg, record.args = msg[:200] + " … (cut)", None
        return True


def quiet_logs() -> None:
    """Every log record of the server, Gradio and uvicorn, one short line (OneLine)."""
    for name in ("", "gradio", "uvicorn", "uvicorn.error", "uvicorn.access", "fastapi"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, OneLine) for f in logger.filters):
            logger.addFilter(OneLine())
