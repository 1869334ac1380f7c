"""ET generation with the real mlc-chakra: write, then decode with Chakra's own reader."""

from __future__ import annotations

import pytest

pytest.importorskip("chakra.schema.protobuf.et_def_pb2")

from chakra.schema.protobuf import et_def_pb2 as pb  # noqa: E402
from chakra.src.third_party.utils.protolib import decodeMessage  # noqa: E402

from mtap_astra_runner import compute, resnet50, traces  # noqa: E402


def read_et(path):
    with open(path, "rb") as fh:
        meta = pb.GlobalMetadata()
        assert decodeMessage(fh, meta)
        nodes = []
        while True:
            node = pb.Node()
            if not decodeMessage(fh, node):
                break
            nodes.append(node)
    return meta, nodes


def attrs(node):
    return {a.name: getattr(a, a.WhichOneof("value")) for a in node.attr}


@pytest.mark.parametrize("coll,enum", [("all-reduce", pb.ALL_REDUCE), ("all-gather", pb.ALL_GATHER),
                                       ("reduce-scatter", pb.REDUCE_SCATTER), ("all-to-all", pb.ALL_TO_ALL)])
def test_collective_trace(tmp_path, coll, enum):
    size = traces.collective_size_bytes(coll, 64 << 20, 8)
    paths = traces.write_collective(tmp_path, "t", coll, size, 8)
    assert [p.name for p in paths] == [f"t.{i}.et" for i in range(8)]
    meta, nodes = read_et(paths[3])
    assert meta.version == traces.ET_VERSION
    assert len(nodes) == 1 and nodes[0].type == pb.COMM_COLL_NODE
    a = attrs(nodes[0])
    assert a["comm_type"] == enum
    assert a["comm_size"] == ((64 << 20) // 8 if coll == "all-gather" else 64 << 20)
    assert a["is_cpu_op"] is False


def test_ddp_trace(tmp_path, data_dir):
    import json

    hw = {h["id"]: h for h in json.loads((data_dir / "hardware" / "hardware.json").read_text())["hardware"]}["HGX-H100x8"]
    layers = resnet50.layers(data_dir)
    lt = compute.roofline(layers, hw, 32)
    step = lt.step_layers(32)
    paths = traces.write_ddp_step(tmp_path, "ddp", 4, step)
    _, nodes = read_et(paths[0])
    assert paths[0].read_bytes() == paths[3].read_bytes()
    comp = [n for n in nodes if n.type == pb.COMP_NODE]
    comm = [n for n in nodes if n.type == pb.COMM_COLL_NODE]
    assert len(comp) == 2 * 54 and len(comm) == 54
    assert sum(attrs(n)["comm_size"] for n in comm) == 4 * 25_557_032
    by_id = {n.id: n for n in nodes}
    assert len(by_id) == len(nodes)
    # each gradient all-reduce waits for its own layer's backward only
    for n in comm:
        (dep,) = n.data_deps
        assert by_id[dep].name == "bwd." + n.name.removeprefix("allreduce.grad.")
    # backward runs in reverse layer order after the whole forward
    names = [n.name for n in comp]
    assert names[0] == "fwd.conv1" and names[53] == "fwd.fc" and names[54] == "bwd.fc" and names[-1] == "bwd.conv1"
    assert all(n.duration_micros >= 1 for n in comp)
    assert traces.digest(paths) == traces.digest(traces.write_ddp_step(tmp_path / "again", "ddp", 4, step))
