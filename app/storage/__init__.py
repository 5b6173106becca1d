"""Local storage of Gemma Desk: the SQLite database, conversations, media files, export.

`open_storage(data_dir)` opens (creating and migrating as needed) everything one data
folder holds and returns a `Storage` bundle; the GUI and the terminal chat both use it,
so a conversation started in one continues in the other. See docs/STORAGE.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from app.paths import DataPaths, data_paths
from app.storage.conversations import ConversationStore
from app.storage.database import Database
from app.storage.media import MediaStore


@dataclass
class Storage:
    """Everything stored in one data folder."""

    paths: DataPaths
    db: Database
    conversations: ConversationStore
    media: MediaStore

    def housekeeping(self) -> dict[str, int]:
        """Startup chores: mark dead streams interrupted, purge the 30-day trash, drop orphan media."""
        interrupted = self.conversations.recover_interrupted()
        purged = self.conversations.purge_trash()
        removed = self.media.collect_garbage()
        return {"interrupted": len(interrupted), "purged": purged, "media_removed": len(removed)}

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_storage(
    data_dir: str | os.PathLike[str] | DataPaths | None = None, *, housekeeping: bool = True
) -> Storage:
    """Open the data folder (`--data-dir` value or None for the usual resolution, see app.paths)."""
    paths = data_dir.ensure() if isinstance(data_dir, DataPaths) else data_paths(data_dir)
    db = Database(paths.database)
    storage = Storage(paths, db, ConversationStore(db), MediaStore(paths.media, db))
    if housekeeping:
        storage.housekeeping()
    return storage


__all__ = ["Database", "ConversationStore", "MediaStore", "Storage", "open_storage"]
