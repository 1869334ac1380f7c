"""Run NeuSight's own predictor for a list of jobs, inside NeuSight's Python environment.

This file is executed as a script (``python shim.py JOBS.json``) by the runner's live mode with
the interpreter that has NeuSight's dependencies (torch, transformers 4.38.1, pandas, scipy). It
imports nothing from mtap.

Why a shim: ``neusight/__init__.py`` imports ``neusight.Dataset.collect``, which creates
``torch.cuda.Event`` objects at import time and therefore fails on CPU-only PyTorch, although
prediction itself never touches CUDA (operator graphs are traced on CPU, ``bench=False``). The
shim registers an empty ``neusight`` package whose ``__path__`` is the checkout's ``neusight/``
folder, so that ``neusight.Prediction.predictor`` is imported from the unmodified checkout without
executing ``neusight/__init__.py``. Its operator-graph tracer (``Tracing/analysis.py``
``run_kernel``) still constructs two ``torch.cuda.Event`` objects per operator even when it does not
time anything (``measure_time=False``); on CPU-only PyTorch, and only there, the shim replaces
``torch.cuda.Event`` in this subprocess by a stand-in whose construction succeeds and whose every
use (``record``, ``elapsed_time``, ``synchronize``, ``query``) raises, so no timing can ever be
faked. It then applies the two settings that ``__init__`` makes
(``cudnn.benchmark = True``, ``cudnn.allow_tf32 = False``) and calls ``NeusightPredictor`` exactly
as NeuSight's ``scripts/pred.py`` does. No NeuSight file is changed.

It also refuses to run a learned predictor whose ``model.pth`` files are absent: NeuSight itself
would silently predict with random weights (``MLPredictor`` loads ``model.pth`` only if present).

Data-parallel jobs (``dp<N>``): NeuSight names their raw operator trace after the per-GPU batch
(``<model>-train-<seq>-<batch/N>.csv``) but, when that file is absent, traces the *global* batch
under that name (``Tracing/trace.py`` ``trace_graph`` ignores ``dp_degree``), so its result depends
on what ran before. Its own script (``scripts/asplos/run_pred_nvidia_neusight.py``) predicts the
single-GPU configurations before the distributed ones, so the file holds the per-GPU batch; the shim
keeps that order, running NeuSight's prediction of the per-GPU configuration first in the same
result folder.

One line per job is printed to stdout: ``MTAP-RESULT {json}`` with the job id, whether it
succeeded, the path of NeuSight's result JSON, the tail of NeuSight's own printed output, and
the error (type and message) if it failed.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import traceback
import types
from pathlib import Path

#: Predictor architectures that need trained parameters (model.pth).
LEARNED = ("MLP_WAVE", "HABITAT")
OPS = ("BMM", "LINEAR", "VEC", "SOFTMAX", "LN")


def missing_weights(predictor_path: Path) -> list[str]:
    missing = []
    for op in OPS:
        config = predictor_path / op / "config.json"
        try:
            arch = json.loads(config.read_text())["architecture"]
        except (OSError, ValueError, KeyError):
            missing.append(str(config))
            continue
        if arch.startswith(LEARNED):
            weights = predictor_path / op / "model.pth"
            if not weights.is_file() or weights.stat().st_size < 1024:
                missing.append(str(weights))
    return missing


class UnusableCudaEvent:
    """Stand-in for ``torch.cuda.Event`` on CPU-only PyTorch: constructible, never usable."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def _refuse(self, *args, **kwargs):
        raise RuntimeError("mtap shim: NeuSight tried to time a CUDA event on CPU-only PyTorch; run with a CUDA build")

    record = elapsed_time = synchronize = query = wait = _refuse


def import_predictor(neusight_dir: Path):
    package_dir = neusight_dir / "neusight"
    if not (package_dir / "Prediction" / "predictor.py").is_file():
        raise FileNotFoundError(f"{package_dir}/Prediction/predictor.py not found: not a NeuSight checkout")
    pkg = types.ModuleType("neusight")
    pkg.__path__ = [str(package_dir)]
    pkg.__file__ = str(package_dir / "__init__.py")
    sys.modules["neusight"] = pkg
    import torch

    if not torch.cuda.is_available():
        torch.cuda.Event = UnusableCudaEvent
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    from neusight.Prediction.predictor import NeusightPredictor  # type: ignore[import-not-found]

    return NeusightPredictor


def node_names(text: str) -> set[str]:
    """The node names in a dependency cell of NeuSight's raw trace, in either format its code has written:
    ``str(node.users)`` before commit d3e8444 (``{name: None, ...}``), and since then
    ``str([m.name for m in n.all_input_nodes])`` (``['name', ...]``) and ``str([u for u in n.users])`` (``[name, ...]``)."""
    inner = text.strip()[1:-1].strip()
    if not inner:
        return set()
    out = set()
    for item in inner.split(", "):
        item = item.split(":", 1)[0] if ":" in item else item
        out.add(item.strip().strip("'\""))
    return out


def patch_dependency_parser() -> str:
    """NeuSight at commit 6945927 cannot parse its own traces for torch.compile-style fusion: commit d3e8444
    ("Fixed FX node trace parsing") changed ``Tracing/trace.py`` to write node lists, but
    ``Tracing/parse.py`` ``parse_dependency`` still cuts each item at ``':'`` (the old dict format), so every
    name loses its last character (``size`` -> ``siz``) and the fuser (``Opgraph/fuse.py``, the only user of
    the Prev/Next columns) fails with ``KeyError: 'siz'``. For fusion jobs only, the shim replaces
    ``parse_dependency`` by :func:`node_names`, which reads both formats. Returns the note recorded in the case."""
    from neusight.Tracing import parse as neusight_parse  # type: ignore[import-not-found]

    neusight_parse.parse_dependency = node_names
    return (
        "mtap shim: Tracing/parse.py parse_dependency replaced for this fusion job (reads the node lists "
        "Tracing/trace.py writes since NeuSight commit d3e8444; unpatched it raises KeyError on truncated names)"
    )


def per_gpu_batch(job: dict) -> int | None:
    """For a data-parallel job (options ``dp<N>``), the per-GPU batch whose raw trace NeuSight reads; else None."""
    m = re.fullmatch(r"dp([0-9]+)", job.get("options") or "")
    if not m:
        return None
    return job["batch_size"] // int(m.group(1))


def run_job(NeusightPredictor, job: dict) -> dict:
    predictor_path = Path(job["predictor_path"])
    missing = missing_weights(predictor_path)
    if missing:
        return {"id": job["id"], "ok": False, "error": {"kind": "weights-missing", "message": "missing: " + ", ".join(missing)}}
    out = io.StringIO()
    patched = None
    try:
        if job.get("options") == "fusion":
            patched = patch_dependency_parser()
        with contextlib.redirect_stdout(out):
            predictor = NeusightPredictor(
                predictor_name=job["predictor_name"],
                predictor_path=job["predictor_path"],
                tile_dataset_dir=job["tile_dataset_dir"],
            )
            per_gpu = per_gpu_batch(job)
            if per_gpu is not None:
                # NeuSight's data-parallel prediction reads the raw trace named after the per-GPU batch, and
                # traces the *global* batch under that name when the file is absent. Its own script
                # (run_pred_nvidia_neusight.py) predicts the single-GPU configurations first, so the file exists and
                # holds the per-GPU batch; the same order here: the per-GPU configuration, then the job itself.
                predictor.predict(
                    device_config_path=job["device_config_path"],
                    model_config_path=job["model_config_path"],
                    sequence_length=job["sequence_length"],
                    batch_size=per_gpu,
                    execution_type=job["execution_type"],
                    result_dir=job["result_dir"],
                    options="",
                )
                out.truncate(0)
                out.seek(0)
            predictor.predict(
                device_config_path=job["device_config_path"],
                model_config_path=job["model_config_path"],
                sequence_length=job["sequence_length"],
                batch_size=job["batch_size"],
                execution_type=job["execution_type"],
                result_dir=job["result_dir"],
                options=job["options"],
            )
    except Exception as exc:  # noqa: BLE001 - reported per job, the runner records it as failed
        tb = traceback.format_exc().strip().splitlines()
        return {
            "id": job["id"],
            "ok": False,
            "stdout_tail": out.getvalue()[-2000:],
            "error": {"kind": "tool-crashed", "message": f"{type(exc).__name__}: {exc}".strip()[:500], "traceback_tail": tb[-6:]},
        }
    result = {"id": job["id"], "ok": True, "stdout_tail": out.getvalue()[-2000:]}
    if patched:
        result["patched"] = patched
    return result


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text())
    NeusightPredictor = import_predictor(Path(spec["neusight_dir"]))
    versions = {"python": sys.version.split()[0]}
    for name in ("torch", "transformers", "pandas", "numpy", "scipy"):
        module = sys.modules.get(name) or __import__(name)
        versions[name] = getattr(module, "__version__", "unknown")
    print("MTAP-ENV " + json.dumps(versions, sort_keys=True), flush=True)
    for job in spec["jobs"]:
        result = run_job(NeusightPredictor, job)
        print("MTAP-RESULT " + json.dumps(result, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
