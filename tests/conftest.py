"""Fixtures shared by the whole suite: tiny checkpoints in the real Hugging Face layout.

Package-specific fixtures live in tests/<package>/conftest.py.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Qt must never try to open a real display in the test suite.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Nothing in the suite may reach the network (model downloads are tested against 127.0.0.1).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Nor touch the user's keychain: without a backend, secrets stay in the test databases
# (tests/app/test_secrets.py uses an in-memory keychain).
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")

from mlx_model.testing.checkpoint_factory import write_tiny_checkpoint  # noqa: E402
from mlx_model.testing.reference import prepare_torchvision_import  # noqa: E402

# transformers' image/video processors import torchvision; make that import work beside
# the CPU-only torch before any test module imports transformers.
# (The reference stack is the dev extra; without torch there is nothing to prepare.)
with contextlib.suppress(ImportError):
    prepare_torchvision_import()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A float32 checkpoint (single safetensors file): exact parity with transformers."""
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny-f32"), seed=0, dtype="float32")


@pytest.fixture(scope="session")
def tiny_checkpoint_bf16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same kind of checkpoint stored in bfloat16, as the original 12B is."""
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny-bf16"), seed=0, dtype="bfloat16")


@pytest.fixture(scope="session")
def tiny_checkpoint_sharded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A float32 checkpoint in three shards with `model.safetensors.index.json`."""
    return write_tiny_checkpoint(
        tmp_path_factory.mktemp("tiny-sharded"), seed=0, dtype="float32", shards=3
    )


@pytest.fixture(scope="session")
def tiny_checkpoint_with_assistant(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A float32 checkpoint with its drafter in the folder beside it (`<name>-assistant`),
    where loading the model finds it: speculative decoding on by default."""
    folder = tmp_path_factory.mktemp("tiny-speculative") / "tiny-gemma"
    return write_tiny_checkpoint(folder, seed=0, dtype="float32", assistant=True)


@pytest.fixture(scope="module")
def loopback_server(tiny_checkpoint: Path) -> Iterator[Any]:
    """Our OpenAI-compatible server on 127.0.0.1 with `LOOPBACK_API_KEY`, serving the tiny
    model: stands in for a remote vLLM/Ollama server (one per test module)."""
    from tests.doubles import LOOPBACK_API_KEY, local_server

    with local_server(tiny_checkpoint, api_key=LOOPBACK_API_KEY) as running:
        yield running


@pytest.fixture
def loopback_service(loopback_server: Any) -> Iterator[Any]:
    """The engine service behind `loopback_server`; its scripted turns end with the test."""
    from tests.doubles import clear_script

    service = loopback_server.state.bridge.service
    yield service
    clear_script(service)


@pytest.fixture
def feed_server() -> Iterator[Any]:
    """A release feed on 127.0.0.1 (tests/app/feed_server.py) for the update-check tests."""
    from tests.app.feed_server import FeedServer

    server = FeedServer().start()
    yield server
    server.stop()
