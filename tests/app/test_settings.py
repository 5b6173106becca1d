"""Settings: typed defaults, persisted in the database, validated with clear messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app import paths
from app.engines.contract import LocalModel
from app.options import GenerationOptions, OptionError
from app.settings import DEFAULTS, Settings, SettingsError, SettingsStore
from app.storage.database import Database


def test_defaults_cover_model_generation_devices_and_server() -> None:
    s = Settings()
    assert s.model_path == "" and s.precision == "auto"
    assert s.thinking is False and s.vision_budget == 280
    assert s.mic_device is None and s.camera_device is None
    assert s.server_host == "127.0.0.1"  # the local API is not exposed unless the user says so
    assert s.generation_options().sampling() == {}  # sampling comes from the checkpoint


def test_changes_persist_across_reopening(tmp_path: Path) -> None:
    store = SettingsStore(Database(tmp_path / "db"))
    store.update(
        model_path="/models/gemma",
        precision="4bit",
        temperature=0.7,
        thinking=True,
        mic_device="USB Mic",
    )
    reopened = SettingsStore(Database(tmp_path / "db")).settings
    assert reopened.model_path == "/models/gemma" and reopened.precision == "4bit"
    assert (
        reopened.temperature == 0.7
        and reopened.thinking is True
        and reopened.mic_device == "USB Mic"
    )
    assert reopened.context_length == DEFAULTS.context_length


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("precision", "3bit", "must be one of"),
        ("vision_budget", 300, "one of 70, 140, 280, 560, 1120"),
        ("top_p", 0.0, "above 0"),
        ("server_port", 70000, "port number"),
        ("context_length", "long", "must be of type"),
        ("thinking", 1, "must be of type"),
        ("nonsense", 1, "no setting called"),
        ("backend", "cloud", "'backend' must be one of 'local', 'remote'"),
        ("remote_url", "gpu-box:8000", "'remote_url' must be empty or an http"),
        ("remote_api_key", "env:not a name", "'remote_api_key' must be the key itself or env:"),
        ("mcp_servers", "calc", "'mcp_servers' must be a list of servers"),
        ("mcp_servers", [{"name": "calc"}], "'mcp_servers', entry 1: .*command or a URL"),
        ("mcp_servers", [{"name": "a b", "command": "x"}], "entry 1: .*letters, digits"),
        ("mcp_servers", [{"name": "calc", "command": "x", "trused": True}], "unknown field"),
        ("mcp_servers", [{"name": "c", "command": "x", "trusted": "yes"}], "'trusted' must"),
        ("mcp_servers", [{"name": "c", "command": "x"}, {"name": "c", "url": "http://h/mcp"}],
         "c is used twice"),
        ("dictation_mode", "on", "'dictation_mode' must be of type"),
    ],
)  # fmt: skip
def test_invalid_values_are_refused_with_the_setting_named(
    tmp_path: Path, name: str, value, message: str
) -> None:
    store = SettingsStore(Database(tmp_path / "db"))
    with pytest.raises(SettingsError, match=message):
        store.update(**{name: value})
    assert store.settings == DEFAULTS


def test_a_corrupt_stored_value_falls_back_to_the_default_and_is_reported(tmp_path: Path) -> None:
    db = Database(tmp_path / "db")
    db.execute("INSERT INTO settings (key, value) VALUES ('vision_budget', '12345')")
    db.execute("INSERT INTO settings (key, value) VALUES ('max_tokens', 'not json')")
    db.execute("INSERT INTO settings (key, value) VALUES ('future_feature', '\"keep me\"')")
    store = SettingsStore(db)
    assert store.settings.vision_budget == 280 and store.settings.max_tokens == DEFAULTS.max_tokens
    assert len(store.problems) == 2 and any("vision_budget" in p for p in store.problems)
    store.update(thinking=True)
    assert (
        json.loads(db.query_one("SELECT value FROM settings WHERE key = 'future_feature'")[0])
        == "keep me"
    )


def test_json_numbers_come_back_with_the_right_type(tmp_path: Path) -> None:
    db = Database(tmp_path / "db")
    db.execute("INSERT INTO settings (key, value) VALUES ('temperature', '1')")
    db.execute("INSERT INTO settings (key, value) VALUES ('context_length', '4096.0')")
    s = SettingsStore(db).settings
    assert s.temperature == 1.0 and isinstance(s.temperature, float)
    assert s.context_length == 4096 and isinstance(s.context_length, int)


def test_subscribers_hear_which_settings_changed(tmp_path: Path) -> None:
    store = SettingsStore(Database(tmp_path / "db"))
    heard = []
    unsubscribe = store.subscribe(lambda s, changed: heard.append(changed))
    store.update(thinking=True, max_tokens=DEFAULTS.max_tokens)
    store.update(thinking=True)  # no change, no notification
    unsubscribe()
    store.update(thinking=False)
    assert heard == [{"thinking"}]


def test_reset_restores_defaults(tmp_path: Path) -> None:
    store = SettingsStore(Database(tmp_path / "db"))
    store.update(system_prompt="Be terse.", top_k=10)
    store.reset("top_k")
    assert store.settings.top_k is None and store.settings.system_prompt == "Be terse."
    store.reset()
    assert store.settings == DEFAULTS


def test_load_and_generation_options_follow_the_settings() -> None:
    s = Settings(precision="4bit", context_length=4096, kv_cache_bits=8, temperature=0.2, seed=3)
    assert s.local_model("/m") == LocalModel("/m", bits=4, context_length=4096, kv_bits=8)
    options = s.generation_options()
    assert options.sampling() == {"temperature": 0.2, "seed": 3}
    assert (options.max_tokens, options.image_budget) == (s.max_tokens, s.vision_budget)


@pytest.mark.parametrize(("name", "value"), [("temperature", 2.5), ("top_k", -1), ("seed", -3)])
def test_generation_settings_follow_the_options_one_set_of_limits(name, value) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings().replace(**{name: value})
    with pytest.raises(OptionError):
        GenerationOptions(**{name: value})


def test_data_folder_choice_lives_outside_the_database_and_applies_next_start(
    tmp_path: Path,
) -> None:
    SettingsStore.set_data_dir(str(tmp_path / "elsewhere"))
    assert paths.preferred_data_dir() == (tmp_path / "elsewhere").resolve()
    assert SettingsStore.data_dir() == str((tmp_path / "elsewhere").resolve())
    SettingsStore.set_data_dir(None)
    assert paths.preferred_data_dir() is None


def test_backend_mcp_and_dictation_settings_persist_across_reopening(tmp_path: Path) -> None:
    store = SettingsStore(Database(tmp_path / "db"))
    servers = [
        {"name": "notes", "command": ["npx", "-y", "server-filesystem", "/notes"]},
        {"name": "web", "url": "http://127.0.0.1:8000/mcp", "trusted": True},
    ]
    store.update(
        backend="remote",
        remote_url="http://gpu-box:8000/v1",
        remote_model="google/gemma-4-12b-it",
        remote_api_key="sk-remote-123",
        mcp_servers=servers,
        dictation_mode=True,
    )
    reopened = SettingsStore(Database(tmp_path / "db")).settings
    assert reopened == store.settings and not SettingsStore(Database(tmp_path / "db")).problems
    assert (reopened.backend, reopened.remote_url) == ("remote", "http://gpu-box:8000/v1")
    assert reopened.remote_model == "google/gemma-4-12b-it"
    assert reopened.remote_api_key == "sk-remote-123" and reopened.dictation_mode is True
    assert [c.name for c in reopened.mcp_configs()] == ["notes", "web"]
    assert reopened.mcp_configs()[0].command == ("npx", "-y", "server-filesystem", "/notes")
    assert reopened.mcp_configs()[1].trusted is True


def test_new_settings_default_to_the_local_model_without_tools_or_dictation() -> None:
    s = Settings()
    assert (s.backend, s.remote_url, s.remote_model, s.remote_api_key) == ("local", "", "", "")
    assert s.mcp_servers == () and s.dictation_mode is False


def test_a_remote_backend_needs_a_url(tmp_path: Path) -> None:
    store = SettingsStore(Database(tmp_path / "db"))
    with pytest.raises(SettingsError, match="'remote_url' must be set when setting 'backend'"):
        store.update(backend="remote")
    assert store.settings.backend == "local"


def test_an_mcp_server_entry_is_stored_in_the_mcp_clients_form(tmp_path: Path) -> None:
    store = SettingsStore(Database(tmp_path / "db"))
    store.update(mcp_servers=[{"name": "calc", "command": "python", "args": ["server.py"]}])
    assert store.settings.mcp_servers == (
        {"name": "calc", "command": ["python", "server.py"], "trusted": False},
    )
    [config] = store.settings.mcp_configs()
    assert config.command == ("python", "server.py") and config.trusted is False


def test_a_remote_api_key_can_be_read_from_the_environment(monkeypatch) -> None:
    s = Settings(remote_api_key="env:GEMMA_DESK_TEST_KEY")
    monkeypatch.setenv("GEMMA_DESK_TEST_KEY", "sk-from-env")
    assert s.remote_key() == "sk-from-env"
    monkeypatch.delenv("GEMMA_DESK_TEST_KEY")
    with pytest.raises(SettingsError, match="GEMMA_DESK_TEST_KEY, which is not set"):
        s.remote_key()
    assert Settings(remote_api_key="sk-plain").remote_key() == "sk-plain"


def test_a_refused_api_key_is_not_repeated_in_the_message(tmp_path: Path) -> None:
    store = SettingsStore(Database(tmp_path / "db"))
    with pytest.raises(SettingsError) as refused:
        store.update(remote_api_key="env:secret value")
    assert "secret value" not in str(refused.value)
