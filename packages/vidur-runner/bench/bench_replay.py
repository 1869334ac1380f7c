"""The replay as a benchmark: batches per second, on the CPU and on the GPU.

    python packages/vidur-runner/bench/bench_replay.py [--repeats 3]

CPU: `vidur-runner replay` over the committed VIDUR documents and GPU replay documents (read the
kept batch records, pair every batch with its measured composition, re-run 15 timelines twice,
write two documents and the report), median wall time of --repeats, as batches per second.
Target: >= 10,000 batches/s on 2 cores.

GPU: read from the committed groundtruth replay documents (data/evaluation/groundtruth/
h200-vidur-replay*.tool-run.json): compositions measured per second of the run's measuring time
(wall_clock.run_seconds), and the simulator batches they stand for per second. Not re-run here
(it needs the H200); reported so the figure sits beside the CPU one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DOCS = [f"data/evaluation/vidur/vidur{s}.tool-run.json" for s in ("", "-static", "-long")]
MEASURED = [f"data/evaluation/groundtruth/h200-vidur-replay{s}.tool-run.json" for s in ("", "-2")]
TARGET = 10_000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    missing = [p for p in DOCS + MEASURED if not (REPO / p).is_file()]
    if missing:
        print(f"error: {missing[0]} is missing (the committed replay data)", file=sys.stderr)
        return 2
    from mtap_vidur_runner import replay

    n_batches = sum(len(cb.batches) for cb in replay.load_cases([REPO / p for p in DOCS], "H200-SXM-141GB", REPO))
    times = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "mtap_vidur_runner.cli", "replay", *DOCS]
            for m in MEASURED:
                cmd += ["--measured", m]
            t0 = time.perf_counter()
            subprocess.run([*cmd, "--output", tmp], cwd=REPO, check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
    cpu = n_batches / statistics.median(times)
    gpu = []
    for m in MEASURED:
        doc = json.loads((REPO / m).read_text())
        ok = [c for c in doc["cases"] if c["status"] == "ok"]
        secs = doc["wall_clock"]["run_seconds"]
        stands_for = sum(c["parameters"]["simulator_batches"] for c in ok)
        gpu.append({"document": m, "compositions": len(ok), "run_seconds": secs, "compositions_per_s": round(len(ok) / secs, 2),
                    "simulator_batches_per_s": round(stands_for / secs, 1)})
    out = {"cpu_replay_batches": n_batches, "cpu_replay_seconds_median": round(statistics.median(times), 3),
           "cpu_replay_batches_per_s": round(cpu), "target_batches_per_s": TARGET, "gpu": gpu}
    print(json.dumps(out, indent=2))
    return 0 if cpu >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
