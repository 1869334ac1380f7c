"""Fusion rules detected with nn-Meter's builder on the ``ort_cpu`` backend (issue #28).

nn-Meter decides which operator pairs a device's runtime fuses with its rule tester
(``nn_meter.builder.backend_meta.fusion_rule_tester``): for every pair ``BF_<op1>_<op2>`` it times a
model of ``op1`` alone, ``op2`` alone and the two in one model ("block"), and says the pair is fused
(``obey``) when ``op1 + op2 - block > EMP_ALPHA * min(latencies)`` (``BasicFusion.test``,
EMP_ALPHA 0.5; nn-Meter's ``min`` runs over every latency of the test case, block and op sum
included, because its filter ``op != 'block' or op != false_case`` is always true). The result,
``{"BF_conv_relu": {"obey": true, "latency": {...}}, ...}``, is the file nn-Meter's ``RuleReader``
reads as a predictor's ``fusion_rules.json``.

This module turns the worker's result into two files (no nn_meter import here):

- ``fusion_rules.json``: nn-Meter's ``detect_fusion_rule`` output, byte for byte what a predictor
  folder carries (``build-predictor --fusion-rules``);
- ``detection.json``: provenance: nn-Meter, ONNX Runtime and torch versions, the CPU (model,
  frequency, governor, ``lscpu``), the pinned CPUs and thread count, the timing, every test case's
  measured latencies per round, nn-Meter's decision per rule with its margin and threshold
  recomputed, the decision of each round alone, and the test cases that could not be built.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from pathlib import Path
from typing import Any

DETECTION_FORMAT = "mtap-nnmeter-fusion-detection/1"
RULES_FILE = "fusion_rules.json"
#: the same test cases decided by ONNX Runtime's optimised graphs instead of by timing (a check beside
#: nn-Meter's decision, in nn-Meter's rule format so a predictor can be built with it too)
ORT_GRAPH_RULES_FILE = "fusion_rules.ort-graph.json"
DETECTION_FILE = "detection.json"
TESTCASES_FILE = "testcases.json"

METHOD = (
    "nn-Meter 2.0's fusion-rule tester (nn_meter.builder.backend_meta.fusion_rule_tester): test cases from its "
    "FusionRuleTester classes (ruletest_config.yaml defaults: HW 28, CIN 64, COUT 128, KERNEL_SIZE 3, SHAPE_1D 428 "
    "for fc; IMPLEMENT torch; MON left out: its torch implementation raises NotImplementedError), each saved by "
    "save_testcase() with nn-Meter's export arguments but dynamo=False; every model timed with ONNX Runtime's CPU "
    "execution provider (ortprofile.measure, RULE_TIMING: one session, warm-up, then session.run until the minimum "
    "count and time; label = median of the runs) 'rounds' times; decision: nn-Meter's detect_fusion_rule on the "
    "per-model median over the rounds. nn-Meter's torch test cases pass its TensorFlow-layout shape [HW, HW, CIN] "
    "to the torch operators, which read it as [C, H, W]: the conv test case is a 28-channel 28x64 input, as "
    "nn-Meter builds it."
)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def measured_from_jsonl(records: list[dict[str, Any]], threads: int
                        ) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, str], dict[str, Any]]:
    """``ortprofile --fusion`` lines -> ({test case: {model: [stats per round]}}, the null model's
    stats (median over rounds) or None, {test case: error}, {test case: {model: ONNX Runtime's
    optimised operator types}})."""
    key = f"t{threads}"
    measured: dict[str, dict[str, list[dict[str, Any]]]] = {}
    nulls: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    ort_ops: dict[str, dict[str, list[str]]] = {}
    for r in sorted(records, key=lambda x: x.get("round", 0)):
        if "ort_ops" in r:
            ort_ops.setdefault(r["testcase"], {})[r["part"]] = r["ort_ops"]
        if r.get("null_model"):
            if key in r:
                nulls.append(r[key])
            continue
        if "error" in r:
            errors[r["testcase"]] = f"{r['part']}: {r['error']}"
            continue
        if key not in r:
            continue
        measured.setdefault(r["testcase"], {}).setdefault(r["part"], []).append(r[key])
    null = None
    if nulls:
        null = dict(nulls[0])
        null["median"] = statistics.median(x["median"] for x in nulls)
        null["rounds"] = [x["median"] for x in nulls]
    return measured, null, errors, ort_ops


def _parts(name: str) -> tuple[str, str]:
    op1, op2 = name.split("_")[1:3]
    if op1 == op2:
        return op1 + "_1", op2 + "_2"
    return op1, op2


#: ONNX Runtime's NCHWc layout nodes: inserted around convolutions and removed between two of them,
#: not a fusion of the test case's operators
LAYOUT_OPS = frozenset({"ReorderInput", "ReorderOutput"})


def ort_fused(ops: dict[str, list[str]], op1: str, op2: str) -> bool | None:
    """Did ONNX Runtime fuse the pair? Its optimised block graph has fewer compute nodes (layout
    nodes not counted) than the two operators' graphs together (None when a graph is missing)."""
    if not all(k in ops for k in ("block", op1, op2)):
        return None

    def n(key: str) -> int:
        return sum(op not in LAYOUT_OPS for op in ops[key])

    return n("block") < n(op1) + n(op2)


def rule_records(result: dict[str, Any], null_ms: float | None) -> dict[str, dict[str, Any]]:
    """Per rule: nn-Meter's decision, the numbers it compared (recomputed from the same medians), the
    decision of each round alone, whether one null-model time decides it, and what ONNX Runtime's
    optimised graphs show (``ort_ops``, ``ort_fused``: a check beside nn-Meter's timing decision, not
    used by it)."""
    alpha = float(result["emp_alpha"])
    out: dict[str, dict[str, Any]] = {}
    for name, decision in sorted(result["rules"].items()):
        parts = result["measured"][name]
        med = {part: statistics.median(x["median"] for x in runs) for part, runs in parts.items()}
        op1, op2 = _parts(name)
        ops = med[op1] + med[op2]
        block = med["block"]
        secondary = min([*med.values(), ops])  # nn-Meter's min runs over every latency of the case
        margin = ops - block
        threshold = alpha * secondary
        obey = bool(decision["obey"])
        rec: dict[str, Any] = {
            "obey": obey,
            "per_round": [rnd.get(name) for rnd in result["per_round"]],
            "block_ms": block, f"{op1}_ms": med[op1], f"{op2}_ms": med[op2], "ops_ms": ops,
            "margin_ms": margin, "threshold_ms": threshold,
            "recomputed_obey": margin > threshold,
            "latencies": {part: {"median_ms": med[part], "rounds": runs} for part, runs in sorted(parts.items())},
        }
        ops_graph = (result.get("ort_ops") or {}).get(name)
        if ops_graph:
            rec["ort_ops"] = ops_graph
            rec["ort_fused"] = ort_fused(ops_graph, op1, op2)
        if null_ms is not None:
            # the two operators alone are two session.run calls, the block one: one null-model time of
            # the margin is the runtime's per-call cost, not fusion
            rec["overhead_decides"] = obey and margin - null_ms <= threshold
        out[name] = rec
    return out


def detection_document(result: dict[str, Any], *, label: str, nn_meter: str | None, environment: dict[str, Any],
                       threads: int, affinity: list[int], timing: dict[str, Any], rules_bytes: bytes,
                       null_model: dict[str, Any] | None, source: dict[str, Any]) -> dict[str, Any]:
    null_ms = null_model["median"] if null_model else None
    rules = rule_records(result, null_ms)
    rounds = max((len(r["per_round"]) for r in rules.values()), default=0)
    unstable = sorted(n for n, r in rules.items() if len(set(r["per_round"])) > 1)
    packages = environment.get("packages") or {}
    return {
        "format": DETECTION_FORMAT,
        "label": label,
        "nn_meter": nn_meter,
        "onnxruntime": packages.get("onnxruntime"),
        "packages": packages,
        "method": METHOD,
        "source": source,
        "cpu": {
            "model": environment.get("cpu"),
            "cpu_count": environment.get("cpu_count"),
            "mhz": environment.get("cpu_mhz"),
            "cpufreq": environment.get("cpufreq"),
            "governor": environment.get("governor"),
            "loadavg": environment.get("loadavg"),
            "lscpu": environment.get("lscpu"),
            "platform": environment.get("platform"),
        },
        "threads": threads,
        "affinity": affinity,
        "timing": timing,
        "rounds": rounds,
        "emp_alpha": result["emp_alpha"],
        "ruletest_config": result.get("ruletest_config"),
        "null_model": null_model,
        "rule_file": {"path": RULES_FILE, "sha256": sha256_bytes(rules_bytes)},
        "summary": {
            "tested": len(rules),
            "obey": sorted(n for n, r in rules.items() if r["obey"]),
            "unstable_across_rounds": unstable,
            "overhead_decides": sorted(n for n, r in rules.items() if r.get("overhead_decides")),
            "ort_fused": sorted(n for n, r in rules.items() if r.get("ort_fused")),
            "nn_meter_vs_ort_graph": {
                "both_fused": sorted(n for n, r in rules.items() if r["obey"] and r.get("ort_fused")),
                "only_nn_meter": sorted(n for n, r in rules.items() if r["obey"] and r.get("ort_fused") is False),
                "only_ort_graph": sorted(n for n, r in rules.items() if not r["obey"] and r.get("ort_fused")),
            },
            "not_built": sorted(result.get("failed") or {}),
            "not_tested": sorted(result.get("not_tested") or {}),
        },
        "rules": rules,
        "not_built": result.get("failed") or {},
        "not_tested": result.get("not_tested") or {},
    }


def ort_graph_rules_bytes(doc: dict[str, Any]) -> bytes | None:
    """{rule: {"obey": ort_fused}} for every rule whose graphs were recorded, as RuleReader reads it."""
    rules = {n: {"obey": r["ort_fused"], "ort_ops": r["ort_ops"]} for n, r in doc["rules"].items()
             if r.get("ort_fused") is not None}
    return (json.dumps(rules, indent=1, sort_keys=True) + "\n").encode() if rules else None


def rules_bytes(result: dict[str, Any]) -> bytes:
    """nn-Meter's detect_fusion_rule output as the file RuleReader reads (sorted, indented)."""
    return (json.dumps(result["rules"], indent=1, sort_keys=True) + "\n").encode()


def read_rules(path: Path) -> dict[str, Any]:
    """A fusion-rule file as nn-Meter's RuleReader needs it ({name: {"obey": bool|null, ...}}); ValueError
    (one line) otherwise."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read a JSON fusion-rule file: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected an object {{rule: {{obey: ...}}}}")
    for name, rule in doc.items():
        if not isinstance(rule, dict) or "obey" not in rule or not isinstance(rule["obey"], (bool, type(None))):
            raise ValueError(f"{path}: field {name}.obey: expected true, false or null (nn-Meter's RuleReader reads it)")
    return doc
