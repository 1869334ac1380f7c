"""Train NeuSight's learned (MLP_WAVE) predictors with NeuSight's own code, inside its Python.

Executed as a script (``python train_shim.py SPEC.json``) by ``neusight-runner train`` with the
interpreter that has NeuSight's dependencies. It imports nothing from mtap.

What it runs is NeuSight's ``scripts/train.py`` step by step, unchanged in substance:

1. **Training sets.** NeuSight's snapshot ships the per-GPU kernel measurements
   (``scripts/asplos/data/dataset/train/collect/<op>/p2.1.0/<GPU>.csv``) and the merged
   ``ln.csv``, ``softmax.csv``, ``elem.csv``; the merged ``bmm.csv`` and ``linear.csv`` (and
   ``vec.csv``, the tile table prediction reads) are absent from the snapshot (blobs missing). They
   are rebuilt here exactly as NeuSight's ``scripts/asplos/run_dataset.py`` does it, with NeuSight's
   own ``neusight.Dataset.collect.dataset_merge`` (bmm, linear) and the same ``pd.concat`` of
   ln + softmax + elem (vec), into ``WORK/dataset/train/`` next to a copy of the checkout's
   ``device_configs/`` (NeuSight's ``Dataset`` reads the device features from there). The
   checkout is never written to.
2. **Training.** For each predictor: ``torch.manual_seed(seed)``, ``random.seed``,
   ``np.random.seed`` (as ``scripts/train.py``: seed 0), ``neusight.model_provider(config,
   device="cpu"|"cuda")``, ``neusight.Trainer(model, save_path, log_dir).train(trainset, epochs)``
   — NeuSight's trainer: 80/20 ``random_split``, AdamW, the config's loss, lr and batch sizes, and
   ``model.pth`` saved whenever the validation mean relative error improves.

Stand-ins, both only for bookkeeping, neither touches the numbers:

* ``neusight/__init__.py`` is not executed (it creates ``torch.cuda.Event`` at import, failing on
  CPU-only torch); the checkout's ``neusight/`` is registered as a package, as in ``shim.py``.
* ``neusight.Dataset.collect`` (home of ``dataset_merge``) creates two ``torch.cuda.Event`` at
  import; on CPU-only torch they are a stand-in that raises on any use (nothing here times).
* NeuSight's trainer logs to TensorBoard (``torch.utils.tensorboard.SummaryWriter``), which is not
  installed in the NeuSight venv; a recorder with the same ``add_scalar``/``close`` methods is put
  in its place and records every scalar the trainer logs (train_loss, validation avg_err and
  max_err per epoch) — the loss curve and validation error of the training document.

One line per predictor on stdout: ``MTAP-TRAIN {json}``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import random
import shutil
import sys
import time
import traceback
import types
from pathlib import Path

RECORDED: list[tuple[str, float, int]] = []


class ScalarRecorder:
    """Stand-in for TensorBoard's SummaryWriter: records what NeuSight's trainer logs."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def add_scalar(self, tag, value, step) -> None:
        RECORDED.append((str(tag), float(value), int(step)))

    def close(self) -> None:
        pass


class UnusableCudaEvent:
    """Stand-in for ``torch.cuda.Event`` on CPU-only torch (as in shim.py): constructible, never usable."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def _refuse(self, *args, **kwargs):
        raise RuntimeError("mtap train shim: NeuSight tried to time a CUDA event on CPU-only PyTorch")

    record = elapsed_time = synchronize = query = wait = _refuse


def import_neusight(neusight_dir: Path):
    package_dir = neusight_dir / "neusight"
    if not (package_dir / "Model" / "trainer.py").is_file():
        raise FileNotFoundError(f"{package_dir}/Model/trainer.py not found: not a NeuSight checkout")
    pkg = types.ModuleType("neusight")
    pkg.__path__ = [str(package_dir)]
    pkg.__file__ = str(package_dir / "__init__.py")
    sys.modules["neusight"] = pkg
    tb = types.ModuleType("torch.utils.tensorboard")
    tb.SummaryWriter = ScalarRecorder
    sys.modules["torch.utils.tensorboard"] = tb
    import torch

    if not torch.cuda.is_available():
        torch.cuda.Event = UnusableCudaEvent
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    from neusight.Dataset.collect import dataset_merge  # type: ignore[import-not-found]
    from neusight.Model.model_provider import model_provider  # type: ignore[import-not-found]
    from neusight.Model.trainer import Trainer  # type: ignore[import-not-found]

    return dataset_merge, model_provider, Trainer


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def prepare(dataset_merge, asplos: Path, work: Path) -> dict:
    import pandas as pd

    src = asplos / "data" / "dataset" / "train"
    dst = work / "dataset" / "train"
    dst.mkdir(parents=True, exist_ok=True)
    if (dst / "device_configs").exists():
        shutil.rmtree(dst / "device_configs")
    shutil.copytree(src / "device_configs", dst / "device_configs")
    for name in ("ln.csv", "softmax.csv", "elem.csv"):
        shutil.copyfile(src / name, dst / name)
    for op in ("bmm", "linear"):
        dataset_merge(src / "collect" / op, dst / f"{op}.csv")
    dfs = [pd.read_csv(dst / name) for name in ("ln.csv", "softmax.csv", "elem.csv")]
    pd.concat(dfs).to_csv(dst / "vec.csv", index=False)
    out = {}
    for path in sorted(dst.glob("*.csv")):
        with open(path, "rb") as f:
            rows = sum(1 for _ in f) - 1
        out[path.name] = {"sha256": sha256(path), "rows": rows}
    return out


def train_one(model_provider, Trainer, job: dict, device: str) -> dict:
    import numpy as np
    import torch

    seed = int(job["seed"])
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    RECORDED.clear()
    save = Path(job["save_path"])
    save.mkdir(parents=True, exist_ok=True)
    out = io.StringIO()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out):
        model = model_provider(job["config_path"], device=device)
        trainer = Trainer(model, save_path=str(save), log_dir=str(Path(job["log_dir"])))
        trainer.train(trainset_path=job["trainset_path"], epochs=int(job["epochs"]))
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    curve: dict[int, dict] = {}
    for tag, value, step in RECORDED:
        curve.setdefault(step, {"epoch": step})[tag] = value
    weights = save / "model.pth"
    return {
        "name": job["name"],
        "ok": True,
        "wall_s": wall,
        "cpu_s": cpu,
        "epochs": [curve[k] for k in sorted(curve)],
        "weights_sha256": sha256(weights) if weights.is_file() else None,
        "weights_bytes": weights.stat().st_size if weights.is_file() else None,
        "stdout_tail": out.getvalue()[-1500:],
    }


def compare(paths: list[str]) -> dict:
    """sha256 of each model.pth's tensors (name, dtype, shape, bytes in order) and the largest absolute
    parameter difference between the first and every other file (our own files, written by this shim)."""
    import torch

    states = [torch.load(p, map_location="cpu", weights_only=True)["model"] for p in paths]
    digests = []
    for state in states:
        h = hashlib.sha256()
        for name in sorted(state):
            t = state[name].detach().cpu().contiguous()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.numpy().tobytes())
        digests.append(h.hexdigest())
    diff = 0.0
    for other in states[1:]:
        for name, t in states[0].items():
            if t.is_floating_point():
                diff = max(diff, float((t - other[name]).abs().max()))
    return {"state_sha256": digests, "file_sha256": [sha256(Path(p)) for p in paths], "max_abs_param_diff": diff}


def main(argv: list[str]) -> int:
    if argv[1] == "--compare":
        print("MTAP-COMPARE " + json.dumps(compare(argv[2:]), sort_keys=True), flush=True)
        return 0
    spec = json.loads(Path(argv[1]).read_text())
    neusight_dir = Path(spec["neusight_dir"])
    threads = spec.get("threads")
    dataset_merge, model_provider, Trainer = import_neusight(neusight_dir)
    import numpy
    import pandas
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    device = spec.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    env = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "device": device,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
        "platform": platform.platform(),
    }
    print("MTAP-ENV " + json.dumps(env, sort_keys=True), flush=True)
    if spec.get("prepare", True):
        datasets = prepare(dataset_merge, neusight_dir / "scripts" / "asplos", Path(spec["work_dir"]))
        print("MTAP-DATA " + json.dumps(datasets, sort_keys=True), flush=True)
    for job in spec["jobs"]:
        try:
            result = train_one(model_provider, Trainer, job, device)
        except Exception as exc:  # noqa: BLE001 - reported per predictor
            result = {
                "name": job["name"],
                "ok": False,
                "error": {"kind": "tool-crashed", "message": f"{type(exc).__name__}: {exc}"[:500]},
                "traceback_tail": traceback.format_exc().strip().splitlines()[-6:],
            }
        print("MTAP-TRAIN " + json.dumps(result, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
