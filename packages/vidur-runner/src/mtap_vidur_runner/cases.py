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

    @property
    def device(self) -> str:
        return HARDWARE[self.hardware][0]

    @property
    def slug(self) -> str:
        """The case's folder name under --keep-raw: device-scheduler-rate[-lenMIN-MAX]."""
        rate = "static" if self.arrival == "static" else f"qps{self.qps:g}"
        lens = length_tag(self.min_tokens, self.max_tokens)
        return (f"{self.device}-{self.scheduler}-{rate}" + (f"-len{lens}" if lens else "")).replace(".", "_")

    @property
    def network_device(self) -> str:
        return HARDWARE[self.hardware][1]

    def parameters(self) -> dict[str, Any]:
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
