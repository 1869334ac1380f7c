"""Chakra execution traces (ET), one ``<prefix>.<npu>.et`` per NPU, written with PyPI's
``mlc-chakra`` (MLCommons Chakra's protobuf schema and its length-delimited encoder).

mlc-chakra is installed with ``pip install --no-deps mlc-chakra protobuf`` (its declared
dependencies pull in ~100 packages this runner does not use), so it is imported lazily and a
missing one is reported as :class:`ChakraMissing`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

#: Chakra ET schema version written into every trace's GlobalMetadata.
ET_VERSION = "0.0.4"

#: our collective names -> Chakra CollectiveCommType enum names
COLLECTIVES = {
    "all-reduce": "ALL_REDUCE",
    "all-gather": "ALL_GATHER",
    "reduce-scatter": "REDUCE_SCATTER",
    "all-to-all": "ALL_TO_ALL",
}

INSTALL_HINT = "pip install --no-deps mlc-chakra==1.0.0 && pip install protobuf"


class ChakraMissing(RuntimeError):
    pass


def chakra():
    """(et_def_pb2 module, encodeMessage) from mlc-chakra."""
    try:
        from chakra.schema.protobuf import et_def_pb2
        from chakra.src.third_party.utils.protolib import encodeMessage
    except ImportError as exc:  # pragma: no cover - exercised by the unavailable path
        raise ChakraMissing(f"mlc-chakra is not importable ({exc}); install it with: {INSTALL_HINT}") from exc
    return et_def_pb2, encodeMessage


def chakra_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("mlc-chakra")
    except Exception:
        return None


def collective_size_bytes(collective: str, size: int, npus: int) -> int:
    """Chakra ``comm_size`` for a collective whose nccl-tests size (the full buffer) is
    ``size``: ASTRA-sim's all-gather takes the per-NPU shard, the others the full buffer."""
    return size // npus if collective == "all-gather" else size


def _attr(pb, name: str, **value):
    return pb.AttributeProto(name=name, **value)


def write_collective(directory: Path, prefix: str, collective: str, comm_size: int, npus: int) -> list[Path]:
    """One COMM_COLL node per NPU (the microbenchmark trace of ASTRA-sim's own generators)."""
    pb, encode = chakra()
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for npu in range(npus):
        path = directory / f"{prefix}.{npu}.et"
        with open(path, "wb") as fh:
            encode(fh, pb.GlobalMetadata(version=ET_VERSION))
            node = pb.Node(id=0, name=f"{collective}.{comm_size}B", type=pb.COMM_COLL_NODE)
            node.attr.append(_attr(pb, "is_cpu_op", bool_val=False))
            node.attr.append(_attr(pb, "comm_type", int64_val=getattr(pb, COLLECTIVES[collective])))
            node.attr.append(_attr(pb, "comm_size", int64_val=int(comm_size)))
            encode(fh, node)
        paths.append(path)
    return paths


def write_ddp_step(
    directory: Path,
    prefix: str,
    npus: int,
    layers: Sequence[tuple[str, int, int, int, int]],
) -> list[Path]:
    """A data-parallel training step, the same on every NPU.

    ``layers``: (name, forward_us, backward_us, gradient_bytes, forward_flops) in execution
    order. Forward COMP nodes run in order; backward COMP nodes run in reverse order, and after
    each layer's backward an ALL_REDUCE of its gradient bytes is issued that depends only on that
    backward node, so communication overlaps the remaining backward compute (as DDP does).
    """
    pb, encode = chakra()
    directory.mkdir(parents=True, exist_ok=True)
    nodes = []
    nid = 0
    prev = None
    for name, fwd_us, _bwd, _grad, flops in layers:
        node = pb.Node(id=nid, name=f"fwd.{name}", type=pb.COMP_NODE, duration_micros=int(fwd_us))
        node.attr.append(_attr(pb, "is_cpu_op", bool_val=False))
        node.attr.append(_attr(pb, "num_ops", int64_val=int(flops)))
        if prev is not None:
            node.data_deps.append(prev)
        nodes.append(node)
        prev = nid
        nid += 1
    for name, _fwd, bwd_us, grad_bytes, flops in reversed(layers):
        node = pb.Node(id=nid, name=f"bwd.{name}", type=pb.COMP_NODE, duration_micros=int(bwd_us))
        node.attr.append(_attr(pb, "is_cpu_op", bool_val=False))
        node.attr.append(_attr(pb, "num_ops", int64_val=int(2 * flops)))
        node.data_deps.append(prev)
        nodes.append(node)
        bwd = nid
        prev = nid
        nid += 1
        comm = pb.Node(id=nid, name=f"allreduce.grad.{name}", type=pb.COMM_COLL_NODE)
        comm.attr.append(_attr(pb, "is_cpu_op", bool_val=False))
        comm.attr.append(_attr(pb, "comm_type", int64_val=pb.ALL_REDUCE))
        comm.attr.append(_attr(pb, "comm_size", int64_val=int(grad_bytes)))
        comm.data_deps.append(bwd)
        nodes.append(comm)
        nid += 1
    paths = []
    for npu in range(npus):
        path = directory / f"{prefix}.{npu}.et"
        with open(path, "wb") as fh:
            encode(fh, pb.GlobalMetadata(version=ET_VERSION))
            for node in nodes:
                encode(fh, node)
        paths.append(path)
    return paths


def digest(paths: Sequence[Path]) -> str:
    """sha256 over the traces' bytes in NPU order (one number for the whole workload)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()
