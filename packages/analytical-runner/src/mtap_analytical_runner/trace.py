"""Record every ATen operator a model runs on the meta device, with its FLOPs and bytes.

FLOPs come from PyTorch's own counter: the formulas that ``torch.utils.flop_counter.FlopCounterMode``
applies (``flop_registry``: matmul, convolution, attention). Operators without a formula
(element-wise, normalisation, pooling, copies) count 0 FLOPs, exactly as FlopCounterMode does.

Bytes moved follow one documented, simple model ("operator I/O bytes, v1"): every operator
reads each distinct tensor argument once (weights are arguments, so they are included) and
writes each tensor it returns once; bytes = elements x element size of the tensor's dtype.
Refinements, all of them about not counting bytes that no kernel touches:

* views and aliases (``view``, ``t``, ``transpose``, ``expand``, ``slice``, ``_unsafe_view``, ...)
  move nothing: 0 bytes, 0 FLOPs, and they are not counted as operators;
* a broadcast (stride-0) dimension is read once, not once per broadcast copy;
* gathers (``embedding``, ``index_select``, ``gather``, ``index``) read the index and the rows
  they return, not the whole table: index + 2 x output;
* scatters into a buffer (``index_copy_``, ``index_put_``, ``scatter_``) read the index and the
  values and write the values: index + 2 x values (a KV-cache append is not a cache copy);
* ``copy_`` reads its source and writes its destination.

Attention: ``F.scaled_dot_product_attention`` is routed to the fused memory-efficient
attention operator (``aten._scaled_dot_product_efficient_attention``, which has a meta kernel
and a flop formula in torch), so attention counts as one operator that reads q, k, v (and
the mask) and writes its output, as FlashAttention-style kernels on the GPU do, instead of
materialising the score matrix the way the meta device's math fallback would. torch's
attention formula counts a causal attention as full (no halving for the masked half).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry

aten = torch.ops.aten

BYTES_MODEL = "operator-io-v1"

#: Operators that return a tensor without moving data although their schema does not say so.
ZERO_COST = {
    aten._unsafe_view,
    aten.alias,
    aten.detach,
    aten.lift_fresh,
    aten.empty,
    aten.empty_like,
    aten.empty_strided,
    aten.new_empty,
    aten.new_empty_strided,
}
GATHERS = {aten.embedding, aten.index_select, aten.gather, aten.index}
SCATTERS = {aten.index_copy_, aten.index_copy, aten.index_put_, aten.index_put, aten.scatter_, aten.scatter}
COPIES = {aten.copy_}

DTYPE_NAMES = {
    torch.float16: "fp16",
    torch.bfloat16: "bf16",
    torch.float32: "fp32",
    torch.float64: "fp64",
}


@dataclass
class Op:
    """One ATen operator call: where it ran (deepest module path, "" for the root) and its counts."""

    op: str
    module: str
    flops: int
    bytes: int
    dtype: str | None  # the floating dtype it computes in (first floating tensor argument)


@dataclass
class Trace:
    ops: list[Op] = field(default_factory=list)

    def total_flops(self) -> int:
        return sum(o.flops for o in self.ops)

    def total_bytes(self) -> int:
        return sum(o.bytes for o in self.ops)

    def of_module(self, name: str) -> list[Op]:
        """Operators that ran inside module ``name`` (its own or its children's)."""
        prefix = name + "."
        return [o for o in self.ops if o.module == name or o.module.startswith(prefix)]


def tensor_bytes(t: torch.Tensor) -> int:
    """Elements a kernel touches (stride-0 broadcast dimensions once) x element size."""
    n = 1
    for size, stride in zip(t.shape, t.stride()):
        if stride != 0:
            n *= size
    return n * t.element_size()


def _tensors(tree: Any) -> list[torch.Tensor]:
    flat, _ = tree_flatten(tree)
    return [x for x in flat if isinstance(x, torch.Tensor)]


def _unique(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    seen: set[int] = set()
    out = []
    for t in tensors:
        if id(t) not in seen:
            seen.add(id(t))
            out.append(t)
    return out


def is_view(func: torch._ops.OpOverload) -> bool:
    """True for operators that only alias their input (schema return ``Tensor(a)`` without ``!``)."""
    if func.overloadpacket in ZERO_COST:
        return True
    for ret in func._schema.returns:
        info = ret.alias_info
        if info is not None and not info.is_write:
            return True
    return False


def op_bytes(func: torch._ops.OpOverload, args: tuple, kwargs: dict, out: Any) -> int:
    """Bytes moved by one operator under the operator-io-v1 model (see the module docstring)."""
    packet = func.overloadpacket
    inputs = _unique(_tensors((args, kwargs)))
    if packet is aten._scaled_dot_product_efficient_attention:
        out = out[:2]  # output, logsumexp; the philox seed/offset are not written without dropout
    outputs = _unique(_tensors(out))
    if packet in GATHERS:
        index = sum(tensor_bytes(t) for t in inputs if not t.is_floating_point())
        return index + 2 * sum(tensor_bytes(t) for t in outputs)
    if packet in SCATTERS:
        dest = args[0]
        rest = [t for t in inputs if t is not dest]
        index = sum(tensor_bytes(t) for t in rest if not t.is_floating_point())
        values = sum(tensor_bytes(t) for t in rest if t.is_floating_point())
        return index + 2 * values
    if packet in COPIES:
        return tensor_bytes(args[1]) + tensor_bytes(args[0])
    return sum(tensor_bytes(t) for t in inputs) + sum(tensor_bytes(t) for t in outputs)


def op_flops(func: torch._ops.OpOverload, args: tuple, kwargs: dict, out: Any) -> int:
    """FLOPs from torch.utils.flop_counter's formula for this operator (0 where it has none)."""
    formula = flop_registry.get(func.overloadpacket)
    if formula is None:
        return 0
    return int(formula(*args, **kwargs, out_val=out))


def _dtype_of(args: tuple, kwargs: dict, out: Any) -> str | None:
    for t in _tensors((args, kwargs)) + _tensors(out):
        if t.is_floating_point():
            return DTYPE_NAMES.get(t.dtype, str(t.dtype).removeprefix("torch."))
    return None


class _Recorder(TorchDispatchMode):
    def __init__(self, trace: Trace, where: Callable[[], str]) -> None:
        super().__init__()
        self.trace = trace
        self.where = where

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if not is_view(func):
            self.trace.ops.append(
                Op(
                    op=str(func.overloadpacket).removeprefix("aten."),
                    module=self.where(),
                    flops=op_flops(func, args, kwargs, out),
                    bytes=op_bytes(func, args, kwargs, out),
                    dtype=_dtype_of(args, kwargs, out),
                )
            )
        return out


def fused_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """``F.scaled_dot_product_attention`` as one memory-efficient-attention operator."""
    if q.shape[1] != k.shape[1]:
        raise NotImplementedError("grouped-query attention is not routed to the fused operator")
    bias = None
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:  # what torch's sdpa does before a fused kernel
            attn_mask = torch.zeros(attn_mask.shape, dtype=q.dtype, device=q.device).masked_fill_(
                attn_mask.logical_not(), float("-inf")
            )
        bias = attn_mask.expand(q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    out = aten._scaled_dot_product_efficient_attention(q, k, v, bias, False, dropout_p, is_causal, scale=scale)
    return out[0]


class _FusedAttention(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            q, k = args[0], args[1]
            if q.shape[1] == k.shape[1]:
                return fused_attention(*args, **kwargs)
        return func(*args, **kwargs)


def trace(model: torch.nn.Module, run: Callable[[], Any]) -> Trace:
    """Run ``run()`` (which calls ``model``) under the recorder; return every operator it ran.

    Operators are attributed to the deepest module whose forward was active (module names as
    in ``model.named_modules()``; "" is the root).
    """
    result = Trace()
    stack: list[str] = [""]
    handles = []

    def enter(name: str) -> None:
        stack.append(name)

    def leave() -> None:
        stack.pop()

    for name, mod in model.named_modules():
        if not name:
            continue
        handles.append(mod.register_forward_pre_hook(lambda m, a, name=name: enter(name)))
        handles.append(mod.register_forward_hook(lambda m, a, o: leave(), always_call=True))
    try:
        with torch.no_grad(), _FusedAttention(), _Recorder(result, lambda: stack[-1]):
            run()
    finally:
        for h in handles:
            h.remove()
    return result
