"""Helpers shared by the backend tests: a real ``transformers serve`` on loopback, a scripted
stdlib HTTP server, and waiting for a child process's line. Every wait is bounded in time and
every loop in count."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

SERVE_READY_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_line(proc: subprocess.Popen, prefix: str, timeout_s: float = 120.0) -> str:
    """The first stdout line of ``proc`` that starts with ``prefix``. A thread reads stdout to
    its end (read nothing else from it); a process that ends without the line, or stays silent
    for ``timeout_s``, fails the test (killed, with its stderr) instead of hanging it."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)  # end of output

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        if line.startswith(prefix):
            return line
    proc.kill()
    proc.wait()
    raise AssertionError(f"no {prefix!r} line from the process: {proc.stderr.read()[-2000:]}")


def serve_available() -> str | None:
    """None when ``transformers serve`` can run here, else the reason it cannot."""
    try:
        import fastapi  # noqa: F401
        import transformers.cli.serve  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        return f"transformers serve is not importable ({err}); pip install 'transformers[serving]'"
    return None


@contextlib.contextmanager
def transformers_serve(checkpoint: Path, log_path: Path) -> Iterator[str]:
    """Run ``transformers serve CHECKPOINT`` on a free loopback port; yield its ``/v1`` URL."""
    port = free_port()
    exe = shutil.which("transformers")
    cmd = [exe] if exe else [sys.executable, "-m", "transformers.cli.transformers"]
    cmd += ["serve", str(checkpoint), "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + SERVE_READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"transformers serve exited with {proc.returncode}: {log_path.read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"transformers serve not ready after {SERVE_READY_TIMEOUT_S} s")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


class ScriptedServer:
    """A threaded stdlib HTTP server on loopback; ``handler(body, headers) -> (status, headers, payload)``
    answers each POST (payload: dict for JSON, list of dicts for an SSE stream). Records requests
    and the most calls seen in flight at once."""

    def __init__(self, handler: Callable[[dict[str, Any], dict[str, str]], tuple[int, dict[str, str], Any]]):
        self.handler = handler
        self.requests: list[tuple[dict[str, Any], dict[str, str]]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - stdlib name
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                headers = {k: v for k, v in self.headers.items()}
                with outer._lock:
                    outer.requests.append((body, headers))
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    status, extra_headers, payload = outer.handler(body, headers)
                finally:
                    with outer._lock:
                        outer.in_flight -= 1
                if isinstance(payload, list):
                    data = "".join(f"data: {json.dumps(p)}\n\n" for p in payload) + "data: [DONE]\n\n"
                    raw, ctype = data.encode(), "text/event-stream"
                else:
                    raw, ctype = json.dumps(payload).encode(), "application/json"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(raw)))
                for k, v in extra_headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
