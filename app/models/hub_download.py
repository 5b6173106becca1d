"""Downloads into the Hugging Face cache, in its own layout, so every MLX tool shares them.

`HubCacheDownloader(entry)` is `ModelDownloader` (resumable, verified, cancellable, the
same events) writing where huggingface_hub does (`$HF_HUB_CACHE`, by default
`~/.cache/huggingface/hub`):

    models--owner--name/
      blobs/<sha256 or git blob id>          verified file contents
      blobs/<id>.incomplete                  a partial transfer, resumed by the next run
      snapshots/<commit>/<path> -> ../../blobs/<id>
      refs/main                              the commit, written once every file is in

so mlx-lm, mlx-vlm, transformers and `hf` find the model (and we find theirs). Blobs are
content-addressed like huggingface_hub's, so a file already in the cache, from any
revision, is linked rather than fetched. `HF_TOKEN` / the `hf auth login` token are used
by huggingface_hub's headers as for any download.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from app.models.catalog import CatalogEntry
from app.models.download import DownloadError, DownloadPlan, ModelDownloader, RemoteFile
from mlx_model.hub import hub_cache_dir, repo_storage_dir

INCOMPLETE_SUFFIX = ".incomplete"


class HubCacheDownloader(ModelDownloader):
    """`ModelDownloader` into the Hugging Face cache layout (see the module docstring)."""

    def __init__(
        self,
        entry: CatalogEntry | str,
        cache_dir: str | os.PathLike[str] | None = None,
        **options,
    ) -> None:
        root = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
        super().__init__(entry, root, **options)
        self.cache_dir = root
        self.storage = repo_storage_dir(self.entry.repo_id, root)

    @property
    def dest(self) -> Path:
        """The snapshot folder (once the commit is known; the repo's folder before)."""
        return self.storage / "snapshots" / self._commit if self._commit else self.storage

    @property
    def state_dir(self) -> Path:
        return self.storage / "blobs"

    def _blob(self, remote: RemoteFile) -> Path:
        blob_id = remote.sha256 or remote.git_oid
        if not blob_id:
            raise DownloadError(f"The hub gave no hash for {remote.path}; it cannot be cached.")
        return self.storage / "blobs" / blob_id

    def _part_path(self, remote: RemoteFile) -> Path:
        blob = self._blob(remote)
        return blob.with_name(blob.name + INCOMPLETE_SUFFIX)

    # A blob is only ever written after its hash checked out: its presence is the state.
    def _load_state(self) -> dict:
        return {"commit": self._commit, "verified": {}}

    def _save_state(self) -> None:
        pass

    def _discard_partials(self) -> None:
        pass  # partial blobs are keyed by content, not by commit: still useful

    def _present_bytes(self, remote: RemoteFile, state: dict) -> int:
        blob = self._blob(remote)
        if blob.is_file() and blob.stat().st_size == remote.size:
            return remote.size
        part = self._part_path(remote)
        return min(part.stat().st_size, remote.size) if part.is_file() else 0

    def _fetch(self, remote: RemoteFile, plan: DownloadPlan) -> None:
        blob = self._blob(remote)
        if blob.is_file() and blob.stat().st_size == remote.size:
            self._link(remote, blob)
            self._progress(remote, remote.size, force=True)
            return
        super()._fetch(remote, plan)

    def _place(self, remote: RemoteFile, part: Path, final: Path) -> None:
        blob = self._blob(remote)
        os.replace(part, blob)
        self._link(remote, blob)

    def _link(self, remote: RemoteFile, blob: Path) -> None:
        final = self._final_path(remote)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.is_symlink() or final.exists():
            final.unlink()
        try:
            os.symlink(os.path.relpath(blob, final.parent), final)
        except OSError:  # a file system without symlinks: a copy, as huggingface_hub does
            shutil.copyfile(blob, final)

    def _finish(self, plan: DownloadPlan) -> None:
        revision = self.entry.revision
        if revision == plan.commit:
            return
        ref = self.storage / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        tmp = ref.with_name(f".{ref.name}.tmp")
        tmp.write_text(plan.commit)
        os.replace(tmp, ref)
