"""Download a checkpoint from the Hugging Face hub: resumable, verified, cancellable, observable.

`ModelDownloader(entry, models_dir).run()` (call it off the UI thread) lists the repo at one
commit through `huggingface_hub.HfApi`, checks the disk has room, then fetches each file
through huggingface_hub's HTTP session into `<models dir>/<owner>--<name>/`:

- progress events carry bytes done/total, speed (last few seconds) and time left;
- partial files persist in `.download/` and later runs continue them with a Range request
  (after a crash, a cancel, or a dropped connection);
- transient failures (connection lost, 5xx/429, truncated body) are retried a bounded number
  of times with backoff; a server that sends nothing for `stall_timeout_s` is reported as a
  `DownloadStalled` event and the transfer is resumed, so the bar never freezes silently;
- every file is checked against the hub's hash (LFS sha256, or the git blob id for small
  files); a corrupt file is fetched again once, then reported naming the file;
- `cancel()` from any thread stops promptly and keeps the partial files for a later resume;
- offline mode (`HF_HUB_OFFLINE=1`) is honoured: no connection is attempted.

`HF_ENDPOINT` or `endpoint=` points everything at another hub (tests use a local server).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

from app.models.catalog import CatalogEntry, entry_for_repo, find_entry
from app.models.local import COMPLETE_MARKER, DOWNLOAD_STATE_DIR, LocalModel, validate_folder

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
PART_SUFFIX = ".part"


# --------------------------------------------------------------------------- errors


class DownloadError(RuntimeError):
    """A download failed; the message is written for the user."""


class OfflineModeError(DownloadError):
    """Offline mode is on (HF_HUB_OFFLINE); no connection was attempted."""


class AccessDenied(DownloadError):
    """The hub refused access (gated model without accepted license, or no/invalid token)."""


class InsufficientDiskSpace(DownloadError):
    """Not enough free space for what is left to download."""

    def __init__(self, needed: int, free: int, folder: Path) -> None:
        super().__init__(
            f"Not enough disk space in {folder}: the download needs {needed / 1e9:.2f} GB "
            f"and {free / 1e9:.2f} GB is free."
        )
        self.needed, self.free, self.folder = needed, free, folder


class ChecksumMismatch(DownloadError):
    """A downloaded file does not match the hub's hash, even after fetching it again."""

    def __init__(self, path: str, expected: str, actual: str) -> None:
        super().__init__(
            f"{path} is corrupt: its checksum is {actual[:12]}… but the hub says {expected[:12]}…. "
            "It was downloaded twice with the same result; try again later."
        )
        self.path, self.expected, self.actual = path, expected, actual


class UnsafePathError(DownloadError):
    """The hub listed a file whose path would land outside the model folder."""


def check_repo_path(path: str, dest: Path) -> str:
    """`path` if it is a plain relative path that stays inside `dest`; else `UnsafePathError`.

    Refused: absolute paths, drive letters, `..` or empty parts, backslashes, NUL, and a
    path whose folders resolve (symlinks included) outside `dest`.
    """
    parts = path.split("/")
    if (
        not path
        or "\\" in path
        or "\x00" in path
        or path.startswith("/")
        or (len(path) > 1 and path[1] == ":")
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise UnsafePathError(
            f"The hub listed a file named {path[:200]!r}, which is not a plain path inside "
            "the model folder; nothing was downloaded."
        )
    # The folders on the way are resolved (a linked folder could lead anywhere); the file
    # itself may already be a link the download placed (the Hugging Face cache links each
    # snapshot file to its blob), so its name is checked, not its target.
    root = dest.resolve()
    if not (root / path).parent.resolve().is_relative_to(root):
        raise UnsafePathError(
            f"The hub listed a file {path[:200]!r} that would be written outside {dest}; "
            "nothing was downloaded."
        )
    return path


class StalledError(DownloadError):
    """The server kept sending nothing; the retries ran out."""


class DownloadCancelledError(DownloadError):
    """The user cancelled; partial files were kept so the download can resume."""


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class RemoteFile:
    """One file of the repo at the planned commit."""

    path: str
    size: int
    sha256: str | None = None  # LFS files
    git_oid: str | None = None  # git blob id (sha1 of "blob <size>\\0" + content)

    @property
    def checksum_id(self) -> str:
        return self.sha256 or self.git_oid or f"size:{self.size}"


@dataclass(frozen=True)
class DownloadPlan:
    """What a run will fetch: the files at one commit and how much is already on disk."""

    repo_id: str
    commit: str
    files: tuple[RemoteFile, ...]
    dest: Path
    total_bytes: int
    present_bytes: int  # already downloaded (complete files and partial files)

    @property
    def remaining_bytes(self) -> int:
        return self.total_bytes - self.present_bytes


@dataclass(frozen=True)
class DownloadPlanned:
    plan: DownloadPlan


@dataclass(frozen=True)
class DownloadProgress:
    """Bytes done of the whole download, the current file, speed and time left."""

    file: str
    file_bytes: int
    file_total: int
    done_bytes: int
    total_bytes: int
    speed_bps: float  # over the last few seconds; 0 until measurable
    eta_s: float | None  # None while the speed is unknown

    @property
    def fraction(self) -> float:
        return self.done_bytes / self.total_bytes if self.total_bytes else 1.0


@dataclass(frozen=True)
class DownloadStalled:
    """No bytes arrived for `seconds`; the transfer is being resumed (attempt `attempt`)."""

    file: str
    seconds: float
    attempt: int


@dataclass(frozen=True)
class DownloadRetrying:
    file: str
    attempt: int
    max_attempts: int
    reason: str
    delay_s: float


@dataclass(frozen=True)
class FileVerified:
    file: str
    algorithm: str  # "sha256", "git-sha1" or "size"


@dataclass(frozen=True)
class DownloadFinished:
    model: LocalModel


@dataclass(frozen=True)
class DownloadFailed:
    message: str
    error: Exception = field(repr=False)


@dataclass(frozen=True)
class DownloadCancelled:
    done_bytes: int
    total_bytes: int


DownloadEvent = (
    DownloadPlanned
    | DownloadProgress
    | DownloadStalled
    | DownloadRetrying
    | FileVerified
    | DownloadFinished
    | DownloadFailed
    | DownloadCancelled
)


# --------------------------------------------------------------------------- helpers


def is_offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set, now or at import."""
    from huggingface_hub import constants

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return True
    return bool(constants.HF_HUB_OFFLINE)


def default_models_dir(data_root: str | os.PathLike[str]) -> Path:
    """Models live in `<data folder>/models` unless the user picks another folder."""
    return Path(data_root) / "models"


def git_blob_sha1(size: int) -> hashlib._Hash:
    """A sha1 primed with git's blob header; feed it the content to get the blob id."""
    digest = hashlib.sha1()
    digest.update(f"blob {size}\0".encode())
    return digest


def _abort(response) -> None:
    """Wake a read blocked on a silent server: shut the socket down (closing the response
    from another thread does not interrupt a blocking read)."""
    import socket

    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class _Cancelled(Exception):
    pass


class _Retryable(Exception):
    def __init__(self, reason: str, stalled: bool = False, progressed: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.stalled, self.progressed = reason, stalled, progressed


class _Speed:
    """Bytes per second over a sliding window."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, transferred: int) -> float:
        self.samples.append((now, transferred))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window_s:
            self.samples.popleft()
        (t0, b0), (t1, b1) = self.samples[0], self.samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 - t0 > 0.2 else 0.0


# --------------------------------------------------------------------------- downloader


class ModelDownloader:
    """Fetch one repo into `<models_dir>/<owner>--<name>/` (see the module docstring).

    entry: a `CatalogEntry` or a repo id.
    on_event: called with each `DownloadEvent` from the downloading thread.
    max_retries: failed attempts in a row (without new bytes) allowed per file.
    stall_timeout_s: seconds without a byte before the transfer counts as stalled.
    checksum_retries: how often a file that fails its checksum is fetched again.
    disk_margin_bytes: free space to leave beyond what the download needs.
    """

    def __init__(
        self,
        entry: CatalogEntry | str,
        models_dir: str | os.PathLike[str],
        *,
        endpoint: str | None = None,
        token: str | bool | None = None,
        on_event: Callable[[DownloadEvent], None] | None = None,
        max_retries: int = 5,
        stall_timeout_s: float = 30.0,
        connect_timeout_s: float = 15.0,
        retry_backoff_s: float = 1.0,
        checksum_retries: int = 1,
        chunk_size: int = 1 << 20,
        disk_margin_bytes: int = 256 << 20,
        progress_interval_s: float = 0.1,
    ) -> None:
        if isinstance(entry, str):
            entry = find_entry(entry) or entry_for_repo(entry)
        self.entry = entry
        self.models_dir = Path(models_dir)
        self.endpoint = endpoint
        self.token = token
        self.on_event = on_event
        self.max_retries = int(max_retries)
        self.stall_timeout_s = float(stall_timeout_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self.retry_backoff_s = float(retry_backoff_s)
        self.checksum_retries = int(checksum_retries)
        self.chunk_size = int(chunk_size)
        self.disk_margin_bytes = int(disk_margin_bytes)
        self.progress_interval_s = float(progress_interval_s)
        self._cancel = threading.Event()
        self._response_lock = threading.Lock()
        self._response = None
        self._plan: DownloadPlan | None = None
        self._commit: str | None = None

    # ---------------------------------------------------------------- public API

    @property
    def dest(self) -> Path:
        """The folder the checkpoint is downloaded into."""
        return self.models_dir / self.entry.folder_name

    @property
    def state_dir(self) -> Path:
        return self.dest / DOWNLOAD_STATE_DIR

    def cancel(self) -> None:
        """Stop as soon as possible (any thread); partial files stay for a later resume."""
        self._cancel.set()
        with self._response_lock:
            response = self._response
        if response is not None:
            _abort(response)

    def plan(self) -> DownloadPlan:
        """List the repo at one commit (network) and measure what is already on disk."""
        self._check_online()
        from huggingface_hub import HfApi
        from huggingface_hub.hf_api import RepoFile

        api = HfApi(endpoint=self.endpoint, token=self.token)
        try:
            info = api.model_info(self.entry.repo_id, revision=self.entry.revision)
            commit = info.sha or self.entry.revision
            self._commit = commit
            tree = list(api.list_repo_tree(self.entry.repo_id, revision=commit, recursive=True))
        except Exception as exc:
            raise self._hub_error(exc) from exc
        files = []
        for item in tree:
            if not isinstance(item, RepoFile):
                continue
            if not any(fnmatch(item.path, pattern) for pattern in self.entry.allow_patterns):
                continue
            check_repo_path(item.path, self.dest)
            sha256 = item.lfs.sha256 if item.lfs is not None else None
            files.append(
                RemoteFile(item.path, int(item.size), sha256, None if sha256 else item.blob_id)
            )
        if not any(f.path == "config.json" for f in files):
            raise DownloadError(
                f"{self.entry.repo_id} has no config.json; it is not a model repository."
            )
        files.sort(key=lambda f: (f.size, f.path))  # small files first: config errors surface early
        state = self._load_state()
        if state.get("commit") != commit:
            self._discard_partials()
            state = {"commit": commit, "verified": {}}
        present = sum(self._present_bytes(f, state) for f in files)
        self._plan = DownloadPlan(
            repo_id=self.entry.repo_id,
            commit=commit,
            files=tuple(files),
            dest=self.dest,
            total_bytes=sum(f.size for f in files),
            present_bytes=present,
        )
        self._state = state
        return self._plan

    def run(self) -> LocalModel:
        """Download everything (blocking); emits events and raises a `DownloadError` on failure."""
        self._cancel.clear()
        try:
            plan = self.plan()
            self._emit(DownloadPlanned(plan))
            self._check_disk(plan)
            self._started = time.monotonic()
            self._speed = _Speed()
            self._session_bytes = 0
            self._done_before = 0
            self._last_progress = 0.0
            for remote in plan.files:
                if self._cancel.is_set():
                    raise _Cancelled
                self._fetch(remote, plan)
                self._done_before += remote.size
            self._finish(plan)
            model = validate_folder(self.dest, self.entry.model_types)
        except _Cancelled:
            done = getattr(self, "_done_before", 0)
            total = self._plan.total_bytes if self._plan else 0
            self._emit(DownloadCancelled(done, total))
            raise DownloadCancelledError(
                "Download cancelled; it will continue where it stopped."
            ) from None
        except Exception as exc:
            error = exc if isinstance(exc, DownloadError) else DownloadError(str(exc))
            self._emit(DownloadFailed(str(error), error))
            if error is exc:
                raise
            raise error from exc
        self._emit(DownloadFinished(model))
        return model

    # ---------------------------------------------------------------- per file

    def _fetch(self, remote: RemoteFile, plan: DownloadPlan) -> None:
        final = self._final_path(remote)
        if (
            self._state["verified"].get(remote.path) == remote.checksum_id
            and final.is_file()
            and final.stat().st_size == remote.size
        ):
            self._progress(remote, remote.size, force=True)
            return
        part = self._part_path(remote)
        if final.is_file() and not part.exists():
            final.parent.mkdir(parents=True, exist_ok=True)
            part.parent.mkdir(parents=True, exist_ok=True)
            os.replace(final, part)  # re-check an unverified file through the normal path
        failures = 0
        checksum_failures = 0
        attempt = 0
        while True:
            attempt += 1
            if self._cancel.is_set():
                raise _Cancelled
            try:
                digest = self._transfer(remote, part)
                self._verify(remote, part, digest)
                break
            except ChecksumMismatch as mismatch:
                part.unlink(missing_ok=True)
                checksum_failures += 1
                if checksum_failures > self.checksum_retries:
                    raise
                reason = f"checksum mismatch ({mismatch.actual[:12]}…)"
                self._retry_pause(remote, attempt, reason)
            except _Retryable as exc:
                if self._cancel.is_set():
                    raise _Cancelled from None
                failures = 0 if exc.progressed else failures + 1
                if exc.stalled:
                    self._emit(DownloadStalled(remote.path, self.stall_timeout_s, attempt))
                if failures > self.max_retries:
                    if exc.stalled:
                        raise StalledError(
                            f"The server sent no data for {self.stall_timeout_s:.0f} s, "
                            f"{failures} times in a row, while downloading {remote.path}. "
                            "Check the internet connection and try again; the download will resume."
                        ) from None
                    raise DownloadError(
                        f"Downloading {remote.path} failed after {failures} attempts: {exc.reason}"
                    ) from None
                self._retry_pause(remote, attempt, exc.reason, failures)
        self._place(remote, part, final)
        self._state["verified"][remote.path] = remote.checksum_id
        self._save_state()

    def _retry_pause(
        self, remote: RemoteFile, attempt: int, reason: str, failures: int = 1
    ) -> None:
        delay = min(30.0, self.retry_backoff_s * (2 ** max(0, failures - 1)))
        self._emit(DownloadRetrying(remote.path, attempt, self.max_retries + 1, reason, delay))
        if self._cancel.wait(delay):
            raise _Cancelled

    def _transfer(self, remote: RemoteFile, part: Path):
        """Bring `part` to `remote.size` bytes; returns the hash object over its whole content."""
        import httpx2
        from huggingface_hub import hf_hub_url
        from huggingface_hub.utils import build_hf_headers, get_session

        part.parent.mkdir(parents=True, exist_ok=True)
        have = part.stat().st_size if part.exists() else 0
        if have > remote.size:
            part.unlink()
            have = 0
        if have == remote.size:
            return self._hash_existing(remote, part, have)
        url = hf_hub_url(
            self.entry.repo_id, remote.path, revision=self._plan.commit, endpoint=self.endpoint
        )
        headers = build_hf_headers(token=self.token)
        headers["Accept-Encoding"] = "identity"
        if have:
            headers["Range"] = f"bytes={have}-"
        timeout = httpx2.Timeout(self.stall_timeout_s, connect=self.connect_timeout_s)
        received = 0
        try:
            with get_session().stream(
                "GET", url, headers=headers, timeout=timeout, follow_redirects=True
            ) as response:
                with self._response_lock:
                    self._response = response
                if self._cancel.is_set():
                    raise _Cancelled
                status = response.status_code
                if status in (401, 403):
                    raise AccessDenied(self._access_message())
                if status == 404:
                    raise DownloadError(f"{remote.path} is missing on the hub ({url}).")
                if status == 416:
                    part.unlink(missing_ok=True)
                    raise _Retryable("the server refused to resume; starting the file over")
                if status >= 400:
                    raise _Retryable(f"HTTP {status}")
                if have and status != 206:
                    have = 0  # the server ignored the Range header: start over
                digest = self._hash_existing(remote, part, have)
                mode = "ab" if have else "wb"
                with open(part, mode) as out:
                    for (
                        chunk
                    ) in response.iter_bytes():  # as received: no buffered bytes lost on a drop
                        if self._cancel.is_set():
                            raise _Cancelled
                        if not chunk:
                            continue
                        if have + received + len(chunk) > remote.size:
                            chunk = chunk[: remote.size - have - received]
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        self._session_bytes += len(chunk)
                        self._progress(remote, have + received)
                        if have + received >= remote.size:
                            break
        except _Cancelled:
            raise
        except httpx2.TimeoutException as exc:
            if self._cancel.is_set():
                raise _Cancelled from None
            kind = "connect" if isinstance(exc, httpx2.ConnectTimeout) else "read"
            raise _Retryable(
                f"no data for {self.stall_timeout_s:.0f} s ({kind})",
                stalled=kind == "read",
                progressed=received > 0,
            ) from None
        except (httpx2.TransportError, httpx2.StreamError) as exc:
            if self._cancel.is_set():
                raise _Cancelled from None
            raise _Retryable(
                f"connection lost ({exc.__class__.__name__})", progressed=received > 0
            ) from None
        except OSError as exc:  # writing the partial file (disk full, permissions)
            if self._cancel.is_set():
                raise _Cancelled from None
            raise DownloadError(f"Cannot write {part}: {exc.strerror or exc}") from exc
        finally:
            with self._response_lock:
                self._response = None
        self._progress(remote, have + received, force=True)
        if have + received < remote.size:
            raise _Retryable(
                f"transfer ended early ({have + received} of {remote.size} bytes)",
                progressed=received > 0,
            )
        return digest

    def _hash_existing(self, remote: RemoteFile, part: Path, length: int):
        digest = hashlib.sha256() if remote.sha256 else git_blob_sha1(remote.size)
        if length:
            with open(part, "rb") as f:
                left = length
                while left:
                    block = f.read(min(self.chunk_size, left))
                    if not block:
                        break
                    digest.update(block)
                    left -= len(block)
        return digest

    def _verify(self, remote: RemoteFile, part: Path, digest) -> None:
        if remote.sha256:
            algorithm, expected = "sha256", remote.sha256
        elif remote.git_oid:
            algorithm, expected = "git-sha1", remote.git_oid
        else:
            if part.stat().st_size != remote.size:
                raise ChecksumMismatch(
                    remote.path, f"size {remote.size}", f"size {part.stat().st_size}"
                )
            self._emit(FileVerified(remote.path, "size"))
            return
        actual = digest.hexdigest()
        if actual != expected:
            raise ChecksumMismatch(remote.path, expected, actual)
        self._emit(FileVerified(remote.path, algorithm))

    # ---------------------------------------------------------------- progress

    def _progress(self, remote: RemoteFile, file_bytes: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_progress < self.progress_interval_s:
            return
        self._last_progress = now
        speed = self._speed.add(now, self._session_bytes)
        done = self._done_before + file_bytes
        total = self._plan.total_bytes
        eta = (total - done) / speed if speed > 0 else None
        self._emit(DownloadProgress(remote.path, file_bytes, remote.size, done, total, speed, eta))

    def _emit(self, event: DownloadEvent) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:
            log.exception("download event listener failed")

    # ---------------------------------------------------------------- state and checks

    def _final_path(self, remote: RemoteFile) -> Path:
        return self.dest / remote.path

    def _place(self, remote: RemoteFile, part: Path, final: Path) -> None:
        """Move a verified file into place."""
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, final)

    def _part_path(self, remote: RemoteFile) -> Path:
        return self.state_dir / "partial" / (remote.path + PART_SUFFIX)

    def _present_bytes(self, remote: RemoteFile, state: dict) -> int:
        final = self._final_path(remote)
        if state["verified"].get(remote.path) == remote.checksum_id and final.is_file():
            return remote.size
        part = self._part_path(remote)
        if part.is_file():
            return min(part.stat().st_size, remote.size)
        return 0

    def _load_state(self) -> dict:
        try:
            state = json.loads((self.state_dir / STATE_FILE).read_text())
            if isinstance(state.get("verified"), dict):
                return state
        except (OSError, ValueError):
            pass
        return {}

    def _save_state(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        target = self.state_dir / STATE_FILE
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._state, indent=1))
        os.replace(tmp, target)

    def _discard_partials(self) -> None:
        shutil.rmtree(self.state_dir / "partial", ignore_errors=True)
        (self.state_dir / COMPLETE_MARKER).unlink(missing_ok=True)

    def _finish(self, plan: DownloadPlan) -> None:
        shutil.rmtree(self.state_dir / "partial", ignore_errors=True)
        marker = {
            "repo_id": plan.repo_id,
            "commit": plan.commit,
            "files": [f.path for f in plan.files],
            "total_bytes": plan.total_bytes,
            "finished_at": time.time(),
        }
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / COMPLETE_MARKER).write_text(json.dumps(marker, indent=1))

    def _check_online(self) -> None:
        if is_offline():
            raise OfflineModeError(
                "Offline mode is on (HF_HUB_OFFLINE), so nothing can be downloaded. "
                "Unset it to download, or import a model folder you already have."
            )

    def _check_disk(self, plan: DownloadPlan) -> None:
        folder = plan.dest
        probe = folder
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        free = shutil.disk_usage(probe).free
        needed = plan.remaining_bytes + self.disk_margin_bytes
        if free < needed:
            raise InsufficientDiskSpace(needed, free, folder)

    def _access_message(self) -> str:
        repo = self.entry.repo_id
        return (
            f"The hub refused access to {repo}. It may be gated: accept its license on "
            f"https://huggingface.co/{repo} while signed in, then sign in here with "
            "`hf auth login` (or set HF_TOKEN) and try again."
        )

    def _hub_error(self, exc: Exception) -> DownloadError:
        from huggingface_hub import errors

        if isinstance(exc, errors.OfflineModeIsEnabled):
            return OfflineModeError(str(exc))
        if isinstance(exc, errors.GatedRepoError):
            return AccessDenied(self._access_message())
        if isinstance(exc, errors.RevisionNotFoundError):
            return DownloadError(f"{self.entry.repo_id} has no revision '{self.entry.revision}'.")
        if isinstance(exc, errors.RepositoryNotFoundError):
            return DownloadError(
                f"{self.entry.repo_id} was not found on the hub (or it is private: sign in with `hf auth login`)."
            )
        if isinstance(exc, errors.HfHubHTTPError):
            status = exc.response.status_code if exc.response is not None else "?"
            if status in (401, 403):
                return AccessDenied(self._access_message())
            return DownloadError(
                f"The hub answered with an error (HTTP {status}) for {self.entry.repo_id}."
            )
        return DownloadError(
            f"Cannot reach the Hugging Face hub ({exc.__class__.__name__}: {exc}). "
            "Check the internet connection and try again."
        )


def fetch_config(
    repo_id: str,
    *,
    revision: str = "main",
    endpoint: str | None = None,
    token: str | bool | None = None,
) -> dict:
    """A repo's config.json (network), e.g. to tell a pre-quantized conversion from the original."""
    if is_offline():
        raise OfflineModeError(
            "Offline mode is on (HF_HUB_OFFLINE); cannot read the model's config."
        )
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers, get_session

    url = hf_hub_url(repo_id, "config.json", revision=revision, endpoint=endpoint)
    try:
        response = get_session().get(
            url, headers=build_hf_headers(token=token), follow_redirects=True
        )
    except Exception as exc:
        raise DownloadError(f"Cannot reach the Hugging Face hub: {exc}") from exc
    if response.status_code in (401, 403):
        raise AccessDenied(f"The hub refused access to {repo_id}; sign in with `hf auth login`.")
    if response.status_code >= 400:
        raise DownloadError(f"Cannot read config.json of {repo_id} (HTTP {response.status_code}).")
    return response.json()
