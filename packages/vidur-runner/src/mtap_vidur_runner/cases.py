"""The W5 case matrix (experiment 1c): schedulers x QPS x hardware, and the --config file that narrows it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

WORKLOAD = "W5"
MODEL = "meta-llama/Llama-2-7b-hf"
MODEL_KEY = "llama2-7b"

#: mtap hardware id -> (vidur device sku, vidur node sku used as network device)
HARDWARE = {
    "H100-SXM5-80GB": ("h100", "h100_pairwise_nvlink"),
    "A100-SXM4-80GB": ("a100", "a100_pairwise_nvlink"),
    # vidur 0.0.26 has no H200: simulate.py registers an "h200" device SKU (140 GiB, as the card's
    # 143,771 MiB; fp16 1000 TFLOP/s like vidur's H100, the same Hopper die) before vidur.main runs.
    # Its node is vidur's H100 pairwise-NVLink one (NVLink 4 as on HGX H200): with TP=1 / PP=1 vidur
    # reads only the network dataset's config.json, no network timing.
    "H200-SXM-141GB": ("h200", "h100_pairwise_nvlink"),
}

DEFAULTS: dict[str, Any] = {
    "schedulers": None,  # from workloads.json W5 (vllm, sarathi, orca)
    "qps": None,  # from workloads.json W5 (1, 2, 4)
    "num_requests": None,  # from workloads.json W5 (500)
    "hardware": None,  # from workloads.json W5 (A100, H100)
    "min_tokens": 128,
    "max_tokens": 512,
    "prefill_to_decode_ratio": 20.0,
    "seed": 42,
    "sarathi_chunk_size": 512,
    "arrival": "poisson",  # or "static": every request at t=0 (qps unused)
    "determinism_check": True,  # run the first runnable case twice
    "timeout_s": 1800,
    # a serving trace instead of the synthetic matrix (vidur-runner trace / serving-groundtruth): its points
    "trace": None,  # path of a serving-trace v1 document
    "trace_points": None,  # point ids (default: all)
    "scheduler": None,  # the one scheduler of a trace run (default vllm)
    "variant": "defaults",  # "defaults": VIDUR's settings; "matched": set from a serving engine's (the config says why)
    "batch_size_cap": None,
    "block_size": None,
    "num_blocks": None,
    "max_tokens_in_batch": None,
    "reasoning": None,  # why each setting has its value (recorded in every case)
}
SCHEDULERS = ("vllm", "sarathi", "orca")


def length_tag(min_tokens: int, max_tokens: int) -> str | None:
    """``MIN-MAX`` for a length range other than the default: such a case (a long-context trace)
    names it in its id, key and kept-output folder; None for the default range."""
    if (min_tokens, max_tokens) == (DEFAULTS["min_tokens"], DEFAULTS["max_tokens"]):
        return None
    return f"{min_tokens}-{max_tokens}"


class ConfigError(Exception):
    """A user error the config schema cannot see: one line naming the file and field."""


@dataclass(frozen=True)
class Case:
    id: str
    key: str
    hardware: str
    scheduler: str
    qps: float
    num_requests: int
    min_tokens: int
    max_tokens: int
    pd_ratio: float
    seed: int
    chunk_size: int
    arrival: str = "poisson"
    #: a serving trace's point (trace runs only) and the settings the config sets
    point: Any = None
    variant: str | None = None
    batch_size_cap: int | None = None
    block_size: int | None = None
    num_blocks: int | None = None
    max_tokens_in_batch: int | None = None
    reasoning: str | None = None

    @property
    def device(self) -> str:
        return HARDWARE[self.hardware][0]

    @property
    def slug(self) -> str:
        """The case's folder name under --keep-raw: device-scheduler-rate[-lenMIN-MAX]."""
        if self.point is not None:
            return f"{self.device}-trace-{self.variant}-{self.scheduler}-{self.point['id']}".replace(".", "_")
        rate = "static" if self.arrival == "static" else f"qps{self.qps:g}"
        lens = length_tag(self.min_tokens, self.max_tokens)
        return (f"{self.device}-{self.scheduler}-{rate}" + (f"-len{lens}" if lens else "")).replace(".", "_")

    @property
    def network_device(self) -> str:
        return HARDWARE[self.hardware][1]

    def parameters(self) -> dict[str, Any]:
        if self.point is not None:
            out = {"model": MODEL_KEY, "scheduler": self.scheduler, "point": self.point["id"], "arrival": self.arrival,
                   "qps": self.qps, "num_requests": self.num_requests, "request_generator": "trace_replay",
                   "variant": self.variant, "tensor_parallel": 1, "pipeline_parallel": 1, "dtype": "fp16"}
            if self.scheduler == "sarathi":
                out["sarathi_chunk_size"] = self.chunk_size
            for name in ("batch_size_cap", "block_size", "num_blocks", "max_tokens_in_batch"):
                value = getattr(self, name)
                out[name] = value if value is not None else "vidur default"
            if self.reasoning:
                out["reasoning"] = self.reasoning
            return out
        return {
            "model": MODEL_KEY,
            "scheduler": self.scheduler,
            "qps": self.qps,
            "num_requests": self.num_requests,
            "arrival": self.arrival,
            "length_distribution": "uniform",
            "min_tokens": self.min_tokens,
            "max_tokens": self.max_tokens,
            "prefill_to_decode_ratio": self.pd_ratio,
            "seed": self.seed,
            "sarathi_chunk_size": self.chunk_size,
            "tensor_parallel": 1,
            "pipeline_parallel": 1,
            "dtype": "fp16",
        }

    def plan(self) -> dict[str, Any]:
        """One line of `cases` output."""
        return {"id": self.id, "key": self.key, "workload": WORKLOAD, "hardware": self.hardware, "parameters": self.parameters()}


def load_catalogs(data_dir: Path) -> tuple[dict, set[str]]:
    """W5's workload entry and the set of hardware ids (both catalogs validated by their schemas)."""
    import mtap_schemas as ms

    wpath, hpath = data_dir / "workloads" / "workloads.json", data_dir / "hardware" / "hardware.json"
    workloads = ms.read(wpath, "workloads")
    hardware = ms.read(hpath, "hardware")
    w5 = next((w for w in workloads["workloads"] if w["id"] == WORKLOAD), None)
    if w5 is None:
        raise ConfigError(f"{wpath}: field workloads: expected an entry with id {WORKLOAD}")
    return w5, {h["id"] for h in hardware["hardware"]}


def _check(cond: bool, path: Path | None, field: str, expected: str) -> None:
    if not cond:
        raise ConfigError(f"{path or '<config>'}: field {field}: {expected}")


def merge_config(doc: dict[str, Any] | None, path: Path | None = None) -> dict[str, Any]:
    """The --config document (already validated by schemas/config/vidur-runner.v1.schema.json)
    merged over DEFAULTS, with the one check the schema cannot make."""
    cfg = dict(DEFAULTS)
    cfg.update(doc or {})
    _check(cfg["min_tokens"] <= cfg["max_tokens"], path, "min_tokens", f"expected min_tokens <= max_tokens ({cfg['max_tokens']})")
    return cfg


def _qps_text(q: float) -> str:
    return f"{q:g}"


def build_trace_cases(cfg: dict[str, Any], data_dir: Path, config_path: Path | None, hw_ids: set[str]) -> list[Case]:
    """One case per hardware and trace point: VIDUR's trace-replay generator on exactly the served requests."""
    import mtap_schemas as ms

    from .trace import point_key

    trace = ms.read(Path(cfg["trace"]), "serving-trace")
    by_id = {p["id"]: p for p in trace["points"]}
    ids = cfg["trace_points"] or list(by_id)
    for pid in ids:
        _check(pid in by_id, config_path, "trace_points", f"{pid!r} is not a point of {cfg['trace']} (it has {', '.join(by_id)})")
    hardware = cfg["hardware"] or ["H200-SXM-141GB"]
    for h in hardware:
        _check(h in hw_ids, config_path, "hardware", f"{h!r} is not an id in {data_dir / 'hardware' / 'hardware.json'}")
        _check(h in HARDWARE, config_path, "hardware", f"{h!r} has no VIDUR device (known: {', '.join(sorted(HARDWARE))})")
    scheduler = cfg["scheduler"] or "vllm"
    _check(scheduler in SCHEDULERS, config_path, "scheduler", f"{scheduler!r} is not one of {', '.join(SCHEDULERS)}")
    out = []
    for h in sorted(dict.fromkeys(hardware), key=lambda x: (x != "H100-SXM5-80GB", x)):
        for pid in ids:
            p = by_id[pid]
            longest = max(r["prompt_tokens"] + r["output_tokens"] for r in p["requests"])
            out.append(Case(f"{WORKLOAD}/{h}/trace-{cfg['variant']}/{scheduler}/{pid}", point_key(MODEL_KEY, p), h, scheduler,
                            float(p["qps"] or 0.0), len(p["requests"]), 1, max(4096, longest), float(cfg["prefill_to_decode_ratio"]),
                            cfg["seed"], cfg["sarathi_chunk_size"], p["arrival"], point=p, variant=cfg["variant"],
                            batch_size_cap=cfg["batch_size_cap"], block_size=cfg["block_size"], num_blocks=cfg["num_blocks"],
                            max_tokens_in_batch=cfg["max_tokens_in_batch"], reasoning=cfg["reasoning"]))
    return out


def build_cases(cfg: dict[str, Any], data_dir: Path, config_path: Path | None = None) -> list[Case]:
    w5, hw_ids = load_catalogs(data_dir)
    if cfg.get("trace"):
        return build_trace_cases(cfg, data_dir, config_path, hw_ids)
    params = w5.get("parameters", {})
    schedulers = cfg["schedulers"] or params.get("schedulers") or list(SCHEDULERS)
    qps = cfg["qps"] or params.get("qps") or [1.0, 2.0, 4.0]
    n = cfg["num_requests"] or params.get("requests") or 500
    hardware = cfg["hardware"] or [h for h in w5.get("hardware", []) if h in HARDWARE]
    for h in hardware:
        _check(h in hw_ids, config_path, "hardware", f"{h!r} is not an id in {data_dir / 'hardware' / 'hardware.json'}")
        _check(h in HARDWARE, config_path, "hardware", f"{h!r} has no VIDUR device (known: {', '.join(sorted(HARDWARE))})")
    for s in schedulers:
        _check(s in SCHEDULERS, config_path, "schedulers", f"{s!r} is not one of {', '.join(SCHEDULERS)}")
    static = cfg["arrival"] == "static"
    if static:
        qps = [0.0]  # vidur's static generator: every request at t=0
    lens = length_tag(cfg["min_tokens"], cfg["max_tokens"])
    id_len = f"/len={lens}" if lens else ""
    key_len = f".len{lens}" if lens else ""
    out = []
    # stable order: hardware (H100 first, then the rest by id), scheduler, qps
    for h in sorted(dict.fromkeys(hardware), key=lambda x: (x != "H100-SXM5-80GB", x)):
        for s in schedulers:
            for q in qps:
                q = float(q)
                rate = "static" if static else f"qps={_qps_text(q)}"
                cid = f"{WORKLOAD}/{h}/{s}/{rate}{id_len}"
                rate_key = "static" if static else f"qps{_qps_text(q).replace('.', '_')}"
                key = f"{MODEL_KEY}.serving.{s}.{rate_key}.n{n}{key_len}.fp16"
                out.append(Case(cid, key, h, s, q, n, cfg["min_tokens"], cfg["max_tokens"], float(cfg["prefill_to_decode_ratio"]),
                                cfg["seed"], cfg["sarathi_chunk_size"], cfg["arrival"]))
    return out
