"""``neusight-runner train``: NeuSight's learned predictors trained here, with NeuSight's own code.

Runs :mod:`mtap_neusight_runner.train_shim` with the NeuSight Python (see its docstring for what
it runs and the two bookkeeping stand-ins), writes the weights folder (:mod:`.weights`, manifest
with sha256) and a ``training`` v1 document (``schemas/training.v1.schema.json``): per predictor
the epochs used vs NeuSight's configured ones, wall and CPU seconds, loss curve per epoch,
validation error, weights sha256; plus a determinism check (one predictor trained twice).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mtap_schemas as ms
from mtap_schemas import proc
from mtap_schemas import toolrun as tr
from mtap_schemas.paths import portable_argv

from . import __version__
from .weights import OPS, PREDICTOR, sha256, write_manifest

SHIM = Path(__file__).with_name("train_shim.py")
ASPLOS = Path("scripts") / "asplos"
#: predictor -> training set, as NeuSight's scripts/asplos/run_train_nvidia_neusight.py trains them
TRAINSETS = {"BMM": "bmm.csv", "LINEAR": "linear.csv", "LN": "ln.csv", "SOFTMAX": "softmax.csv", "VEC": "elem.csv"}
#: epochs NeuSight's run_train_nvidia_neusight.py gives every predictor
CONFIGURED_EPOCHS = 100
#: rough cost per epoch (CPU seconds, measured here) for splitting predictors over processes
COST = {"BMM": 25.0, "LINEAR": 8.0, "LN": 2.5, "SOFTMAX": 2.4, "VEC": 3.5}
SPLIT = "NeuSight's Trainer: torch.utils.data.random_split 80/20 of the training set (seeded), best epoch by validation mean relative error"


class TrainError(RuntimeError):
    pass


def _lines(stdout: str, prefix: str) -> list[dict[str, Any]]:
    out = []
    for line in stdout.splitlines():
        if line.startswith(prefix + " "):
            try:
                out.append(json.loads(line[len(prefix) + 1 :]))
            except ValueError:
                continue
    return out


def _shim(python: str, spec: dict[str, Any], work: Path, name: str, timeout: float | None) -> tuple[str, float]:
    path = work / f"{name}.spec.json"
    path.write_text(json.dumps(spec, indent=1))
    env = dict(
        os.environ,
        HOME=str(work / "home"),
        PYTHONDONTWRITEBYTECODE="1",
        OMP_NUM_THREADS=str(spec.get("threads") or 1),
        MKL_NUM_THREADS=str(spec.get("threads") or 1),
    )
    t0 = time.monotonic()
    ran = proc.run_tool([python, str(SHIM), str(path)], timeout=timeout, cwd=work, env=env)
    (work / f"{name}.out").write_text(ran.stdout + "\n--- stderr ---\n" + ran.stderr)
    if not ran.ok and "MTAP-TRAIN" not in ran.stdout:
        raise TrainError(f"NeuSight training ({name}) failed: {ran.error(timeout)[1]}")
    return ran.stdout, time.monotonic() - t0


def _not_trained(names: list[str], outputs: list[str], failures: dict[str, str]) -> dict[str, str]:
    """Predictor -> why it has no result: its process failed (``failures``, by predictor) or its
    output has no ok result line. Raises when no predictor has a result."""
    results = {r["name"]: r for o in outputs for r in _lines(o, "MTAP-TRAIN")}
    out = {}
    for n in names:
        r = results.get(n)
        if n in failures:
            out[n] = failures[n]
        elif r is None:
            out[n] = "no result line in its training process's output (stopped or crashed before it finished)"
        elif not r.get("ok"):
            out[n] = (r.get("error") or {}).get("message", "the trainer reported a failure")
    if len(out) == len(names):
        first = names[0]
        raise TrainError(f"predictor {first}: {out[first]} (no predictor was trained)")
    return out


def _job(checkout: Path, data: Path, name: str, epochs: int, seed: int, save: Path, logs: Path) -> dict[str, Any]:
    return {
        "name": name,
        "config_path": str(checkout / ASPLOS / "data" / "predictor" / PREDICTOR / name / "config.json"),
        "trainset_path": str(data / TRAINSETS[name]),
        "save_path": str(save),
        "log_dir": str(logs),
        "epochs": epochs,
        "seed": seed,
    }


@dataclass(frozen=True)
class _Settings:
    """What a training run was asked for (``train``'s arguments), as the document records it."""

    checkout: Path
    python: str
    out: Path
    epochs: dict[str, int]
    seed: int
    threads: int
    determinism: tuple[str, int] | None
    timeout: float | None
    argv: list[str] | None

    @property
    def work(self) -> Path:
        return self.out / ".work"


def _prepare(checkout: Path, python: str, out: Path, threads: int, timeout: float | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The training sets, made by NeuSight's own merge in one process: (its environment, the sets' rows and sha256)."""
    work = out / ".work"
    stdout, _ = _shim(
        python,
        {"neusight_dir": str(checkout), "work_dir": str(out), "threads": threads, "prepare": True, "jobs": []},
        work,
        "prepare",
        timeout,
    )
    envs = _lines(stdout, "MTAP-ENV")
    datas = _lines(stdout, "MTAP-DATA")
    if not envs or not datas:
        raise TrainError(f"NeuSight's training-set preparation printed nothing usable (see {work / 'prepare.out'})")
    return envs[0], datas[0]


def _groups(names: list[str], epochs: dict[str, int], jobs: int) -> list[list[str]]:
    groups: list[list[str]] = [[] for _ in range(max(1, min(jobs, len(names))))]
    load = [0.0] * len(groups)
    for n in sorted(names, key=lambda n: -COST[n] * epochs[n]):
        i = load.index(min(load))
        groups[i].append(n)
        load[i] += COST[n] * epochs[n]
    return [g for g in groups if g]


def train(
    checkout: Path,
    python: str,
    out: Path,
    epochs: dict[str, int],
    seed: int = 0,
    threads: int = 1,
    jobs: int = 2,
    determinism: tuple[str, int] | None = ("LN", 5),
    timeout: float | None = None,
    argv: list[str] | None = None,
    rebuild: bool = False,
) -> dict[str, Any]:
    """Train ``epochs`` (predictor -> epochs) into ``out``; returns the training document (not yet written).

    ``rebuild``: train nothing; build the document from the outputs a finished run left in ``out/.work``
    (``prepare.out``, ``train-*.out``, ``determinism-*.out``) and the two determinism weight files, e.g. when
    writing the document failed. Its started_at and wall_s then come from those files' modification times."""
    started = tr.utc_now()
    if rebuild:
        return _rebuild(checkout, python, out, epochs, seed, threads, determinism, timeout, argv)
    checkout = checkout.resolve()
    out = out.resolve()
    if not (checkout / "neusight" / "Model" / "trainer.py").is_file():
        raise TrainError(f"{checkout}: not a NeuSight checkout (no neusight/Model/trainer.py)")
    out.mkdir(parents=True, exist_ok=True)
    work = out / ".work"
    work.mkdir(exist_ok=True)
    (work / "home").mkdir(exist_ok=True)
    data = out / "dataset" / "train"
    logs = work / "logs"
    t0 = time.monotonic()
    env, dataset = _prepare(checkout, python, out, threads, timeout)
    # 2. the predictors, split over `jobs` processes
    names = [n for n in OPS if n in epochs]
    groups = _groups(names, epochs, jobs)

    def run_group(i: int) -> str:
        spec = {
            "neusight_dir": str(checkout),
            "work_dir": str(out),
            "threads": threads,
            "prepare": False,
            "jobs": [_job(checkout, data, n, epochs[n], seed, out / PREDICTOR / n, logs) for n in groups[i]],
        }
        try:
            return _shim(python, spec, work, f"train-{i}", timeout)[0]
        except TrainError as exc:  # one process's failure is recorded; the others' predictors are kept
            failures.update({n: f"{exc} (train-{i}.out)" for n in groups[i]})
            return ""

    failures: dict[str, str] = {}
    with ThreadPoolExecutor(len(groups)) as pool:
        outputs = list(pool.map(run_group, range(len(groups))))
    missing = _not_trained(names, outputs, failures)
    kept = {n: e for n, e in epochs.items() if n not in missing}
    if determinism is not None and determinism[0] in missing:
        determinism = None
    settings = _Settings(checkout, python, out, kept, seed, threads, determinism, timeout, argv)
    return _document(settings, started, None, env, dataset, outputs, len(groups), t0=t0, run_determinism=True,
                     missing={n: (epochs[n], why) for n, why in missing.items()})


def _document(
    settings: _Settings,
    started: str,
    wall_s: float | None,
    env: dict[str, Any],
    dataset: dict[str, Any],
    outputs: list[str],
    processes: int,
    t0: float | None = None,
    run_determinism: bool = False,
    missing: dict[str, tuple[int, str]] | None = None,
) -> dict[str, Any]:
    checkout, out = settings.checkout, settings.out
    epochs, seed, threads, argv = settings.epochs, settings.seed, settings.threads, settings.argv
    names = [n for n in OPS if n in epochs]
    results = {r["name"]: r for o in outputs for r in _lines(o, "MTAP-TRAIN")}  # every name has one: _not_trained
    det = _determinism(settings, env, run_determinism)
    wall = time.monotonic() - t0 if t0 is not None else (wall_s or 0.0)
    if t0 is not None:  # a rebuild leaves the manifest the run wrote (live runs may be reading it)
        write_manifest(out, {"trainer": f"neusight-runner {__version__}", "seed": seed, "epochs": {n: epochs[n] for n in names}})
    predictors = [_predictor(n, results[n], settings, dataset) for n in names]
    environment = _environment(env, threads, processes, here=t0 is not None)
    notes = _notes(names, epochs, predictors, missing)
    from mtap_schemas import version as schema_version

    return {
        "schema": "training",
        "schema_version": schema_version("training", 1),
        "trainer": {"name": "neusight-runner", "version": __version__},
        "tool": {"name": "neusight", "version": _git(checkout), "location": f"{checkout.name} {_git(checkout) or ''}".strip()},
        "command": " ".join(["neusight-runner", *portable_argv(list(argv if argv is not None else sys.argv[1:]))]),
        "started_at": started,
        "environment": environment,
        "data": {
            "source": "NeuSight checkout scripts/asplos/data/dataset/train/ (collect/bmm, collect/linear merged with "
            "NeuSight's dataset_merge; ln, softmax, elem as shipped; vec = ln + softmax + elem as run_dataset.py)",
            "files": [{"name": k, **v} for k, v in sorted(dataset.items())],
        },
        "predictors": predictors,
        "totals": {"wall_s": round(wall, 3), "cpu_s": round(sum(p["cpu_s"] for p in predictors), 3), "gpu_s": None},
        "determinism": det,
        "notes": notes,
    }


def _determinism(settings: _Settings, env: dict[str, Any], run: bool) -> dict[str, Any] | None:
    """One predictor trained twice from scratch with the same seed (``run``: train now; else compare the
    two weight files an earlier run left), and whether the parameters are bit-identical."""
    if settings.determinism is None:
        return None
    checkout, python, out, work = settings.checkout, settings.python, settings.out, settings.work
    seed, threads, timeout = settings.seed, settings.threads, settings.timeout
    data, logs = out / "dataset" / "train", work / "logs"
    name, n_ep = settings.determinism
    runs = [work / "determinism" / f"run{k}" / name for k in (1, 2)]
    for k, save in enumerate(runs if run else [], 1):
        if save.exists():
            shutil.rmtree(save)
        spec = {
            "neusight_dir": str(checkout),
            "work_dir": str(out),
            "threads": threads,
            "prepare": False,
            "jobs": [_job(checkout, data, name, n_ep, seed, save, logs)],
        }
        _shim(python, spec, work, f"determinism-{k}", timeout)
    ran = proc.run_tool(
        [python, str(SHIM), "--compare", *(str(s / "model.pth") for s in runs)],
        timeout=timeout,
        env=dict(os.environ, HOME=str(work / "home")),
    )
    cmp = _lines(ran.stdout, "MTAP-COMPARE")
    if not cmp:
        raise TrainError(f"determinism comparison failed: {ran.last_line()}")
    c = cmp[0]
    same = len(set(c["state_sha256"])) == 1
    return {
        "predictor": name,
        "epochs": n_ep,
        "runs": c["state_sha256"],
        "bit_identical": same,
        "max_abs_param_diff": c["max_abs_param_diff"],
        "note": (
            f"{name} trained twice from scratch ({n_ep} epochs, seed {seed}, {threads} thread(s), same machine, "
            f"{env.get('device')}): parameters {'bit-identical' if same else 'differ'}"
            f"; model.pth files {'identical' if len(set(c['file_sha256'])) == 1 else 'differ'}."
        ),
    }


def _predictor(n: str, r: dict[str, Any], settings: _Settings, dataset: dict[str, Any]) -> dict[str, Any]:
    """One predictor's entry of the training document from its training process's result line ``r``."""
    checkout, epochs, seed = settings.checkout, settings.epochs, settings.seed
    curve = [
        {
            "epoch": e["epoch"],
            "train_loss": _finite(e["train_loss"]),
            "validation_mean_rel_error": _finite(e["validation avg_err"]),
            "validation_max_rel_error": _finite(e["validation max_err"]),
        }
        for e in r["epochs"]
    ]
    best = min((e for e in curve if e["validation_mean_rel_error"] is not None), key=lambda e: e["validation_mean_rel_error"])
    diverged = next((e["epoch"] for e in curve if e["train_loss"] is None), None)
    config = checkout / ASPLOS / "data" / "predictor" / PREDICTOR / n / "config.json"
    cfg = json.loads(config.read_text())
    rel = f"{PREDICTOR}/{n}/model.pth"
    return {
        "name": n,
        "config": (ASPLOS / "data" / "predictor" / PREDICTOR / n / "config.json").as_posix(),
        "config_sha256": sha256(config),
        "trainset": f"dataset/train/{TRAINSETS[n]}",
        "trainset_rows": dataset[TRAINSETS[n]]["rows"],
        "trainset_sha256": dataset[TRAINSETS[n]]["sha256"],
        "split": SPLIT,
        "seed": seed,
        "epochs_configured": CONFIGURED_EPOCHS,
        "epochs_used": epochs[n],
        "hyperparameters": {k: cfg[k] for k in ("lr", "train_batch", "loss", "num_layers", "hidden_size") if k in cfg},
        "wall_s": round(r["wall_s"], 3),
        "cpu_s": round(r["cpu_s"], 3),
        "best_epoch": best["epoch"],
        "best_validation_mean_rel_error": best["validation_mean_rel_error"],
        "diverged_at_epoch": diverged,
        "curve": curve,
        "weights": {"file": rel, "sha256": r["weights_sha256"], "bytes": r["weights_bytes"]},
    }


def _environment(env: dict[str, Any], threads: int, processes: int, here: bool) -> dict[str, Any]:
    """Where the training ran: the training processes' own record where they printed it; else this
    process's machine, which is the training machine except for a rebuild (``here`` False)."""
    import platform

    unknown = "not recorded (document rebuilt from the run's outputs on another machine)"
    return {
        "python": env.get("python", ""),
        "platform": env.get("platform") or (platform.platform() if here else unknown),
        "cpu": env.get("cpu") or (ms.environment()["cpu"] if here else unknown),
        "cpu_count": env.get("cpu_count") or os.cpu_count() or 1,
        "device": env.get("device", "cpu"),
        "gpu": env.get("gpu"),
        "threads": env.get("threads", threads),
        "processes": processes,
        "packages": {k: env[k] for k in ("torch", "numpy", "pandas") if k in env},
    }


def _notes(names: list[str], epochs: dict[str, int], predictors: list[dict[str, Any]],
           missing: dict[str, tuple[int, str]] | None) -> list[str]:
    """The document's notes: epochs against the authors', predictors not trained, diverged losses."""
    short = [n for n in names if epochs[n] < CONFIGURED_EPOCHS]
    notes = [
        f"Epochs used vs NeuSight's configured {CONFIGURED_EPOCHS} (scripts/asplos/run_train_nvidia_neusight.py): "
        + ", ".join(f"{n} {epochs[n]}" for n in names)
        + (
            f". {', '.join(short)} trained with FEWER epochs than the authors' setting (time box on a shared 2-core CPU); "
            "these weights are not the authors' training."
            if short
            else "."
        )
    ]
    for n, (n_epochs, why) in (missing or {}).items():
        notes.append(f"{n}: NOT trained ({n_epochs} epochs asked): {why}. It is absent from predictors and weights.")
    for p in predictors:
        if p["diverged_at_epoch"] is not None:
            notes.append(
                f"{p['name']}: training loss not finite (NaN) from epoch {p['diverged_at_epoch']} with NeuSight's config "
                f"(lr {p['hyperparameters'].get('lr')}); NeuSight's trainer keeps the best validation epoch, "
                f"so the weights are those of epoch {p['best_epoch']}."
            )
    return notes


def _rebuild(
    checkout: Path,
    python: str,
    out: Path,
    epochs: dict[str, int],
    seed: int,
    threads: int,
    determinism: tuple[str, int] | None,
    timeout: float | None,
    argv: list[str] | None,
) -> dict[str, Any]:
    import datetime

    out, checkout = out.resolve(), checkout.resolve()
    work = out / ".work"
    if not (work / "prepare.out").is_file():
        raise TrainError(f"{work}/prepare.out: nothing to rebuild from (run train first)")
    specs = sorted(work.glob("*.spec.json"), key=lambda p: p.stat().st_mtime)
    outs = sorted(work.glob("*.out"), key=lambda p: p.stat().st_mtime)
    t_start, t_end = specs[0].stat().st_mtime, outs[-1].stat().st_mtime
    started = datetime.datetime.fromtimestamp(t_start, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    stdout = (work / "prepare.out").read_text()
    env, dataset = _lines(stdout, "MTAP-ENV")[0], _lines(stdout, "MTAP-DATA")[0]
    outputs = [p.read_text() for p in sorted(work.glob("train-*.out"))]
    missing = _not_trained([n for n in OPS if n in epochs], outputs, {})
    kept = {n: e for n, e in epochs.items() if n not in missing}
    settings = _Settings(checkout, python, out, kept, seed, threads, determinism, timeout, argv)
    doc = _document(settings, started, t_end - t_start, env, dataset, outputs, len(outputs),
                    missing={n: (epochs[n], why) for n, why in missing.items()})
    doc["notes"].append(
        "Document rebuilt with --rebuild-document from the outputs of the training run (its .work folder); "
        "started_at and wall_s are those files' times. Nothing was retrained."
    )
    return doc


def _finite(x: Any) -> float | None:
    """A logged scalar, or None where it was NaN/inf (NeuSight's trainer logs what torch computes)."""
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def _git(checkout: Path) -> str | None:
    r = proc.run_tool(["git", "-C", str(checkout), "rev-parse", "HEAD"], timeout=20)
    return f"git {r.stdout.strip()}" if r.ok and r.stdout.strip() else None
