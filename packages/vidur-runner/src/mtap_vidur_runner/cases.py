"""The W5 case matrix (experiment 1c): schedulers x QPS x hardware, and the --config file that narrows it."""

from __future__ import annotations

import json
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
    "determinism_check": True,  # run the first runnable case twice
    "timeout_s": 1800,
}
SCHEDULERS = ("vllm", "sarathi", "orca")


class ConfigError(Exception):
    """A user error in the config or catalogs: one line naming the file and field."""


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

    @property
    def device(self) -> str:
        return HARDWARE[self.hardware][0]

    @property
    def network_device(self) -> str:
        return HARDWARE[self.hardware][1]

    def parameters(self) -> dict[str, Any]:
        return {
            "model": MODEL_KEY,
            "scheduler": self.scheduler,
            "qps": self.qps,
            "num_requests": self.num_requests,
            "arrival": "poisson",
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


def _load_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def load_catalogs(data_dir: Path) -> tuple[dict, set[str]]:
    """W5's workload entry and the set of hardware ids."""
    wpath, hpath = data_dir / "workloads" / "workloads.json", data_dir / "hardware" / "hardware.json"
    workloads = _load_json(wpath, "workload catalog")
    hardware = _load_json(hpath, "hardware catalog")
    try:
        w5 = next(w for w in workloads["workloads"] if w["id"] == WORKLOAD)
    except (KeyError, TypeError, StopIteration):
        raise ConfigError(f"{wpath}: field workloads: expected an entry with id {WORKLOAD}") from None
    try:
        ids = {h["id"] for h in hardware["hardware"]}
    except (KeyError, TypeError):
        raise ConfigError(f"{hpath}: field hardware: expected a list of objects with an id") from None
    return w5, ids


def _check(cond: bool, path: Path | None, field: str, expected: str) -> None:
    if not cond:
        raise ConfigError(f"{path or '<config>'}: field {field}: {expected}")


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def load_config(path: Path | None) -> dict[str, Any]:
    """The --config file merged over DEFAULTS, validated (unknown fields refused)."""
    cfg = dict(DEFAULTS)
    if path is None:
        return cfg
    raw = _load_json(path, "config file")
    _check(isinstance(raw, dict), path, "<root>", "expected a JSON object")
    for k in raw:
        _check(k in DEFAULTS, path, k, f"unknown field (known: {', '.join(sorted(DEFAULTS))})")
    cfg.update(raw)
    if cfg["schedulers"] is not None:
        s = cfg["schedulers"]
        _check(isinstance(s, list) and s and all(x in SCHEDULERS for x in s), path, "schedulers", f"expected a non-empty list of {', '.join(SCHEDULERS)}")
    if cfg["qps"] is not None:
        q = cfg["qps"]
        _check(isinstance(q, list) and q and all(_is_num(x) and x > 0 for x in q), path, "qps", "expected a non-empty list of positive numbers")
    if cfg["hardware"] is not None:
        h = cfg["hardware"]
        _check(isinstance(h, list) and h and all(isinstance(x, str) for x in h), path, "hardware", "expected a non-empty list of hardware ids")
    for k in ("num_requests", "min_tokens", "max_tokens", "seed", "sarathi_chunk_size", "timeout_s"):
        if cfg[k] is not None:
            _check(isinstance(cfg[k], int) and not isinstance(cfg[k], bool) and cfg[k] >= (0 if k == "seed" else 1), path, k, "expected a positive integer")
    _check(_is_num(cfg["prefill_to_decode_ratio"]) and cfg["prefill_to_decode_ratio"] > 0, path, "prefill_to_decode_ratio", "expected a positive number")
    _check(cfg["min_tokens"] <= cfg["max_tokens"], path, "min_tokens", "expected min_tokens <= max_tokens")
    _check(isinstance(cfg["determinism_check"], bool), path, "determinism_check", "expected true or false")
    return cfg


def _qps_text(q: float) -> str:
    return f"{q:g}"


def build_cases(cfg: dict[str, Any], data_dir: Path, config_path: Path | None = None) -> list[Case]:
    w5, hw_ids = load_catalogs(data_dir)
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
    out = []
    # stable order: hardware (catalog order of W5, H100 first when both), scheduler, qps
    for h in sorted(hardware, key=lambda x: (x != "H100-SXM5-80GB", x)):
        for s in schedulers:
            for q in qps:
                q = float(q)
                cid = f"{WORKLOAD}/{h}/{s}/qps={_qps_text(q)}"
                key = f"{MODEL_KEY}.serving.{s}.qps{_qps_text(q).replace('.', '_')}.n{n}.fp16"
                out.append(Case(cid, key, h, s, q, n, cfg["min_tokens"], cfg["max_tokens"], float(cfg["prefill_to_decode_ratio"]), cfg["seed"], cfg["sarathi_chunk_size"]))
    return out
