"""Benchmark: how long tracing takes per model (meta device, CPU only).

    python packages/analytical-runner/bench/bench_trace.py        # or: nox -s bench-analytical

Target: every shape of the default matrix traces in under 5 s on one core (the full run
traces 43 shapes); the script exits 1 if one does not.
"""

from __future__ import annotations

import sys
import time

from mtap_analytical_runner.models import Shape, run_shape

TARGET_S = 5.0
SHAPES = [
    Shape("resnet50", "model", 32, "fp32"),
    Shape("bert-base", "model", 8, "fp16", seq=512),
    Shape("gpt2", "model", 8, "fp16", seq=512),
    Shape("llama2-7b", "prefill", 1, "fp16", tokens=2048),
    Shape("llama2-7b", "decode", 32, "fp16", kv=2048),
]


def main() -> int:
    slow = 0
    for shape in SHAPES:
        run_shape(shape)  # first call builds the model and imports transformers
        t0 = time.perf_counter()
        tr = run_shape(shape)
        dt = time.perf_counter() - t0
        slow += dt > TARGET_S
        print(f"{shape.model:10s} {shape.scope:8s} b{shape.batch:<3d} {len(tr.ops):5d} ops  {dt:6.2f} s{'  SLOW' if dt > TARGET_S else ''}")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
