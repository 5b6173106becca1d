"""What the front ends show of a conversation: tool cards completed by their results, error hints."""

from __future__ import annotations

from app.errors import user_hint
from app.settings import Settings
from app.settings_form import setting_fields
from app.views import conversation_summaries, message_views


def test_a_tool_result_completes_the_card_on_its_answer(storage):
    store = storage.conversations
    conv = store.create_conversation("Sums")
    store.add_message(conv.id, "user", "Add 2 and 3")
    call = {"id": "c1", "name": "add", "arguments": {"a": 2, "b": 3}}
    store.add_message(conv.id, "assistant", "Let me add.", tool_calls=[call])
    store.add_message(conv.id, "tool", tool_result={"call": call, "result": 5, "error": None})
    store.add_message(conv.id, "assistant", "It is 5.", stats={"generated_tokens": 4})
    views = message_views(storage, conv.id)
    assert [v.role for v in views] == ["user", "assistant", "assistant"]
    [card] = views[1].tools
    assert (card.name, card.result, card.done) == ("add", 5, True)
    assert views[2].stats.generated_tokens == 4


def test_an_error_shows_the_hint_of_its_kind(storage):
    store = storage.conversations
    conv = store.create_conversation()
    message = store.add_message(
        conv.id, "assistant", "", status="error", error="too long",
        stats={"error_kind": "context_overflow"},
    )  # fmt: skip
    [view] = message_views(storage, conv.id)
    assert view.id == str(message.id) and view.error == "too long"
    assert view.error_hint == user_hint("context_overflow") != ""


def test_live_text_replaces_what_is_stored_while_streaming(storage):
    store = storage.conversations
    conv = store.create_conversation()
    message = store.add_message(conv.id, "assistant", "", status="streaming")
    [view] = message_views(storage, conv.id, {message.id: ("so far", "hmm")})
    assert (view.text, view.thinking, view.streaming) == ("so far", "hmm", True)


def test_summaries_say_which_conversation_is_generating(storage):
    a = storage.conversations.create_conversation("A")
    storage.conversations.create_conversation("B")
    summaries = conversation_summaries(storage, lambda cid: cid == a.id)
    assert {s.title: s.generating for s in summaries} == {"A": True, "B": False}


def test_the_settings_form_shows_the_options_ranges():
    fields = {f.key: f for f in setting_fields(Settings())}
    assert (fields["temperature"].minimum, fields["temperature"].maximum) == (0.0, 2.0)
    assert fields["vision_budget"].kind == "choice" and 280 in fields["vision_budget"].choices
    assert (
        fields["remote_api_key"].kind == "secret" and fields["temperature"].section == "Generation"
    )
