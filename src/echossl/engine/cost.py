"""What a network costs: parameters and FLOPs, counted the same way for every table."""

from __future__ import annotations


def count_parameters(net) -> int:
    """Number of parameters of ``net`` (an ``nn.Module``), trainable or not."""
    return int(sum(p.numel() for p in net.parameters()))


def count_flops(fn, *args) -> int:
    """FLOPs of ``fn(*args)`` counted by ``FlopCounterMode``, attention included.

    ``FlopCounterMode`` counts a multiply-add as 2 FLOPs (fvcore, used by several
    papers' tables, counts 1: halve to compare). On CPU,
    ``scaled_dot_product_attention`` dispatches to a fused kernel the counter does
    not know, so attention would count as 0 (22 % of the shipped ViT's FLOPs); the
    math kernel (explicit matmuls and softmax) is forced while counting.
    """
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        fn(*args)
    return int(counter.get_total_flops())


def flops_per_frame(net, example, frames: int = 1) -> float:
    """FLOPs of one eval-mode forward pass of ``net`` on ``example``, divided by the ``frames`` it covers."""
    was_training = net.training
    net.eval()
    try:
        return count_flops(net, example) / max(1, frames)
    finally:
        net.train(was_training)


__all__ = ["count_parameters", "count_flops", "flops_per_frame"]
