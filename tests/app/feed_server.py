"""A release feed on 127.0.0.1 for the update-check tests (app and GUI)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FeedServer:
    """A release feed on 127.0.0.1: serves `body` with `status` at any path, except the paths in
    `redirects` (path -> address: a 302 there); records each request's path."""

    def __init__(self) -> None:
        self.body: bytes = b""
        self.status = 200
        self.redirects: dict[str, str] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.requests.append(self.path)
                if self.path in server.redirects:
                    self.send_response(302)
                    self.send_header("Location", server.redirects[self.path])
                    self.end_headers()
                    return
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_port}"
        self.url = f"{self.base}/feed.json"

    def start(self) -> FeedServer:
        threading.Thread(target=self.httpd.serve_forever, name="feed", daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def serve(self, feed: dict | None = None, *, raw: bytes | None = None, status: int = 200):
        self.body = raw if raw is not None else json.dumps(feed).encode()
        self.status = status
