"""neusight-runner: NeuSight (ASPLOS'25) in mtap, from its published artifact or a checkout."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

import mtap_schemas as ms

from . import __version__, artifact, live
from .config import ConfigError, load
from .mapping import CATALOGUED, parse_tag


class UserError(click.ClickException):
    """A known user error: one line, no traceback, exit 2."""

    exit_code = 2


def _rel(path: Path | str) -> str:
    text = str(path)
    if os.path.isabs(text):
        try:
            return os.path.relpath(text)
        except ValueError:
            return text
    return text


def _command(ctx: click.Context) -> list[str]:
    argv = ["neusight-runner", *sys.argv[1:]] if Path(sys.argv[0]).name.startswith("neusight-runner") else ["neusight-runner", *(ctx.obj or [])]
    return [_rel(a) if os.path.isabs(a) and os.path.exists(a) else a for a in argv]


def _catalog(data_dir: Path) -> dict[str, dict[str, Any]]:
    path = data_dir / "hardware" / "hardware.json"
    try:
        doc = ms.read(path, "hardware")
    except ms.SchemaError as exc:
        raise UserError(str(exc)) from None
    return {h["id"]: h for h in doc["hardware"]}


def common(f):
    opts = [
        click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
                     help="JSON object selecting cases. Artifact mode: devices, methods, models, modes. Live mode: hardware, workloads, batch, seq_len, methods; or neusight_tags (+ neusight_devices) for NeuSight's own configurations."),
        click.option("--output", type=click.Path(path_type=Path, file_okay=False), default=Path("data/evaluation/neusight"), show_default=True,
                     help="Folder the tool-run document is written to."),
        click.option("--name", default=None, help="File stem of the document [default: neusight (artifact mode), neusight-live (live mode)]."),
        click.option("--artifact-dir", type=click.Path(path_type=Path), envvar="MTAP_NEUSIGHT_ARTIFACT", default=None,
                     help="Artifact mode: NeuSight's scripts/asplos folder (label/, results/prediction/, data/, summary/) or a copy. Env: MTAP_NEUSIGHT_ARTIFACT."),
        click.option("--tool-path", "--neusight-dir", "tool_path", type=click.Path(path_type=Path), envvar="MTAP_NEUSIGHT_PATH", default=None,
                     help="Live mode: a NeuSight checkout (git clone of github.com/sitar-lab/NeuSight). Env: MTAP_NEUSIGHT_PATH."),
        click.option("--neusight-python", envvar="MTAP_NEUSIGHT_PYTHON", default=sys.executable, show_default="this interpreter",
                     help="Live mode: Python with NeuSight's dependencies (torch, transformers==4.38.1, pandas, scipy, networkx). Env: MTAP_NEUSIGHT_PYTHON."),
        click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), default=Path("data"), show_default=True,
                     help="The repository's data/ folder (hardware catalog)."),
        click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N cases (smoke tests)."),
        click.option("--timeout", type=click.FloatRange(min=1), default=3600.0, show_default=True, help="Live mode: seconds NeuSight may run in all."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _mode(artifact_dir: Path | None, tool_path: Path | None) -> str:
    """artifact or live. An option given on the command line wins over the other mode's env variable."""
    if artifact_dir is not None and tool_path is not None:
        ctx = click.get_current_context()
        from_env = {name: ctx.get_parameter_source(name) == click.core.ParameterSource.ENVIRONMENT for name in ("artifact_dir", "tool_path")}
        if from_env["tool_path"] and not from_env["artifact_dir"]:
            return "artifact"
        if from_env["artifact_dir"] and not from_env["tool_path"]:
            return "live"
        raise UserError("give either --artifact-dir (artifact mode) or --tool-path/--neusight-dir (live mode), not both")
    return "artifact" if artifact_dir is not None else "live"


def _artifact_cases(artifact_dir: Path, cfg: dict, data_dir: Path, limit: int | None, progress: bool = False):
    catalog = _catalog(data_dir)
    for ours in CATALOGUED.values():
        if ours not in catalog:
            raise UserError(f"{data_dir / 'hardware' / 'hardware.json'}: field hardware: no entry {ours!r}, which NeuSight's H100 maps onto")
    try:
        pairing = artifact.pair(artifact_dir, cfg.get("devices"), cfg.get("methods"), cfg.get("models"), cfg.get("modes"))
        if progress:
            with click.progressbar(length=len(pairing.pairs), label="re-scoring NeuSight's artifact", file=sys.stderr) as bar:
                cases, skipped = artifact.build_cases(artifact_dir, pairing, lambda: bar.update(1))
        else:
            cases, skipped = artifact.build_cases(artifact_dir, pairing)
    except artifact.ArtifactError as exc:
        raise UserError(str(exc)) from None
    if limit is not None:
        cases = cases[:limit]
    return pairing, cases, {**pairing.skipped, **skipped}


def _live_plan(cfg: dict, data_dir: Path, limit: int | None, config_path: Path | None) -> tuple[list, dict]:
    catalog = _catalog(data_dir)
    if "neusight_tags" in cfg:
        tags = [parse_tag(t) for t in cfg["neusight_tags"]]
        cases = live.plan_own(cfg.get("neusight_devices", ["NVIDIA_H100_80GB_HBM3"]), tags, cfg.get("methods", live.DEFAULT_METHODS))
        return (cases[:limit] if limit else cases), catalog
    hardware = cfg.get("hardware", list(live.DEFAULT_HARDWARE))
    for h in hardware:
        if h not in catalog:
            raise UserError(f"{config_path or 'default matrix'}: field hardware: {h!r} is not in {data_dir / 'hardware' / 'hardware.json'}")
        if h not in live.CORES_PER_SM:
            raise UserError(f"{config_path}: field hardware: {h!r}: NeuSight needs FP32 cores per SM, known only for {', '.join(live.CORES_PER_SM)}")
    cases = live.plan(hardware, cfg.get("workloads", ("W4", "W7")), cfg.get("batch", live.DEFAULT_BATCH),
                      cfg.get("seq_len", live.DEFAULT_SEQ), cfg.get("methods", live.DEFAULT_METHODS))
    return (cases[:limit] if limit else cases), catalog


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="neusight-runner")
def main() -> None:
    """NeuSight (Lee et al., ASPLOS'25; github.com/sitar-lab/NeuSight, MIT) in mtap.

    \b
    Artifact mode (--artifact-dir DIR): pairs every prediction NeuSight's authors published
    (results/prediction/<GPU>/<method>/<tag>.json; methods neusight, roofline, micro, habitat)
    with the authors' measured label (label/<GPU>/<tag>.json), recomputes the APE itself and
    writes one case per device x model x method. NeuSight's H100 maps onto H100-SXM5-80GB; other
    GPUs keep NeuSight's name as hardware id. BERT-large -> W4, GPT-2/GPT-3/OPT -> W7 (family).
    \b
    Live mode (--tool-path/--neusight-dir CHECKOUT): runs NeuSight's own predictor for W4
    BERT-base and W7 GPT-2 small on H100-SXM5-80GB and A100-SXM4-80GB specs, FP32, batch 1/8,
    seq 128/512, with methods neusight (needs the trained model.pth files: refused as
    `unavailable` weights-missing without them) and roofline (weight-free). NeuSight is not on
    PyPI: clone it yourself and give --neusight-python a Python with its dependencies.
    \b
    Examples:
      neusight-runner run --artifact-dir ../shared/neusight
      neusight-runner run --neusight-dir ~/NeuSight --neusight-python ~/venvs/neusight/bin/python
    """


@main.command()
@common
def cases(config_path, output, name, artifact_dir, tool_path, neusight_python, data_dir, limit, timeout) -> None:
    """Print the planned cases as JSON lines; runs nothing."""
    mode = _mode(artifact_dir, tool_path)
    try:
        cfg = load(config_path, mode)
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    if mode == "artifact":
        _, planned, _ = _artifact_cases(artifact_dir, cfg, data_dir, limit)
        for c in planned:
            click.echo(json.dumps({k: c[k] for k in ("id", "workload", "hardware", "key")}, sort_keys=True))
    else:
        planned, _ = _live_plan(cfg, data_dir, limit, config_path)
        for c in planned:
            click.echo(json.dumps({"id": c.id, "workload": c.workload, "hardware": c.hardware, "key": c.key}, sort_keys=True))


def _report_artifact(pairing, root: Path, skipped: dict[str, list[str]], n_cases: int) -> None:
    err = lambda s: click.echo(s, err=True)  # noqa: E731
    err(f"{n_cases} cases from {len(pairing.pairs)} prediction/label pairs")
    for reason, items in skipped.items():
        err(f"skipped {len(items):4d}: {reason}")
    err("mean APE per device x method over all pairs (ours | authors' summary.csv over the same pairs):")
    for r in artifact.mean_ape_table(pairing, root):
        theirs = f"{r['authors_mean_ape']:.2f}% ({r['authors_pairs']})" if r["authors_mean_ape"] is not None else "-"
        err(f"  {r['device']:24s} {r['method']:9s} {r['pairs']:3d} pairs  {r['mean_ape']:8.2f}%  | {theirs}")


@main.command()
@common
def run(config_path, output, name, artifact_dir, tool_path, neusight_python, data_dir, limit, timeout) -> None:
    """Run the cases and write <output>/<name>.tool-run.json (tool-run v1)."""
    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    mode = _mode(artifact_dir, tool_path)
    if mode == "artifact":
        tool_path = None
    try:
        cfg = load(config_path, mode)
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    name = name or ("neusight" if mode == "artifact" else "neusight-live")
    target = output / f"{name}.tool-run.json"
    packages = {"mtap-neusight-runner": __version__}
    config_ref = {"path": _rel(config_path), "sha256": ms.sha256_file(config_path)} if config_path else None
    if mode == "artifact":
        setup = time.monotonic() - t0
        pairing, cases_, skipped = _artifact_cases(artifact_dir, cfg, data_dir, limit, progress=True)
        tool = {"name": "neusight", "version": None, "backend": "artifact", "location": _rel(artifact_dir)}
    else:
        planned, catalog = _live_plan(cfg, data_dir, limit, config_path)
        setup = time.monotonic() - t0
        raw = output / f"{name}.raw"
        with click.progressbar(length=len(planned), label="running NeuSight", file=sys.stderr) as bar:
            cases_, info = live.run_live(planned, tool_path, catalog, neusight_python, raw, output, timeout, bar.update)
        packages.update({k: v for k, v in info.items() if k != "python"})
        commit = live.git_commit(tool_path) if tool_path and tool_path.is_dir() else None
        tool = {"name": "neusight", "version": f"git {commit}" if commit else None, "backend": "native",
                "location": _rel(tool_path) if tool_path else None}
    doc = {
        "schema": "tool-run",
        "schema_version": ms.version("tool-run"),
        "runner": {"name": "neusight-runner", "version": __version__},
        "tool": tool,
        "environment": ms.environment(gpu=None, packages=packages),
        "invocation": {"command": _command(click.get_current_context()), "config": config_ref},
        "wall_clock": {"started_at": started.isoformat(timespec="seconds").replace("+00:00", "Z"),
                       "setup_seconds": round(setup, 3), "run_seconds": round(time.monotonic() - t0 - setup, 3)},
        "cases": cases_,
    }
    try:
        ms.write(target, doc, "tool-run")
    except ms.SchemaError as exc:  # a bug in this runner, not a user error: keep the traceback
        raise RuntimeError(str(exc)) from exc
    if mode == "artifact":
        _report_artifact(pairing, artifact_dir, skipped, len(cases_))
    else:
        counts: dict[str, int] = {}
        for c in cases_:
            counts[c["status"]] = counts.get(c["status"], 0) + 1
        click.echo(f"{len(cases_)} cases: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())), err=True)
    click.echo(str(target))
