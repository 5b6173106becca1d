"""Fixtures for the server tests: the tiny checkpoint served on a free 127.0.0.1 port."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from app.engine_service import EngineOutput, EngineService
from app.engines.contract import Finished
from app.server.config import ServerConfig
from app.server.runner import ServerThread
from tests.doubles import clear_script, scripted_service

API_KEY = "test-key-0123456789"
MAX_BODY = 1024 * 1024


@pytest.fixture(scope="session")
def engine_service(tiny_checkpoint: Path) -> Iterator[EngineService]:
    service = scripted_service(tiny_checkpoint)
    yield service
    service.shutdown()


@pytest.fixture(scope="session")
def allowed_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("allowed")


@pytest.fixture(scope="session")
def server(engine_service: EngineService, allowed_folder: Path) -> Iterator[ServerThread]:
    config = ServerConfig(
        host="127.0.0.1",
        port=0,
        api_key=API_KEY,
        max_body_bytes=MAX_BODY,
        allowed_folders=(allowed_folder,),
        max_waiting=2,
    )
    with ServerThread(engine_service, config) as running:
        yield running


@pytest.fixture
def client(server: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key=API_KEY, max_retries=0, timeout=120)


@pytest.fixture
def model_id(client: openai.OpenAI) -> str:
    return client.models.list().data[0].id


@pytest.fixture(autouse=True)
def _no_script_left(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "engine_service" in request.fixturenames:
        clear_script(request.getfixturevalue("engine_service"))


class FinishedEvents:
    """Collects the `Finished` events the engine service emits (what the engine really did)."""

    def __init__(self, service: EngineService) -> None:
        self.events: list[Finished] = []
        self._arrived = threading.Condition()
        self._unsubscribe = service.subscribe(self._on_event)

    def _on_event(self, event: object) -> None:
        if isinstance(event, EngineOutput) and isinstance(event.event, Finished):
            with self._arrived:
                self.events.append(event.event)
                self._arrived.notify_all()

    def wait(self, count: int = 1, timeout: float = 60) -> list[Finished]:
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.events) >= count, timeout)
        return list(self.events)

    def close(self) -> None:
        self._unsubscribe()


@pytest.fixture
def finished_events(engine_service: EngineService) -> Iterator[FinishedEvents]:
    events = FinishedEvents(engine_service)
    yield events
    events.close()
