"""FLOP counts from torch.utils.flop_counter on the meta device (no memory, no GPU).

FlopCounterMode counts matrix products, convolutions and attention (2 FLOPs per MAC);
elementwise work (norms, activations, softmax outside fused attention) is not counted.
"""

from __future__ import annotations

from collections.abc import Callable

from torch.utils.flop_counter import FlopCounterMode


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of whatever ``fn`` runs (build its tensors on the meta device to keep it free)."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def conv_macs(batch: int, cin: int, cout: int, k: int, stride: int, pad: int, hw: int) -> int:
    """Multiply-accumulates of a square Conv2d, by hand (cross-check for the counter)."""
    out = (hw + 2 * pad - k) // stride + 1
    return batch * cout * out * out * cin * k * k
