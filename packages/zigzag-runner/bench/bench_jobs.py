"""zigzag-runner --jobs 2 against --jobs 1, in one invocation (nox -s bench-jobs).

Runs ``zigzag-runner run`` as a child process on a fixed subset of ZigZag cases (LAYERS: distinct
ResNet-50 layer shapes on ZigZag's eyeriss-like example, a few seconds of ZigZag each), first
with ``--jobs 1`` and then with ``--jobs 2``, each into its own temporary folder; checks that the
two documents are equal (``mtap_schemas.canonical`` without ``invocation``) and prints both wall
times, their ratio and the 1-minute load average before and after (the machine may be shared:
a loaded machine lowers the ratio). Exit 0 when the ratio reaches TARGET, 1 below it, 2 when a
run failed or the documents differ.

    python packages/zigzag-runner/bench/bench_jobs.py [--target 1.8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mtap_schemas as ms

ROOT = Path(__file__).resolve().parents[3]
TARGET = 1.8
#: ResNet-50 layers with distinct shapes (one ZigZag run each), on eyeriss-like
LAYERS = ["layer1-0-conv1", "layer1-0-conv2", "layer1-0-conv3", "layer1-1-conv1", "layer2-0-conv1", "layer2-0-conv2",
          "layer2-0-conv3", "layer2-0-downsample-0", "layer2-1-conv1", "layer2-1-conv2", "layer3-0-conv1", "layer3-0-conv2"]
CONFIG = {"hardware": ["eyeriss-like"], "models": ["resnet50"], "layers": LAYERS}


def run(jobs: int, cfg: Path, out: Path) -> float:
    cmd = [sys.executable, "-m", "mtap_zigzag_runner.cli", "run", "--config", str(cfg), "--output", str(out),
           "--jobs", str(jobs)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(f"--jobs {jobs}: exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        sys.exit(2)
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=float, default=TARGET, help="speed-up to reach (default %(default)s)")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="mtap-bench-jobs-") as tmp:
        cfg = Path(tmp) / "bench.json"
        cfg.write_text(json.dumps(CONFIG))
        t1 = run(1, cfg, Path(tmp) / "j1")
        t2 = run(2, cfg, Path(tmp) / "j2")
        docs = [ms.read_tool_run(Path(tmp) / d / "zigzag.tool-run.json") for d in ("j1", "j2")]
    for d in docs:
        d.pop("invocation")
    same = ms.canonical(docs[0]) == ms.canonical(docs[1])
    n_ok = sum(c["status"] == "ok" for c in docs[0]["cases"])
    ratio = t1 / t2
    load_after = os.getloadavg()[0]
    print(f"zigzag-runner run, {len(docs[0]['cases'])} cases ({n_ok} ok, {len(LAYERS)} ResNet-50 layers on eyeriss-like), "
          f"{cores} cores available")
    print(f"--jobs 1: {t1:.1f} s wall")
    print(f"--jobs 2: {t2:.1f} s wall")
    print(f"speed-up: {ratio:.2f}x (target >= {args.target}x)")
    print(f"documents equal (canonical, without invocation): {same}")
    print(f"1-minute load average: {load_before:.2f} before, {load_after:.2f} after")
    if not same:
        return 2
    return 0 if ratio >= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
