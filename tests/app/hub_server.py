"""A tiny stand-in for the Hugging Face hub on 127.0.0.1, serving one folder as a model repo
(and more folders as more repos, `others`).

It answers the endpoints huggingface_hub and our downloader call:

- `GET /api/models/{repo}/revision/{rev}`          -> model info with the commit sha
- `GET /api/models/{repo}/tree/{rev}?recursive=..` -> file list with sizes, git oids, LFS sha256
- `GET|HEAD /{repo}/resolve/{rev}/{path}`           -> file bytes, honouring `Range`

and can misbehave on request, once per file: drop the connection part-way (`drop_after`),
go silent part-way (`stall_after`, or always: `stall_every`), answer with an error status (`fail_with`), serve
corrupt bytes (`corrupt`), or trickle slowly (`chunk_delay_s`). Every request is logged.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LFS_SUFFIXES = (".safetensors",)


@dataclass
class Faults:
    """One-shot misbehaviours keyed by file path (each is consumed by the next GET)."""

    drop_after: dict[str, int] = field(default_factory=dict)
    stall_after: dict[str, int] = field(default_factory=dict)
    stall_every: set[str] = field(default_factory=set)  # permanent: headers, then silence
    fail_with: dict[str, list[int]] = field(default_factory=dict)
    corrupt: set[str] = field(default_factory=set)  # permanent, not one-shot
    chunk_delay_s: float = 0.0


@dataclass(frozen=True)
class Logged:
    method: str
    path: str
    range: str | None


class FakeHub:
    """Serve `folder` as model repo `repo_id`; use as a context manager."""

    def __init__(
        self,
        folder: Path,
        repo_id: str = "tests/tiny-gemma",
        gated: bool = False,
        others: dict[str, Path] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.repo_id = repo_id
        self.repos = {repo_id: self.folder, **{r: Path(f) for r, f in (others or {}).items()}}
        self.gated = gated
        self.faults = Faults()
        self.log: list[Logged] = []
        self._lock = threading.Lock()
        self._release = threading.Event()  # ends stalls at shutdown
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    # ---------------------------------------------------------------- repo data

    def files(self, repo_id: str | None = None) -> list[Path]:
        folder = self.repos[repo_id or self.repo_id]
        return sorted(p for p in folder.rglob("*") if p.is_file())

    def tree(self, repo_id: str | None = None) -> list[dict]:
        entries = []
        folder = self.repos[repo_id or self.repo_id]
        for path in self.files(repo_id):
            data = path.read_bytes()
            rel = path.relative_to(folder).as_posix()
            oid = hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()
            entry = {"type": "file", "path": rel, "size": len(data), "oid": oid}
            if rel.endswith(LFS_SUFFIXES):
                sha = hashlib.sha256(data).hexdigest()
                entry["lfs"] = {"oid": sha, "size": len(data), "pointerSize": 134}
            entries.append(entry)
        return entries

    def gets_of(self, rel: str) -> list[Logged]:
        with self._lock:
            return [e for e in self.log if e.method == "GET" and e.path.endswith("/" + rel)]

    # ---------------------------------------------------------------- HTTP

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_HEAD(self) -> None:
                self._serve(head=True)

            def do_GET(self) -> None:
                self._serve(head=False)

            def _serve(self, head: bool) -> None:
                url = urlparse(self.path)
                path = unquote(url.path)
                with hub._lock:
                    hub.log.append(Logged(self.command, path, self.headers.get("Range")))
                if hub.gated:
                    return self._error(403, "GatedRepo", "Access to this repo is restricted.")
                for repo_id in hub.repos:
                    repo = re.escape(repo_id)
                    if m := re.fullmatch(rf"/api/models/{repo}/revision/([^/]+)", path):
                        return self._json({"id": repo_id, "sha": COMMIT, "siblings": [
                            {"rfilename": e["path"]} for e in hub.tree(repo_id)
                        ]})  # fmt: skip
                    if re.fullmatch(rf"/api/models/{repo}/tree/[^/]+", path):
                        return self._json(hub.tree(repo_id))
                    if m := re.fullmatch(rf"/{repo}/resolve/([^/]+)/(.+)", path):
                        return self._file(m.group(2), head, hub.repos[repo_id])
                if path.startswith("/api/models/") or "/resolve/" in path:
                    return self._error(404, "RepoNotFound", "Repository not found")
                return self._error(404, "EntryNotFound", "Not found")

            def _json(self, payload) -> None:
                body = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Repo-Commit", COMMIT)
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, code: str, message: str) -> None:
                body = json.dumps({"error": message}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", message)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _file(self, rel: str, head: bool, folder: Path) -> None:
                target = (folder / rel).resolve()
                if not target.is_file() or folder.resolve() not in target.parents:
                    return self._error(404, "EntryNotFound", f"{rel} not found")
                faults = hub.faults
                with hub._lock:
                    statuses = faults.fail_with.get(rel) if not head else None
                    status = statuses.pop(0) if statuses else None
                    drop = None if head else faults.drop_after.pop(rel, None)
                    stall = None if head else faults.stall_after.pop(rel, None)
                    if not head and rel in faults.stall_every:
                        stall = 0
                if status is not None:
                    return self._error(status, "ServerError", "try again later")
                data = target.read_bytes()
                if rel in faults.corrupt:
                    data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
                start = 0
                ranged = self.headers.get("Range")
                if ranged and (m := re.fullmatch(r"bytes=(\d+)-", ranged)):
                    start = int(m.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                body = data[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.end_headers()
                if head:
                    return
                limit = len(body)
                if drop is not None:
                    limit = min(limit, drop)
                if stall is not None:
                    limit = min(limit, stall)
                sent = 0
                try:
                    while sent < limit:
                        piece = body[sent : min(limit, sent + 16_384)]
                        self.wfile.write(piece)
                        self.wfile.flush()
                        sent += len(piece)
                        if faults.chunk_delay_s and hub._release.wait(faults.chunk_delay_s):
                            return
                    if stall is not None:
                        hub._release.wait(10.0)  # silent, connection open; bounded
                except (BrokenPipeError, ConnectionResetError):
                    return
                # drop: returning without the rest closes the HTTP/1.0 connection early

        return Handler


def go_online(monkeypatch) -> None:
    """Undo the suite-wide HF_HUB_OFFLINE for a test that talks only to a FakeHub on 127.0.0.1."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
