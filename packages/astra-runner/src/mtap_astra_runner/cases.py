"""The case matrix.

- ``w6``: experiment 1a, the collectives microbenchmark: all-reduce, all-gather,
  reduce-scatter, all-to-all x {2, 4, 8, 16} NPUs x {1 MiB, 64 MiB, 1 GiB}, both binaries,
  on the hardware's own network (HGX H100: Switch, 450e9 B/s per GPU, 936.25 ns), ring
  algorithms.
- ``ddp``: W3 (2, 4, 8 NPUs), W2 (8) and W10 (16): one data-parallel ResNet-50 training step,
  batch 32 per GPU, fp32, per-layer compute and per-layer gradient all-reduce; both binaries.
- ``topology``: experiment 1b: Ring vs Switch vs FullyConnected (every NPU keeps the hardware's
  injection bandwidth) x ring / direct / halvingDoubling / doubleBinaryTree algorithms over
  all-reduce at 1 MiB, 64 MiB, 1 GiB (8 NPUs) and 64 MiB (2, 4, 16 NPUs), the other three
  collectives at 64 MiB (8 NPUs) and the ResNet-50 step (8 NPUs); both binaries.
- ``reference``: ASTRA-sim's published HGX-H100 validated example (all-reduce, 8 NPUs, 1 MiB,
  Switch 400 GB/s, 936.25 ns, ring, local-mem-bw 3350, Congestion_Aware) = 57426 cycles.
- ``scaling``: derived, communication time at 8 NPUs / at 2 NPUs for every W6 collective and
  size and for the ResNet-50 step.

Platforms (``--platform``, config ``platform``): ``HGX-H100`` (the default, the matrix above,
``HGX-H100x8`` up to 8 NPUs and ``HGX-H100x16`` at 16) and ``HGX-H200`` (the same matrix on
``HGX-H200x8``: NPU counts the catalog has a node for, 2/4/8, so W10 and every 16-NPU case are
left out, and no ``reference`` case, which is ASTRA-sim's HGX-H100 example). An H200 case id
starts with ``hgx-h200/``; H100 ids are unchanged. ``H200-x2-NVLink``: the lent 2-GPU host the
multi-GPU measurements ran on (``H200-SXM-141GB-x2-nvlink``: two H200s joined directly by NVLink,
no NVSwitch), as 2 NPUs with one direct link (FullyConnected of 2 = one link each way, the
catalog's per-direction bandwidth and latency); only the studies its measurements cover (W6 and
the W3 step at 2 NPUs); ids start with ``h200-x2-nvlink/``.

Only the cases that model the hardware as it is (hardware network, ring algorithms,
Congestion_Aware) carry a ``key`` (schemas/README.md), so ``aggregate`` pairs one ASTRA-sim
prediction with each GPU measurement; the other variants have ``key: null``.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, NamedTuple

COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all")
SIZES = {"1mib": 1 << 20, "64mib": 64 << 20, "1gib": 1 << 30}
NPUS = (2, 4, 8, 16)
BINARIES = ("congestion-aware", "congestion-unaware")
TOPOLOGIES = ("Switch", "Ring", "FullyConnected")
ALGORITHMS = ("ring", "direct", "halvingDoubling", "doubleBinaryTree")
DDP_BATCH = 32
PRIMARY_BINARY = "congestion-aware"
STUDIES = ("w6", "ddp", "topology", "reference", "scaling")


class Platform(NamedTuple):
    """A GPU machine the matrix runs on. A case runs on the smallest node with at least its NPU count;
    counts beyond every node are left out."""

    prefix: str  #: case-id prefix
    nodes: dict[int, str]  #: {max NPUs: catalog node id}
    reference: bool  #: has ASTRA-sim's published reference example (HGX-H100)
    #: the ASTRA-sim topology of the machine's own network (the keyed cases; the catalog entry's
    #: interconnect.topology must be :data:`CATALOG_TOPOLOGY`'s for it)
    network: str = "Switch"
    studies: tuple[str, ...] = STUDIES  #: the studies it plans


#: catalog interconnect.topology -> the ASTRA-sim analytical topology that models it (a point-to-point
#: pair is FullyConnected over its 2 NPUs: one link each way)
CATALOG_TOPOLOGY = {"switch": "Switch", "ring": "Ring", "fully-connected": "FullyConnected", "point-to-point": "FullyConnected"}

PLATFORMS: dict[str, Platform] = {
    "HGX-H100": Platform("", {8: "HGX-H100x8", 16: "HGX-H100x16"}, True),
    "HGX-H200": Platform("hgx-h200/", {8: "HGX-H200x8"}, False),
    "H200-x2-NVLink": Platform("h200-x2-nvlink/", {2: "H200-SXM-141GB-x2-nvlink"}, False, "FullyConnected", ("w6", "ddp")),
}
DEFAULT_PLATFORM = "HGX-H100"
#: the machine `astra-runner calibrate` fits by default: the one with multi-GPU measurements
DEFAULT_CALIBRATION_PLATFORM = "H200-x2-NVLink"

#: The reference example of the issue (ASTRA-sim's examples/*/HGX-H100-validated.*).
REFERENCE = {"bandwidth_gbps": 400.0, "latency_ns": 936.25, "local_mem_bw_gbps": 3350, "expected_cycles": 57426}


@dataclass(frozen=True)
class Case:
    id: str
    study: str
    workload: str
    hardware: str
    key: str | None
    params: dict[str, Any] = field(hash=False, compare=False)
    #: for derived cases: ids of the (numerator, denominator) cases
    inputs: tuple[str, ...] = ()

    @property
    def binary(self) -> str | None:
        return self.params.get("binary")

    def planned(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "study": self.study,
            "workload": self.workload,
            "hardware": self.hardware,
            "key": self.key,
            "parameters": dict(sorted(self.params.items())),
        }


def hardware_for(npus: int, platform: str = DEFAULT_PLATFORM) -> str | None:
    """The platform's node for ``npus`` NPUs (the smallest that holds them), or None."""
    nodes = PLATFORMS[platform][1]
    fits = [n for n in sorted(nodes) if n >= npus]
    return nodes[fits[0]] if fits else None


def ddp_key(npus: int, batch: int = DDP_BATCH) -> str:
    return f"resnet50.ddp-step.n{npus}.b{batch}.fp32"


def _coll(study, workload, coll, n, size, binary, topology, algorithm, keyed, platform=DEFAULT_PLATFORM):
    key = f"{coll}.n{n}.{size}"
    params = {
        "kind": "collective",
        "collective": coll,
        "npus": n,
        "size": size,
        "size_bytes": SIZES[size],
        "binary": binary,
        "topology": topology,
        "algorithm": algorithm,
    }
    cid = f"{PLATFORMS[platform][0]}{study}/{key}/{topology.lower()}.{algorithm.lower()}/{binary}"
    return Case(cid, study, workload, hardware_for(n, platform), key if keyed else None, params)


def _ddp(study, workload, n, binary, topology, algorithm, keyed, batch=DDP_BATCH, platform=DEFAULT_PLATFORM):
    key = ddp_key(n, batch)
    params = {
        "kind": "ddp",
        "model": "resnet50",
        "npus": n,
        "batch_per_gpu": batch,
        "dtype": "fp32",
        "binary": binary,
        "topology": topology,
        "algorithm": algorithm,
    }
    prefix = workload.lower() if study == "ddp" else study
    cid = f"{PLATFORMS[platform][0]}{prefix}/{key}/{topology.lower()}.{algorithm.lower()}/{binary}"
    return Case(cid, study, workload, hardware_for(n, platform), key if keyed else None, params)


def build(platform: str = DEFAULT_PLATFORM) -> list[Case]:
    """Every case of a platform in a stable order."""
    if platform not in PLATFORMS:
        raise ValueError(f"unknown platform {platform!r} (known: {', '.join(PLATFORMS)})")
    prefix, _, reference, network, studies = PLATFORMS[platform]
    fits = lambda n: hardware_for(n, platform) is not None  # noqa: E731
    coll = lambda *a: _coll(*a, platform=platform)  # noqa: E731
    ddp = lambda *a: _ddp(*a, platform=platform)  # noqa: E731
    out: list[Case] = []
    # experiment 1a
    for c in COLLECTIVES:
        for n in filter(fits, NPUS):
            for size in SIZES:
                for b in BINARIES:
                    out.append(coll("w6", "W6", c, n, size, b, network, "ring", b == PRIMARY_BINARY))
    # W2/W3/W10
    for workload, ns in (("W3", (2, 4, 8)), ("W2", (8,)), ("W10", (16,))):
        for n in filter(fits, ns):
            for b in BINARIES:
                out.append(ddp("ddp", workload, n, b, network, "ring", b == PRIMARY_BINARY))
    # experiment 1b
    grid: list[tuple[str, Any]] = [("all-reduce", (8, s)) for s in SIZES]
    grid += [("all-reduce", (n, "64mib")) for n in (2, 4, 16)]
    grid += [(c, (8, "64mib")) for c in COLLECTIVES[1:]]
    grid += [("ddp", (8, None))]
    for what, (n, size) in grid:
        if not fits(n) or "topology" not in studies:
            continue
        for topo in TOPOLOGIES:
            for alg in ALGORITHMS:
                for b in BINARIES:
                    if what == "ddp":
                        out.append(ddp("topology", "W2", n, b, topo, alg, False))
                    else:
                        out.append(coll("topology", "W6", what, n, size, b, topo, alg, False))
    # the published reference (ASTRA-sim's HGX-H100 example)
    if reference and "reference" in studies:
        ref = coll("reference", "W6", "all-reduce", 8, "1mib", "congestion-aware", "Switch", "ring", False)
        params = dict(ref.params, **{k: v for k, v in REFERENCE.items()})
        out.append(Case(f"{prefix}reference/hgx-h100-validated/all-reduce.n8.1mib/congestion-aware", "reference", "W6",
                        hardware_for(8, platform), None, params))
    # derived: communication scaling 2 -> 8 NPUs
    if "scaling" not in studies:
        return out
    by_id = {c.id: c for c in out}
    node8 = hardware_for(8, platform)
    for c in COLLECTIVES:
        for size in SIZES:
            for b in BINARIES:
                hi = coll("w6", "W6", c, 8, size, b, "Switch", "ring", False).id
                lo = coll("w6", "W6", c, 2, size, b, "Switch", "ring", False).id
                assert hi in by_id and lo in by_id
                p = {"kind": "scaling", "collective": c, "size": size, "binary": b, "metric": "latency", "from_npus": 2, "to_npus": 8}
                out.append(Case(f"{prefix}scaling/{c}.{size}.n2-n8/{b}", "scaling", "W6", node8, None, p, (hi, lo)))
    for b in BINARIES:
        hi = ddp("ddp", "W3", 8, b, "Switch", "ring", False).id
        lo = ddp("ddp", "W3", 2, b, "Switch", "ring", False).id
        p = {"kind": "scaling", "model": "resnet50", "batch_per_gpu": DDP_BATCH, "binary": b, "metric": "communication_time", "from_npus": 2, "to_npus": 8}
        out.append(Case(f"{prefix}scaling/resnet50.ddp-step.b{DDP_BATCH}.n2-n8/{b}", "scaling", "W3", node8, None, p, (hi, lo)))
    return out


def unsupported_reason(case: Case) -> str | None:
    """Why ASTRA-sim cannot express a case, or None."""
    p = case.params
    if p.get("algorithm") == "doubleBinaryTree" and p.get("kind") == "collective" and p["collective"] != "all-reduce":
        return f"ASTRA-sim implements doubleBinaryTree for all-reduce only, not {p['collective']}"
    return None


def select(cases: list[Case], config: dict[str, Any]) -> list[Case]:
    """The cases a config (schemas/config/astra-runner.v1.schema.json) keeps, in plan order; a
    derived case brings its input cases along, even when they are not selected themselves."""
    include, exclude = config.get("include"), config.get("exclude") or []
    studies, binaries = config.get("studies"), config.get("binaries")
    kept = [
        c for c in cases
        if (not include or any(fnmatch.fnmatchcase(c.id, p) for p in include))
        and not any(fnmatch.fnmatchcase(c.id, p) for p in exclude)
        and (not studies or c.study in studies)
        and (not binaries or c.binary in binaries)
    ]
    return with_inputs(kept, cases)


def with_inputs(kept: list[Case], cases: list[Case]) -> list[Case]:
    """``kept`` plus the input cases of its derived cases, in the order of ``cases``."""
    ids = {c.id for c in kept}
    needed = {i for c in kept for i in c.inputs if i not in ids}
    if not needed:
        return kept
    return [c for c in cases if c.id in ids or c.id in needed]


def groups(cases: list[Case]) -> list[list[Case]]:
    """The cases as units of sharding: a derived case with its input cases, every other case alone;
    ordered by each group's first case. Shards of groups partition the cases and a derived case
    always finds its inputs in its own shard."""
    by_id = {c.id: c for c in cases}
    owner: dict[str, str] = {}
    for c in cases:
        for i in c.inputs:
            if i in by_id:
                owner[i] = c.id
    members: dict[str, list[Case]] = {}
    order: list[str] = []
    for c in cases:
        head = owner.get(c.id, c.id)
        if head not in members:
            members[head] = []
            order.append(head)
        members[head].append(c)
    return [members[h] for h in order]
