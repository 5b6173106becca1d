"""Faster answers in the app: the drafter found beside the model is used, the setting and the
flags turn it off or name another, the counts reach the GUI's text, `generate --json` and
the server's usage, a bad pairing is told once, and the model download brings the drafter."""

from __future__ import annotations

import argparse
import functools
import json

import pytest

from app.cli import main
from app.cli_args import add_session_arguments, draft_overrides, load_model
from app.engine_service import EngineOutput
from app.engines.agent import combine
from app.engines.contract import Finished, GenerationStats, LocalModel
from app.options import GenerationOptions
from app.server.completions import usage_json
from app.session import AppSession, Notice
from app.settings import Settings
from app.settings_form import setting_fields
from app.views import answer_stats
from tests.doubles import TEST_TUNING

GREEDY = GenerationOptions(temperature=0.0, max_tokens=12)
MESSAGES = [{"role": "user", "content": "Hello, how are you today?"}]


def _session(tmp_path, **settings) -> AppSession:
    session = AppSession(tmp_path / "data", tuning=TEST_TUNING)
    if settings:
        session.apply_settings(settings)
    return session


def _load(session: AppSession, path, **overrides):
    job = session.load_local(str(path), **overrides)
    job.wait()
    assert job.error is None, job.error
    return session.service.info


def _answer(session: AppSession) -> GenerationStats:
    job = session.service.generate(MESSAGES, options=GREEDY)
    finished = [
        e.event
        for e in job.events()
        if isinstance(e, EngineOutput) and isinstance(e.event, Finished)
    ]
    return finished[-1].stats


# --- which drafter is loaded ---------------------------------------------------------------------


def test_the_assistant_beside_the_model_is_used_and_counted(
    tiny_checkpoint_with_assistant, tmp_path
):
    with _session(tmp_path) as session:
        info = _load(session, tiny_checkpoint_with_assistant)
        assert info.drafter == "tiny-gemma-assistant"
        assert info.plan.drafter_bytes > 0 and info.notices == ()
        assert session.model_status.precision == "float32 · faster answers"
        counts = _answer(session).extra["speculative"]
        assert counts["drafted"] > 0 and "acceptance_rate" in counts


def test_the_setting_off_loads_the_model_alone(tiny_checkpoint_with_assistant, tmp_path):
    with _session(tmp_path, speculative_decoding=False) as session:
        info = _load(session, tiny_checkpoint_with_assistant)
        assert info.drafter == "" and info.plan.drafter_bytes == 0
        assert session.model_status.precision == "float32"
        assert "speculative" not in _answer(session).extra


def test_the_setting_is_in_the_form_on_by_default():
    (field,) = [f for f in setting_fields(Settings()) if f.key == "speculative_decoding"]
    assert field.value is True and field.kind == "bool" and field.section == "Model"
    assert field.label == "Faster answers (speculative decoding)"
    assert Settings().local_model("m").speculative
    assert not Settings(speculative_decoding=False).local_model("m").speculative


def test_a_named_drafter_must_load(tiny_checkpoint, tiny_checkpoint_with_assistant, tmp_path):
    drafter = tiny_checkpoint_with_assistant.with_name("tiny-gemma-assistant")
    with _session(tmp_path) as session:
        info = _load(session, tiny_checkpoint, draft_model=str(drafter))
        assert info.drafter == "tiny-gemma-assistant"
        job = session.load_local(str(tiny_checkpoint), draft_model=str(tmp_path / "missing"))
        job.wait()
        assert job.error is not None and "missing" in job.error.message


def test_a_coarse_drafter_is_told_once(tiny_checkpoint, tmp_path):
    from mlx_model.convert import convert
    from mlx_model.testing.checkpoint_factory import write_tiny_assistant_checkpoint

    model = tmp_path / "m"
    model.mkdir()
    for item in tiny_checkpoint.iterdir():
        (model / item.name).symlink_to(item)
    plain = write_tiny_assistant_checkpoint(tmp_path / "float-assistant", tiny_checkpoint)
    convert(plain, tmp_path / "m-assistant", bits=4, group_size=32)
    notices: list[str] = []
    with _session(tmp_path) as session:
        session.subscribe(lambda e: isinstance(e, Notice) and notices.append(e.text))
        _load(session, model)
        _load(session, model)
    told = [n for n in notices if "quantized to 4 bits" in n]
    assert len(told) == 1 and told[0].startswith("Faster answers may not be faster")


# --- the flags ---------------------------------------------------------------------------------


def _parse(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_session_arguments(parser)
    return parser.parse_args(list(flags))


def test_the_draft_flags_become_load_fields_and_exclude_each_other(capsys):
    assert draft_overrides(_parse()) == {}
    assert draft_overrides(_parse("--no-draft")) == {"speculative": False}
    assert draft_overrides(_parse("--draft-model", "org/x-assistant")) == {
        "speculative": True,
        "draft_model": "org/x-assistant",
    }
    with pytest.raises(SystemExit):
        _parse("--no-draft", "--draft-model", "x")
    assert "not allowed with" in capsys.readouterr().err


def test_the_draft_flags_apply_to_the_settings_model_too(tmp_path):
    calls = []

    class Session:
        settings = Settings(model_path="/models/gemma")

        def load_local(self, path, **overrides):
            calls.append((path, overrides))

        def load_from_settings(self):
            calls.append(("settings", {}))

    load_model(Session(), _parse("--no-draft"))
    load_model(Session(), _parse())
    load_model(Session(), _parse("--model", "/other", "--draft-model", "/d"))
    assert calls == [
        ("/models/gemma", {"speculative": False}),
        ("settings", {}),
        ("/other", {"speculative": True, "draft_model": "/d"}),
    ]


def test_generate_json_carries_the_drafting_counts_and_no_draft_turns_it_off(
    tiny_checkpoint_with_assistant, tmp_path, capsys
):
    args = ["generate", "--data-dir", str(tmp_path / "data"), "--model",
            str(tiny_checkpoint_with_assistant), "--prompt", "Hello", "--max-tokens", "8",
            "--temperature", "0", "--json"]  # fmt: skip
    assert main(args) == 0
    fast = json.loads(capsys.readouterr().out)
    counts = fast["stats"]["extra"]["speculative"]
    assert {"drafted", "accepted", "acceptance_rate", "mean_accepted_length"} <= set(counts)
    assert fast["stats"]["decode_tps"] >= 0
    assert main([*args, "--no-draft"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert "speculative" not in plain["stats"]["extra"]
    assert plain["token_ids"] == fast["token_ids"]


# --- where the counts are shown ------------------------------------------------------------------


def _stats(drafted: int, accepted: int, rounds: int, tps: float = 20.0) -> GenerationStats:
    stats = GenerationStats(generated_tokens=30, decode_tps=tps)
    stats.extra["speculative"] = {
        "drafted": drafted,
        "accepted": accepted,
        "acceptance_rate": accepted / drafted if drafted else 0.0,
        "mean_accepted_length": accepted / rounds if rounds else 0.0,
        "rounds": rounds,
        "plain_steps": 1,
        "draft_lengths": {"2": rounds},
    }
    return stats


def test_the_message_stats_show_how_many_guesses_were_kept():
    text, tip = answer_stats(_stats(40, 30, 20, tps=23.41))
    assert text == "23.4 tok/s · 75% of guesses kept"
    assert "40 tokens drafted, 30 accepted (75%), 1.50 accepted per check" in tip
    assert answer_stats(GenerationStats(decode_tps=9.0))[0] == "9.0 tok/s"
    assert answer_stats(None) == ("", "")


def test_a_generation_sums_the_drafting_of_its_turns():
    total = combine([_stats(10, 5, 5), _stats(30, 27, 10)])
    counts = total.extra["speculative"]
    assert (counts["drafted"], counts["accepted"], counts["rounds"]) == (40, 32, 15)
    assert counts["acceptance_rate"] == 0.8 and counts["draft_lengths"] == {"2": 15}


def test_usage_carries_the_drafting_counts_as_openai_and_as_our_extension():
    usage = usage_json(_stats(40, 30, 20, tps=23.456))
    assert usage["completion_tokens_details"] == {
        "accepted_prediction_tokens": 30,
        "rejected_prediction_tokens": 10,
    }
    assert usage["speculative"] == {
        "drafted_tokens": 40,
        "accepted_tokens": 30,
        "acceptance_rate": 0.75,
        "mean_accepted_length": 1.5,
        "decode_tokens_per_second": 23.46,
    }
    assert "speculative" not in usage_json(GenerationStats(generated_tokens=3))


def test_the_server_reports_the_drafting_in_usage(tiny_checkpoint_with_assistant):
    import openai

    from tests.doubles import local_server

    with local_server(tiny_checkpoint_with_assistant) as server:
        client = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=60)
        response = client.chat.completions.create(
            model=client.models.list().data[0].id, messages=MESSAGES, max_tokens=8, temperature=0
        )
    extension = response.usage.model_extra["speculative"]
    assert extension["drafted_tokens"] >= extension["accepted_tokens"] >= 0
    assert (
        response.usage.completion_tokens_details.accepted_prediction_tokens
        == (extension["accepted_tokens"])
    )


# --- the plan and the download -------------------------------------------------------------------


def test_the_memory_plan_counts_the_drafter_found_beside_the_model(
    tiny_checkpoint_with_assistant,
):
    from app.models.offer import memory_plan_text

    rows, _ = memory_plan_text(Settings(), str(tiny_checkpoint_with_assistant), None)
    off, _ = memory_plan_text(
        Settings(speculative_decoding=False), str(tiny_checkpoint_with_assistant), None
    )
    labels = [label for label, _ in rows]
    assert "Drafter (faster answers)" in labels
    assert "Drafter (faster answers)" not in [label for label, _ in off]


def test_the_offer_brings_the_assistant_unless_faster_answers_are_off():
    from app.models.catalog import GEMMA_4_12B_IT, assistant_entry, entry_for_repo
    from app.models.offer import download_offer

    assert download_offer(Settings()).assistant_repo == "google/gemma-4-12B-it-assistant"
    assert download_offer(Settings(speculative_decoding=False)).assistant_repo == ""
    entry = assistant_entry(GEMMA_4_12B_IT)
    assert entry.repo_id == GEMMA_4_12B_IT.assistant_repo and entry.load_bits is None
    typed = entry_for_repo("someone/gemma-4-e4b-it-assistant")
    assert typed.model_types == ("gemma4_unified_assistant",) and typed.load_bits is None


@pytest.mark.parametrize("with_assistant", [True, False])
def test_the_download_fetches_the_model_then_its_assistant(
    tiny_checkpoint_with_assistant, tmp_path, hub_cache, monkeypatch, with_assistant
):
    from app.models import hub_download
    from mlx_model.hub import find_drafter
    from tests.app.hub_server import FakeHub, go_online

    go_online(monkeypatch)
    model = tiny_checkpoint_with_assistant
    others = {"google/gemma-4-12B-it-assistant": model.with_name("tiny-gemma-assistant")}
    with FakeHub(model, "google/gemma-4-12B-it", others=others) as hub:
        monkeypatch.setattr(
            hub_download,
            "HubCacheDownloader",
            functools.partial(hub_download.HubCacheDownloader, endpoint=hub.endpoint, token=False),
        )
        done, notices, progress = [], [], []
        with _session(tmp_path, speculative_decoding=with_assistant) as session:
            session.subscribe(lambda e: isinstance(e, Notice) and notices.append(e.text))
            session.start_download(lambda *a: progress.append(a), lambda *a: done.append(a))
            for _ in range(600):
                if done:
                    break
                __import__("time").sleep(0.05)
    ((folder, error),) = done
    assert error == "" and notices == []
    assert (
        any(what.startswith("Assistant (faster answers)") for *_, what in progress)
        is with_assistant
    )
    found = find_drafter(folder)
    assert (found is not None and "gemma-4-12B-it-assistant" in str(found)) is with_assistant


def test_a_failed_assistant_download_leaves_the_model_and_says_so(
    tiny_checkpoint, tmp_path, hub_cache, monkeypatch
):
    from app.models import hub_download
    from tests.app.hub_server import FakeHub, go_online

    go_online(monkeypatch)
    with FakeHub(tiny_checkpoint, "google/gemma-4-12B-it") as hub:  # no assistant repo
        monkeypatch.setattr(
            hub_download,
            "HubCacheDownloader",
            functools.partial(hub_download.HubCacheDownloader, endpoint=hub.endpoint, token=False),
        )
        done, notices = [], []
        with _session(tmp_path) as session:
            session.subscribe(lambda e: isinstance(e, Notice) and notices.append(e.text))
            session.start_download(lambda *a: None, lambda *a: done.append(a))
            for _ in range(600):
                if done:
                    break
                __import__("time").sleep(0.05)
    ((folder, error),) = done
    assert folder and error == ""
    assert len(notices) == 1 and "google/gemma-4-12B-it-assistant" in notices[0]


def test_a_drafter_folder_needs_no_tokenizer_but_a_model_does(
    tiny_checkpoint_with_assistant,
):
    from app.models.catalog import DRAFTER_MODEL_TYPES
    from app.models.local import InvalidModelFolder, validate_folder

    drafter = tiny_checkpoint_with_assistant.with_name("tiny-gemma-assistant")
    assert validate_folder(drafter, DRAFTER_MODEL_TYPES).model_type == "gemma4_unified_assistant"
    with pytest.raises(InvalidModelFolder, match="gemma4_unified_assistant"):
        validate_folder(drafter)


def test_local_model_keeps_the_draft_fields():
    spec = LocalModel("m", draft_model="d", speculative=False)
    assert (spec.draft_model, spec.speculative) == ("d", False)


@pytest.mark.parametrize("flags", [[], ["--no-assistant"]])
def test_models_download_brings_the_catalog_models_assistant(
    tiny_checkpoint_with_assistant, hub_cache, monkeypatch, capsys, flags
):
    from app.models import hub_download
    from mlx_model.hub import cached_snapshot
    from tests.app.hub_server import FakeHub, go_online

    go_online(monkeypatch)
    model = tiny_checkpoint_with_assistant
    others = {"google/gemma-4-12B-it-assistant": model.with_name("tiny-gemma-assistant")}
    with FakeHub(model, "google/gemma-4-12B-it", others=others) as hub:
        monkeypatch.setattr(
            hub_download,
            "HubCacheDownloader",
            functools.partial(hub_download.HubCacheDownloader, endpoint=hub.endpoint, token=False),
        )
        assert main(["models", "--download", "google/gemma-4-12B-it", *flags]) == 0
    assert cached_snapshot("google/gemma-4-12B-it") is not None
    fetched = cached_snapshot("google/gemma-4-12B-it-assistant") is not None
    assert fetched is (not flags)
    assert ("gemma-4-12B-it-assistant is in the Hugging Face cache" in capsys.readouterr().out) is (
        not flags
    )
