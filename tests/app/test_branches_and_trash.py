"""Conversations as trees (versions of edits and regenerations), per-chat options, and the trash
refusing writes: in the store and through the controller."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from app.conversation_controller import STOPPED_BY_TRASH, ConversationController
from app.engine_service import EngineService
from app.options import OptionError
from app.settings import Settings
from app.storage.conversations import ConversationInTrash
from app.storage.database import MIGRATIONS, Database
from tests.doubles import fake_factory

TIMEOUT = 30


def _texts(store, conversation_id):
    return [m.text for m in store.messages(conversation_id)]


def _chat(store, *texts):
    """A conversation saying `texts`, alternating user and assistant."""
    conv = store.create_conversation("chat")
    messages = [
        store.add_message(conv.id, "user" if i % 2 == 0 else "assistant", text)
        for i, text in enumerate(texts)
    ]
    return conv, messages


# -- versions ------------------------------------------------------------------------------


def test_each_message_follows_the_one_before_it(storage) -> None:
    _, (question, answer, follow_up) = _chat(storage.conversations, "q", "a", "q2")
    assert (question.parent_id, answer.parent_id, follow_up.parent_id) == (
        None,
        question.id,
        answer.id,
    )


def test_a_regenerated_answer_is_a_version_and_the_old_one_can_be_shown_again(storage) -> None:
    store = storage.conversations
    conv, (question, first, _follow, _answer2) = _chat(store, "q", "first", "q2", "a2")
    store.supersede_from(conv.id, first.position)
    second = store.add_message(conv.id, "assistant", "second", replaces_id=first.id)
    assert second.parent_id == question.id
    assert _texts(store, conv.id) == ["q", "second"]
    assert store.version_counts(conv.id) == {second.id: (2, 2)}
    store.switch_version(first.id)
    # The first answer comes back with the turns that followed it.
    assert _texts(store, conv.id) == ["q", "first", "q2", "a2"]
    assert store.version_counts(conv.id) == {first.id: (1, 2)}
    store.switch_version(second.id)
    assert _texts(store, conv.id) == ["q", "second"]
    everything = store.messages(conv.id, include_superseded=True)
    assert len(everything) == 5  # nothing was dropped on the way


def test_switching_back_returns_to_the_branch_shown_last_below(storage) -> None:
    store = storage.conversations
    conv, (question, answer) = _chat(store, "q", "a")
    store.supersede_from(conv.id, question.position)
    edited = store.add_message(conv.id, "user", "q edited", replaces_id=question.id)
    store.add_message(conv.id, "assistant", "a to edited")
    assert _texts(store, conv.id) == ["q edited", "a to edited"]
    store.switch_version(question.id)
    assert _texts(store, conv.id) == ["q", "a"]
    store.switch_version(edited.id)
    assert _texts(store, conv.id) == ["q edited", "a to edited"]
    assert [m.text for m in store.message_versions(edited.id)] == ["q", "q edited"]


def test_an_older_database_gets_its_branches_from_the_replaced_messages(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = Database(path, migrations=MIGRATIONS[:2])
    now = time.time()
    rows = [  # id, position, role, text, replaces, superseded
        (1, 0, "user", "q", None, None),
        (2, 1, "assistant", "first", None, now),
        (3, 2, "assistant", "second", 2, None),
        (4, 3, "user", "q2", None, None),
    ]
    with old.transaction() as conn:
        conn.execute(
            "INSERT INTO conversations (id, uuid, created_at, updated_at) VALUES (1, 'u', 0, 0)"
        )
        for mid, position, role, text, replaces, superseded in rows:
            conn.execute(
                "INSERT INTO messages (id, conversation_id, position, role, text, replaces_id,"
                " superseded_at, created_at, updated_at) VALUES (?, 1, ?, ?, ?, ?, ?, 0, 0)",
                (mid, position, role, text, replaces, superseded),
            )
    old.close()
    Database(path).close()  # migrates
    conn = sqlite3.connect(path)
    parents = dict(conn.execute("SELECT id, parent_id FROM messages").fetchall())
    conn.close()
    assert parents == {1: None, 2: 1, 3: 1, 4: 3}


# -- the trash refuses writes --------------------------------------------------------------


def test_a_conversation_in_the_trash_refuses_new_messages_and_edits(storage) -> None:
    store = storage.conversations
    conv, (question, _answer) = _chat(store, "q", "a")
    store.delete_conversation(conv.id)
    with pytest.raises(ConversationInTrash, match="restore it"):
        store.add_message(conv.id, "user", "more")
    with pytest.raises(ConversationInTrash):
        store.update_message(question.id, text="changed")
    with pytest.raises(ConversationInTrash):
        store.rename_conversation(conv.id, "renamed")
    with pytest.raises(ConversationInTrash):
        store.supersede_from(conv.id, 0)
    store.restore_conversation(conv.id)
    store.add_message(conv.id, "user", "more")
    assert _texts(store, conv.id) == ["q", "a", "more"]


def test_emptying_the_trash_removes_only_what_is_in_it(storage) -> None:
    store = storage.conversations
    kept, _ = _chat(store, "keep")
    gone, _ = _chat(store, "gone")
    store.delete_conversation(gone.id)
    assert store.empty_trash() == 1
    assert [c.id for c in store.list_conversations()] == [kept.id]
    assert store.list_trash() == []


# -- the controller ------------------------------------------------------------------------


@pytest.fixture
def fake_service():
    factory = fake_factory(delay=0.02)
    service = EngineService(factory)
    assert service.load("fake-model").wait(TIMEOUT)
    service.engines = factory.engines
    yield service
    service.shutdown(TIMEOUT)


@pytest.fixture
def controller(storage, fake_service):
    ctl = ConversationController(storage, fake_service, Settings(max_tokens=400))
    yield ctl
    ctl.close()


def test_deleting_a_chat_mid_answer_stops_it_and_writes_nothing_more(controller, storage):
    store = storage.conversations
    conv = controller.new_conversation()
    controller.service.engines[0].script([("forever", "word")])
    turn = controller.send(conv.id, "talk for a while")
    deadline = time.monotonic() + TIMEOUT
    while (
        len(controller.writer.active) == 0 or not store.get_message(turn.assistant_message_id).text
    ):
        controller.writer.flush()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    controller.delete_conversation(conv.id)
    stopped = store.get_message(turn.assistant_message_id)
    assert stopped.status == "error" and stopped.error == STOPPED_BY_TRASH
    assert turn.wait(TIMEOUT) and turn.status == "cancelled"
    time.sleep(0.1)  # any late event would have been written by now
    assert store.get_message(turn.assistant_message_id) == stopped
    assert store.get_conversation(conv.id).in_trash


def test_a_chat_keeps_its_own_system_prompt_sampling_and_thinking(controller, fake_service):
    conv = controller.new_conversation(
        system_prompt="You are terse.", options={"temperature": 0.2, "thinking": True}
    )
    controller.send(conv.id, "hi").wait(TIMEOUT)
    request = fake_service.engines[0].requests[-1]
    assert request["messages"][0] == {"role": "system", "content": "You are terse."}
    assert request["options"].temperature == 0.2 and request["options"].enable_thinking
    controller.set_chat_options(conv.id, thinking=False, tools=False, system_prompt=None)
    controller.send(conv.id, "again").wait(TIMEOUT)
    request = fake_service.engines[0].requests[-1]
    assert request["messages"][0]["role"] == "user"  # the Settings' (empty) prompt applies
    assert not request["options"].enable_thinking and request["tools"] is None


def test_a_bad_chat_option_is_refused_by_name_and_nothing_is_stored(controller):
    conv = controller.new_conversation()
    with pytest.raises(OptionError, match="temperature"):
        controller.set_chat_options(conv.id, temperature=9.0)
    assert controller.store.get_conversation(conv.id).options == {}


def test_the_thinking_time_is_stored_with_the_answer(storage):
    factory = fake_factory(thinking="Let me see. ", delay=0.05, words=["a ", "b "])
    service = EngineService(factory)
    assert service.load("fake-model").wait(TIMEOUT)
    ctl = ConversationController(storage, service, Settings())
    try:
        conv = ctl.new_conversation()
        turn = ctl.send(conv.id, "think")
        assert turn.wait(TIMEOUT)
        stats = storage.conversations.get_message(turn.assistant_message_id).stats
        assert 0.0 < stats["extra"]["thinking_s"] < 5.0
    finally:
        ctl.close()
        service.shutdown(TIMEOUT)


# -- presets -------------------------------------------------------------------------------


def test_builtin_presets_come_first_and_the_users_are_kept(storage) -> None:
    from app.presets import Preset, PresetStore

    presets = PresetStore(storage.db)
    names = [p.name for p in presets.list()]
    assert names[:3] == ["Meeting notes", "Code reviewer", "Translator"]
    presets.save(Preset("Poet", "Answer in verse.", {"temperature": 1.2, "thinking": False}))
    assert presets.get("Poet").options == {"temperature": 1.2, "thinking": False}
    presets.save(Preset("Bard", "Answer in verse."), replacing="Poet")
    assert [p.name for p in presets.list()][3:] == ["Bard"]
    presets.delete("Bard")
    assert len(presets.list()) == 3


def test_a_preset_with_a_taken_name_or_a_bad_option_is_refused(storage) -> None:
    from app.presets import Preset, PresetError, PresetStore

    presets = PresetStore(storage.db)
    with pytest.raises(PresetError, match="built-in"):
        presets.save(Preset("translator"))
    with pytest.raises(OptionError, match="top_p"):
        presets.save(Preset("Wild", options={"top_p": 3}))
    with pytest.raises(PresetError, match="built in"):
        presets.delete("Translator")


def test_a_chat_started_from_a_preset_keeps_its_settings(controller, fake_service):
    from app.presets import BUILTIN_PRESETS

    translator = BUILTIN_PRESETS[2]
    conv = controller.new_conversation(
        system_prompt=translator.system_prompt, options=translator.chat_options()
    )
    controller.tools = ["a tool list"]
    controller.send(conv.id, "Bonjour").wait(TIMEOUT)
    request = fake_service.engines[0].requests[-1]
    assert request["messages"][0]["content"] == translator.system_prompt
    assert request["options"].temperature == 0.1 and request["tools"] is None
    assert controller.store.get_conversation(conv.id).options["preset"] == "Translator"
