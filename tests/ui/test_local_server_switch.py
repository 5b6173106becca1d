"""The Settings switch for the local OpenAI-compatible server: the app serves its loaded model."""

from __future__ import annotations

import socket

import openai
import pytest

from tests.doubles import free_port

KEY = "local-key-0123456789"


def serve(qtbot, backend, **changes) -> str:
    settings = {"server_enabled": True, "server_port": free_port(), "server_api_key": KEY}
    backend.apply_settings({**settings, **changes})
    qtbot.waitUntil(lambda: bool(backend.session.server_url), timeout=30_000)
    return backend.session.server_url


def test_turning_the_server_on_serves_the_loaded_model_to_openai_clients(
    qtbot, app_backend_for, tiny_checkpoint
):
    backend = app_backend_for()
    url = serve(qtbot, backend)
    client = openai.OpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=60)
    [model] = client.models.list().data
    reply = client.chat.completions.create(
        model=model.id, messages=[{"role": "user", "content": "Hi"}], max_tokens=8
    )
    assert model.id == tiny_checkpoint.name
    assert reply.usage.completion_tokens > 0
    assert reply.choices[0].finish_reason in ("stop", "length")


def test_the_server_refuses_a_client_without_the_key(qtbot, app_backend_for):
    backend = app_backend_for()
    url = serve(qtbot, backend)
    client = openai.OpenAI(base_url=url, api_key="wrong", max_retries=0, timeout=30)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_turning_the_server_off_closes_its_port(qtbot, app_backend_for):
    backend = app_backend_for()
    url = serve(qtbot, backend)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    backend.apply_settings({"server_enabled": False})
    qtbot.waitUntil(lambda: backend.session.server_url == "", timeout=10_000)

    def port_closed() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) != 0

    qtbot.waitUntil(port_closed, timeout=10_000)


def test_a_port_already_in_use_is_reported_and_the_app_goes_on(qtbot, app_backend_for):
    backend = app_backend_for()
    notices: list[str] = []
    backend.notice.connect(notices.append)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        backend.apply_settings({"server_enabled": True, "server_port": port})
        qtbot.waitUntil(lambda: any("could not start" in n for n in notices), timeout=30_000)
    assert backend.session.server_url == ""
    assert backend.model_status().state == "ready"
