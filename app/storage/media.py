"""Content-addressed media files: every attachment is copied into `media/` under its sha256.

`media/ab/abcdef….ext` holds the bytes, `media/ab/abcdef….thumb.jpg` an optional
thumbnail (and `….strip.jpg` a video's frame strip); the `media` table records kind,
MIME type, size and a JSON `meta` (duration, size in pixels, waveform preview...). The
same file attached twice is stored once. Files are written to a temporary name and
renamed into place, so a crash never leaves a half-written file under a real hash; they
are created 0600 in 0700 folders (private to the user).

Every path is built from a checked hash (64 hex digits) and a short alphanumeric extension
and must resolve inside the media folder: `MediaPathError` otherwise, before anything is
written.

Files are removed only by `collect_garbage`: those no message refers to any more (after
the trash was purged) and older than a grace period (so media ingested for a message
still being composed survive).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from app.paths import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE
from app.storage.database import Database

CHUNK = 1 << 20
GARBAGE_GRACE_S = 24 * 3600
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
EXTENSION_PATTERN = re.compile(r"\.[A-Za-z0-9]{1,10}")
# Derived files: ".thumb.jpg", ".strip.jpg" (a second short alphanumeric part allowed).
SUFFIX_PATTERN = re.compile(r"(\.[A-Za-z0-9]{1,10}){1,2}")


class MediaPathError(ValueError):
    """A hash or extension that would put a file outside the media folder (or is malformed)."""


def normalize_extension(ext: str) -> str:
    """`ext` as stored: "" or a dot and 1-10 letters/digits ("png" -> ".png"); else `MediaPathError`."""
    if not isinstance(ext, str):
        raise MediaPathError(f"A media file extension must be text; got {type(ext).__name__}.")
    if not ext:
        return ""
    ext = ext if ext.startswith(".") else f".{ext}"
    if not EXTENSION_PATTERN.fullmatch(ext):
        raise MediaPathError(
            f"The media file extension {ext[:20]!r} is not allowed (a dot and 1-10 letters or digits)."
        )
    return ext


@dataclass(frozen=True)
class MediaRecord:
    """A stored media file (absolute paths resolved against the media folder)."""

    sha256: str
    kind: str  # "image" | "audio" | "video"
    mime: str
    size: int
    path: Path
    thumbnail: Path | None
    meta: dict[str, Any]
    created_at: float

    @property
    def frame_strip(self) -> Path | None:
        name = self.meta.get("frame_strip")
        return self.path.parent / name if name else None


class MediaStore:
    """The `media/` folder plus its table."""

    def __init__(self, root: str | Path, db: Database, *, clock: Any = time.time) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
        self.db = db
        self._clock = clock

    # -- paths ----------------------------------------------------------------------------

    def _rel(self, sha256: str, suffix: str) -> str:
        if not isinstance(sha256, str) or not SHA256_PATTERN.fullmatch(sha256):
            raise MediaPathError(f"{str(sha256)[:70]!r} is not a sha256 hash (64 hex digits).")
        if suffix and not SUFFIX_PATTERN.fullmatch(suffix):
            raise MediaPathError(f"The media file suffix {suffix[:20]!r} is not allowed.")
        return f"{sha256[:2]}/{sha256}{suffix}"

    def _target(self, rel: str) -> Path:
        """The absolute path of `rel`, checked to resolve inside the media folder."""
        root = self.root.resolve()
        target = (root / rel).resolve()
        if not target.is_relative_to(root) or target == root:
            raise MediaPathError(f"{rel!r} would be outside the media folder.")
        return target

    def path_for(self, sha256: str, ext: str) -> Path:
        """Where the bytes of `sha256` with extension `ext` are (or would be) stored."""
        return self._target(self._rel(sha256, normalize_extension(ext)))

    def path_of(self, sha256: str) -> Path:
        """Where the bytes of `sha256` live (raises `KeyError` for an unknown hash)."""
        return self.get(sha256).path

    # -- adding ---------------------------------------------------------------------------

    def add_file(
        self,
        source: str | Path,
        *,
        kind: str,
        mime: str,
        ext: str,
        meta: dict[str, Any] | None = None,
    ) -> MediaRecord:
        """Copy a file in (streaming, hashing as it goes) and record it; returns the record."""
        with open(source, "rb") as f:
            return self.add_stream(f, kind=kind, mime=mime, ext=ext, meta=meta)

    def add_bytes(
        self, data: bytes, *, kind: str, mime: str, ext: str, meta: dict[str, Any] | None = None
    ) -> MediaRecord:
        import io

        return self.add_stream(io.BytesIO(data), kind=kind, mime=mime, ext=ext, meta=meta)

    def add_stream(
        self,
        stream: BinaryIO,
        *,
        kind: str,
        mime: str,
        ext: str,
        meta: dict[str, Any] | None = None,
    ) -> MediaRecord:
        ext = normalize_extension(ext)
        digest = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(prefix=".incoming-", dir=self.root)
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha256 = digest.hexdigest()
            rel = self._rel(sha256, ext)
            target = self._target(rel)
            target.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
            if target.exists() and target.stat().st_size == size:
                os.unlink(tmp_name)
            else:
                os.replace(tmp_name, target)
        except BaseException:
            with _suppress_oserror():
                os.unlink(tmp_name)
            raise
        now = self._clock()
        with self.db.transaction() as conn:
            existing = conn.execute("SELECT * FROM media WHERE sha256 = ?", (sha256,)).fetchone()
            if existing is None:
                conn.execute(
                    "INSERT INTO media (sha256, kind, mime, size, rel_path, meta, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (sha256, kind, mime, size, rel, json.dumps(meta or {}), now),
                )
            else:
                # Re-added: refresh its age so garbage collection's grace period restarts.
                merged = {**json.loads(existing["meta"]), **(meta or {})}
                conn.execute(
                    "UPDATE media SET created_at = ?, meta = ? WHERE sha256 = ?",
                    (now, json.dumps(merged), sha256),
                )
        return self.get(sha256)

    def write_derived(self, sha256: str, suffix: str, data: bytes) -> Path:
        """Write a derived file (thumbnail, frame strip) beside the media file, atomically."""
        path = self._target(self._rel(sha256, suffix))
        path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
        return path

    def set_thumbnail(self, sha256: str, jpeg: bytes) -> Path:
        path = self.write_derived(sha256, ".thumb.jpg", jpeg)
        self.db.execute(
            "UPDATE media SET thumb_rel_path = ? WHERE sha256 = ?",
            (self._rel(sha256, ".thumb.jpg"), sha256),
        )
        return path

    def update_meta(self, sha256: str, **meta: Any) -> MediaRecord:
        with self.db.transaction() as conn:
            row = conn.execute("SELECT meta FROM media WHERE sha256 = ?", (sha256,)).fetchone()
            if row is None:
                raise KeyError(sha256)
            merged = {**json.loads(row["meta"]), **meta}
            conn.execute("UPDATE media SET meta = ? WHERE sha256 = ?", (json.dumps(merged), sha256))
        return self.get(sha256)

    # -- reading --------------------------------------------------------------------------

    def _record(self, row: sqlite3.Row) -> MediaRecord:
        return MediaRecord(
            sha256=row["sha256"],
            kind=row["kind"],
            mime=row["mime"],
            size=row["size"],
            path=self.root / row["rel_path"],
            thumbnail=self.root / row["thumb_rel_path"] if row["thumb_rel_path"] else None,
            meta=json.loads(row["meta"]),
            created_at=row["created_at"],
        )

    def get(self, sha256: str) -> MediaRecord:
        row = self.db.query_one("SELECT * FROM media WHERE sha256 = ?", (sha256,))
        if row is None:
            raise KeyError(f"No media file with hash {sha256}.")
        return self._record(row)

    def find(self, sha256: str) -> MediaRecord | None:
        try:
            return self.get(sha256)
        except KeyError:
            return None

    # -- removal --------------------------------------------------------------------------

    def collect_garbage(self, *, grace_s: float = GARBAGE_GRACE_S) -> list[str]:
        """Remove media no attachment refers to and older than `grace_s`; returns their hashes."""
        cutoff = self._clock() - grace_s
        with self.db.transaction() as conn:
            rows = conn.execute(
                "SELECT * FROM media WHERE created_at <= ? AND NOT EXISTS"
                " (SELECT 1 FROM attachments a WHERE a.sha256 = media.sha256)",
                (cutoff,),
            ).fetchall()
            records = [self._record(r) for r in rows]
            conn.executemany("DELETE FROM media WHERE sha256 = ?", [(r.sha256,) for r in records])
        # Files go after the rows are gone: a crash in between leaves only stray files.
        for record in records:
            for path in (record.path, record.thumbnail, record.frame_strip):
                if path is not None:
                    with _suppress_oserror():
                        path.unlink()
        self._remove_stray_temporaries()
        return [r.sha256 for r in records]

    def _remove_stray_temporaries(self) -> None:
        cutoff = time.time() - 3600
        for tmp in self.root.glob(".incoming-*"):
            with _suppress_oserror():
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()

    def disk_usage(self) -> int:
        """Bytes used by media files (as recorded)."""
        row = self.db.query_one("SELECT COALESCE(SUM(size), 0) FROM media")
        return int(row[0])


class _suppress_oserror:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        return exc_type is not None and issubclass(exc_type, OSError)


def copy_out(record: MediaRecord, destination: str | Path) -> Path:
    """Copy a stored file out (for "Save attachment as…")."""
    return Path(shutil.copyfile(record.path, destination))
