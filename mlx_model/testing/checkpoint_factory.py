"""Write tiny random Gemma 4 unified checkpoints in the real Hugging Face layout.

Tests load these through the same code path a user's download takes, and
transformers loads them too (that is what makes it our parity oracle). The folder
holds what a real `google/gemma-4-12B-it` download holds:

- `config.json`: the composite `gemma4_unified` config with text/vision/audio parts,
  written in the checkpoint's own style (`global_head_dim`,
  `num_global_key_value_heads`, `eoa_token_index`);
- weights as `model.safetensors`, or sharded `model-0000X-of-0000N.safetensors` plus
  `model.safetensors.index.json`, under the on-disk names;
- `tokenizer.json` (a small byte-fallback BPE built with `tokenizers` that holds every
  Gemma 4 control token), `tokenizer_config.json`, `generation_config.json`,
  `chat_template.jinja`, and the processor's config files.

The sizes are tiny and the token ids are our own (the 12B's ids are above 255,000;
here they are below 1,000), so code that hard-codes anything about the 12B fails.
Every architectural feature is on: sliding and full layers, k_eq_v full layers with
their own head size and a single KV head, proportional RoPE, final softcapping,
vision and audio embedders. Random weights are perturbed away from their trivial
initial values (norm scales are not 1, `layer_scalar` is not 1, biases are not 0)
so a port that drops a term fails.

`write_tiny_checkpoint(..., assistant=True)` also writes a matching multi-token-prediction
drafter (`gemma4_unified_assistant`, dense or centroid-routed sparse LM head) in the sibling
folder `assistant_path(path)`, as `google/gemma-4-12B-it-assistant` sits beside the model.

Also a CLI subcommand: `gemma-desk make-test-checkpoint DIR`.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# The Gemma 4 control tokens, in the order they get ids. Ids start at 0 and are our
# own, not the 12B's. `TOKEN_ROLES` names the ones configs refer to.
CONTROL_TOKENS = [
    "<pad>",
    "<unk>",
    "<mask>",
    "<bos>",
    "[multimodal]",
    "<eos>",
    "<|tool>",
    "<tool|>",
    "<|tool_call>",
    "<tool_call|>",
    "<|tool_response>",
    "<tool_response|>",
    '<|"|>',
    "<|turn>",
    "<turn|>",
    "<|think|>",
    "<|channel>",
    "<channel|>",
]
# Multimodal tokens sit at the end of the vocabulary, as in the real checkpoint.
MULTIMODAL_TOKENS = {
    "boi": "<|image>",
    "boa": "<|audio>",
    "image": "<|image|>",
    "audio": "<|audio|>",
    "eoi": "<image|>",
    "eoa": "<audio|>",
    "video": "<|video|>",
}

# A small corpus the BPE is trained on: enough English, code and chat words that
# prompts in tests tokenize to a few tokens per word. Anything else byte-falls back.
_CORPUS = """
The quick brown fox jumps over the lazy dog. Hello, how are you today?
What is in this image? Describe the picture. Transcribe the audio clip.
What happens in this video? The weather in Paris is sunny and warm.
def main(): return 42  # Python code with print("hello world")
I think the answer is yes. Let me check the calculator tool first.
Summarize the conversation. Thank you very much! The model said no.
time date file read write open close search find number one two three
user model system assistant tool call response thought channel turn
Gemma runs locally on the Mac with MLX. Nothing leaves the machine.
"""


@dataclass
class TinyModelSizes:
    """Network sizes of a test checkpoint. The defaults are tiny; benchmarks pass bigger ones."""

    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 6
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 16
    global_head_dim: int = 32
    num_global_key_value_heads: int = 1
    sliding_window: int = 16
    # None: the default 5:1 pattern with a full last layer. Tiny configs use an explicit
    # mix so that both kinds appear within a few layers.
    layer_types: list[str] | None = field(
        default_factory=lambda: [
            "sliding_attention",
            "full_attention",
            "sliding_attention",
            "sliding_attention",
            "full_attention",
            "full_attention",
        ]
    )
    mm_posemb_size: int = 1120
    vocab_size: int = 640
    final_logit_softcapping: float = 30.0
    attention_k_eq_v: bool = True

    @classmethod
    def in_12b_proportions(
        cls, hidden: int, layers: int, vocab: int, window: int
    ) -> TinyModelSizes:
        """Benchmark sizes shaped like the 12B: 8 query heads, 4 KV heads on sliding layers and
        one wider shared KV head on full ones, MLP 4x hidden, and its layer pattern (every 6th
        layer and the last are full; given explicitly, as None does not force the last)."""
        return cls(
            hidden_size=hidden,
            intermediate_size=4 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=8,
            num_key_value_heads=4,
            head_dim=hidden // 8,
            global_head_dim=hidden // 4,
            num_global_key_value_heads=1,
            sliding_window=window,
            layer_types=[
                "full_attention" if (i + 1) % 6 == 0 or i == layers - 1 else "sliding_attention"
                for i in range(layers)
            ],
            vocab_size=vocab,
        )

    @classmethod
    def wide_attention(
        cls, full_layers: int = 1, heads: int = 16, full_head_dim: int = 128, window: int = 64
    ) -> TinyModelSizes:
        """Tiny everywhere but in attention, which is shaped like the 12B's full layers (16 query
        heads, one KV head, a wide head): memory measurements where attention and the KV cache
        dominate. Each full layer follows a sliding one."""
        return cls(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2 * full_layers,
            num_attention_heads=heads,
            num_key_value_heads=1,
            head_dim=16,
            global_head_dim=full_head_dim,
            num_global_key_value_heads=1,
            sliding_window=window,
            layer_types=["sliding_attention", "full_attention"] * full_layers,
            vocab_size=640,
        )


@dataclass
class TokenIds:
    """Ids of the named tokens of a tiny checkpoint (read back from its tokenizer)."""

    pad: int
    eos: int
    bos: int
    unk: int
    turn_start: int
    turn_end: int
    tool_response_start: int
    boi: int
    eoi: int
    image: int
    video: int
    boa: int
    eoa: int
    audio: int


def token_ids_of(checkpoint: str | Path) -> TokenIds:
    """The named token ids of a checkpoint written by this module."""
    vocab = json.loads((Path(checkpoint) / "tokenizer.json").read_text())["model"]["vocab"]
    return TokenIds(
        pad=vocab["<pad>"],
        eos=vocab["<eos>"],
        bos=vocab["<bos>"],
        unk=vocab["<unk>"],
        turn_start=vocab["<|turn>"],
        turn_end=vocab["<turn|>"],
        tool_response_start=vocab["<|tool_response>"],
        boi=vocab[MULTIMODAL_TOKENS["boi"]],
        eoi=vocab[MULTIMODAL_TOKENS["eoi"]],
        image=vocab[MULTIMODAL_TOKENS["image"]],
        video=vocab[MULTIMODAL_TOKENS["video"]],
        boa=vocab[MULTIMODAL_TOKENS["boa"]],
        eoa=vocab[MULTIMODAL_TOKENS["eoa"]],
        audio=vocab[MULTIMODAL_TOKENS["audio"]],
    )


# --------------------------------------------------------------------------- tokenizer


def build_tokenizer_json(vocab_size: int) -> dict[str, Any]:
    """A Gemma-style tokenizer.json: byte-fallback BPE, spaces as '▁', control tokens added.

    Layout of ids: control tokens, then the 256 byte tokens `<0x00>`..`<0xFF>`, then
    BPE pieces learned from a small corpus, then the multimodal tokens at the very end.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    n_fixed = len(CONTROL_TOKENS) + 256 + len(MULTIMODAL_TOKENS)
    n_pieces = vocab_size - n_fixed
    if n_pieces < 120:
        raise ValueError(f"vocab_size {vocab_size} is too small (need at least {n_fixed + 120})")

    alphabet = sorted({c for c in _CORPUS.replace(" ", "▁").replace("\n", "")} | {"▁"})
    trainer_tokenizer = Tokenizer(models.BPE())
    trainer_tokenizer.normalizer = normalizers.Replace(" ", "▁")
    trainer_tokenizer.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    trainer = trainers.BpeTrainer(
        vocab_size=n_pieces, initial_alphabet=alphabet, show_progress=False, special_tokens=[]
    )
    trainer_tokenizer.train_from_iterator(_CORPUS.splitlines(), trainer=trainer)
    trained = json.loads(trainer_tokenizer.to_str())["model"]
    pieces = sorted(trained["vocab"], key=trained["vocab"].get)

    vocab: dict[str, int] = {}
    for token in CONTROL_TOKENS:
        vocab[token] = len(vocab)
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    # Newline runs are whole tokens in Gemma's vocabulary; keep "\n" as a piece.
    for piece in ["\n", *pieces]:
        if piece not in vocab and len(vocab) < vocab_size - len(MULTIMODAL_TOKENS):
            vocab[piece] = len(vocab)
    while len(vocab) < vocab_size - len(MULTIMODAL_TOKENS):  # pad with unused pieces
        vocab[f"<unused{len(vocab)}>"] = len(vocab)
    for token in MULTIMODAL_TOKENS.values():
        vocab[token] = len(vocab)
    merges = [m for m in trained["merges"] if "".join(_merge_parts(m)) in vocab]

    tokenizer = Tokenizer(
        models.BPE(vocab=vocab, merges=[_merge_parts(m) for m in merges], byte_fallback=True)
    )
    tokenizer.normalizer = normalizers.Replace(" ", "▁")
    tokenizer.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    from tokenizers import AddedToken

    tokenizer.add_special_tokens(
        [
            AddedToken(t, special=True, normalized=False)
            for t in [*CONTROL_TOKENS, *MULTIMODAL_TOKENS.values()]
        ]
    )
    return json.loads(tokenizer.to_str())


def _merge_parts(merge: str | list[str]) -> tuple[str, str]:
    if isinstance(merge, str):
        left, right = merge.split(" ", 1)
        return left, right
    return merge[0], merge[1]


def tokenizer_config(chat_template_inline: bool = False) -> dict[str, Any]:
    config: dict[str, Any] = {
        "tokenizer_class": "GemmaTokenizer",
        "bos_token": "<bos>",
        "eos_token": "<eos>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "mask_token": "<mask>",
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "padding_side": "left",
        "model_max_length": 262144,
        "extra_special_tokens": {
            "boi_token": MULTIMODAL_TOKENS["boi"],
            "eoi_token": MULTIMODAL_TOKENS["eoi"],
            "image_token": MULTIMODAL_TOKENS["image"],
            "boa_token": MULTIMODAL_TOKENS["boa"],
            "eoa_token": MULTIMODAL_TOKENS["eoa"],
            "audio_token": MULTIMODAL_TOKENS["audio"],
            "sot_token": "<|turn>",
            "eot_token": "<turn|>",
            "soc_token": "<|channel>",
            "eoc_token": "<channel|>",
            "think_token": "<|think|>",
            "std_token": "<|tool>",
            "etd_token": "<tool|>",
            "stc_token": "<|tool_call>",
            "etc_token": "<tool_call|>",
            "str_token": "<|tool_response>",
            "etr_token": "<tool_response|>",
            "escape_token": '<|"|>',
        },
    }
    return config


# --------------------------------------------------------------------------- configs


def model_config(sizes: TinyModelSizes, vocab: dict[str, int], dtype: str) -> dict[str, Any]:
    """config.json in the style of the real checkpoint."""
    text = {
        "model_type": "gemma4_unified_text",
        "vocab_size": sizes.vocab_size,
        "hidden_size": sizes.hidden_size,
        "intermediate_size": sizes.intermediate_size,
        "num_hidden_layers": sizes.num_hidden_layers,
        "num_attention_heads": sizes.num_attention_heads,
        "num_key_value_heads": sizes.num_key_value_heads,
        "head_dim": sizes.head_dim,
        "global_head_dim": sizes.global_head_dim,
        "num_global_key_value_heads": sizes.num_global_key_value_heads,
        "attention_k_eq_v": sizes.attention_k_eq_v,
        "num_kv_shared_layers": 0,
        "use_double_wide_mlp": False,
        "hidden_activation": "gelu_pytorch_tanh",
        "rms_norm_eps": 1e-6,
        "max_position_embeddings": 262144,
        "sliding_window": sizes.sliding_window,
        "final_logit_softcapping": sizes.final_logit_softcapping,
        "use_bidirectional_attention": "vision",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "pad_token_id": vocab["<pad>"],
        "eos_token_id": vocab["<eos>"],
        "bos_token_id": vocab["<bos>"],
        "tie_word_embeddings": True,
        "rope_parameters": {
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {
                "rope_type": "proportional",
                "partial_rotary_factor": 0.25,
                "rope_theta": 1000000.0,
            },
        },
        "hidden_size_per_layer_input": 0,
        "enable_moe_block": False,
        "vocab_size_per_layer_input": sizes.vocab_size,
        "initializer_range": 0.02,
        "use_cache": True,
    }
    if sizes.layer_types is not None:
        text["layer_types"] = list(sizes.layer_types)
    return {
        "architectures": ["Gemma4UnifiedForConditionalGeneration"],
        "model_type": "gemma4_unified",
        "text_config": text,
        "vision_config": {
            "model_type": "gemma4_unified_vision",
            "patch_size": 16,
            "pooling_kernel_size": 3,
            "mm_embed_dim": sizes.hidden_size,
            "mm_posemb_size": sizes.mm_posemb_size,
            "output_proj_dims": sizes.hidden_size,
            "rms_norm_eps": 1e-6,
            "num_soft_tokens": 280,
        },
        "audio_config": {
            "model_type": "gemma4_unified_audio",
            "audio_embed_dim": 640,
            "rms_norm_eps": 1e-6,
        },
        "boi_token_id": vocab[MULTIMODAL_TOKENS["boi"]],
        "eoi_token_id": vocab[MULTIMODAL_TOKENS["eoi"]],
        "image_token_id": vocab[MULTIMODAL_TOKENS["image"]],
        "video_token_id": vocab[MULTIMODAL_TOKENS["video"]],
        "boa_token_id": vocab[MULTIMODAL_TOKENS["boa"]],
        "eoa_token_index": vocab[MULTIMODAL_TOKENS["eoa"]],
        "audio_token_id": vocab[MULTIMODAL_TOKENS["audio"]],
        "tie_word_embeddings": True,
        "initializer_range": 0.02,
        "dtype": dtype,
        "transformers_version": "5.23.0",
    }


def generation_config(vocab: dict[str, int]) -> dict[str, Any]:
    return {
        "bos_token_id": vocab["<bos>"],
        "pad_token_id": vocab["<pad>"],
        "eos_token_id": [vocab["<eos>"], vocab["<turn|>"], vocab["<|tool_response>"]],
        "do_sample": True,
        "temperature": 1.0,
        "top_p": 0.95,
        "top_k": 64,
        "transformers_version": "5.23.0",
    }


def processor_config() -> dict[str, Any]:
    """processor_config.json with the sub-processors' settings nested, as transformers v5 saves."""
    image_processor = {
        "image_processor_type": "Gemma4UnifiedImageProcessor",
        "do_convert_rgb": True,
        "do_normalize": False,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": [0.0, 0.0, 0.0],
        "image_std": [1.0, 1.0, 1.0],
        "max_soft_tokens": 280,
        "patch_size": 16,
        "pooling_kernel_size": 3,
        "resample": 3,
        "rescale_factor": 1 / 255,
    }
    video_processor = {
        "video_processor_type": "Gemma4UnifiedVideoProcessor",
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "do_sample_frames": True,
        "image_mean": [0.0, 0.0, 0.0],
        "image_std": [1.0, 1.0, 1.0],
        "max_soft_tokens": 70,
        "num_frames": 32,
        "patch_size": 16,
        "pooling_kernel_size": 3,
        "resample": 3,
        "rescale_factor": 1 / 255,
        "return_metadata": False,
    }
    feature_extractor = {
        "feature_extractor_type": "Gemma4UnifiedAudioFeatureExtractor",
        "audio_samples_per_token": 640,
        "feature_size": 640,
        "padding_side": "right",
        "padding_value": 0.0,
        "return_attention_mask": True,
        "sampling_rate": 16000,
    }
    return {
        "processor_class": "Gemma4UnifiedProcessor",
        "image_seq_length": 280,
        "audio_seq_length": 750,
        "audio_ms_per_token": 40,
        "image_processor": image_processor,
        "video_processor": video_processor,
        "feature_extractor": feature_extractor,
    }


# --------------------------------------------------------------------------- weights


def weight_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every tensor of the checkpoint under its on-disk name, with its shape."""
    text = config["text_config"]
    hidden = text["hidden_size"]
    layer_types = list(
        text.get("layer_types")
        or [
            "sliding_attention" if (i + 1) % 6 else "full_attention"
            for i in range(text["num_hidden_layers"])
        ]
    )
    layer_types[-1] = "full_attention"  # as transformers' config does, whatever the file says
    shapes: dict[str, tuple[int, ...]] = {
        "model.language_model.embed_tokens.weight": (text["vocab_size"], hidden),
        "model.language_model.norm.weight": (hidden,),
    }
    for i, layer_type in enumerate(layer_types):
        full = layer_type == "full_attention"
        head_dim = text["global_head_dim"] if full else text["head_dim"]
        kv_heads = text["num_key_value_heads"]
        if full and text["attention_k_eq_v"] and text.get("num_global_key_value_heads"):
            kv_heads = text["num_global_key_value_heads"]
        p = f"model.language_model.layers.{i}."
        shapes[p + "layer_scalar"] = (1,)
        shapes[p + "self_attn.q_proj.weight"] = (text["num_attention_heads"] * head_dim, hidden)
        shapes[p + "self_attn.k_proj.weight"] = (kv_heads * head_dim, hidden)
        if not (full and text["attention_k_eq_v"]):
            shapes[p + "self_attn.v_proj.weight"] = (kv_heads * head_dim, hidden)
        shapes[p + "self_attn.o_proj.weight"] = (hidden, text["num_attention_heads"] * head_dim)
        shapes[p + "self_attn.q_norm.weight"] = (head_dim,)
        shapes[p + "self_attn.k_norm.weight"] = (head_dim,)
        shapes[p + "mlp.gate_proj.weight"] = (text["intermediate_size"], hidden)
        shapes[p + "mlp.up_proj.weight"] = (text["intermediate_size"], hidden)
        shapes[p + "mlp.down_proj.weight"] = (hidden, text["intermediate_size"])
        for norm in (
            "input_layernorm",
            "post_attention_layernorm",
            "pre_feedforward_layernorm",
            "post_feedforward_layernorm",
        ):
            shapes[p + norm + ".weight"] = (hidden,)
    vision = config.get("vision_config")
    if vision:
        patch_pixels = (vision["patch_size"] * vision["pooling_kernel_size"]) ** 2 * 3
        embed = vision["mm_embed_dim"]
        shapes.update(
            {
                "model.vision_embedder.patch_ln1.weight": (patch_pixels,),
                "model.vision_embedder.patch_ln1.bias": (patch_pixels,),
                "model.vision_embedder.patch_dense.weight": (embed, patch_pixels),
                "model.vision_embedder.patch_dense.bias": (embed,),
                "model.vision_embedder.patch_ln2.weight": (embed,),
                "model.vision_embedder.patch_ln2.bias": (embed,),
                "model.vision_embedder.pos_embedding": (vision["mm_posemb_size"], 2, embed),
                "model.vision_embedder.pos_norm.weight": (embed,),
                "model.vision_embedder.pos_norm.bias": (embed,),
                "model.embed_vision.embedding_projection.weight": (hidden, embed),
            }
        )
    audio = config.get("audio_config")
    if audio:
        shapes["model.embed_audio.embedding_projection.weight"] = (
            hidden,
            audio["audio_embed_dim"],
        )
    return shapes


def random_weights(
    config: dict[str, Any], seed: int, shapes: dict[str, tuple[int, ...]] | None = None
) -> dict[str, np.ndarray]:
    """Random float32 weights, scaled so activations stay O(1), with no trivial values.

    `shapes` defaults to the target model's (`weight_shapes(config)`)."""
    rng = np.random.default_rng(seed)
    weights: dict[str, np.ndarray] = {}
    for name, shape in (shapes or weight_shapes(config)).items():
        if name.endswith("token_ordering"):  # a permutation of the vocabulary (an index)
            weights[name] = rng.permutation(shape[0]).astype(np.int64)
            continue
        if name.endswith("layer_scalar"):
            value = rng.uniform(0.6, 1.4, size=shape)
        elif name.endswith(("norm.weight", "layernorm.weight", "ln1.weight", "ln2.weight")):
            value = rng.uniform(0.7, 1.3, size=shape)  # scale is w, not 1 + w: keep it near 1
        elif name.endswith(".bias"):
            value = rng.normal(0.0, 0.1, size=shape)
        elif name.endswith("pos_embedding"):
            value = rng.normal(0.0, 0.5, size=shape)
        elif name.endswith("embed_tokens.weight"):
            value = rng.normal(0.0, 1.0 / math.sqrt(shape[1]), size=shape)
        else:  # projections [out, in]
            value = rng.normal(0.0, 1.0 / math.sqrt(shape[-1]), size=shape)
        weights[name] = value.astype(np.float32)
    return weights


def save_weights(
    folder: Path, weights: dict[str, np.ndarray], dtype: str, shards: int
) -> list[Path]:
    """Write safetensors (one file, or `shards` files plus the index) in the given dtype."""
    import mlx.core as mx

    mx_dtype = {"float32": mx.float32, "bfloat16": mx.bfloat16, "float16": mx.float16}[dtype]
    names = sorted(weights)
    if shards <= 1:
        groups = [names]
        files = ["model.safetensors"]
    else:
        groups = [list(chunk) for chunk in np.array_split(np.array(names, dtype=object), shards)]
        files = [f"model-{i + 1:05d}-of-{shards:05d}.safetensors" for i in range(shards)]
    weight_map: dict[str, str] = {}
    total_bytes = 0
    for group, file_name in zip(groups, files, strict=True):
        arrays = {name: _stored(mx.array(weights[name]), mx_dtype) for name in group}
        total_bytes += sum(a.nbytes for a in arrays.values())
        mx.save_safetensors(str(folder / file_name), arrays, metadata={"format": "pt"})
        weight_map.update({name: file_name for name in group})
    if shards > 1:
        index = {"metadata": {"total_size": total_bytes}, "weight_map": weight_map}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return [folder / f for f in files]


def _stored(value: Any, dtype: Any) -> Any:
    """Float tensors in the checkpoint's dtype; integer buffers (indices) as they are."""
    import mlx.core as mx

    return value.astype(dtype) if mx.issubdtype(value.dtype, mx.floating) else value


# --------------------------------------------------------------------------- drafter


@dataclass
class TinyAssistantSizes:
    """Sizes of a test drafter (`gemma4_unified_assistant`). Its head sizes, KV heads and
    window come from the target it drafts for; these are its own."""

    hidden_size: int = 32
    intermediate_size: int = 96
    num_attention_heads: int = 4
    layer_types: list[str] = field(
        default_factory=lambda: ["sliding_attention", "sliding_attention", "full_attention"]
    )
    # the centroid-routed sparse LM head (`use_ordered_embeddings`), else the tied dense head
    sparse_head: bool = False
    num_centroids: int = 16
    centroid_intermediate_top_k: int = 4
    # transformers' "all" mode halves the drafter's sliding window (+1)
    use_bidirectional_attention: str | None = "vision"


def assistant_path(target: str | Path) -> Path:
    """Where the factory writes a target's drafter: the sibling folder `<name>-assistant`
    (as `google/gemma-4-12B-it` and `google/gemma-4-12B-it-assistant`)."""
    target = Path(target)
    return target.with_name(f"{target.name}-assistant")


def assistant_config(
    target: dict[str, Any], sizes: TinyAssistantSizes, dtype: str
) -> dict[str, Any]:
    """config.json of a drafter for the target whose config.json is `target`."""
    t = target["text_config"]
    text = {
        "model_type": "gemma4_unified_text",
        "vocab_size": t["vocab_size"],
        "hidden_size": sizes.hidden_size,
        "intermediate_size": sizes.intermediate_size,
        "num_hidden_layers": len(sizes.layer_types),
        "num_attention_heads": sizes.num_attention_heads,
        "num_key_value_heads": t["num_key_value_heads"],
        "head_dim": t["head_dim"],
        "global_head_dim": t["global_head_dim"],
        "num_global_key_value_heads": t["num_global_key_value_heads"],
        "attention_k_eq_v": t["attention_k_eq_v"],
        "num_kv_shared_layers": len(sizes.layer_types),
        "layer_types": list(sizes.layer_types),
        "hidden_activation": "gelu_pytorch_tanh",
        "rms_norm_eps": 1e-6,
        "max_position_embeddings": t["max_position_embeddings"],
        "sliding_window": t["sliding_window"],
        "final_logit_softcapping": t["final_logit_softcapping"],
        "use_bidirectional_attention": sizes.use_bidirectional_attention,
        "attention_bias": False,
        "use_double_wide_mlp": False,
        "hidden_size_per_layer_input": 0,
        "vocab_size_per_layer_input": t["vocab_size"],
        "enable_moe_block": False,
        "pad_token_id": t["pad_token_id"],
        "eos_token_id": t["eos_token_id"],
        "bos_token_id": t["bos_token_id"],
        "tie_word_embeddings": True,
        "rope_parameters": t["rope_parameters"],
    }
    return {
        "architectures": ["Gemma4UnifiedAssistantForCausalLM"],
        "model_type": "gemma4_unified_assistant",
        "backbone_hidden_size": t["hidden_size"],
        "use_ordered_embeddings": sizes.sparse_head,
        "num_centroids": sizes.num_centroids,
        "centroid_intermediate_top_k": sizes.centroid_intermediate_top_k,
        "tie_word_embeddings": True,
        "text_config": text,
        "dtype": dtype,
        "transformers_version": "5.23.0",
    }


def assistant_weight_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every tensor of a drafter checkpoint under its on-disk name, with its shape."""
    text = config["text_config"]
    hidden, backbone = text["hidden_size"], config["backbone_hidden_size"]
    shapes: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (text["vocab_size"], hidden),
        "model.norm.weight": (hidden,),
        "pre_projection.weight": (hidden, 2 * backbone),
        "post_projection.weight": (backbone, hidden),
    }
    for i, layer_type in enumerate(text["layer_types"]):
        head_dim = text["global_head_dim"] if layer_type == "full_attention" else text["head_dim"]
        width = text["num_attention_heads"] * head_dim
        p = f"model.layers.{i}."
        shapes[p + "layer_scalar"] = (1,)
        shapes[p + "self_attn.q_proj.weight"] = (width, hidden)
        shapes[p + "self_attn.q_norm.weight"] = (head_dim,)
        shapes[p + "self_attn.o_proj.weight"] = (hidden, width)
        shapes[p + "mlp.gate_proj.weight"] = (text["intermediate_size"], hidden)
        shapes[p + "mlp.up_proj.weight"] = (text["intermediate_size"], hidden)
        shapes[p + "mlp.down_proj.weight"] = (hidden, text["intermediate_size"])
        for norm in (
            "input_layernorm",
            "post_attention_layernorm",
            "pre_feedforward_layernorm",
            "post_feedforward_layernorm",
        ):
            shapes[p + norm + ".weight"] = (hidden,)
    if config["use_ordered_embeddings"]:
        shapes["masked_embedding.centroids.weight"] = (config["num_centroids"], hidden)
        shapes["masked_embedding.token_ordering"] = (text["vocab_size"],)
    return shapes


def write_tiny_assistant_checkpoint(
    path: str | Path,
    target: str | Path,
    *,
    sizes: TinyAssistantSizes | None = None,
    seed: int = 1,
    dtype: str | None = None,
) -> Path:
    """Write a random drafter checkpoint at `path` matching the target checkpoint folder
    `target` (its hidden size, vocabulary, head sizes and window); return `path`.

    `dtype` defaults to the target's."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    target_config = json.loads((Path(target) / "config.json").read_text())
    dtype = dtype or target_config.get("dtype", "float32")
    config = assistant_config(target_config, sizes or TinyAssistantSizes(), dtype)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    weights = random_weights(config, seed, assistant_weight_shapes(config))
    save_weights(folder, weights, dtype, shards=1)
    return folder


# --------------------------------------------------------------------------- entry points


def default_chat_template() -> str:
    return (
        Path(__file__).resolve().parent.parent / "processing" / "chat_template.jinja"
    ).read_text()


def write_tiny_checkpoint(
    path: str | Path,
    *,
    seed: int = 0,
    dtype: str = "float32",
    shards: int = 1,
    sizes: TinyModelSizes | None = None,
    with_vision: bool = True,
    with_audio: bool = True,
    chat_template: str | None = None,
    include_chat_template: bool = True,
    assistant: bool | TinyAssistantSizes = False,
) -> Path:
    """Write a random `gemma4_unified` checkpoint folder at `path` and return it.

    `sizes` sets the network sizes (tiny by default; benchmarks pass bigger ones).
    `dtype` is the weights' dtype on disk ("float32", "bfloat16" or "float16").
    `shards` > 1 writes sharded safetensors with an index, as large checkpoints are.
    `assistant` (True or the drafter's sizes) also writes a matching drafter checkpoint
    next to it, at `assistant_path(path)`.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    sizes = sizes or TinyModelSizes()

    tokenizer_json = build_tokenizer_json(sizes.vocab_size)
    vocab = tokenizer_json["model"]["vocab"]
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer_json, ensure_ascii=False))
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(), indent=2))
    special_map = {
        "bos_token": "<bos>",
        "eos_token": "<eos>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2))

    config = model_config(sizes, vocab, dtype)
    if not with_vision:
        del config["vision_config"]
    if not with_audio:
        del config["audio_config"]
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    (folder / "generation_config.json").write_text(json.dumps(generation_config(vocab), indent=2))
    (folder / "processor_config.json").write_text(json.dumps(processor_config(), indent=2))
    if include_chat_template:
        template = chat_template if chat_template is not None else default_chat_template()
        (folder / "chat_template.jinja").write_text(template)

    save_weights(folder, random_weights(config, seed), dtype, shards)
    if assistant:
        write_tiny_assistant_checkpoint(
            assistant_path(folder),
            folder,
            sizes=assistant if isinstance(assistant, TinyAssistantSizes) else None,
            seed=seed + 1,
            dtype=dtype,
        )
    return folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", type=Path, help="folder to write (created if missing)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="bfloat16")
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--force", action="store_true", help="replace an existing folder")


def run(args: argparse.Namespace) -> int:
    if args.output.exists() and any(args.output.iterdir()):
        if not args.force:
            print(f"error: {args.output} is not empty (use --force to replace it)")
            return 2
        shutil.rmtree(args.output)
    folder = write_tiny_checkpoint(
        args.output, seed=args.seed, dtype=args.dtype, shards=args.shards
    )
    print(f"wrote a tiny random gemma4_unified checkpoint to {folder}")
    print("it produces gibberish by design; try: gemma-desk --model", folder)
    return 0
