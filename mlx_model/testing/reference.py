"""transformers' PyTorch Gemma 4 unified as the parity oracle: importing it beside a CPU-only
torch, an exact float64 run, and the attention masks of each vision semantics.

PyPI's torchvision wheels are CUDA builds whose compiled ops do not load next to the
CPU torch wheel; transformers' image and video processors import torchvision but use
only its pure-tensor transforms. Declaring the two op schemas that torchvision
registers fake kernels for at import (`nms`, `qnms`) lets it import cleanly.
"""

from __future__ import annotations

import types
from typing import Any

_prepared = False


def prepare_torchvision_import() -> None:
    """Declare torchvision's C++ op schemas if its compiled library did not load them."""
    global _prepared
    if _prepared:
        return
    import torch

    try:
        torch.ops.torchvision.nms  # noqa: B018 - probing whether the op exists
    except (AttributeError, RuntimeError):
        library = torch.library.Library("torchvision", "DEF")  # noqa: TID251
        library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        # Keep the Library object alive: dropping it would unregister the schemas.
        globals()["_torchvision_library"] = library
    _prepared = True


def compute_in_float64(model: Any) -> Any:
    """Make a float64 transformers model compute in float64 throughout (in place).

    Its RMSNorms upcast with `.float()` and its RoPE builds cos/sin in float32, so a float64
    model still rounds there to float32; with both kept in the input dtype the model gives the
    exact answer for its weights, against which float32 implementations are measured.
    """
    import torch
    from transformers.models.gemma4_unified import modeling_gemma4_unified as reference

    def rms_norm(self, x):
        out = self._norm(x)
        return out * self.weight.to(x.dtype) if self.with_scale else out

    def rotary(self, x, position_ids, layer_type):
        inv_freq = getattr(self, f"{layer_type}_inv_freq").to(torch.float64)
        scaling = getattr(self, f"{layer_type}_attention_scaling")
        freqs = position_ids[..., None].to(torch.float64) * inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        return (emb.cos() * scaling).to(x.dtype), (emb.sin() * scaling).to(x.dtype)

    for module in model.modules():
        if isinstance(module, reference.Gemma4UnifiedRMSNorm):
            module.forward = types.MethodType(rms_norm, module)
        elif isinstance(module, reference.Gemma4UnifiedTextRotaryEmbedding):
            module.forward = types.MethodType(rotary, module)
    return model


def vision_model_masks(model: Any, mm_token_type_ids: Any) -> dict[str, Any]:
    """Google's image/video attention masks for one whole sequence, as transformers builds them
    in `create_masks_for_vision_model` (full layers causal; sliding layers window AND (causal OR
    same block)), with Google's two-sided window: google-deepmind/gemma's sliding mask is
    |k - q| < W, so inside a block longer than the window a token does not see block keys W or
    more ahead. transformers bounds only the past; for blocks up to W long the two agree.

    Pass the result as `attention_mask=` to the model's forward.
    """
    import torch

    types_ = torch.as_tensor(mm_token_type_ids)
    if types_.ndim == 1:
        types_ = types_[None]
    batch, length = types_.shape
    text = model.config.get_text_config()
    masks = type(model).create_masks_for_generate(
        model.config,
        inputs_embeds=torch.zeros(batch, length, 1, dtype=model.dtype),
        attention_mask=None,
        cache=None,
        position_ids=torch.arange(length)[None].expand(batch, -1),
        mm_token_type_ids=types_,
    )
    q = torch.arange(length)[:, None]
    k = torch.arange(length)[None]
    ahead = k < q + text.sliding_window
    sliding = masks["sliding_attention"]
    if sliding.dtype == torch.bool:
        masks["sliding_attention"] = sliding & ahead
    else:  # an additive float mask
        masks["sliding_attention"] = sliding.masked_fill(~ahead, torch.finfo(sliding.dtype).min)
    return masks
