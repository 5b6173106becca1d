"""The Gemma 4 chat format: our template, template selection, thinking and tool turns."""

from __future__ import annotations

import shutil

import pytest

from mlx_model.processing import ChatFormatError, Processor, order_content
from mlx_model.processing.chat_template import default_chat_template, load_chat_template
from tests.mlx_model.processing.test_parity import TOOLS, tool_conversation


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


def test_a_tool_response_given_as_a_mapping_renders_as_named_fields(processor):
    messages = tool_conversation()
    messages[-1]["content"] = {"error": "division by zero", "code": 7}
    prompt = render(processor, messages, tools=TOOLS)
    assert (
        '<|tool_response>response:calculator{code:7,error:<|"|>division by zero<|"|>}'
        "<tool_response|>" in prompt
    )


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


def test_rendering_matches_transformers_for_the_tool_conversation(processor, hf_processor):
    for thinking in (False, True):
        ours = render(processor, tool_conversation(), tools=TOOLS, enable_thinking=thinking)
        ref = hf_processor.apply_chat_template(
            tool_conversation(),
            tools=TOOLS,
            add_generation_prompt=True,
            enable_thinking=thinking,
            tokenize=False,
        )
        assert ours == ref


def test_checkpoint_template_is_used_when_present(tiny_checkpoint, tmp_path):
    for item in tiny_checkpoint.iterdir():
        if item.suffix != ".safetensors":
            shutil.copy(item, tmp_path / item.name)
    (tmp_path / "chat_template.jinja").write_text(
        "{{ bos_token }}CUSTOM{{ messages[0]['content'] }}"
    )
    processor = Processor.from_pretrained(tmp_path)
    assert processor.render([{"role": "user", "content": "x"}]) == "<bos>CUSTOMx"


def test_our_template_is_used_when_the_checkpoint_has_none(tmp_path):
    assert load_chat_template(tmp_path, {}) == default_chat_template()


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


def test_placeholder_typed_by_the_user_is_rejected(processor):
    with pytest.raises(ChatFormatError):
        processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "text", "text": "<|image|>"}]}]
        )
