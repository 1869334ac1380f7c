"""nnmeter-runner: nn-Meter 2.0 kernel detection and latency prediction as an mtap runner."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

import mtap_schemas as ms
import mtap_schemas.toolrun as tr
from mtap_schemas.cli import RunOptions, UserError, finish, run_options, runner_group
from mtap_schemas.execute import run_cases
from mtap_schemas.paths import relative_to_repo

from . import __version__
from .cases import DEFAULT_TIMEOUT_S, MODEL_NAMES, Plan, narrowed, plan_from_config
from .nnmeter import (
    build_cases,
    nnmeter_version,
    package_versions,
    parse_units,
    predict_units,
    prepare,
    run_parse,
    run_predict,
    tool_location,
)
from .predictors import HashesError, load_hashes, nnmeter_package_dir

RUNNER = "nnmeter-runner"
TOOL = "nn-meter"
OUTPUT = "data/evaluation/nn-meter"
CONFIG_HELP = ('JSON selecting a subset: {"models": [...], "hardware": [...], "opsets": [10, 13], "timeout_s": 1800} '
               "(schemas/config/nnmeter-runner.v1.schema.json).")


def _plan(opts: RunOptions) -> tuple[Plan, list[dict[str, Any]]]:
    """The configured plan narrowed to the cases --shard/--limit select (and those cases)."""
    plan = plan_from_config(opts.config_doc)
    _check_hardware(opts.data_dir, plan.hardware)
    selected = opts.select(plan.cases())
    return narrowed(plan, selected), selected


def _check_hardware(data_dir: Path, ids: list[str]) -> None:
    path = data_dir / "hardware" / "hardware.json"
    known = {e["id"] for e in ms.read(path, "hardware")["hardware"]}
    for hid in ids:
        if hid not in known:
            raise UserError(f"{path}: field hardware: no entry with id {hid!r} (nn-Meter's predictors map to "
                            "cortexA76cpu, adreno640gpu, adreno630gpu, myriadvpu)")


@runner_group(RUNNER, __version__)
def main() -> None:
    """nn-Meter 2.0 (pip install nn-meter==2.0) on ResNet-50 (W1, and its conv1), BERT-base (W4),
    MobileNet-V2 (W8) and VGG-16 (W9) for its four predictors: cortexA76cpu_tflite21,
    adreno640gpu_tflite21, adreno630gpu_tflite21, myriadvpu_openvino2019r2 (hardware ids
    cortexA76cpu, adreno640gpu, adreno630gpu, myriadvpu).

    Per model and predictor it writes two cases. "kernels": nn-Meter's kernel detection (the
    model exported with torch's legacy ONNX exporter, simplified with onnx-simplifier, converted
    by nn-Meter's ONNX converter, split by the predictor's fusion rules, by --rules-dir files, or
    else by nn-Meter's built-in default rules, recorded as not device-specific); metrics are
    kernel counts by type. "latency": nn-Meter's latency prediction in ms, only with
    --tool-path (the predictor folder), whose files are sha256-checked before anything is
    unpickled; otherwise `unavailable`.

    Where the tool comes from: nn-Meter is the nn-meter package installed beside this runner. Its
    predictors (GitHub release assets nn-Meter downloads at first use) come from --tool-path /
    MTAP_NN_METER_PATH. The runner never reads or writes ~/.nn_meter: nn-Meter runs in worker
    subprocesses with HOME set to a temporary folder.

    Predictors for a CPU with ONNX Runtime, built with nn-Meter's own builder (issue #19): `sample`
    (nn-Meter's samplers), `profile` (nn-Meter's torch kernel blocks timed with ONNX Runtime on
    pinned cores), `build-predictor` (nn-Meter's build_predictor_by_data; without --measurements
    all three steps on this machine), `measured` (models' measured latencies as a tool-run
    document). The committed ones: data/profiles/nn-meter/.

    Options, exit codes and the keep-results policy are the runner contract of packages/README.md.

    Example: nnmeter-runner run --tool-path ~/nn-meter-predictors
    Example: nnmeter-runner build-predictor --name mycpu_ort --threads 4 --scale 0.01 --output ~/my-predictors
    """


@main.command()
@run_options(tool=TOOL, output=OUTPUT, verb="cases", config_schema=RUNNER, config_help=CONFIG_HELP)
def cases(opts: RunOptions) -> None:
    """Print the planned cases as JSON lines; runs nothing."""
    for case in _plan(opts)[1]:
        click.echo(json.dumps(case, sort_keys=True))


@main.command()
@run_options(tool=TOOL, output=OUTPUT, timeout=DEFAULT_TIMEOUT_S, keep_raw=False, config_schema=RUNNER,
             config_help=CONFIG_HELP, aliases=["--predictor-dir"],
             env_aliases=["MTAP_NNMETER_PREDICTOR_DIR", "MTAP_NNMETER_PATH"],
             tool_path_help="Folder of nn-Meter's predictors: <predictor>/ (*.pkl + fusion_rules.json), e.g. the "
                            "unpacked release zips or an nn-Meter data folder's predictor/. Without it latency cases "
                            "are `unavailable`.")
@click.option("--predictor-hashes", type=click.Path(path_type=Path, dir_okay=False), default=None,
              envvar="MTAP_NNMETER_PREDICTOR_HASHES",
              help="JSON file of expected sha256 per predictor file (format of the pinned list "
                   "mtap_nnmeter_runner/pinned_predictors.json, which is the default).")
@click.option("--rules-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder of device fusion rules <predictor>.json (each predictor zip's fusion_rules.json, "
                   "renamed), sha256-checked like the predictors; used when --tool-path does not give a "
                   "verified predictor. Without either, kernel detection uses nn-Meter's built-in default "
                   "rules (KernelDetector(None)), recorded as such: not device-specific.")
def run(opts: RunOptions, predictor_hashes: Path | None, rules_dir: Path | None) -> None:
    """Run nn-Meter on every selected case and write one tool-run v2 document."""
    plan, selected = _plan(opts)
    timeout = opts.timeout
    if click.get_current_context().get_parameter_source("timeout") == ParameterSource.DEFAULT:
        timeout = plan.timeout_s
    try:
        expected = load_hashes(predictor_hashes)
    except HashesError as exc:
        raise UserError(str(exc)) from None
    predictor_dir = opts.tool_path
    if predictor_dir is not None and not predictor_dir.is_dir():
        raise UserError(f"{predictor_dir}: --tool-path: expected an existing folder of nn-Meter predictors")
    if rules_dir is not None and not rules_dir.is_dir():
        raise UserError(f"{rules_dir}: --rules-dir: expected an existing folder")
    hashes_source = (relative_to_repo(predictor_hashes) if predictor_hashes
                     else "the pinned list (mtap_nnmeter_runner/pinned_predictors.json)")
    builder = tr.ToolRun(RUNNER, __version__, tr.Tool(TOOL, nnmeter_version(), "native", tool_location()),
                         config=opts.config, packages=package_versions())
    tool_missing = None
    if nnmeter_package_dir() is None:
        tool_missing = ("nn-meter is not installed in this environment: pip install nn-meter==2.0 'setuptools<81' "
                        "(or install mtap-nnmeter-runner, which pins it)")
    outcome = None
    checkpoint = None
    with tempfile.TemporaryDirectory(prefix="mtap-nnmeter-rules-") as work:
        if tool_missing is None:
            outcome = prepare(plan, predictor_dir, expected, hashes_source, rules_dir, Path(work))
            units = parse_units(plan, outcome, timeout)
            digest_plan = {"cases": selected, "opsets": plan.opsets, "timeout": timeout,
                           "rules": {hw: [r.origin, r.sha256, r.problem] for hw, r in outcome.rules.items()},
                           "predictors": {hw: [c.kind, c.files] for hw, c in outcome.checks.items()}}
            checkpoint = opts.checkpoint(digest_plan)
            builder.setup_done()
            parsed = run_cases(units, run_parse, jobs=opts.jobs, label="nn-Meter kernel detection",
                               ident=lambda u: u.ident, checkpoint=checkpoint)
            outcome.parse = {u.model.name: r for u, r in zip(units, parsed)}
            predicting = predict_units(plan, outcome, timeout)
            if predicting:
                predicted = run_cases(predicting, run_predict, jobs=opts.jobs, label="nn-Meter latency prediction",
                                      ident=lambda u: u.ident, checkpoint=checkpoint)
                outcome.predict = {u.predictor: r for u, r in zip(predicting, predicted)}
        else:
            builder.setup_done()
    ids = {c["id"] for c in selected}
    finish(builder, [c for c in build_cases(plan, outcome, tool_missing) if c["id"] in ids], opts, checkpoint)


# ----------------------------------------------------------------------------- issue #19: predictors built
# with nn-Meter's builder on an ONNX Runtime CPU, and their ground truth


def _kernel_list(value: str | None) -> list[str] | None:
    from .builder import DEFAULT_SAMPLES

    if not value:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in DEFAULT_SAMPLES]
    if unknown:
        raise UserError(f"--kernels: unknown kernel type {unknown[0]!r}; expected some of {', '.join(DEFAULT_SAMPLES)}")
    return names


def _threads(value: str) -> list[int]:
    try:
        out = [int(v) for v in value.split(",")]
    except ValueError:
        out = []
    if not out or any(t < 1 for t in out) or len(set(out)) != len(out):
        raise UserError(f"--threads: got {value!r}, expected distinct positive integers separated by commas, e.g. 1,4")
    return out


def _sample(counts: dict[str, int], seed: int, timeout: float) -> dict[str, Any]:
    from .nnmeter import _worker

    result = _worker("sample", {"kernels": counts, "seed": seed, "mode": "prior", "prefix": "p"}, "sample", timeout)
    if not result.get("ok"):
        raise RuntimeError(f"nn-Meter's sampler failed: {result.get('kind')}: {result.get('message')}")
    return result["kernels"]


@main.command()
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Plan file to write (JSON: kernel configurations per kernel type, models to time).")
@click.option("--scale", type=click.FloatRange(min=0, min_open=True, max=1), default=0.01, show_default=True,
              help="Fraction of nn-Meter's default INIT_SAMPLE_NUM per kernel type (10000 conv-bn-relu, 5000 "
                   "dwconv-bn-relu, 3000 each other type); at least 2 each.")
@click.option("--scale-for", "scale_for", multiple=True,
              help="TYPES=S: another fraction for these kernel types (comma-separated; repeat), e.g. "
                   "conv-bn-relu,dwconv-bn-relu=1 for nn-Meter's full count of those.")
@click.option("--kernels", default=None, help="Kernel types, comma-separated (default: nn-Meter's 16).")
@click.option("--models", default=None, help="Models to time end to end as well, comma-separated (default: none).")
@click.option("--seed", type=int, default=19, show_default=True)
def sample(output: Path, scale: float, scale_for: tuple[str, ...], kernels: str | None, models: str | None,
           seed: int) -> None:
    """Sample kernel configurations with nn-Meter's builder samplers (prior mode).

    Resumable: a plan already at --output with the same settings is kept (nothing is re-sampled), so a
    campaign's command can be repeated; `profile --resume` then times what is left of it."""
    from .builder import scaled_samples, write_json

    names = [m for m in (models or "").split(",") if m]
    bad = [m for m in names if m not in MODEL_NAMES]
    if bad:
        raise UserError(f"--models: unknown model {bad[0]!r}; expected some of {', '.join(MODEL_NAMES)}")
    per_kernel = _scale_for(scale_for)
    counts = scaled_samples(scale, _kernel_list(kernels), per_kernel)
    sampling = {"mode": "prior", "scale": scale, "scale_for": dict(sorted(per_kernel.items())), "counts": counts,
                "seed": seed, "sampler": f"nn-meter {nnmeter_version()}"}
    check_parent(output)
    if output.exists():
        try:
            old = json.loads(output.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"{output}: exists and is not a readable plan ({exc}); remove it or choose another --output") from None
        if old.get("sampling") != sampling or old.get("models") != names:
            raise UserError(f"{output}: a plan with other settings exists (sampling {old.get('sampling')}); remove it "
                            "or choose another --output")
        click.echo(f"{output}: kept (same settings, {sum(len(v) for v in old['kernels'].values())} kernel "
                   "configurations)", err=True)
        return
    if nnmeter_package_dir() is None:
        raise UserError("nn-meter is not installed in this environment: pip install nn-meter==2.0 'setuptools<81'")
    plan = {"kernels": _sample(counts, seed, 1800), "models": names, "sampling": sampling}
    write_json(output, plan)
    click.echo(f"{output}: {sum(len(v) for v in plan['kernels'].values())} kernel configurations, {len(names)} models",
               err=True)


def _scale_for(values: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for value in values:
        types, sep, frac = value.rpartition("=")
        try:
            f = float(frac)
        except ValueError:
            f = -1.0
        if not sep or not types or not 0 < f <= 1:
            raise UserError(f"--scale-for: got {value!r}, expected TYPES=S with S in (0, 1], e.g. conv-bn-relu,fc=1")
        for k in _kernel_list(types) or []:
            out[k] = f
    return out


def check_parent(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"{path}: folder {parent} does not exist")


@main.command()
@click.option("--plan", "plan_path", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Plan file written by `nnmeter-runner sample`.")
@click.option("--output", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder for environment.json, kernels.jsonl, models.jsonl.")
@click.option("--threads", default="1,4", show_default=True, help="ONNX Runtime intra-op thread counts to time.")
@click.option("--cpus", default="auto", show_default=True,
              help="'auto': pin to as many distinct physical cores as the largest thread count; or a CPU list 2,3,4,5.")
@click.option("--deadline-s", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop starting kernels after this many seconds (results so far are kept).")
@click.option("--resume", is_flag=True,
              help="Continue a campaign in --output: skip kernels (and models) already timed there; repeat the "
                   "same command until it reports nothing left.")
def profile(plan_path: Path, output: Path, threads: str, cpus: str, deadline_s: float | None, resume: bool) -> None:
    """Time the plan's kernels (nn-Meter's torch blocks) and models with ONNX Runtime on this CPU."""
    from . import ortprofile

    _threads(threads)
    try:
        plan = json.loads(plan_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{plan_path}: --plan: cannot read a JSON plan: {exc}") from None
    if not isinstance(plan, dict) or not isinstance(plan.get("kernels", {}), dict):
        raise UserError(f"{plan_path}: field kernels: expected an object {{kernel type: {{id: {{config}}}}}}")
    pkg = nnmeter_package_dir()
    if pkg is None:
        raise UserError("nn-meter is not installed in this environment: pip install nn-meter==2.0 'setuptools<81'")
    argv = ["--plan", str(plan_path), "--out", str(output), "--threads", threads, "--nn-modules", str(pkg / "builder"),
            "--cpus", cpus, "--models-first"]
    if deadline_s is not None:
        argv += ["--deadline-s", str(deadline_s)]
    if resume:
        argv += ["--resume"]
    elif (output / "kernels.jsonl").exists():
        raise UserError(f"{output}: holds kernels.jsonl of an earlier run; pass --resume to continue it, or choose "
                        "another --output")
    raise SystemExit(ortprofile.main(argv))


@main.command("build-predictor")
@click.option("--measurements", type=click.Path(path_type=Path, file_okay=False), multiple=True,
              help="ortprofile output folder(s) (kernels.jsonl); repeat to merge rounds. Without it: sample, "
                   "profile on this machine, then fit.")
@click.option("--name", required=True, help="Predictor name; with several --threads, NAME_t<T> each.")
@click.option("--threads", default="1", show_default=True, help="Thread counts (one predictor each).")
@click.option("--output", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder that receives NAME/ (*.pkl, fusion_rules.json), hashes.json and build.json.")
@click.option("--scale", type=click.FloatRange(min=0, min_open=True, max=1), default=0.01, show_default=True,
              help="Without --measurements: fraction of nn-Meter's default sample counts.")
@click.option("--kernels", default=None, help="Without --measurements: kernel types (default nn-Meter's 16).")
@click.option("--fusion-rules", "fusion_rules", multiple=True,
              help="Fusion rules for the predictors' fusion_rules.json (nn-Meter's predictor reads them from the "
                   "predictor folder): FILE for every thread count, or T=FILE for one (repeat), e.g. the "
                   "fusion_rules.json of `detect-fusion`. Default {} (nn-Meter's default rules).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=1800, show_default=True)
def build_predictor(measurements: tuple[Path, ...], name: str, threads: str, output: Path, scale: float,
                    kernels: str | None, fusion_rules: tuple[str, ...], timeout: float) -> None:
    """Fit nn-Meter kernel predictors (nn-Meter's build_predictor_by_data) from kernel timings."""
    import re
    import tempfile

    from . import builder, ortprofile
    from .predictors import load_hashes

    counts = _threads(threads)
    rules = _fusion_rules(fusion_rules, counts)
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", name):
        raise UserError(f"--name: got {name!r}, expected letters, digits, '_', '.', '-'")
    if nnmeter_package_dir() is None:
        raise UserError("nn-meter is not installed in this environment: pip install nn-meter==2.0 'setuptools<81'")
    output.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    sources = []
    with tempfile.TemporaryDirectory(prefix="mtap-nnmeter-build-") as tmp:
        if not measurements:
            plan = {"kernels": _sample(builder.scaled_samples(scale, _kernel_list(kernels)), 19, timeout), "models": []}
            plan_path = Path(tmp) / "plan.json"
            builder.write_json(plan_path, plan)
            ortprofile.main(["--plan", str(plan_path), "--out", str(output / "measurements"), "--threads", threads,
                             "--nn-modules", str(nnmeter_package_dir() / "builder"), "--cpus", "auto"])
            measurements = (output / "measurements",)
        for folder in measurements:
            path = folder / "kernels.jsonl"
            try:
                records += builder.read_jsonl(path)
            except (OSError, ValueError) as exc:
                raise UserError(f"{path}: --measurements: cannot read kernel timings: {exc}") from None
            sources.append({"path": relative_to_repo(path), "sha256": builder.sha256_file(path)})
        built = []
        for t in counts:
            data = builder.kernel_data(records, t)
            if not data:
                raise UserError(f"{measurements[0]}: no kernel timed with {t} thread(s)")
            pname = name if len(counts) == 1 else f"{name}_t{t}"
            built.append(builder.fit(pname, data, output, timeout,
                                     rules[t][1] if t in rules else builder.DEFAULT_RULES_BYTES))
    hashes = builder.hashes_document(built)
    builder.write_json(output / "hashes.json", hashes)
    load_hashes(output / "hashes.json")  # the runner must be able to read what was written
    build = {"format": builder.BUILD_FORMAT, "nn_meter": nnmeter_version(), "backend": builder.BACKEND,
             "fit": "nn_meter.builder.kernel_predictor_builder.build_predictor_by_data (RandomForestRegressor, "
                    "80/20 split, random_state 10; the kept predictor is fitted on the 80 %)",
             "fusion_rules": {b.name: (rules[t][2] if t in rules else "{} (none given: nn-Meter's default rules, "
                                                                        "KernelDetector reads it like no rule file)")
                              for b, t in zip(built, counts)},
             "measurements": sources, "label": "median latency of session.run (ms)",
             "not_shipped": {k: why for k, why in builder.NOT_SHIPPED.items()
                             if any(k in b.results for b in built)},
             "predictors": {b.name: {"threads": t, "sklearn": b.sklearn, "kernels": b.results}
                            for b, t in zip(built, counts)}}
    builder.write_json(output / "build.json", build)
    for b in built:
        click.echo(f"{b.name}: " + ", ".join(f"{k} {r['samples']} (acc10 {r['acc10']:.2f})"
                                            for k, r in sorted(b.results.items())), err=True)
    click.echo(f"{output}: predictors, hashes.json, build.json written", err=True)


def _fusion_rules(values: tuple[str, ...], counts: list[int]) -> dict[int, tuple[Path, bytes, dict[str, Any]]]:
    """--fusion-rules FILE / T=FILE -> {threads: (path, bytes, provenance)}; a bad file is one line."""
    from . import builder, fusion

    out: dict[int, tuple[Path, bytes, dict[str, Any]]] = {}
    for value in values:
        head, sep, rest = value.partition("=")
        if sep and head.isdigit():
            targets, path = [int(head)], Path(rest)
        else:
            targets, path = list(counts), Path(value)
        for t in targets:
            if t not in counts:
                raise UserError(f"--fusion-rules: {value!r} names {t} thread(s), which --threads does not build")
        try:
            fusion.read_rules(path)
        except ValueError as exc:
            raise UserError(f"--fusion-rules: {exc}") from None
        data = path.read_bytes()
        record: dict[str, Any] = {"path": relative_to_repo(path), "sha256": builder.sha256_file(path)}
        detection = path.parent / fusion.DETECTION_FILE
        if detection.is_file():
            try:
                det = json.loads(detection.read_text(encoding="utf-8"))
                record.update({"detection": relative_to_repo(detection), "label": det.get("label"),
                               "cpu": (det.get("cpu") or {}).get("model"), "threads": det.get("threads"),
                               "onnxruntime": det.get("onnxruntime"), "fused": (det.get("summary") or {}).get("obey")})
            except (OSError, ValueError):
                pass
        for t in targets:
            out[t] = (path, data, record)
    return out


@main.command("measured")
@run_options(tool="onnxruntime", output=OUTPUT, tool_path=False, keep_raw=False, jobs=False)
@click.option("--measurements", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="ortprofile output folder (environment.json, models.jsonl).")
def measured_cmd(opts: RunOptions, measurements: Path) -> None:
    """Write the measured end-to-end model latencies (ONNX Runtime CPU) as a tool-run document."""
    from . import measured

    env, records = measured.read_measurements(measurements)
    artifact = tr.artifact(measurements / "models.jsonl")
    version = (env.get("packages") or {}).get("onnxruntime")
    builder = tr.ToolRun(RUNNER, __version__,
                         tr.Tool("onnxruntime", version, "measured",
                                 f"onnxruntime {version} CPUExecutionProvider (the measurement machine's Python package)"),
                         environment=measured.environment(env, __version__))
    builder.setup_done()
    finish(builder, measured.cases(env, records, artifact), opts)


# ----------------------------------------------------------------------------- issue #28: fusion rules detected
# with nn-Meter's builder on the ort_cpu backend


@main.command("detect-fusion")
@click.option("--output", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder for fusion_rules.json (nn-Meter's detect_fusion_rule output, what a predictor folder "
                   "carries) and detection.json (provenance, every measured latency, the decision per rule).")
@click.option("--threads", default="1", show_default=True, help="ONNX Runtime intra-op threads (one count).")
@click.option("--cpus", default="auto", show_default=True,
              help="'auto': pin to as many distinct physical cores as threads (ortprofile.pick_cpus); or a CPU list.")
@click.option("--rounds", type=click.IntRange(min=1, max=20), default=3, show_default=True,
              help="Passes over all test-case models; the decision uses the per-model median.")
@click.option("--testcases", default=None, help="Only these test cases, comma-separated (BF_conv_relu,...; default "
                                                "all of nn-Meter's basic test cases).")
@click.option("--label", default=None, help="Label recorded in detection.json (default: the output folder's name).")
@click.option("--generate", "generate_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Only write the test cases (ONNX files + testcases.json) to this folder, for "
                   "`python -m mtap_nnmeter_runner.ortprofile --fusion DIR` on the machine to measure.")
@click.option("--measurements", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="ortprofile --fusion output (fusion.jsonl, environment.json): detect from these timings "
                   "instead of measuring here.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=3600, show_default=True)
def detect_fusion(output: Path | None, threads: str, cpus: str, rounds: int, testcases: str | None, label: str | None,
                  generate_dir: Path | None, measurements: Path | None, timeout: float) -> None:
    """Detect the ONNX Runtime CPU's fusion rules with nn-Meter's rule tester (generate test cases, profile
    them on the ort_cpu backend, detect_fusion_rule)."""
    from . import ortprofile

    counts = _threads(threads)
    if len(counts) != 1:
        raise UserError(f"--threads: got {threads!r}, expected one thread count (one rule file per thread count)")
    t = counts[0]
    names = [n.strip() for n in (testcases or "").split(",") if n.strip()] or None
    if generate_dir is not None and (output is not None or measurements is not None):
        raise UserError("--generate: only writes test cases; leave out --output and --measurements")
    if generate_dir is None and output is None:
        raise UserError("--output: required (or --generate DIR to write the test cases only)")
    if nnmeter_package_dir() is None:
        raise UserError("nn-meter is not installed in this environment: pip install nn-meter==2.0 'setuptools<81'")
    for path in (output, generate_dir):
        if path is not None:
            check_parent(path)
    spec: dict[str, Any] = {"threads": t, "testcases": names, "timing": ortprofile.RULE_TIMING}

    def work(mode: str, **more: Any) -> dict[str, Any]:
        return _fusion_worker(spec, mode, timeout, **more)

    if generate_dir is not None:
        generate_dir.mkdir(exist_ok=True)
        _write_fusion_testcases(generate_dir, work("generate", out=str(generate_dir)))
        return
    assert output is not None
    if measurements is not None:
        result, env, null, affinity, timing, source = _fusion_from_measurements(measurements, t, names, work)
    else:
        chosen = ortprofile.pick_cpus(t) if cpus == "auto" else _cpu_list(cpus)
        result = work("local", cpus=chosen, rounds=rounds)
        env = ortprofile.environment()
        null, affinity, timing = result["null_model"], result["affinity"], result["timing"]
        source = {"measured_by": "nn-Meter's profile_models(backend=ort_cpu, mode='ruletest') in the worker process, "
                                 "this machine"}
    _write_fusion_detection(output, result, label=label or output.name, environment=env, threads=t, affinity=affinity,
                            timing=timing, null_model=null, source=source)


def _fusion_worker(spec: dict[str, Any], mode: str, timeout: float, **more: Any) -> dict[str, Any]:
    """The worker's ``fusion`` verb in ``mode`` (in a temporary nn-Meter workspace); a failure is a UserError
    (an unknown --testcases name) or a RuntimeError."""
    import tempfile

    from .nnmeter import _worker

    with tempfile.TemporaryDirectory(prefix="mtap-nnmeter-fusion-") as tmp:
        result = _worker("fusion", {**spec, **more, "mode": mode, "workspace": tmp}, f"fusion-{mode}", timeout)
    if not result.get("ok"):
        if result.get("kind") == "invalid-value":
            raise UserError(f"--testcases: {result.get('message')}")
        raise RuntimeError(f"nn-Meter's fusion-rule tester failed: {result.get('kind')}: {result.get('message')}")
    return result


def _write_fusion_testcases(generate_dir: Path, result: dict[str, Any]) -> None:
    """--generate: the test-case listing beside the ONNX files the worker wrote."""
    from . import builder, fusion

    builder.write_json(generate_dir / fusion.TESTCASES_FILE,
                       {"nn_meter": nnmeter_version(), "testcases": result["testcases"], "failed": result["failed"],
                        "not_tested": result["not_tested"], "ruletest_config": result["ruletest_config"]})
    click.echo(f"{generate_dir}: {len(result['testcases'])} test cases ({len(result['failed'])} could not be built)",
               err=True)


def _fusion_from_measurements(measurements: Path, t: int, names: list[str] | None, work) -> tuple[Any, ...]:
    """--measurements: detect from ``ortprofile --fusion`` timings; the worker's result, the environment,
    null model, affinity and timing of the measuring machine, and the source recorded."""
    from . import builder, fusion, ortprofile

    env_path, jsonl = measurements / "environment.json", measurements / "fusion.jsonl"
    try:
        env = json.loads(env_path.read_text(encoding="utf-8"))
        records = builder.read_jsonl(jsonl)
    except (OSError, ValueError) as exc:
        raise UserError(f"{measurements}: --measurements: cannot read environment.json and fusion.jsonl: {exc}") from None
    measured, null, errors, ort_ops = fusion.measured_from_jsonl(records, t)
    if not measured:
        raise UserError(f"{jsonl}: no test case timed with {t} thread(s)")
    if names:
        measured = {n: v for n, v in measured.items() if n in names}
    generated = {}
    tc_path = measurements / fusion.TESTCASES_FILE
    if tc_path.is_file():
        generated = json.loads(tc_path.read_text(encoding="utf-8"))
    result = work("detect", measured=measured, failed={**(generated.get("failed") or {}), **errors})
    result["ort_ops"] = ort_ops
    affinity = env.get("affinity") or []
    timing = (env.get("timing") or {}).get("fusion") or ortprofile.RULE_TIMING
    source = {"measured_by": "python -m mtap_nnmeter_runner.ortprofile --fusion",
              "measurements": [{"path": relative_to_repo(p), "sha256": builder.sha256_file(p)}
                               for p in (jsonl, env_path)]}
    return result, env, null, affinity, timing, source


def _write_fusion_detection(output: Path, result: dict[str, Any], *, label: str, environment: dict[str, Any], threads: int,
                            affinity: Any, timing: Any, null_model: Any, source: dict[str, Any]) -> None:
    """The rule file, ORT's graph-rule file (where there is one) and detection.json in ``output``; one summary line."""
    from . import builder, fusion

    output.mkdir(exist_ok=True)
    data = fusion.rules_bytes(result)
    (output / fusion.RULES_FILE).write_bytes(data)
    doc = fusion.detection_document(result, label=label, nn_meter=nnmeter_version(), environment=environment,
                                    threads=threads, affinity=affinity, timing=timing, rules_bytes=data, null_model=null_model,
                                    source=source)
    graph_rules = fusion.ort_graph_rules_bytes(doc)
    if graph_rules is not None:
        (output / fusion.ORT_GRAPH_RULES_FILE).write_bytes(graph_rules)
        doc["ort_graph_rule_file"] = {"path": fusion.ORT_GRAPH_RULES_FILE, "sha256": fusion.sha256_bytes(graph_rules)}
    builder.write_json(output / fusion.DETECTION_FILE, doc)
    summary = doc["summary"]
    click.echo(f"{output}: {summary['tested']} rules tested, fused: {', '.join(summary['obey']) or 'none'}; "
               f"{len(summary['unstable_across_rounds'])} differ between rounds; "
               f"{len(summary['not_built'])} test cases could not be built", err=True)

def _cpu_list(value: str) -> list[int]:
    import os

    try:
        cpus = [int(c) for c in value.split(",")]
    except ValueError:
        cpus = []
    allowed = os.sched_getaffinity(0)
    if not cpus or any(c not in allowed for c in cpus):
        raise UserError(f"--cpus: got {value!r}, expected 'auto' or CPUs this process may use ({sorted(allowed)})")
    return cpus


if __name__ == "__main__":  # pragma: no cover
    main()
