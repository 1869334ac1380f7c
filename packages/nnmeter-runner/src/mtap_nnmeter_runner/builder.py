"""Build nn-Meter kernel predictors for a device from ORT CPU measurements (issue #19).

The pipeline is nn-Meter's builder (``nn_meter.builder``), driven step by step so the measuring
step can run on another machine:

1. ``sample``: kernel configurations from nn-Meter's own samplers (prior mode; finegrained mode
   around large-error configurations), in a worker (``worker.sample``).
2. ``profile``: each configuration built with nn-Meter's torch kernel blocks, exported to ONNX and
   timed with onnxruntime on the CPU (``ortprofile``; the same code as the ``ort_cpu`` nn-Meter
   backend of ``backend.py``), at one or more fixed thread counts.
3. ``fit``: per kernel type nn-Meter's ``build_predictor_by_data`` (RandomForestRegressor, 80/20
   split), in a worker (``worker.fit``); the pickles, the fusion-rule file (detected by
   ``detect-fusion`` and given with ``--fusion-rules``, else ``{}``: nn-Meter's default rules) and the
   sha256 list are written to one folder.

The predictors are then used by ``nnmeter-runner run --tool-path DIR --predictor-hashes
DIR/hashes.json``: sha256-checked before unpickling like nn-Meter's released ones.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .predictors import HASHES_FORMAT, RULES_FILE

#: kernel types sampled and fitted by default: nn-Meter's predictorbuild_config.yaml kernels
#: (nn_meter/configs/builder/predictor_builder/predictorbuild_config.yaml) with its INIT_SAMPLE_NUM
DEFAULT_SAMPLES: dict[str, int] = {
    "conv-bn-relu": 10000,
    "dwconv-bn-relu": 5000,
    "maxpool": 3000,
    "avgpool": 3000,
    "fc": 3000,
    "concat": 3000,
    "split": 3000,
    "channelshuffle": 3000,
    "se": 3000,
    "global-avgpool": 3000,
    "bnrelu": 3000,
    "bn": 3000,
    "hswish": 3000,
    "relu": 3000,
    "addrelu": 3000,
    "add": 3000,
}
BACKEND = "ort_cpu"

#: kernel types whose fitted predictor is measured and scored but not put in the predictor folder, and
#: why (none since issue #28: concat, whose builder and predictor features differ, is shipped behind a
#: feature shim, worker.FEATURE_SHIMS)
NOT_SHIPPED: dict[str, str] = {}
BUILD_FORMAT = "mtap-nnmeter-predictor-build/1"


def scaled_samples(scale: float, only: list[str] | None = None, per_kernel: dict[str, float] | None = None) -> dict[str, int]:
    """nn-Meter's default sample counts times ``scale`` (``per_kernel[type]`` where given; at least 2 per
    kernel type)."""
    per_kernel = per_kernel or {}
    return {k: max(2, round(n * per_kernel.get(k, scale))) for k, n in DEFAULT_SAMPLES.items() if not only or k in only}


#: issue #28's campaign: nn-Meter's full default count for these kernel types, 25 % for the others
CAMPAIGN_FULL = ("conv-bn-relu", "dwconv-bn-relu", "fc", "add", "maxpool", "avgpool", "global-avgpool")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def block_config(kernel_type: str, config: dict[str, Any]) -> dict[str, Any]:
    """The configuration as nn-Meter's torch block leaves it: its MaxPool/AvgPool operators add
    ``POOL_STRIDES = STRIDES`` (nn_modules/torch_networks/operators.py), the field nn-Meter's pooling
    feature parser reads. Measurements taken before ortprofile kept the updated config lack it."""
    config = dict(config)
    if kernel_type in ("maxpool", "avgpool") and "POOL_STRIDES" not in config:
        config["POOL_STRIDES"] = config["STRIDES"]
    return config


def kernel_data(records: list[dict[str, Any]], threads: int) -> dict[str, dict[str, dict[str, Any]]]:
    """{type: {id: {config, latency_ms (median), std_ms}}} for one thread count; failed kernels left out."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    key = f"t{threads}"
    for r in records:
        if "error" in r or key not in r:
            continue
        out.setdefault(r["kernel"], {})[r["id"]] = {
            "config": block_config(r["kernel"], r["config"]),
            "latency_ms": r[key]["median"],
            "std_ms": r[key]["std"],
        }
    return out


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class Built:
    name: str
    folder: Path
    results: dict[str, Any]
    sklearn: str


#: the fusion-rule file of a predictor without detected rules: an empty rule file reads exactly like no
#: rule file (nn-Meter's default rules)
DEFAULT_RULES_BYTES = b"{}\n"


def fit(name: str, data: dict[str, dict[str, dict[str, Any]]], out_root: Path, timeout: float,
        rules: bytes = DEFAULT_RULES_BYTES) -> Built:
    """Fit every kernel type of ``data`` with nn-Meter's builder into ``out_root/name/``."""
    from .nnmeter import _worker

    folder = out_root / name
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mtap-nnmeter-fit-") as work:
        result = _worker("fit", {"backend": BACKEND, "kernels": data, "out": str(folder), "work": work}, f"fit-{name}", timeout)
    if not result.get("ok"):
        raise RuntimeError(f"fitting {name} failed: {result.get('kind')}: {result.get('message')}")
    # stored xz-compressed (a random forest pickle of ~300 samples is several MiB); `xz -d` gives
    # nn-Meter's own <kernel>.pkl. preset 9, no integrity check field: the sha256 list is the check
    for ktype in result["results"]:
        pkl = folder / f"{ktype}.pkl"
        if ktype not in NOT_SHIPPED:
            (folder / f"{ktype}.pkl.xz").write_bytes(lzma.compress(pkl.read_bytes(), preset=9))
        pkl.unlink()
    # nn-Meter's predictor reads <predictor folder>/fusion_rules.json (predictor/utils.py
    # loading_customized_predictor -> KernelDetector(fusion_rule)): detected rules, or {} = its defaults
    (folder / RULES_FILE).write_bytes(rules)
    return Built(name, folder, result["results"], result["sklearn"])


def hashes_document(built: list[Built]) -> dict[str, Any]:
    predictors = {}
    for b in built:
        files = sorted([f"{k}.pkl.xz" for k in b.results if k not in NOT_SHIPPED] + [RULES_FILE])
        predictors[b.name] = {f: {"sha256": sha256_file(b.folder / f), "size": (b.folder / f).stat().st_size} for f in files}
    return {"format": HASHES_FORMAT, "predictors": predictors}


def write_json(path: Path, doc: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
