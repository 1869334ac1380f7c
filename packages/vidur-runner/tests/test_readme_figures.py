"""The figures data/evaluation/vidur/README.md quotes, recomputed from the committed documents and
kept outputs: a stale figure fails here."""

from __future__ import annotations

import lzma
import re
from pathlib import Path

import mtap_schemas as ms

REPO = Path(__file__).resolve().parents[3]
VIDUR = REPO / "data" / "evaluation" / "vidur"
README = (VIDUR / "README.md").read_text(encoding="utf-8")


def _metric(case: dict, name: str, kind: str | None = None, timing: str | None = None) -> float:
    for m in case["metrics"]:
        if m["name"] == name and (kind is None or m["kind"] == kind) and (timing is None or m.get("timing") == timing):
            assert m["unit"] == "s"
            return m["value"]
    raise KeyError(name)


def _range_ms(values: list[float]) -> str:
    return f"{min(values) * 1e3:.1f}-{max(values) * 1e3:.1f}"


def _range_int_ms(values: list[float]) -> str:
    return f"{round(min(values) * 1e3)}-{round(max(values) * 1e3)}"


def _w5_h200() -> list[tuple[dict, dict]]:
    vidur = ms.read_tool_run(VIDUR / "vidur.tool-run.json")["cases"]
    replayed = {c["id"]: c for c in ms.read_tool_run(VIDUR / "vidur-replay.tool-run.json")["cases"]}
    out = [(c, replayed[c["id"]]) for c in vidur if c["hardware"] == "H200-SXM-141GB" and c["status"] == "ok"]
    assert len(out) == 12
    return out


def test_request_p50_ranges_over_all_twelve_cases() -> None:
    pairs = _w5_h200()
    ttft = [_metric(c, "ttft_p50") for c, _ in pairs]
    ttft_r = [_metric(r, "ttft_p50", "measurement", "device") for _, r in pairs]
    vllm = [(c, r) for c, r in pairs if c["parameters"]["scheduler"] == "vllm"]
    row = (f"| request TTFT p50, W5 QPS 1-8 (12 cases) | VIDUR {_range_ms(ttft)} ms, replayed {_range_ms(ttft_r)} ms "
           f"(vllm alone: VIDUR {_range_ms([_metric(c, 'ttft_p50') for c, _ in vllm])} ms, "
           f"replayed {_range_ms([_metric(r, 'ttft_p50', 'measurement', 'device') for _, r in vllm])} ms) |")
    assert row in README, row
    e2e = [_metric(c, "e2e_latency_p50") for c, _ in pairs]
    e2e_r = [_metric(r, "e2e_latency_p50", "measurement", "device") for _, r in pairs]
    row = f"| request e2e p50, W5 QPS 1-8 (12 cases) | VIDUR {_range_int_ms(e2e)} ms, replayed {_range_int_ms(e2e_r)} ms |"
    assert row in README, row


def test_composition_rows_and_batches_of_the_kept_outputs() -> None:
    rows = batches = 0
    for comp in sorted(VIDUR.glob("outputs/h200-*-qps?/batch_composition.csv.xz")):
        if "-trace-" in comp.parent.name:  # the served-trace predictions, not the W5 matrix the sentence counts
            continue
        rows += len(lzma.open(comp, "rt").read().splitlines()) - 1
        batches += len(lzma.open(comp.with_name("batch_metrics.csv.xz"), "rt").read().splitlines()) - 1
    text = " ".join(README.split())
    assert f"{rows:,} rows for the {batches:,} H200 batches" in text


def test_distinct_pairs_and_runs_quoted() -> None:
    batches = ms.read_tool_run(VIDUR / "vidur-batches.tool-run.json")["cases"]
    assert f"({len(batches):,} distinct (composition, VIDUR" in README
    runs = [c for c in ms.read_tool_run(VIDUR / "vidur-replay.tool-run.json")["cases"] if c["status"] == "ok"]
    assert re.search(rf"D1 request-level \({len(runs)} runs", README)
