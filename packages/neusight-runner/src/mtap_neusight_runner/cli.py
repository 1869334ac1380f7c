"""neusight-runner: NeuSight (ASPLOS'25) in mtap, from its published artifact or a checkout, built on the runner kit."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

import mtap_schemas as ms
from mtap_schemas import toolrun as tr
from mtap_schemas.cli import RunOptions, UserError, finish, run_options, runner_group
from mtap_schemas.execute import run_cases

from . import __version__, artifact, live
from .config import ConfigError, check
from .mapping import CATALOGUED, parse_tag

RUNNER, TOOL, OUTPUT = "neusight-runner", "neusight", "data/evaluation/neusight"
CONFIG_HELP = (
    "JSON object selecting cases. Artifact mode: devices, methods, models, modes. Live mode: hardware, workloads, "
    "batch, seq_len, methods; or neusight_tags (+ neusight_devices), or neusight_device_tags (tags per device), "
    "for NeuSight's own configurations."
)

artifact_option = click.option(
    "--artifact-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="MTAP_NEUSIGHT_ARTIFACT",
    show_envvar=True,
    default=None,
    help="Artifact mode: NeuSight's scripts/asplos folder (label/, results/prediction/, data/, summary/) or a copy, "
    "e.g. ../shared/neusight.",
)
python_option = click.option(
    "--neusight-python",
    envvar="MTAP_NEUSIGHT_PYTHON",
    show_envvar=True,
    default=sys.executable,
    show_default="this interpreter",
    help="Live mode: a Python with NeuSight's dependencies (torch, transformers==4.38.1, pandas, scipy, networkx).",
)


ROOFLINE_TOOL = "neusight-roofline"
roofline_tool_option = click.option(
    "--roofline-tool",
    is_flag=True,
    default=False,
    help=f'Live mode, with a config whose methods are ["roofline"]: write NeuSight\'s weight-free roofline method as '
    f"its own tool, {ROOFLINE_TOOL} (metric latency, default name {ROOFLINE_TOOL}-live), as analytical-floor is to "
    "analytical, so that aggregate pairs it with measurements in rows of its own and never as NeuSight's prediction.",
)


weights_option = click.option(
    "--weights",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="MTAP_NEUSIGHT_WEIGHTS",
    show_envvar=True,
    default=None,
    help="Live mode, method neusight: a folder written by `neusight-runner train` (MLP_WAVE/<OP>/model.pth, tile tables, "
    "weights.json). Every file is sha256-checked against weights.json before NeuSight loads it; a mismatch is refused "
    "(predictor-hash-mismatch). The document's tool is then neusight-trained.",
)
trace_cache_option = click.option(
    "--trace-cache",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Live mode: keep NeuSight's device-independent operator graphs (opgraph_raw/, opgraph/) in this folder between "
    "cases, so that a configuration is traced once for all devices (NeuSight itself reuses them when present).",
)
TRAINED_TOOL = "neusight-trained"


def _catalog(data_dir: Path) -> dict[str, dict[str, Any]]:
    return {h["id"]: h for h in ms.read(data_dir / "hardware" / "hardware.json", "hardware")["hardware"]}


def _mode(opts: RunOptions, artifact_dir: Path | None) -> str:
    """artifact or live. An option given on the command line wins over the other mode's env variable."""
    ctx = click.get_current_context()
    given = {name for name in ctx.params if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE}
    art_cli = "artifact_dir" in given
    tool_cli = any(name == "tool_path" or name.startswith("_alias_tool_path") for name in given)
    if art_cli and tool_cli:
        raise UserError("give either --artifact-dir (artifact mode) or --tool-path (live mode), not both")
    if art_cli or tool_cli:
        return "artifact" if art_cli else "live"
    if artifact_dir is not None and opts.tool_path is not None:
        raise UserError(
            "MTAP_NEUSIGHT_ARTIFACT and MTAP_NEUSIGHT_PATH are both set: give --artifact-dir (artifact mode) "
            "or --tool-path (live mode), not both"
        )
    return "artifact" if artifact_dir is not None else "live"


def _config(opts: RunOptions, mode: str) -> dict[str, Any]:
    try:
        return check(opts.config_doc, opts.config, mode)
    except ConfigError as exc:
        raise UserError(str(exc)) from None


def _artifact_plan(opts: RunOptions, artifact_dir: Path, cfg: dict[str, Any]):
    catalog = _catalog(opts.data_dir)
    for ours in CATALOGUED.values():
        if ours not in catalog:
            raise UserError(
                f"{opts.data_dir / 'hardware' / 'hardware.json'}: field hardware: no entry {ours!r}, which NeuSight's H100 maps onto"
            )
    try:
        pairing = artifact.pair(artifact_dir, cfg.get("devices"), cfg.get("methods"), cfg.get("models"), cfg.get("modes"))
        units, skipped = artifact.units(artifact_dir, pairing)
    except artifact.ArtifactError as exc:
        raise UserError(str(exc)) from None
    return pairing, opts.select(units), {**pairing.skipped, **skipped}


def _live_plan(opts: RunOptions, cfg: dict[str, Any]) -> tuple[list[Any], dict[str, dict[str, Any]]]:
    catalog = _catalog(opts.data_dir)
    if "neusight_tags" in cfg or "neusight_device_tags" in cfg:
        if "neusight_device_tags" in cfg:
            field, groups = "neusight_device_tags", [([d], ts) for d, ts in cfg["neusight_device_tags"].items()]
        else:
            field, groups = "neusight_devices", [(cfg.get("neusight_devices", ["NVIDIA_H100_80GB_HBM3"]), cfg["neusight_tags"])]
        cases = []
        for devices, texts in groups:
            for d in devices:
                if d in live.CORES_PER_SM and d not in catalog:
                    raise UserError(f"{opts.config}: field {field}: {d!r} is not in {opts.data_dir / 'hardware' / 'hardware.json'}")
            cases += live.plan_own(devices, [parse_tag(t) for t in texts], cfg.get("methods", live.DEFAULT_METHODS))
        return opts.select(sorted(cases, key=lambda c: c.id)), catalog
    hardware = cfg.get("hardware", list(live.DEFAULT_HARDWARE))
    where = f"{opts.config}: field hardware" if opts.config else "the built-in matrix: hardware"
    for h in hardware:
        if h not in catalog:
            raise UserError(f"{where}: {h!r} is not in {opts.data_dir / 'hardware' / 'hardware.json'}")
        if h not in live.CORES_PER_SM:
            raise UserError(f"{where}: {h!r}: NeuSight needs FP32 cores per SM, known only for {', '.join(live.CORES_PER_SM)}")
    cases = live.plan(
        hardware,
        cfg.get("workloads", ("W4", "W7")),
        cfg.get("batch", live.DEFAULT_BATCH),
        cfg.get("seq_len", live.DEFAULT_SEQ),
        cfg.get("methods", live.DEFAULT_METHODS),
    )
    return opts.select(cases), catalog


@runner_group(RUNNER, __version__)
def main() -> None:
    """NeuSight (Lee et al., ASPLOS'25; github.com/sitar-lab/NeuSight, MIT) in mtap.

    \b
    Artifact mode (--artifact-dir DIR or MTAP_NEUSIGHT_ARTIFACT): pairs every prediction NeuSight's
    authors published (results/prediction/<GPU>/<method>/<tag>.json; methods neusight, roofline,
    micro, habitat) with the authors' measured label (label/<GPU>/<tag>.json), recomputes the APE
    itself and writes one case per device x model x method (document neusight.tool-run.json).
    NeuSight's H100 maps onto H100-SXM5-80GB; other GPUs keep NeuSight's name as hardware id.
    BERT-large -> W4, GPT-2/GPT-3/OPT -> W7 (family).
    \b
    Live mode (--tool-path CHECKOUT or MTAP_NEUSIGHT_PATH): runs NeuSight's own predictor, one
    process per case, for W4 BERT-base and W7 GPT-2 small on H100-SXM5-80GB and A100-SXM4-80GB
    specs, FP32, batch 1/8, seq 128/512 (document neusight-live.tool-run.json), with methods
    neusight (needs the trained model.pth files: refused as `unavailable` weights-missing without
    them) and roofline (weight-free). NeuSight is not on PyPI: clone it yourself and give
    --neusight-python a Python with its dependencies. Without a checkout every case is recorded
    `unavailable` (checkout-missing) with how to provide one.
    \b
    Options, exit codes and the document follow the runner contract of packages/README.md.
    \b
    Examples:
      neusight-runner run --artifact-dir ../shared/neusight
      neusight-runner run --tool-path ~/NeuSight --neusight-python ~/venvs/neusight/bin/python
    """


@main.command()
@run_options(tool=TOOL, output=OUTPUT, verb="cases", config_schema=RUNNER, config_help=CONFIG_HELP)
@artifact_option
def cases(opts: RunOptions, artifact_dir: Path | None) -> None:
    """Print the planned cases as JSON lines; runs nothing (artifact mode with --artifact-dir, else live mode)."""
    mode = "artifact" if artifact_dir is not None else "live"
    cfg = _config(opts, mode)
    if mode == "artifact":
        _, units, _ = _artifact_plan(opts, artifact_dir, cfg)
        for u in units:
            click.echo(json.dumps(u.planned(), sort_keys=True))
    else:
        planned, _ = _live_plan(opts, cfg)
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
@run_options(
    tool=TOOL,
    output=OUTPUT,
    verb="run",
    timeout=1800,
    aliases=["--neusight-dir"],
    config_schema=RUNNER,
    config_help=CONFIG_HELP,
    tool_path_help="Live mode: a NeuSight checkout (git clone of github.com/sitar-lab/NeuSight, with its model.pth files).",
)
@artifact_option
@python_option
@roofline_tool_option
@weights_option
@trace_cache_option
def run(
    opts: RunOptions, artifact_dir: Path | None, neusight_python: str, roofline_tool: bool, weights: Path | None, trace_cache: Path | None
) -> None:
    """Run the cases and write OUTPUT/NAME.tool-run.json (tool-run v2).

    NAME defaults to neusight (artifact mode) or neusight-live (live mode), so a live run never
    replaces the artifact document. --timeout and --keep-raw apply to live mode: seconds one
    NeuSight process may run, and a folder that keeps NeuSight's result JSONs (recorded as artifacts).
    """
    mode = _mode(opts, artifact_dir)
    cfg = _config(opts, mode)
    if roofline_tool and (mode != "live" or cfg.get("methods") != ["roofline"]):
        raise UserError('--roofline-tool: live mode with a --config whose methods are ["roofline"] only')
    if weights is not None and (mode != "live" or roofline_tool):
        raise UserError("--weights: live mode with method neusight only")
    if mode == "live" and click.get_current_context().get_parameter_source("name") == ParameterSource.DEFAULT:
        live_name = f"{ROOFLINE_TOOL}-live" if roofline_tool else (TRAINED_TOOL if weights is not None else "neusight-live")
        opts.name = opts.name.replace(TOOL, live_name, 1)
    if mode == "artifact":
        assert artifact_dir is not None
        builder = tr.ToolRun(RUNNER, __version__, tr.Tool(TOOL, None, "artifact", tr.location_of(artifact_dir)), config=opts.config)
        pairing, units, skipped = _artifact_plan(opts, artifact_dir, cfg)
        checkpoint = opts.checkpoint([u.planned() for u in units])
        builder.setup_done()
        cases_ = run_cases(
            units, artifact.case_for, jobs=opts.jobs, label="re-scoring NeuSight's artifact", ident=lambda u: u.id, checkpoint=checkpoint
        )
        _report_artifact(pairing, artifact_dir, skipped, len(cases_))
        finish(builder, cases_, opts, checkpoint)
    checkout = opts.tool_path
    commit = live.git_commit(checkout) if checkout is not None and checkout.is_dir() else None
    version = f"git {commit}" if commit else None
    # "no checkout given" rather than null: the tool-run v2 schema's `not pattern` on tool.location refuses null
    location = tr.location_of(checkout, version) if checkout is not None else "no checkout given"
    tool = ROOFLINE_TOOL if roofline_tool else (TRAINED_TOOL if weights is not None else TOOL)
    builder = tr.ToolRun(RUNNER, __version__, tr.Tool(tool, version, "native", location), config=opts.config)
    planned, catalog = _live_plan(opts, cfg)
    keep = opts.keep_raw.resolve() if opts.keep_raw is not None else None
    cache = trace_cache.resolve() if trace_cache is not None else None
    units = [
        live.Unit(c, checkout, catalog.get(c.hardware), neusight_python, opts.timeout, keep, roofline_tool, weights, cache) for c in planned
    ]
    checkpoint = opts.checkpoint(
        {"cases": [c.id for c in planned], "checkout": version, "keep_raw": keep is not None, **({"tool": tool} if tool != TOOL else {})}
    )
    builder.setup_done()
    results = run_cases(units, live.run_unit, jobs=opts.jobs, label="running NeuSight", ident=lambda u: u.id, checkpoint=checkpoint)
    for r in results:
        builder.packages.update({k: v for k, v in r["env"].items() if k != "python"})
    finish(builder, [r["case"] for r in results], opts, checkpoint)


def _epochs(value: str | None, per: tuple[str, ...]) -> dict[str, int]:
    from .train import CONFIGURED_EPOCHS
    from .weights import OPS

    base = int(value) if value else CONFIGURED_EPOCHS
    out = {op: base for op in OPS}
    for item in per:
        op, _, n = item.partition("=")
        if op not in OPS or not n.isdigit() or int(n) < 1:
            raise UserError(f"--epochs-for {item!r}: expected OP=N with OP one of {', '.join(OPS)} and N >= 1")
        out[op] = int(n)
    return out


def _only(epochs: dict[str, int], predictors: str | None) -> dict[str, int]:
    """``epochs`` narrowed to the ``--predictors`` named (all when None)."""
    if predictors is None:
        return epochs
    names = [n.strip().upper() for n in predictors.split(",") if n.strip()]
    bad = [n for n in names if n not in epochs]
    if bad or not names:
        raise UserError(f"--predictors {predictors!r}: expected a comma-separated list of {', '.join(epochs)}")
    return {op: n for op, n in epochs.items() if op in names}


@main.command("train")
@click.option(
    "--tool-path",
    "tool_path",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="MTAP_NEUSIGHT_PATH",
    show_envvar=True,
    required=True,
    help="A NeuSight checkout (its training code, configs and training data).",
)
@python_option
@click.option(
    "--weights-out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder for the trained weights, tile tables and weights.json (sha256 manifest); give it to `run --weights`.",
)
@click.option("--epochs", default=None, help="Epochs for every predictor (default: NeuSight's configured 100).")
@click.option("--epochs-for", multiple=True, metavar="OP=N", help="Epochs for one predictor (BMM, LINEAR, VEC, SOFTMAX, LN).")
@click.option(
    "--predictors",
    default=None,
    metavar="OP,OP,...",
    help="Train only these predictors (default: all five; e.g. VEC,LN,SOFTMAX when BMM's 100 epochs do not fit a machine's time).",
)
@click.option("--seed", default=0, show_default=True, type=int, help="torch/random/numpy seed (NeuSight's train.py uses 0).")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1), help="torch threads per training process.")
@click.option("--jobs", default=2, show_default=True, type=click.IntRange(1), help="Training processes (predictors split by cost).")
@click.option(
    "--determinism",
    default="LN:5",
    show_default=True,
    help="OP:EPOCHS: train that predictor twice from scratch and compare the parameters; 'none' to skip.",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path(OUTPUT) / "neusight-training.json",
    show_default=True,
    help="The training v1 document.",
)
@click.option("--timeout", default=None, type=float, help="Seconds one training process may run.")
@click.option(
    "--rebuild-document",
    is_flag=True,
    default=False,
    help="Train nothing: build the document from the outputs a finished run left in WEIGHTS_OUT/.work (same options as that run).",
)
def train_cmd(
    tool_path: Path,
    neusight_python: str,
    weights_out: Path,
    epochs: str | None,
    epochs_for: tuple[str, ...],
    predictors: str | None,
    seed: int,
    threads: int,
    jobs: int,
    determinism: str,
    output: Path,
    timeout: float | None,
    rebuild_document: bool,
) -> None:
    """Train NeuSight's MLP_WAVE predictors with NeuSight's own trainer and data; write weights + a training document.

    CPU when the NeuSight Python has no CUDA. Epochs below NeuSight's configured 100 are recorded
    as such in the document (epochs_used vs epochs_configured) and are not the authors' setting.
    """
    from .train import TrainError, train

    try:
        eps = _only(_epochs(epochs, epochs_for), predictors)
        det = None
        if determinism.lower() != "none":
            op, _, n = determinism.partition(":")
            if op not in eps or not n.isdigit() or int(n) < 1:
                raise UserError(f"--determinism {determinism!r}: expected OP:EPOCHS (e.g. LN:5) or none")
            det = (op, int(n))
        doc = train(
            tool_path,
            neusight_python,
            weights_out,
            eps,
            seed=seed,
            threads=threads,
            jobs=jobs,
            determinism=det,
            timeout=timeout,
            rebuild=rebuild_document,
        )
    except TrainError as exc:
        raise UserError(str(exc)) from None
    ms.write(output, doc, "training", 1)
    for p in doc["predictors"]:
        click.echo(
            f"{p['name']:8s} epochs {p['epochs_used']:3d}/{p['epochs_configured']}  cpu {p['cpu_s']:8.1f} s  "
            f"best val mean rel err {p['best_validation_mean_rel_error']:.4f} (epoch {p['best_epoch']})",
            err=True,
        )
    if doc["determinism"]:
        click.echo(doc["determinism"]["note"], err=True)
    click.echo(f"wrote {output}" + ("" if rebuild_document else f" and {weights_out}/weights.json"), err=True)


@main.command("compare")
@click.argument("document", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--artifact-dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    envvar="MTAP_NEUSIGHT_ARTIFACT",
    show_envvar=True,
    required=True,
    help="NeuSight's artifact folder (label/, results/prediction/), e.g. ../shared/neusight.",
)
@click.option(
    "--json-out", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Also write the pairs and the per-GPU table as JSON."
)
@click.option(
    "--kernel-check",
    "kernel_check",
    nargs=2,
    default=None,
    metavar="COLLECT OPGRAPH",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="NeuSight's training kernels (CHECKOUT/scripts/asplos/data/dataset/train/collect) and the configurations' "
    "parsed operator graphs (a --trace-cache's opgraph/): count the scored configurations' GEMM shapes "
    "that NeuSight's training data measured.",
)
def compare_cmd(document: Path, artifact_dir: Path, json_out: Path | None, kernel_check: tuple[Path, Path] | None) -> None:
    """Score a live document of NeuSight's own configurations against the authors' labels, next to their published predictions."""
    from .compare import KernelCheckError, compare, markdown

    doc = ms.read_tool_run(document)
    try:
        result = compare(doc, artifact_dir, kernel_check)
    except KernelCheckError as exc:
        raise UserError(str(exc)) from None
    if not result["rows"]:
        raise UserError(f"{document}: no ok case with a neusight_tag and a latency (run live mode with neusight_tags)")
    click.echo(markdown(result))
    if json_out is not None:
        out = {
            "format": "mtap-neusight-compare/2",
            "document": tr.location_of(document),
            "document_sha256": tr.artifact(document)["sha256"],
            "tool": doc["tool"],
            **result,
        }
        if kernel_check is not None:
            out["kernel_check"]["inputs"] = [tr.location_of(p) for p in kernel_check]
        ms.write_text_atomic(json_out, json.dumps(out, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":  # pragma: no cover
    main()
