"""ONNX Runtime CPU profiler: the measuring half of the nn-Meter backend ``ort_cpu`` (backend.py).

Imports only the standard library, numpy, torch, onnx and onnxruntime (never mtap_schemas or
nn_meter), so it runs as it is on a measurement machine that has nothing else:

    python -m mtap_nnmeter_runner.ortprofile --plan PLAN.json --out DIR [--threads 1,4]
        [--nn-modules DIR] [--deadline-s S] [--done FILE]
    python -m mtap_nnmeter_runner.ortprofile --fusion TESTCASES_DIR --out DIR [--threads 1,4] [--rounds 3]

``--fusion``: nn-Meter's fusion-rule test cases (ONNX files and ``testcases.json`` written by
``nnmeter-runner detect-fusion --generate``), each model timed ``--rounds`` times at every thread
count with ``RULE_TIMING``, and a null model (one Identity node) per round: ``fusion.jsonl``, read
back by ``nnmeter-runner detect-fusion --measurements``.

PLAN.json: ``{"kernels": {kernel_type: {id: {"config": {...}}}}, "models": [name, ...]}`` (kernel
configurations sampled with nn-Meter's own samplers by ``nnmeter-runner sample``). Each kernel is
built with nn-Meter's own torch kernel blocks (``nn_meter/builder/nn_modules/torch_networks``,
found through ``--nn-modules`` = the folder ``nn_meter/builder`` of an nn-meter installation or
unpacked wheel, imported without importing nn_meter itself), exported to ONNX with the arguments
of nn-Meter's ``TorchBlock.save_model`` (opset 12, constant folding) but torch's TorchScript
exporter (``dynamo=False``: torch >= 2.9's default dynamo exporter needs onnxscript), and timed
with onnxruntime's CPU execution provider: one ``InferenceSession`` per thread count
(``intra_op_num_threads`` = T, ``inter_op_num_threads`` = 1, sequential execution, all graph
optimisations), random float32 inputs, wall-clock time of ``session.run`` (``perf_counter``)
after warm-up. Models are built from ``models.py`` and exported with opset 13.

Results are appended line by line (``kernels.jsonl``, ``models.jsonl``) so an interrupted run
keeps what it measured; ``environment.json`` records the CPU (``lscpu``), the process's CPU
affinity and the package versions.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: kernel type -> nn-Meter torch block class (nn_meter.builder.kernel_predictor_builder
#: .data_sampler.utils.__BUILTIN_KERNELS__, whose torch implementations live in torch_networks/blocks.py)
BLOCKS: dict[str, str] = {
    "conv-bn-relu": "ConvBnRelu",
    "dwconv-bn-relu": "DwConvBnRelu",
    "maxpool": "MaxPoolBlock",
    "avgpool": "AvgPoolBlock",
    "fc": "FCBlock",
    "concat": "ConcatBlock",
    "split": "SplitBlock",
    "channelshuffle": "ChannelShuffle",
    "se": "SEBlock",
    "global-avgpool": "GlobalAvgPoolBlock",
    "bnrelu": "BnRelu",
    "bn": "BnBlock",
    "hswish": "HswishBlock",
    "relu": "ReluBlock",
    "addrelu": "AddRelu",
    "add": "AddBlock",
}

KERNEL_OPSET = 12  # nn-Meter's TorchBlock.save_model
MODEL_OPSET = 13


def stats(samples_ms: list[float]) -> dict[str, Any]:
    """Median, mean, spread of one series of timings (ms)."""
    s = sorted(samples_ms)
    n = len(s)

    def q(p: float) -> float:
        # linear interpolation between closest ranks (numpy's default)
        pos = (n - 1) * p
        lo = int(pos)
        hi = min(lo + 1, n - 1)
        return s[lo] + (s[hi] - s[lo]) * (pos - lo)

    med = statistics.median(s)
    return {
        "median": med,
        "mean": statistics.fmean(s),
        "std": statistics.pstdev(s) if n > 1 else 0.0,
        "p10": q(0.10),
        "p90": q(0.90),
        "min": s[0],
        "max": s[-1],
        "n": n,
        "spread": (q(0.90) - q(0.10)) / med if med > 0 else None,
    }


def _options(threads: int):
    """The session options every timing and the optimised-graph check use (one place)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return opts


def session(onnx_bytes: bytes, threads: int):
    import onnxruntime as ort

    return ort.InferenceSession(onnx_bytes, sess_options=_options(threads), providers=["CPUExecutionProvider"])


def optimized_ops(onnx_bytes: bytes, threads: int) -> list[str]:
    """The operator types of the graph ONNX Runtime runs: the session's optimised model (same options as
    ``session``, saved through ``optimized_model_filepath``), node by node. Where ONNX Runtime fused
    two operators the list shows one (e.g. Conv + Relu -> FusedConv)."""
    import tempfile

    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="mtap-ort-opt-") as tmp:
        opts = _options(threads)
        opts.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(onnx_bytes, sess_options=opts, providers=["CPUExecutionProvider"])
        graph = onnx.load(opts.optimized_model_filepath, load_external_data=False).graph
        return [n.op_type for n in graph.node]


def feeds_for(sess, seed: int = 0) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    out = {}
    for inp in sess.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
        if "int" in inp.type:
            out[inp.name] = np.zeros(shape, dtype=np.int64)
        else:
            out[inp.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def time_session(
    sess, feeds: dict[str, Any], *, warmup_runs: int, warmup_s: float, min_runs: int, target_s: float, max_runs: int
) -> list[float]:
    """Warm up, then time ``sess.run`` until min_runs and target_s are both reached (or max_runs)."""
    run = sess.run
    t0 = time.perf_counter()
    done = 0
    while done < warmup_runs or (time.perf_counter() - t0 < warmup_s and done < max_runs):
        run(None, feeds)
        done += 1
    samples: list[float] = []
    spent = 0.0
    while len(samples) < max_runs and (len(samples) < min_runs or spent < target_s):
        a = time.perf_counter()
        run(None, feeds)
        dt = time.perf_counter() - a
        spent += dt
        samples.append(dt * 1e3)
    return samples


def measure(onnx_bytes: bytes, threads: list[int], **timing: Any) -> dict[str, Any]:
    out = {}
    for t in threads:
        sess = session(onnx_bytes, t)
        samples = time_session(sess, feeds_for(sess), **timing)
        out[f"t{t}"] = stats(samples)
        del sess
    return out


# ----------------------------------------------------------------------------- kernels


def load_blocks(nn_modules_parent: str | os.PathLike[str]):
    """nn-Meter's torch kernel blocks, imported as the top-level package ``nn_modules`` from the folder
    ``nn_meter/builder`` (nn_modules/__init__.py imports only its interface; nn_meter is not imported)."""
    parent = str(Path(nn_modules_parent))
    if parent not in sys.path:
        sys.path.insert(0, parent)
    from nn_modules.torch_networks import blocks  # type: ignore[import-not-found]

    return blocks


def export_kernel(blocks, kernel_type: str, config: dict[str, Any]) -> tuple[bytes, list[list[int]]]:
    """ONNX bytes of nn-Meter's torch block for (kernel_type, config), and its input shapes.

    ``config`` is updated in place as nn-Meter's block does it (its pooling operators add
    ``POOL_STRIDES``, which nn-Meter's pooling feature parser then reads), like nn-Meter's
    ``KernelGenerator`` keeps the config its block returns."""
    import torch

    block = getattr(blocks, BLOCKS[kernel_type])(config, 1)
    model = block.get_model()
    model.eval()
    shapes = [list(s) for s in block.input_tensor_shape]
    tensors = [torch.randn([1] + s) for s in shapes]
    # a block of several inputs (concat) takes them as one list, as nn-Meter's get_inputs_by_shapes gives them
    inputs = (tensors[0],) if len(tensors) == 1 else (tensors,)
    names = ["input"] if len(tensors) == 1 else [f"input{i}" for i in range(len(tensors))]
    buf = io.BytesIO()
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            inputs,
            buf,
            input_names=names,
            output_names=["output"],
            export_params=True,
            opset_version=KERNEL_OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    return buf.getvalue(), shapes


KERNEL_TIMING = {"warmup_runs": 3, "warmup_s": 0.01, "min_runs": 10, "target_s": 0.05, "max_runs": 100}
MODEL_TIMING = {"warmup_runs": 5, "warmup_s": 0.3, "min_runs": 20, "target_s": 1.0, "max_runs": 300}
#: fusion-rule test cases (nn-Meter's rule tester compares a two-operator block with its two operators
#: alone: differences of a few microseconds, so more runs than a kernel gets)
RULE_TIMING = {"warmup_runs": 5, "warmup_s": 0.05, "min_runs": 20, "target_s": 0.2, "max_runs": 2000}


def null_model() -> bytes:
    """ONNX bytes of one Identity node on a [1, 1] float tensor: what ``session.run`` costs with
    (almost) no work, recorded beside the fusion-rule test cases, whose decision compares one
    session's time with the sum of two."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "null",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", KERNEL_OPSET)])
    model.ir_version = 7
    return model.SerializeToString()


def interleaved(kernels: dict[str, dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every (type, id, entry), ordered so that any prefix holds each type in proportion to its count."""
    items = []
    for ktype, entries in kernels.items():
        n = len(entries)
        for i, (kid, entry) in enumerate(entries.items()):
            items.append(((i + 0.5) / n, ktype, kid, entry))
    items.sort(key=lambda x: (x[0], x[1]))
    return [(k, i, e) for _f, k, i, e in items]


# ----------------------------------------------------------------------------- models


def export_model(name: str) -> bytes:
    import torch

    from mtap_nnmeter_runner.models import build, example_input

    torch.manual_seed(0)
    model = build(name).eval()
    example = example_input(name)
    buf = io.BytesIO()
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), buf, dynamo=False, opset_version=MODEL_OPSET, do_constant_folding=True)
    return buf.getvalue()


# ----------------------------------------------------------------------------- environment


def environment() -> dict[str, Any]:
    def text(cmd: list[str]) -> str | None:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            return None

    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for mod in ("onnxruntime", "torch", "numpy", "onnx", "torchvision"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception as exc:  # noqa: BLE001 - recorded, not fatal
            versions[mod] = f"unavailable ({type(exc).__name__})"
    gov = None
    try:
        gov = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").read_text().strip()
    except OSError:
        pass
    mhz: list[float] = []
    try:
        mhz = [float(line.split(":", 1)[1]) for line in Path("/proc/cpuinfo").read_text().splitlines()
               if line.startswith("cpu MHz")]
    except (OSError, ValueError):
        pass
    cpufreq: dict[str, Any] = {}
    for n in sorted(os.sched_getaffinity(0)):
        folder = Path(f"/sys/devices/system/cpu/cpu{n}/cpufreq")
        entry = {}
        for name in ("scaling_governor", "scaling_driver", "scaling_cur_freq", "scaling_min_freq", "scaling_max_freq",
                     "cpuinfo_max_freq"):
            try:
                entry[name] = (folder / name).read_text().strip()
            except OSError:
                pass
        if entry:
            cpufreq[str(n)] = entry
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "lscpu": text(["lscpu"]),
        "governor": gov,
        "cpu_mhz": mhz,  # /proc/cpuinfo, every CPU, when environment() ran
        "cpufreq": cpufreq or None,  # /sys/.../cpufreq of the pinned CPUs (absent in many VMs)
        "loadavg": os.getloadavg(),
    }


def pick_cpus(count: int) -> list[int]:
    """``count`` logical CPUs on distinct physical cores (no two SMT siblings), skipping CPU 0 (which
    takes most interrupts) where the machine has enough; the highest-numbered cores first."""
    allowed = sorted(os.sched_getaffinity(0))
    seen: set[tuple[str, str]] = set()
    chosen: list[int] = []
    for cpu in sorted(allowed, reverse=True):
        if cpu == 0 and len(allowed) > count:
            continue
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            core = ((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip())
        except OSError:
            core = ("?", str(cpu))
        if core in seen:
            continue
        seen.add(core)
        chosen.append(cpu)
        if len(chosen) == count:
            break
    return sorted(chosen) if len(chosen) == count else allowed[:count]


def file_hashes(folder: str | None) -> dict[str, str]:
    import hashlib

    if not folder:
        return {}
    root = Path(folder) / "nn_modules"
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.py"))}


# ----------------------------------------------------------------------------- main


def _append(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
        fh.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mtap_nnmeter_runner.ortprofile", description=__doc__.split("\n\n")[0])
    ap.add_argument("--plan", type=Path, default=None)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--threads", default="1,4")
    ap.add_argument("--nn-modules", default=None, help="folder nn_meter/builder (holding nn_modules/)")
    ap.add_argument("--deadline-s", type=float, default=None, help="stop starting kernels after this many seconds")
    ap.add_argument("--done", type=Path, default=None, help="kernels.jsonl of an earlier run: skip its kernels")
    ap.add_argument("--models-first", action="store_true")
    ap.add_argument("--resume", action="store_true",
                    help="continue in --out: skip kernels and models already timed there (kernels.jsonl, models.jsonl)")
    ap.add_argument("--cpus", default=None, help="'auto': pin the process to max(threads) physical cores")
    ap.add_argument("--fusion", type=Path, default=None,
                    help="folder of nn-Meter fusion-rule test cases (testcases.json + ONNX files, written by "
                         "`nnmeter-runner detect-fusion --generate`): time them instead of a plan")
    ap.add_argument("--rounds", type=int, default=3, help="--fusion: passes over all test-case models")
    args = ap.parse_args(argv)
    if (args.plan is None) == (args.fusion is None):
        ap.error("give exactly one of --plan and --fusion")
    t_start = time.monotonic()
    threads = [int(t) for t in args.threads.split(",")]
    before = os.sched_getaffinity(0)
    if args.cpus == "auto":
        os.sched_setaffinity(0, pick_cpus(max(threads)))
    elif args.cpus:
        os.sched_setaffinity(0, [int(c) for c in args.cpus.split(",")])
    try:
        return _run_fusion(args, threads, t_start) if args.fusion else _run(args, threads, t_start)
    finally:  # a caller in the same process (build-predictor) gets its CPUs back
        os.sched_setaffinity(0, before)


def _run_fusion(args: argparse.Namespace, threads: list[int], t_start: float) -> int:
    """Time every model of nn-Meter's fusion-rule test cases ``rounds`` times (one pass over all models
    per round) at each thread count, and the null model once per round: ``fusion.jsonl``."""
    listing = (args.fusion / "testcases.json").read_bytes()
    cases = json.loads(listing)["testcases"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "testcases.json").write_bytes(listing)  # what was timed, beside the timings
    env = environment()
    env["threads"] = threads
    env["timing"] = {"fusion": RULE_TIMING}
    env["testcases_sha256"] = __import__("hashlib").sha256((args.fusion / "testcases.json").read_bytes()).hexdigest()
    (args.out / "environment.json").write_text(json.dumps(env, indent=1, sort_keys=True))
    print(f"cpu {env['cpu']}, affinity {env['affinity']}, {env['packages']}", flush=True)
    out = args.out / "fusion.jsonl"
    for r in range(1, args.rounds + 1):
        if args.deadline_s is not None and time.monotonic() - t_start > args.deadline_s:
            print(f"deadline reached before round {r}", flush=True)
            break
        _append(out, {"null_model": True, "round": r, **measure(null_model(), threads, **RULE_TIMING)})
        for name, parts in cases.items():
            for part, model in parts.items():
                try:
                    onnx_bytes = (args.fusion / model["model"]).read_bytes()
                    rec = {"testcase": name, "part": part, "model": model["model"], "round": r,
                           **measure(onnx_bytes, threads, **RULE_TIMING)}
                    if r == 1:
                        rec["ort_ops"] = optimized_ops(onnx_bytes, max(threads))
                except Exception as exc:  # noqa: BLE001 - recorded per model
                    rec = {"testcase": name, "part": part, "model": model["model"], "round": r,
                           "error": f"{type(exc).__name__}: {exc}"[:500]}
                _append(out, rec)
        print(f"round {r} done, {time.monotonic() - t_start:.0f} s", flush=True)
    print(f"done in {time.monotonic() - t_start:.0f} s", flush=True)
    return 0


def _run(args: argparse.Namespace, threads: list[int], t_start: float) -> int:
    plan = json.loads(args.plan.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    env = _plan_environment(args, threads)
    print(f"cpu {env['cpu']}, affinity {env['affinity']}, {env['packages']}", flush=True)
    models = list(plan.get("models", []))
    if args.resume:
        models = [m for m in models if (m,) not in _timed(args.out / "models.jsonl", "model")]
    if models and args.models_first:
        _time_models(args, models, threads, t_start)
    kernels = plan.get("kernels", {})
    if kernels:
        _time_kernels(args, kernels, threads, t_start)
    if models and not args.models_first:
        _time_models(args, models, threads, t_start)
    if args.resume and (args.out / "models.jsonl").exists():
        plan = {**plan, "recheck_models": []}  # a resumed call re-times nothing
    for name in plan.get("recheck_models", []):
        _time_models(args, [name], threads, t_start, tag="recheck")
    print(f"done in {time.monotonic() - t_start:.0f} s", flush=True)
    return 0


def _plan_environment(args: argparse.Namespace, threads: list[int]) -> dict[str, Any]:
    """The run's environment, written to ``environment.json`` (a resumed call's is one more line of
    ``environments.jsonl``)."""
    env = environment()
    env["threads"] = threads
    env["nn_modules_sha256"] = file_hashes(args.nn_modules)
    env["timing"] = {"kernels": KERNEL_TIMING, "models": MODEL_TIMING, "kernel_opset": KERNEL_OPSET, "model_opset": MODEL_OPSET}
    if args.resume and (args.out / "environment.json").exists():
        # the first call's environment stays; every later call's is one more line
        env["at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        _append(args.out / "environments.jsonl", env)
    else:
        (args.out / "environment.json").write_text(json.dumps(env, indent=1, sort_keys=True))
    return env


def _timed(path: Path, key: str) -> set[Any]:
    """The ``key`` values (comma-separated fields) of the records in ``path`` timed without error."""
    if not path.is_file():
        return set()
    out = set()
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            if "error" not in r:
                out.add(tuple(r[k] for k in key.split(",")))
    return out


def _time_models(args: argparse.Namespace, names: list[str], threads: list[int], t_start: float, tag: str = "") -> None:
    """Export and time each whole model: one line of ``models.jsonl`` each."""
    for name in names:
        a = time.perf_counter()
        try:
            onnx_bytes = export_model(name)
            rec = {
                "model": name,
                "export_s": round(time.perf_counter() - a, 3),
                "onnx_opset": MODEL_OPSET,
                "onnx_bytes": len(onnx_bytes),
                **measure(onnx_bytes, threads, **MODEL_TIMING),
            }
        except Exception as exc:  # noqa: BLE001 - recorded per model
            rec = {"model": name, "error": f"{type(exc).__name__}: {exc}"[:500]}
        rec["pass"] = tag or "main"
        rec["at_s"] = round(time.monotonic() - t_start, 1)
        _append(args.out / "models.jsonl", rec)
        print(
            f"model {name}: "
            + ", ".join(f"{k} {v['median']:.3f} ms" for k, v in rec.items() if k.startswith("t") and isinstance(v, dict)),
            flush=True,
        )


def _time_kernels(args: argparse.Namespace, kernels: dict[str, Any], threads: list[int], t_start: float) -> None:
    """Export and time each planned kernel not yet timed (``--done``, or ``--resume``), interleaved by
    type, until the deadline: one line of ``kernels.jsonl`` each."""
    blocks = load_blocks(args.nn_modules)
    done: set[Any] = _timed(args.done, "kernel,id") if args.done else set()
    if args.resume:
        done |= _timed(args.out / "kernels.jsonl", "kernel,id")
    count = 0
    for ktype, kid, entry in interleaved(kernels):
        if (ktype, kid) in done:
            continue
        if args.deadline_s is not None and time.monotonic() - t_start > args.deadline_s:
            print(f"deadline reached after {count} kernels", flush=True)
            break
        a = time.perf_counter()
        try:
            config = dict(entry["config"])
            onnx_bytes, shapes = export_kernel(blocks, ktype, config)
            entry = {**entry, "config": config}
            b = time.perf_counter()
            rec = {
                "kernel": ktype,
                "id": kid,
                "config": entry["config"],
                "shapes": shapes,
                "export_s": round(b - a, 4),
                **measure(onnx_bytes, threads, **KERNEL_TIMING),
            }
        except Exception as exc:  # noqa: BLE001 - recorded per kernel
            rec = {"kernel": ktype, "id": kid, "config": entry["config"], "error": f"{type(exc).__name__}: {exc}"[:500]}
        _append(args.out / "kernels.jsonl", rec)
        count += 1
        if "error" not in rec:
            done.add((ktype, kid))
        if count % 50 == 0:
            print(f"{count} kernels, {time.monotonic() - t_start:.0f} s", flush=True)
    total = sum(len(v) for v in kernels.values())
    left = sum((k, i) not in done for k, v in kernels.items() for i in v)
    print(f"kernels: {total - left} of {total} timed ({count} attempted in this call), {left} left", flush=True)

if __name__ == "__main__":
    sys.exit(main())
