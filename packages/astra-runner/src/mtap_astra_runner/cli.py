"""astra-runner: ASTRA-sim 2.0 (analytical network backend) on mtap's workload matrix."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

import mtap_schemas as ms

from . import __version__, compute, traces
from . import cases as cases_mod
from .runner import derived_case, run_case, safe_name
from .setup import setup_cmd
from .tool import ENV_VARS, HOW_TO, NoTool, resolve

TOOL = "astra-sim"
UNAVAILABLE_NAME = "astra-sim.unavailable"


class UserError(click.ClickException):
    """A known user error: one line, no traceback, exit 2."""

    exit_code = 2


def _load_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: not found ({what})") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not readable JSON ({what}): {str(exc).splitlines()[0]}") from None


def load_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    cfg = _load_json(path, "case selection config")
    if not isinstance(cfg, dict):
        raise UserError(f"{path}: expected a JSON object with fields {', '.join(cases_mod.CONFIG_FIELDS)}")
    for key, value in cfg.items():
        if key not in cases_mod.CONFIG_FIELDS:
            raise UserError(f"{path}: field {key}: unknown (expected one of {', '.join(cases_mod.CONFIG_FIELDS)})")
        if key in ("include", "exclude", "studies", "binaries"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise UserError(f"{path}: field {key}: expected a list of strings")
        allowed = {"studies": cases_mod.STUDIES, "binaries": cases_mod.BINARIES}.get(key)
        if allowed:
            bad = [v for v in value if v not in allowed]
            if bad:
                raise UserError(f"{path}: field {key}: {bad[0]!r} is not one of {', '.join(allowed)}")
        if key == "compute_source" and value not in ("auto", "groundtruth", "roofline"):
            raise UserError(f"{path}: field compute_source: expected auto, groundtruth or roofline, got {value!r}")
        if key == "timeout_s" and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise UserError(f"{path}: field timeout_s: expected a positive number, got {value!r}")
    return cfg


def load_hardware(data_dir: Path, ids: set[str]) -> dict[str, dict[str, Any]]:
    path = data_dir / "hardware" / "hardware.json"
    if not path.is_file():
        raise UserError(f"{path}: not found (--data-dir must be the repository's data/ folder)")
    try:
        doc = ms.read(path, "hardware")
    except Exception as exc:  # SchemaError and JSON errors are one line
        raise UserError(f"{path}: {str(exc).splitlines()[0]}") from None
    by_id = {h["id"]: h for h in doc["hardware"]}
    for hid in sorted(ids):
        if hid not in by_id:
            raise UserError(f"{path}: field hardware: no entry with id {hid!r}")
        h = by_id[hid]
        ic = h.get("interconnect") or {}
        for field, value in (("interconnect.bandwidth_bytes_per_s", ic.get("bandwidth_bytes_per_s")),
                             ("interconnect.latency_ns", ic.get("latency_ns")),
                             ("memory.bandwidth_bytes_per_s", (h.get("memory") or {}).get("bandwidth_bytes_per_s")),
                             ("peak_flops.fp32", (h.get("peak_flops") or {}).get("fp32"))):
            if not isinstance(value, (int, float)) or value <= 0:
                raise UserError(f"{path}: hardware {hid}: field {field}: expected a positive number")
    return by_id


def check_workloads(data_dir: Path, workloads: set[str]) -> None:
    path = data_dir / "workloads" / "workloads.json"
    if not path.is_file():
        raise UserError(f"{path}: not found (--data-dir must be the repository's data/ folder)")
    try:
        doc = ms.read(path, "workloads")
    except Exception as exc:
        raise UserError(f"{path}: {str(exc).splitlines()[0]}") from None
    known = {w["id"] for w in doc["workloads"]}
    for w in sorted(workloads - known):
        raise UserError(f"{path}: field workloads: no workload {w}")


def common(f):
    opts = [
        click.option("--config", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="JSON selecting cases: " + "; ".join(f"{k}: {v}" for k, v in cases_mod.CONFIG_FIELDS.items())),
        click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=Path("data/evaluation/astra-sim"),
                     show_default=True, help="Folder the document is written to."),
        click.option("--name", default=None,
                     help=f"File stem of the document [default: {TOOL}; {UNAVAILABLE_NAME} when no case could run, "
                          "so a run without ASTRA-sim never replaces real results]"),
        click.option("--tool-path", "--binary", "tool_path", default=None,
                     help=f"ASTRA-sim analytical binary, its folder or a built checkout [env: {', '.join(ENV_VARS)}]; "
                          "with --image: the binaries' folder inside the image."),
        click.option("--image", default=None, help="Run the binaries inside this Docker image (docker Python SDK)."),
        click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("data"), show_default=True,
                     help="The repository's data/ folder (hardware and workload catalogs, ground truth)."),
        click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N cases (plus the inputs of derived ones)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="astra-runner")
def main() -> None:
    """Run ASTRA-sim 2.0's analytical network backend on mtap's workload matrix.

    \b
    Cases: W6 collectives (all-reduce, all-gather, reduce-scatter, all-to-all x 2-16 NPUs
    x 1 MiB, 64 MiB, 1 GiB), W2/W3/W10 data-parallel ResNet-50 training steps (2-16 NPUs),
    the topology study (Ring/Switch/FullyConnected x ring/direct/halvingDoubling/
    doubleBinaryTree), ASTRA-sim's HGX-H100 reference example and the 2->8 NPU
    communication scaling, on both binaries (Congestion_Aware, Congestion_Unaware).

    \b
    Every input is generated here: network YAML, system and memory JSON from
    data/hardware/hardware.json, Chakra execution traces with PyPI's mlc-chakra.

    \b
    ASTRA-sim is not on any registry: build it from https://github.com/astra-sim/astra-sim
    (build/astra_analytical/build.sh) and pass --tool-path (or ASTRA_SIM_BIN), or
    pass --image for a Docker image holding the binaries. Without either, every case is
    written as `unavailable` with instructions.

    \b
    Example:
      ASTRA_SIM_BIN=~/astra-sim/build/astra_analytical/build/bin astra-runner run
      astra-runner cases --config sel.json     # list the planned cases, run nothing
    """


@main.command("cases")
@common
def cases_cmd(config, output, name, tool_path, image, data_dir, limit) -> None:
    """Print the planned case matrix as JSON lines; runs nothing."""
    cfg = load_config(config)
    for c in cases_mod.select(cases_mod.build(), cfg, limit):
        click.echo(json.dumps(c.planned(), sort_keys=True))


@main.command("run")
@common
@click.option("--keep-logs", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write every case's generated configs and ASTRA-sim's raw output to this folder "
                   "(listed as the case's artifacts).")
@click.option("--timeout", type=click.FloatRange(min=1), default=None, help="Seconds per ASTRA-sim run [default: 900].")
@click.option("--compute-source", type=click.Choice(["auto", "groundtruth", "roofline"]), default=None,
              help="Per-layer ResNet-50 compute: committed GPU ground truth, the roofline, or auto (ground truth when "
                   "complete) [default: auto].")
def run_cmd(config, output, name, tool_path, image, data_dir, limit, keep_logs, timeout, compute_source) -> None:
    """Run the cases and write one tool-run v1 document."""
    t0 = time.monotonic()
    started = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    cfg = load_config(config)
    selected = cases_mod.select(cases_mod.build(), cfg, limit)
    hardware = load_hardware(data_dir, {c.hardware for c in selected})
    check_workloads(data_dir, {c.workload for c in selected})
    timeout = timeout or float(cfg.get("timeout_s", 900))
    choice = compute_source or cfg.get("compute_source", "auto")
    try:
        tool = resolve(tool_path, image)
    except FileNotFoundError as exc:
        raise UserError(f"--tool-path {exc.args[0]}: no such file or directory ({HOW_TO})") from None

    layer_times = {}
    for c in selected:
        if c.params.get("kind") == "ddp":
            b = c.params["batch_per_gpu"]
            if b not in layer_times:
                try:
                    layer_times[b] = compute.layer_times(choice, data_dir, hardware[c.hardware], b)
                except LookupError as exc:
                    raise UserError(str(exc)) from None
    if isinstance(tool, NoTool):
        click.echo(f"astra-runner: no ASTRA-sim given, writing unavailable cases: {HOW_TO}", err=True)
    setup_s = time.monotonic() - t0

    done: dict[str, dict[str, Any]] = {}
    log_rel = None
    if keep_logs is not None:
        log_rel = os.path.relpath(keep_logs.resolve(), output.resolve())
    runnable = [c for c in selected if not c.inputs]
    with tempfile.TemporaryDirectory(prefix="astra-runner-") as tmp:
        with click.progressbar(runnable, label="astra-sim", file=sys.stderr, item_show_func=lambda c: c.id if c else "") as bar:
            for c in bar:
                wd = Path(tmp) / safe_name(c.id)
                wd.mkdir()
                lt = layer_times.get(c.params.get("batch_per_gpu"))
                case, _ = run_case(c, hardware[c.hardware], tool, wd, lt, timeout, keep_logs, log_rel)
                done[c.id] = case
    for c in selected:
        if c.inputs:
            done[c.id] = derived_case(c, done)
    out_cases = [done[c.id] for c in selected]

    packages = {"mtap-astra-runner": __version__, **tool.packages}
    cv = traces.chakra_version()
    if cv:
        packages["mlc-chakra"] = cv
    try:
        from importlib.metadata import version

        packages["protobuf"] = version("protobuf")
    except Exception:
        pass
    cfg_ref = {"path": str(config), "sha256": ms.sha256_file(config)} if config else None
    doc = {
        "schema": "tool-run",
        "schema_version": ms.version("tool-run"),
        "runner": {"name": "astra-runner", "version": __version__},
        "tool": {"name": TOOL, "version": tool.version, "backend": tool.backend, "location": tool.location},
        "environment": ms.environment(packages=dict(sorted(packages.items()))),
        "invocation": {"command": ["astra-runner", *sys.argv[1:]], "config": cfg_ref},
        "wall_clock": {"started_at": started, "setup_seconds": round(setup_s, 3), "run_seconds": round(time.monotonic() - t0 - setup_s, 3)},
        "cases": out_cases,
    }
    ran = any(c["status"] in ("ok", "failed") for c in out_cases)
    stem = name or (TOOL if ran else UNAVAILABLE_NAME)
    path = ms.write(output / f"{stem}.tool-run.json", doc, "tool-run")
    counts: dict[str, int] = {}
    for c in out_cases:
        counts[c["status"]] = counts.get(c["status"], 0) + 1
    click.echo(f"astra-runner: wrote {path} ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()


main.add_command(setup_cmd)
