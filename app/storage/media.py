"""Content-addressed media files: every attachment is copied into `media/` under its sha256.

`media/ab/abcdef….ext` holds the bytes, `media/ab/abcdef….thumb.jpg` an optional
thumbnail (and `….strip.jpg` a video's frame strip); the `media` table records kind,
MIME type, size and a JSON `meta` (duration, size in pixels, waveform preview...). The
same file attached twice is stored once. Files are written to a temporary name and
renamed into place, so a crash never leaves a half-written file under a real hash.

Files are removed only by `collect_garbage`: those no message refers to any more (after
the trash was purged) and older than a grace period (so media ingested for a message
still being composed survive).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from app.storage.database import Database

CHUNK = 1 << 20
GARBAGE_GRACE_S = 24 * 3600


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
        self.root.mkdir(parents=True, exist_ok=True)
        self.db = db
        self._clock = clock

    # -- paths ----------------------------------------------------------------------------

    def _rel(self, sha256: str, suffix: str) -> str:
        return f"{sha256[:2]}/{sha256}{suffix}"

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
        ext = ext if not ext or ext.startswith(".") else f".{ext}"
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
            target = self.root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
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
        path = self.root / self._rel(sha256, suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
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
