"""Models already on disk: repo ids in the Hugging Face cache, listing, served names, aliases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli import main
from app.models.local import available_models, cached_models
from app.models.names import ModelAliases, family_aliases, served_model_name
from app.server.engine_bridge import model_id_for
from mlx_model.hub import CheckpointNotFound, resolve_checkpoint
from tests.app.conftest import put_in_hub_cache

REPO = "mlx-community/gemma-4-12b-it-4bit"


def test_a_cached_repo_id_resolves_to_its_snapshot(tiny_checkpoint, hub_cache):
    snapshot = put_in_hub_cache(tiny_checkpoint, hub_cache, REPO)
    assert resolve_checkpoint(REPO) == snapshot
    assert resolve_checkpoint(REPO.upper()) == snapshot  # repo names ignore case, as on the hub
    assert resolve_checkpoint(REPO, revision="a" * 40) == snapshot


def test_hf_hub_cache_overrides_hf_home(tiny_checkpoint, hub_cache, tmp_path, monkeypatch):
    other = tmp_path / "elsewhere"
    snapshot = put_in_hub_cache(tiny_checkpoint, other, REPO)
    monkeypatch.setenv("HF_HUB_CACHE", str(other))
    assert resolve_checkpoint(REPO) == snapshot


def test_a_folder_path_resolves_to_itself(tiny_checkpoint):
    assert resolve_checkpoint(str(tiny_checkpoint)) == tiny_checkpoint


def test_a_repo_that_is_not_cached_says_where_it_looked_and_how_to_get_it(hub_cache):
    with pytest.raises(CheckpointNotFound) as caught:
        resolve_checkpoint("google/gemma-4-12B-it")
    assert str(hub_cache) in str(caught.value)
    assert "gemma-desk models --download google/gemma-4-12B-it" in str(caught.value)


def test_a_missing_path_is_not_mistaken_for_a_repo(tmp_path):
    with pytest.raises(CheckpointNotFound, match="no such model folder"):
        resolve_checkpoint(str(tmp_path / "no" / "such" / "model"))


def test_cached_gemma_checkpoints_are_listed_by_repo_id(tiny_checkpoint, hub_cache, tmp_path):
    put_in_hub_cache(tiny_checkpoint, hub_cache, REPO)
    other = tmp_path / "llama"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "llama"}))
    put_in_hub_cache(other, hub_cache, "someone/llama")
    broken = put_in_hub_cache(tiny_checkpoint, hub_cache, "someone/half-downloaded")
    (broken / "model.safetensors").unlink()
    models = cached_models()
    assert [m.repo_id for m in models] == [REPO]
    assert [m.name for m in models] == [REPO]


def test_available_models_has_the_apps_folders_then_the_cache(tiny_checkpoint, hub_cache, tmp_path):
    from app.models.local import import_folder

    models_dir = tmp_path / "models"
    import_folder(tiny_checkpoint, models_dir)
    put_in_hub_cache(tiny_checkpoint, hub_cache, REPO)
    names = [served_model_name(m.path) for m in available_models(models_dir)]
    assert names == [tiny_checkpoint.name, REPO]


def test_served_names_are_repo_ids_or_folder_names_never_commit_hashes(tiny_checkpoint, hub_cache):
    snapshot = put_in_hub_cache(tiny_checkpoint, hub_cache, REPO)
    assert served_model_name(snapshot) == REPO
    assert model_id_for(str(snapshot)) == REPO
    assert model_id_for(REPO) == REPO
    assert model_id_for(str(tiny_checkpoint)) == tiny_checkpoint.name
    assert model_id_for(str(snapshot), "configured") == "configured"


def test_an_app_download_is_named_by_its_repo(tiny_checkpoint, tmp_path):
    folder = tmp_path / "owner--name"
    folder.mkdir()
    (folder / ".download").mkdir()
    (folder / ".download" / "complete.json").write_text(json.dumps({"repo_id": "owner/name"}))
    assert served_model_name(folder) == "owner/name"


def test_aliases_reach_the_served_model_by_repo_folder_and_family_name(tiny_checkpoint, hub_cache):
    snapshot = put_in_hub_cache(tiny_checkpoint, hub_cache, REPO)
    aliases = ModelAliases.for_model(snapshot, extra=["my-model"])
    assert aliases.served == REPO
    for name in (
        REPO,
        "gemma-4-12b-it-4bit",
        "gemma-4-12b",
        "Gemma-4-12B-IT",
        "gemma-4-12b:latest",
        "my-model",
    ):
        assert aliases.resolve(name) == REPO, name
    assert aliases.resolve("gpt-4o") is None
    assert aliases.resolve("a" * 40) is None  # the commit hash is not a name
    assert "gemma-4-12b" in aliases.listed()


def test_accept_any_serves_every_requested_name():
    aliases = ModelAliases.for_model("some/model", accept_any=True)
    assert aliases.resolve("gpt-4o") == "some/model"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("google/gemma-4-12B-it", ["gemma-4-12b", "gemma-4-12b-it"]),
        ("gemma4-e4b", ["gemma-4-e4b"]),
        ("tiny-gemma", []),
    ],
)
def test_family_aliases_come_from_the_name(name, expected):
    assert family_aliases(name) == expected


def test_plan_with_a_repo_id_that_is_not_cached_is_a_message_not_a_traceback(hub_cache, capsys):
    assert main(["plan", "nobody/nothing"]) == 2
    err = capsys.readouterr().err
    assert "nobody/nothing" in err and "Traceback" not in err


def test_plan_with_a_missing_path_is_a_message(tmp_path, capsys):
    assert main(["plan", str(tmp_path / "missing")]) == 2
    assert "no such model folder" in capsys.readouterr().err


def test_plan_accepts_a_cached_repo_id(tiny_checkpoint, hub_cache, capsys):
    put_in_hub_cache(tiny_checkpoint, hub_cache, REPO)
    assert main(["plan", REPO, "--context", "1K"]) == 0
    assert REPO in capsys.readouterr().out


def test_models_lists_cached_checkpoints(tiny_checkpoint, hub_cache, tmp_path, capsys):
    put_in_hub_cache(tiny_checkpoint, hub_cache, REPO)
    assert main(["models", "--json", "--data-dir", str(tmp_path / "data")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["name"], r["precision"]) for r in rows] == [(REPO, "original")]
    assert Path(rows[0]["path"]).parent.name == "snapshots"


def test_generate_takes_a_cached_repo_id(tiny_checkpoint, hub_cache, tmp_path, capsys):
    put_in_hub_cache(tiny_checkpoint, hub_cache, REPO)
    code = main(
        [
            "generate",
            "--data-dir",
            str(tmp_path / "data"),
            "--model",
            REPO,
            "--prompt",
            "Hi",
            "--max-tokens",
            "2",
            "--temperature",
            "0",
            "--json",
        ]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["stats"]["generated_tokens"] >= 1


def test_the_session_lists_the_cached_checkpoints_for_the_model_picker(
    tiny_checkpoint, hub_cache, tmp_path
):
    from app.session import AppSession

    snapshot = put_in_hub_cache(tiny_checkpoint, hub_cache, REPO)
    with AppSession(tmp_path / "data") as session:
        assert session.available_models() == [(REPO, str(snapshot))]


def test_a_server_of_a_cached_checkpoint_answers_to_its_repo_id_and_family_name(
    tiny_checkpoint, hub_cache
):
    import openai

    from tests.doubles import local_server, script_turns

    snapshot = put_in_hub_cache(tiny_checkpoint, hub_cache, REPO)
    with local_server(snapshot) as server:
        client = openai.OpenAI(base_url=server.url, api_key="none", max_retries=0)
        [listed] = client.models.list().data
        assert listed.id == REPO and "gemma-4-12b" in listed.model_extra["aliases"]
        for name in ("gemma-4-12b", "gemma-4-12b-it-4bit", REPO):
            script_turns(server.state.bridge.service, ["Hi"])
            reply = client.chat.completions.create(
                model=name, messages=[{"role": "user", "content": "Hi"}], max_tokens=4
            )
            assert reply.model == REPO
