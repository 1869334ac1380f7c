"""Benchmark: `mtap-aggregate run` over 200,000 generated cases (~235 MB of tool-run v2 documents).

Targets (issue 15): at most 5 s wall and 1 GB peak memory (max RSS) on 2 cores.

Generates 200 documents of 1,000 cases each, shaped like real runner output (ids, keys,
parameters, three metrics with timing and source, one artifact per case; statuses mixed; six
documents share keys with the one `measured` document, so ~5,000 pairs form), then runs the
real command line, `mtap-aggregate run`, as a child process — reading and validating every
document (in worker processes, as a folder this large is read), the polars table, coverage,
errors, the MTAP tables and the validated write — and reports its wall time and peak memory: the
largest sum of the resident sets of the command and its worker processes (sampled every 20 ms
from /proc), beside the largest single process (getrusage). Best of --repeat runs; exit 1 if over.
The command's environment drops PYTHONDONTWRITEBYTECODE so that its imports are timed as a user
sees them (bytecode cached by the first run), not recompiled on every run.

    nox -s bench-aggregate            # or: python packages/aggregate/bench/bench_aggregate.py [--cases N]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import mtap_schemas as ms
import mtap_schemas.toolrun as tr

TARGET_S = 5.0
TARGET_RSS_MB = 1024.0
SHA = "0" * 64


def generate(folder: Path, cases: int, per_doc: int = 1000) -> int:
    statuses = ["ok", "ok", "ok", "failed", "unavailable"]
    for d in range(cases // per_doc):
        measured = d == 0
        out = []
        for i in range(per_doc):
            status = "ok" if measured else statuses[(d + i) % len(statuses)]
            common = {
                "workload": f"W{1 + i % 10}", "hardware": "H100-SXM5-80GB",
                "key": f"model{i % 200}.layer.l{i}.b{1 + i % 4}.fp16" if d < 7 else f"model{d}.layer.l{i}.b1.fp16",
                "parameters": {"batch": 1 + i % 4, "index": i, "dtype": "fp16", "model": f"model{i % 200}",
                               "layer": f"layer{i}", "dataflow": "row-stationary", "mapper": "random-pruned, victory 500", "shape": f"N1 K{64 + i % 512} C{64 + i % 256} P56 Q56 R3 S3"},
                "artifacts": [{"path": f"raw/doc{d:03d}/case{i:04d}.stats.txt", "sha256": SHA}],
            }
            cid = f"W{1 + i % 10}:d{d}:case{i:04d}"
            if status == "ok":
                kind = "measurement" if measured else "prediction"
                timing = "device" if measured else "simulated"
                metrics = [tr.metric("latency", 1.0 + (i % 97) * 0.01 + d * 1e-3, "ms", kind, timing=timing,
                                     source="synthetic benchmark value, not a real result"),
                           tr.metric("cycles", 1000 + i, "cycles", kind, timing=timing),
                           tr.metric("utilization", 0.5, "1", kind)]
                out.append(tr.ok(cid, metrics=metrics, **common))
            elif status == "failed":
                out.append(tr.failed(cid, kind="tool-crashed", message="synthetic: the tool exited 1 on this layer", **common))
            else:
                out.append(tr.unavailable(cid, kind="binary-missing", message="synthetic: no binary given; pass --tool-path", **common))
        tool = tr.Tool("groundtruth" if measured else f"tool-{d % 7}", "1", "measured" if measured else "native", "bench")
        doc = tr.ToolRun("bench", "0", tool, argv=["run"]).document(out)
        ms.write_text_atomic(folder / f"t{d % 7}" / f"doc{d:03d}.tool-run.json", ms.dumps(doc))
    return sum(p.stat().st_size for p in folder.rglob("*.tool-run.json"))


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants (Linux /proc; 0 where /proc is absent)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 0.0
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))  # fields[1]: ppid
        rss[int(entry)] = int(fields[21])  # pages
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, ()))
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_once(folder: Path, out: Path) -> tuple[float, float, float, float]:
    exe = shutil.which("mtap-aggregate") or "mtap-aggregate"
    argv = [exe, "run", "--evaluation-dir", str(folder), "--output", str(out / "agg.json"),
            "--coverage-md", str(out / "cov.md"), "--tables-dir", str(out / "tables"),
            "--extensibility", str(out / "none.json"), "--claims", str(out / "none.json"), "--hardware", str(out / "none.json")]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = [0.0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss_mb(proc.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    sampler.join()
    if proc.returncode != 0:
        sys.exit(f"mtap-aggregate failed ({proc.returncode}): {stderr.strip().splitlines()[-1:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    # ru_maxrss of children is the largest single descendant so far (KiB on Linux); each run is the same size
    return wall, peak[0], cpu, after.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200_000)
    parser.add_argument("--target", type=float, default=TARGET_S, help="seconds wall")
    parser.add_argument("--target-rss-mb", type=float, default=TARGET_RSS_MB)
    parser.add_argument("--repeat", type=int, default=3, help="runs; the fastest is reported (others' noise is the machine's)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder, out = Path(tmp) / "evaluation", Path(tmp) / "out"
        size = generate(folder, args.cases)
        runs = [run_once(folder, out) for _ in range(args.repeat)]
        agg_mb = (out / "agg.json").stat().st_size / 1e6
    wall = min(w for w, _, _, _ in runs)
    rss = max(r for _, r, _, _ in runs)
    cpu = min(c for _, _, c, _ in runs)
    single = max(s for _, _, _, s in runs)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    ok = wall <= args.target and rss <= args.target_rss_mb
    print(f"mtap-aggregate run over {args.cases} cases in {args.cases // 1000} documents ({size / 1e6:.0f} MB), "
          f"aggregate document {agg_mb:.0f} MB")
    print(f"wall: best {wall:.2f} s of {args.repeat} ({', '.join(f'{w:.2f}' for w, _, _, _ in runs)}), CPU {cpu:.2f} s; "
          f"peak RSS {rss:.0f} MB (command and workers together; largest single process {single:.0f} MB) "
          f"(targets <= {args.target:.1f} s, <= {args.target_rss_mb:.0f} MB; 1-min load {load:.1f} on {os.cpu_count()} cores): "
          f"{'OK' if ok else 'OVER TARGET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
