"""A real HTTP proxy for failure injection: it answers scripted faults (status codes, delays, canned replies)
and forwards everything else to a real chat-completions server. Loopback only; every fault is bounded."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FaultProxy:
    """``faults`` is consumed one per request: ``("status", code, headers)``, ``("delay", seconds)`` (then
    forward), ``("reply", content)`` (a canned completion); an empty script forwards."""

    def __init__(self, upstream: str, faults: list | None = None, delay_each_s: float = 0.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults = list(faults or [])
        self.delay_each_s = delay_each_s
        self.seen: list[dict] = []  # path and Authorization header of every request
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def reply(self, status: int, body: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                    pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy._lock:
                    proxy.seen.append({"path": self.path, "authorization": self.headers.get("Authorization")})
                    fault = proxy.faults.pop(0) if proxy.faults else None
                    proxy.in_flight += 1
                    proxy.max_in_flight = max(proxy.max_in_flight, proxy.in_flight)
                try:
                    if fault and fault[0] == "status":
                        headers = fault[2] if len(fault) > 2 else {}
                        self.reply(fault[1], json.dumps({"error": {"message": f"injected {fault[1]}"}}).encode(),
                                   headers)
                        return
                    if fault and fault[0] == "reply":
                        completion = {"choices": [{"index": 0, "finish_reason": "stop",
                                                   "message": {"role": "assistant", "content": fault[1]}}],
                                      "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
                        self.reply(200, json.dumps(completion).encode())
                        return
                    time.sleep(fault[1] if fault and fault[0] == "delay" else proxy.delay_each_s)
                    request = urllib.request.Request(proxy.upstream + self.path.removeprefix("/v1"), data=body,
                                                     method="POST", headers={"Content-Type": "application/json"})
                    if self.headers.get("Authorization"):
                        request.add_header("Authorization", self.headers["Authorization"])
                    try:
                        with urllib.request.urlopen(request, timeout=60) as response:
                            self.reply(response.status, response.read())
                    except urllib.error.HTTPError as error:
                        self.reply(error.code, error.read())
                finally:
                    with proxy._lock:
                        proxy.in_flight -= 1

        return Handler
