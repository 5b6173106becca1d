"""Import transformers' PyTorch reference (the parity oracle) beside a CPU-only torch.

PyPI's torchvision wheels are CUDA builds whose compiled ops do not load next to the
CPU torch wheel; transformers' image and video processors import torchvision but use
only its pure-tensor transforms. Declaring the two op schemas that torchvision
registers fake kernels for at import (`nms`, `qnms`) lets it import cleanly.
"""

from __future__ import annotations

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
