"""The Gemma 4 chat format: our template against Google's canonical one, template selection,
thinking and tool turns."""

from __future__ import annotations

import copy
import hashlib
import logging
import shutil
from pathlib import Path

import pytest

from mlx_model.processing import ChatFormatError, Processor, order_content
from mlx_model.processing import chat_template as chat_template_module
from mlx_model.processing.chat_template import (
    CANONICAL_TEMPLATE_SHA256,
    default_chat_template,
    load_chat_template,
    render_chat_template,
    select_chat_template,
)
from tests.mlx_model.processing.canonical_renderings import EXPECTED
from tests.mlx_model.processing.chat_shapes import CONVERSATIONS
from tests.mlx_model.processing.test_parity import TOOLS, tool_conversation

# Google's canonical Gemma 4 chat template, byte for byte as google/gemma-4-12B-it ships it:
# the oracle our template is checked against (not product text).
CANONICAL = Path(__file__).with_name("gemma4_canonical_chat_template.jinja")
SPECIAL = {"bos_token": "<bos>", "eos_token": "<eos>"}


def _render(template: str, shape: str) -> str:
    kwargs = copy.deepcopy(CONVERSATIONS[shape])
    return render_chat_template(template, kwargs.pop("messages"), special_tokens=SPECIAL, **kwargs)


def test_the_oracle_is_googles_canonical_template_as_shipped():
    data = CANONICAL.read_bytes()
    assert hashlib.sha256(data).hexdigest() == CANONICAL_TEMPLATE_SHA256
    assert len(data) == 18_683


@pytest.mark.parametrize("shape", list(CONVERSATIONS))
def test_our_template_renders_what_the_canonical_template_renders(shape):
    canonical = _render(CANONICAL.read_text(encoding="utf-8"), shape)
    assert canonical == EXPECTED[shape]
    assert _render(default_chat_template(), shape) == EXPECTED[shape]


def test_the_processor_renders_every_shape_in_the_canonical_format(processor):
    for shape, kwargs in CONVERSATIONS.items():
        kwargs = copy.deepcopy(kwargs)
        assert processor.render(kwargs.pop("messages"), **kwargs) == EXPECTED[shape], shape


def test_transformers_renders_the_canonical_template_as_we_do(tiny_checkpoint):
    """Our Jinja settings are transformers': the pinned strings are what it renders too."""
    transformers = pytest.importorskip("transformers", reason="reference stack (dev extra)")
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_checkpoint)
    canonical = CANONICAL.read_text(encoding="utf-8")
    for shape, kwargs in CONVERSATIONS.items():
        kwargs = copy.deepcopy(kwargs)
        ref = tokenizer.apply_chat_template(
            kwargs.pop("messages"),
            chat_template=canonical,
            tokenize=False,
            add_generation_prompt=kwargs.pop("add_generation_prompt", True),
            **kwargs,
        )
        assert ref == EXPECTED[shape], shape


def test_a_tool_message_with_mapping_content_renders_as_named_fields():
    """The one input the canonical template rejects and ours accepts."""
    messages = tool_conversation()
    messages[-1]["content"] = {"error": "division by zero", "code": 7}
    with pytest.raises(ChatFormatError):
        render_chat_template(CANONICAL.read_text(encoding="utf-8"), messages, tools=TOOLS)
    prompt = render_chat_template(default_chat_template(), messages, tools=TOOLS)
    assert (
        '<|tool_response>response:calculator{code:7,error:<|"|>division by zero<|"|>}'
        "<tool_response|>" in prompt
    )


# -- which template a checkpoint gets -----------------------------------------------------


def _checkpoint_with_template(tiny_checkpoint: Path, folder: Path, template: str | None) -> Path:
    for item in tiny_checkpoint.iterdir():
        if item.suffix != ".safetensors" and item.name != "chat_template.jinja":
            shutil.copy(item, folder / item.name)
    if template is not None:
        (folder / "chat_template.jinja").write_bytes(template.encode("utf-8"))
    return folder


def test_a_checkpoint_with_googles_canonical_template_gets_the_canonical_format(
    tiny_checkpoint, tmp_path
):
    folder = _checkpoint_with_template(tiny_checkpoint, tmp_path, CANONICAL.read_text("utf-8"))
    choice = select_chat_template(folder)
    assert (choice.source, choice.reason) == ("ours", "canonical")
    assert choice.checkpoint_sha256 == CANONICAL_TEMPLATE_SHA256


def test_a_known_stale_template_is_replaced_by_the_canonical_format_and_logged_once(
    tiny_checkpoint, tmp_path, monkeypatch, caplog
):
    stale = "{{ bos_token }}STALE{{ messages[0]['content'] }}"
    sha = hashlib.sha256(stale.encode()).hexdigest()
    monkeypatch.setitem(chat_template_module.STALE_TEMPLATE_SHA256, sha, "2026-05-28")
    monkeypatch.setattr(chat_template_module, "_logged_stale", set())
    folder = _checkpoint_with_template(tiny_checkpoint, tmp_path, stale)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir())
    with caplog.at_level(logging.WARNING, logger=chat_template_module.__name__):
        first = Processor.from_pretrained(folder)
        Processor.from_pretrained(folder)
    message = [r.getMessage() for r in caplog.records if "outdated" in r.getMessage()]
    assert len(message) == 1 and sha[:8] in message[0] and "2026-05-28" in message[0]
    assert first.template_choice.reason == "stale"
    messages = [{"role": "user", "content": "Hi"}]
    assert first.render(messages) == EXPECTED["thinking_off"]
    forced = Processor.from_pretrained(folder, use_checkpoint_template=True)
    assert forced.template_choice.reason == "forced"
    assert forced.render(messages) == "<bos>STALEHi"
    assert sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir()) == before


def test_the_stale_template_of_a_tokenizer_config_is_recognised_by_the_string_shipped(
    tiny_checkpoint, tmp_path, monkeypatch
):
    stale = "{{ bos_token }}OLD"
    monkeypatch.setitem(
        chat_template_module.STALE_TEMPLATE_SHA256,
        hashlib.sha256(stale.encode()).hexdigest(),
        "2026-04-30",
    )
    folder = _checkpoint_with_template(tiny_checkpoint, tmp_path, None)
    assert select_chat_template(folder, {"chat_template": stale}).reason == "stale"


def test_a_fine_tunes_own_template_is_used(tiny_checkpoint, tmp_path):
    folder = _checkpoint_with_template(
        tiny_checkpoint, tmp_path, "{{ bos_token }}CUSTOM{{ messages[0]['content'] }}"
    )
    processor = Processor.from_pretrained(folder)
    assert processor.template_choice.reason == "custom"
    assert processor.render([{"role": "user", "content": "x"}]) == "<bos>CUSTOMx"


def render(processor, messages, **kwargs) -> str:
    return processor.render(messages, **kwargs)


def test_plain_turn_with_thinking_off_prefills_an_empty_thought_channel(processor):
    prompt = render(processor, [{"role": "user", "content": "Hi"}])
    assert prompt == "<bos><|turn>user\nHi<turn|>\n<|turn>model\n<|channel>thought\n<channel|>"


def test_thinking_on_opens_a_system_turn_with_the_think_token(processor):
    prompt = render(processor, [{"role": "user", "content": "Hi"}], enable_thinking=True)
    assert (
        prompt == "<bos><|turn>system\n<|think|>\n<turn|>\n<|turn>user\nHi<turn|>\n<|turn>model\n"
    )


def test_system_prompt_and_tool_declarations_share_the_system_turn(processor):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    prompt = render(processor, messages, tools=TOOLS)
    system = prompt.split("<turn|>")[0]
    assert system.startswith(
        "<bos><|turn>system\nBe brief.<|tool>declaration:get_weather{description:"
    )
    assert 'required:[<|"|>city<|"|>],type:<|"|>OBJECT<|"|>}' in system
    assert system.count("<|tool>") == 2 and system.count("<tool|>") == 2


def test_tool_calls_and_responses_continue_one_model_turn(processor):
    prompt = render(processor, tool_conversation(), tools=TOOLS)
    model_turn = prompt.split("<|turn>model\n", 1)[1]
    assert model_turn.startswith(
        "<|channel>thought\nI need the weather tool and the calculator.\n<channel|>"
    )
    assert (
        '<|tool_call>call:get_weather{city:<|"|>Paris<|"|>,units:<|"|>celsius<|"|>}<tool_call|>'
        in model_turn
    )
    assert '<|tool_response>response:calculator{value:<|"|>42<|"|>}<tool_response|>' in model_turn
    assert "<turn|>" not in model_turn  # the model continues the same turn after the responses
    assert prompt.endswith("<tool_response|>")


def test_previous_thoughts_are_stripped_from_history(processor):
    messages = [
        {"role": "user", "content": "2+2?"},
        {
            "role": "assistant",
            "content": "<|channel>thought\nadd them<channel|>4",
            "reasoning_content": "add them",
        },
        {"role": "user", "content": "And 3+3?"},
    ]
    prompt = render(processor, messages, enable_thinking=True)
    assert "add them" not in prompt
    assert "<|turn>model\n4<turn|>" in prompt


def test_our_template_is_used_when_the_checkpoint_has_none(tmp_path):
    assert load_chat_template(tmp_path, {}) == default_chat_template()
    assert select_chat_template(tmp_path, {}).reason == "absent"


def test_media_placeholders_render_where_the_user_put_them(processor):
    content = [
        {"type": "text", "text": "Listen:"},
        {"type": "audio"},
        {"type": "text", "text": "then look"},
        {"type": "image"},
    ]
    prompt = render(processor, [{"role": "user", "content": content}])
    assert "Listen:<|audio|>then look<|image|><turn|>" in prompt


def test_order_content_puts_images_first_and_audio_last():
    content = order_content(
        "Describe", [{"type": "audio", "audio": "a.wav"}, {"type": "image", "image": "p.png"}]
    )
    assert [c["type"] for c in content] == ["image", "text", "audio"]


def test_unknown_content_type_is_rejected(processor):
    with pytest.raises(ChatFormatError):
        processor.apply_chat_template([{"role": "user", "content": [{"type": "hologram"}]}])
