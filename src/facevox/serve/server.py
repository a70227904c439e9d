"""The HTTP side of ``facevox serve``: stdlib ``http.server``, one page, a tiny JSON API.

- ``GET /``: the page (``page.html``; no external assets, everything is served from here).
- ``POST /api/jobs``: a JSON submission (see :mod:`facevox.serve.jobs`) -> ``{"id": ...}``, or 400
  with ``{"error": "..."}`` for bad input (nothing queued, nothing written), 413 for a body over
  the upload limit (read and discarded, so that the client gets the answer rather than a reset
  connection), 503 when the queue is full.
- ``GET /api/jobs``: every job of the work folder (this server's and earlier ones'), newest first.
- ``GET /api/jobs/ID``: state, phase, step / steps, error, and once done the mp4 and sidecar URLs.
- ``GET /jobs/ID/clip.mp4`` and ``clip.json``: the result (byte ranges supported, for ``<video>``).
"""

from __future__ import annotations

import json
import logging
import re
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any

from facevox.pipeline import RequestError
from facevox.serve.jobs import JobRunner, QueueFullError

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 64 * 2**20  # one submission (all faces and voices, base64)
DISCARD_SECONDS = 10.0  # at most this long spent reading an over-limit body to answer 413 cleanly
_TYPES = {".mp4": "video/mp4", ".json": "application/json"}


def _handler(runner: JobRunner) -> type[BaseHTTPRequestHandler]:
    page = files("facevox.serve").joinpath("page.html").read_bytes()

    class Handler(BaseHTTPRequestHandler):
        server_version = "facevox-serve"
        timeout = 60  # seconds a client may stall mid-request before its connection is dropped

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("%s " + fmt, self.address_string(), *args)

        def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, obj: Any) -> None:
            self._send(status, json.dumps(obj).encode(), "application/json")

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                return self._send(HTTPStatus.OK, page, "text/html; charset=utf-8")
            if path == "/api/jobs":
                return self._json(HTTPStatus.OK, {"jobs": runner.listing()})
            if m := re.fullmatch(r"/api/jobs/([0-9a-f]{12})", path):
                job = runner.jobs.get(m[1])
                if job is None:
                    return self._json(HTTPStatus.NOT_FOUND, {"error": f"no job {m[1]}"})
                return self._json(HTTPStatus.OK, job.public())
            if (m := re.fullmatch(r"/jobs/([0-9a-f]{12})/([a-z]+\.(?:mp4|json))", path)) and (
                f := runner.file(m[1], m[2])
            ):
                return self._file(f.read_bytes(), _TYPES[f.suffix])
            return self._json(HTTPStatus.NOT_FOUND, {"error": f"not found: {path}"})

        do_HEAD = do_GET  # noqa: N815

        def _file(self, data: bytes, ctype: str) -> None:
            rng = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
            if not rng or not (rng[1] or rng[2]):
                return self._send(HTTPStatus.OK, data, ctype, {"Accept-Ranges": "bytes"})
            n = len(data)
            start, end = (int(rng[1]), int(rng[2] or n - 1)) if rng[1] else (n - int(rng[2]), n - 1)
            start, end = max(start, 0), min(end, n - 1)
            if start > end:
                return self._send(
                    HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, b"", ctype, {"Content-Range": f"bytes */{n}"}
                )
            headers = {"Accept-Ranges": "bytes", "Content-Range": f"bytes {start}-{end}/{n}"}
            return self._send(HTTPStatus.PARTIAL_CONTENT, data[start : end + 1], ctype, headers)

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/api/jobs":
                return self._json(HTTPStatus.NOT_FOUND, {"error": f"not found: {self.path}"})
            length = self.headers.get("Content-Length") or "0"
            if not re.fullmatch(r"[0-9]+", length):
                self.close_connection = True  # the body's end is unknown: nothing more is read
                return self._json(
                    HTTPStatus.BAD_REQUEST, {"error": f"Content-Length must be a byte count, got {length!r}"}
                )
            size = int(length)
            if size > MAX_UPLOAD_BYTES:
                self._json(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    {
                        "error": f"uploads total {size / 2**20:.1f} MiB; the limit is "
                        f"{MAX_UPLOAD_BYTES >> 20} MiB"
                    },
                )
                return self._discard(size)
            try:
                body = self.rfile.read(size)
            except OSError:  # the client stalled past `timeout` or went away: nobody to answer
                self.close_connection = True
                return None
            try:
                payload = json.loads(body or b"null")
                job = runner.submit(payload)
            except json.JSONDecodeError as e:
                return self._json(HTTPStatus.BAD_REQUEST, {"error": f"the request body is not JSON ({e})"})
            except QueueFullError as e:
                return self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(e)})
            except RequestError as e:
                return self._json(HTTPStatus.BAD_REQUEST, {"error": str(e)})
            return self._json(HTTPStatus.ACCEPTED, job.public())

        def _discard(self, size: int) -> None:
            """Read and drop an unwanted body (at most ``DISCARD_SECONDS``), then close: closing
            with unread bytes resets the connection, and the client would lose the answer."""
            self.close_connection = True
            deadline = time.monotonic() + DISCARD_SECONDS
            try:
                while size > 0 and time.monotonic() < deadline:
                    chunk = self.rfile.read1(min(size, 1 << 20))
                    if not chunk:
                        break
                    size -= len(chunk)
            except OSError:
                pass

    return Handler


def make_server(runner: JobRunner, host: str = "127.0.0.1", port: int = 7860) -> ThreadingHTTPServer:
    """An HTTP server over ``runner`` (port 0: any free port; read ``server.server_address``)."""
    server = ThreadingHTTPServer((host, port), _handler(runner))
    server.daemon_threads = True
    return server
