"""vidur-runner: run the real VIDUR simulator (vidur from PyPI) offline on mtap's W5 serving matrix."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

import mtap_schemas.toolrun as tr
from mtap_schemas import proc
from mtap_schemas.cli import RunOptions, UserError, finish, run_options, runner_group
from mtap_schemas.execute import run_cases
from mtap_schemas.paths import relative_to_repo
from mtap_vidur_runner import __version__, simulate
from mtap_vidur_runner import cases as cases_mod
from mtap_vidur_runner import parse as parse_mod
from mtap_vidur_runner import profiles as profiles_mod
from mtap_vidur_runner.profiler import HARDWARE as HARDWARE_PROFILES  # stdlib-only module

RUNNER = "vidur-runner"
TOOL = "vidur"
TOOL_DEFAULTS = "vidur-defaults"
VIDUR_PIN = "0.0.26"
OUTPUT = "data/evaluation/vidur"
DEFAULT_TIMEOUT_S = cases_mod.DEFAULTS["timeout_s"]


def default_cache_dir() -> Path:
    env = os.environ.get("MTAP_VIDUR_CACHE")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mtap" / "vidur"


def predictor_cache(base: Path, packages: dict[str, str]) -> Path:
    """The cache folder for this scikit-learn: vidur pickles its random forests, and a pickle from
    another scikit-learn version may not load (vidur's own cache key leaves the version out)."""
    return base / f"sklearn-{packages.get('scikit-learn', 'unknown')}"


def resolve_python(tool_path: Path | None) -> str:
    """The interpreter that runs `python -m vidur.main`: --tool-path / MTAP_VIDUR_PATH (a python
    executable or a virtualenv folder), else this interpreter."""
    if tool_path is None:
        return sys.executable
    p = Path(tool_path)
    if p.is_dir():
        for cand in (p / "bin" / "python", p / "bin" / "python3", p / "Scripts" / "python.exe"):
            if cand.exists():
                return str(cand)
        raise UserError(f"{p}: --tool-path: expected a python executable or a virtualenv folder with bin/python")
    if not p.exists():
        raise UserError(f"{p}: --tool-path: no such file (expected a python executable with vidur installed)")
    return str(p)


PROBE = (
    "import importlib.metadata as m, importlib.util as u, json\n"
    "out = {}\n"
    "for n in ('vidur', 'scikit-learn', 'pandas', 'numpy', 'huggingface_hub'):\n"
    "    try: out[n] = m.version(n)\n"
    "    except Exception: pass\n"
    "out['_importable'] = u.find_spec('vidur') is not None and u.find_spec('vidur.main') is not None\n"
    "print(json.dumps(out))\n"
)


def probe_vidur(python: str) -> tuple[str | None, dict[str, str], str | None]:
    """(vidur version, package versions, error) as seen by `python` (metadata only: no import of vidur)."""
    if python == sys.executable:
        import contextlib
        import io

        ns: dict = {}
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(PROBE, ns)  # noqa: S102 - our own constant
        pkgs = json.loads(buf.getvalue())
    else:
        result = proc.run_tool([python, "-c", PROBE], timeout=120)
        if not result.ok:
            return None, {}, f"{Path(python).name}: {result.error(120)[1]}"
        try:
            pkgs = json.loads(result.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            return None, {}, f"{Path(python).name} printed no package list"
    importable = pkgs.pop("_importable", False)
    if not importable or "vidur" not in pkgs:
        return None, {}, f"vidur is not installed for {relative_to_repo(python)}"
    return pkgs.get("vidur"), pkgs, None


@runner_group(RUNNER, __version__)
def main() -> None:
    """Run VIDUR (Microsoft's LLM-serving simulator, `vidur` from PyPI, pinned 0.0.26) offline on
    mtap's W5 matrix: Llama-2-7B, schedulers vllm / sarathi (chunk 512) / orca x QPS 1, 2, 4 x 500
    requests (uniform 128-512 tokens, prefill:decode 20, seed 42, TP=1 PP=1), on each GPU that has
    profiles, and write one tool-run v2 document.

    The tool: vidur is a Python dependency of this package; `python -m vidur.main` runs in this
    interpreter unless --tool-path / MTAP_VIDUR_PATH names another Python (or virtualenv) that has
    it. VIDUR needs per-GPU operator profiles (mlp.csv, attention.csv): --profiles DIR (upstream
    microsoft/vidur `data/profiling/` layout) and the committed data/profiles/vidur/<device>/ (our
    own H100 profile, made by `vidur-runner profile`). They are laid out as the local Hugging Face
    cache vidur reads offline; vidur's trained predictors are cached by profile content
    (--cache-dir, default ~/.cache/mtap/vidur).

    Options, exit codes and the keep-results policy are the runner contract of packages/README.md.

    \b
    Example:
      vidur-runner run
      vidur-runner run --profiles ~/vidur/data/profiling     # adds A100 if attention.csv is there
      vidur-runner cases --limit 3
    """


CONFIG_HELP = "JSON narrowing/overriding the W5 matrix (schemas/config/vidur-runner.v1.schema.json; fields: " + ", ".join(sorted(cases_mod.DEFAULTS)) + ")."


def _plan(opts: RunOptions) -> tuple[dict[str, Any], list[cases_mod.Case]]:
    try:
        cfg = cases_mod.merge_config(opts.config_doc, opts.config)
        planned = cases_mod.build_cases(cfg, opts.data_dir, opts.config)
    except cases_mod.ConfigError as exc:
        raise UserError(str(exc)) from None
    return cfg, opts.select(planned)


@main.command("cases")
@run_options(tool=TOOL, output=OUTPUT, verb="cases", config_schema=RUNNER, config_help=CONFIG_HELP)
def cases_cmd(opts: RunOptions) -> None:
    """Print the planned cases as JSON lines; runs nothing."""
    _, cs = _plan(opts)
    for c in cs:
        click.echo(json.dumps(c.plan(), sort_keys=True))


def _common(c: cases_mod.Case) -> dict[str, Any]:
    return {"workload": cases_mod.WORKLOAD, "hardware": c.hardware, "key": c.key, "parameters": c.parameters()}


def _profile_missing_message(ps: profiles_mod.ProfileSet) -> str:
    return (
        f"no complete VIDUR profile for {ps.device} / {ps.model}: missing {', '.join(ps.missing)} "
        f"(looked in {len(ps.searched)} folders, e.g. {relative_to_repo(ps.searched[0]) if ps.searched else '-'}). "
        f"Provide one with --profiles DIR (upstream microsoft/vidur data/profiling/ layout: "
        f"compute/{ps.device}/{ps.model}/{{mlp,attention}}.csv) or measure one on that GPU with "
        f"`vidur-runner profile` into data/profiles/vidur/{ps.device}/."
    )


def _artifacts(outdir: Path, keep_dir: Path | None, c: cases_mod.Case) -> list[dict]:
    """file refs for vidur's outputs; copied (xz) under keep_dir when given, else named by vidur's folder."""
    import lzma

    refs = []
    for rel in parse_mod.ARTIFACTS:
        src = outdir / rel
        if not src.is_file():
            continue
        if keep_dir is not None:
            dst = keep_dir / c.slug / (Path(rel).name + ".xz")
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(lzma.compress(src.read_bytes(), preset=9))
            # the keep folder as the repository sees it (<external>/NAME outside it), then the case's own files
            refs.append(tr.artifact(dst, name=f"{relative_to_repo(keep_dir)}/{c.slug}/{dst.name}"))
        else:
            refs.append(tr.artifact(src, name=f"vidur-output/{rel}"))
    return refs


def profile_independence(profile: str) -> dict[str, Any]:
    """VIDUR predicts from an operator profile of the scored GPU: its cases are calibrated on that
    profile, a microbenchmark that is not the scored cases (mtap_schemas.kinds.REFERENCE_CLASSES)."""
    return tr.independence("calibrated-separately", f"VIDUR's {cases_mod.MODEL} operator profile of this GPU ({profile}), not the scored cases")


def case_from_output(c: cases_mod.Case, outdir: Path, keep_dir: Path | None, profile: str | None = None) -> tuple[dict, list | None]:
    """(case, fingerprint) of one vidur output folder: ``ok`` with its metrics, or ``failed``
    (``parse-failed`` for a missing/unreadable file, ``invalid-value`` for a number no metric can take).
    The fingerprint (metrics and the CSVs' sha256) is what the determinism check compares. ``profile``
    names the operator profile VIDUR predicted from (the case's ``independence``)."""
    try:
        metrics = parse_mod.parse_output(outdir)
    except parse_mod.ParseError as exc:
        return tr.failed(c.id, kind="parse-failed", message=str(exc), **_common(c)), None
    except tr.InvalidValue as exc:
        return tr.failed(c.id, kind="invalid-value", message=f"vidur output {outdir.name}: {exc}", **_common(c)), None
    digests = {rel: tr.artifact(outdir / rel)["sha256"] for rel in parse_mod.ARTIFACTS if (outdir / rel).is_file()}
    case = tr.ok(c.id, metrics=metrics, artifacts=_artifacts(outdir, keep_dir, c), **_common(c),
                 independence=profile_independence(profile) if profile else None)
    return case, [metrics, digests]


@dataclass(frozen=True)
class Unit:
    """One vidur call: picklable, sent to a worker process."""

    case: cases_mod.Case
    compute_repo: str
    network_repo: str
    cache: str
    python: str
    timeout: float
    keep_dir: str | None = None
    repeat: bool = False  # the determinism check's second run of `case`
    print_timings: bool = False
    profile: str | None = None  # the operator profile's folder, as the repository names it

    @property
    def ident(self) -> str:
        return self.case.id + ("#repeat" if self.repeat else "")


def run_unit(u: Unit) -> dict[str, Any]:
    """Run vidur for one unit; {"case": tool-run case, "fingerprint": [metrics, sha256s] | None}."""
    c = u.case
    with tempfile.TemporaryDirectory(prefix=f"mtap-vidur-{c.slug}-") as tmp:
        out_root = Path(tmp) / "out"
        trace_file = None
        if c.point is not None:
            from mtap_vidur_runner import trace as trace_mod

            trace_file = Path(tmp) / "trace.csv"
            trace_mod.write_trace_csv(c.point, trace_file)
        sc = simulate.SimCase(
            cases_mod.MODEL, c.device, c.network_device, c.scheduler, c.qps, c.num_requests,
            c.min_tokens, c.max_tokens, c.pd_ratio, c.seed, c.chunk_size if c.scheduler == "sarathi" else None,
            arrival=c.arrival, trace_file=str(trace_file) if trace_file else None, batch_size_cap=c.batch_size_cap,
            block_size=c.block_size, num_blocks=c.num_blocks, max_tokens_in_batch=c.max_tokens_in_batch,
        )
        args = simulate.vidur_args(sc, u.compute_repo, u.network_repo, Path(u.cache), out_root)
        res = simulate.run_vidur(args, out_root, python=u.python, timeout=u.timeout, device=c.device, composition=True)
        if u.print_timings and not u.repeat:
            click.echo(json.dumps({"case": c.id, "vidur_seconds": round(res.seconds, 3)}), err=True)
        if res.error is not None or res.output_dir is None:
            kind, message = res.error or ("parse-failed", "vidur wrote no output folder")
            return {"case": tr.from_error(c.id, kind=kind, message=message, **_common(c)), "fingerprint": None}
        keep = None if u.repeat or u.keep_dir is None else Path(u.keep_dir)
        if c.point is not None:
            return trace_cases_from_output(c, res.output_dir, keep, u.profile)
        case, fingerprint = case_from_output(c, res.output_dir, keep, u.profile)
    return {"case": case, "fingerprint": fingerprint}


def trace_cases_from_output(c: cases_mod.Case, outdir: Path, keep_dir: Path | None, profile: str | None) -> dict[str, Any]:
    """A trace point's case (TTFT / TPOT / e2e percentiles, makespan, throughput, defined as serving-groundtruth
    defines them) and one case per request, keyed as the served trace's."""
    from mtap_vidur_runner import trace as trace_mod

    try:
        lats = trace_mod.request_latencies(outdir, c.point)
        summary = trace_mod.point_metrics(lats)
    except (trace_mod.TraceError, KeyError, ValueError) as exc:
        return {"case": tr.failed(c.id, kind="parse-failed", message=str(exc), **_common(c)), "fingerprint": None, "requests": []}
    ind = profile_independence(profile) if profile else None
    units = {"throughput_req_s": "req/s", "output_throughput_tok_s": "tok/s", "requests": "count"}
    metrics = [tr.metric(k, v, units.get(k, "s"), "prediction", timing="simulated" if units.get(k, "s") == "s" else None)
               for k, v in summary.items()]
    case = tr.ok(c.id, metrics=metrics, artifacts=_artifacts(outdir, keep_dir, c), independence=ind, **_common(c))
    requests = []
    for req, lat in lats:
        rkey = f"{c.key}.req{req['id']}"
        requests.append(tr.ok(f"{c.id}/req{req['id']}", workload=cases_mod.WORKLOAD, hardware=c.hardware, key=rkey,
                              parameters={"point": c.point["id"], "request": req["id"], "prompt_tokens": req["prompt_tokens"],
                                          "output_tokens": req["output_tokens"], "arrival_s": req["arrival_s"],
                                          "scheduler": c.scheduler, "variant": c.variant},
                              metrics=[tr.metric(k, v, "s", "prediction", timing="simulated") for k, v in lat.items()],
                              independence=ind))
    digests = {rel: tr.artifact(outdir / rel)["sha256"] for rel in parse_mod.ARTIFACTS if (outdir / rel).is_file()}
    return {"case": case, "fingerprint": [metrics, digests], "requests": requests}


@main.command("run")
@run_options(tool=TOOL, output=OUTPUT, timeout=DEFAULT_TIMEOUT_S, config_schema=RUNNER, config_help=CONFIG_HELP,
             keep_raw_aliases=["--keep-outputs"],
             tool_path_help="A Python interpreter (or virtualenv folder) that has vidur installed, to run "
                            "`python -m vidur.main` there.  [default: this interpreter, where vidur==0.0.26 is a dependency]")
@click.option("--profiles", "profile_dirs", multiple=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Extra VIDUR profile folder(s), upstream layout (compute/<device>/<model>/...) or <device>/<model>/...; "
                   "searched before data/profiles/vidur. Also MTAP_VIDUR_PROFILES (os.pathsep-separated).")
@click.option("--cache-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Where the HF-cache layout and vidur's trained predictors live.  [default: $MTAP_VIDUR_CACHE or ~/.cache/mtap/vidur]")
@click.option("--print-timings", is_flag=True,
              help="After each vidur call, print {case, vidur_seconds} as a JSON line on stderr (for the benchmark).")
def run_cmd(opts: RunOptions, profile_dirs: tuple[Path, ...], cache_dir: Path | None, print_timings: bool) -> None:
    """Run the cases and write OUTPUT/NAME.tool-run.json (tool-run v2). --keep-raw keeps xz copies of each
    case's request/batch/TBT CSVs there (referenced as artifacts)."""
    cfg, cs = _plan(opts)
    timeout = opts.timeout
    if click.get_current_context().get_parameter_source("timeout") == ParameterSource.DEFAULT:
        timeout = cfg["timeout_s"]
    python = resolve_python(opts.tool_path)
    version, pkgs, vidur_err = probe_vidur(python)
    if version and version != VIDUR_PIN:
        click.echo(f"warning: vidur {version} found, mtap pins {VIDUR_PIN}", err=True)
    # a serving trace predicted at VIDUR's own settings is its own row: tool vidur-defaults (matched settings: vidur)
    tool = TOOL_DEFAULTS if cfg.get("trace") and cfg.get("variant") == "defaults" else TOOL
    if cfg.get("trace") and click.get_current_context().get_parameter_source("name") == ParameterSource.DEFAULT and not opts.shard:
        opts.name = f"vidur-serving-{cfg.get('variant')}"  # beside vidur.tool-run.json, never over it
    builder = tr.ToolRun(RUNNER, __version__, tr.Tool(tool, version, "native", tool_location(opts.tool_path)), config=opts.config,
                         packages=pkgs)

    cache = predictor_cache((cache_dir or default_cache_dir()).expanduser(), pkgs).resolve()
    roots = profile_roots(profile_dirs, opts.data_dir)
    datasets, profile_of = ({}, {}) if vidur_err else install_profiles((c.hardware for c in cs), roots, cache)
    keep = str(opts.keep_raw.resolve()) if opts.keep_raw is not None else None
    units: list[Unit] = []
    for c in cs:
        ds = datasets.get(c.hardware)
        if isinstance(ds, profiles_mod.Datasets):
            units.append(Unit(c, ds.compute_repo, ds.network_repo, str(cache), python, timeout, keep,
                              print_timings=print_timings, profile=profile_of.get(c.hardware)))
    if units and cfg["determinism_check"]:
        units.append(dataclasses.replace(units[0], repeat=True))
    warm, rest = warm_first(units)
    plan = {"cases": [c.plan() for c in cs], "vidur": version, "timeout": timeout, "keep_raw": keep is not None,
            "datasets": {hw: (d.compute_repo if isinstance(d, profiles_mod.Datasets) else d) for hw, d in datasets.items()},
            "determinism_check": cfg["determinism_check"]}
    checkpoint = opts.checkpoint(plan)
    builder.setup_done()
    results = run_phases([(warm, "vidur (training predictors if the cache is cold)"), (rest, "vidur")], run_unit, opts, checkpoint)
    out = _documented_cases(cs, vidur_err, datasets, results)
    _mark_determinism(units, results)
    finish(builder, out, opts, checkpoint)


def tool_location(tool_path: Path | None) -> str:
    """``tool.location``: which interpreter ran ``python -m vidur.main``."""
    return f"python -m vidur.main ({'--tool-path' if tool_path is not None else 'runner environment'})"


def profile_roots(profile_dirs: tuple[Path, ...], data_dir: Path) -> list[Path]:
    """Where VIDUR profiles are looked for, in order: --profiles, MTAP_VIDUR_PROFILES, the committed data/profiles/vidur."""
    roots = list(profile_dirs)
    roots += [Path(p) for p in os.environ.get("MTAP_VIDUR_PROFILES", "").split(os.pathsep) if p]
    roots.append(data_dir / "profiles" / "vidur")
    return roots


def install_profiles(hardware: Iterable[str], roots: list[Path], cache: Path) -> tuple[dict[str, profiles_mod.Datasets | str], dict[str, str]]:
    """Per hardware id (sorted): its complete profile laid out as vidur's local HF cache under ``cache``
    (:class:`profiles.Datasets`), or the message naming what is missing; and each installed profile's
    folder, as the repository names it (the cases' ``independence``)."""
    datasets: dict[str, profiles_mod.Datasets | str] = {}
    profile_of: dict[str, str] = {}
    for hw in sorted(set(hardware)):
        dev, net = cases_mod.HARDWARE[hw]
        ps = profiles_mod.locate(roots, dev, cases_mod.MODEL, net)
        if not ps.complete:
            datasets[hw] = _profile_missing_message(ps)
            continue
        cache.mkdir(parents=True, exist_ok=True)
        datasets[hw] = profiles_mod.install(ps, cache)
        profile_of[hw] = relative_to_repo(ps.compute["mlp"].parent)
    return datasets, profile_of


def warm_first(units: list) -> tuple[list, list]:
    """(warm, rest): the first call per profile trains vidur's predictors into the shared cache, so those run
    alone first and parallel calls never train (or write) the same predictor at once. A determinism check's
    repeat never warms."""
    first = {}
    for u in units:
        if not getattr(u, "repeat", False):
            first.setdefault(u.compute_repo, u)
    warm = list(first.values())
    return warm, [u for u in units if u not in warm]


def run_phases(phases: list[tuple[list, str]], fn, opts: RunOptions, checkpoint) -> dict[str, dict]:
    """Each (units, label) phase in turn through the kit's run_cases (--jobs workers, checkpointed); the
    results by unit ident."""
    results: dict[str, dict] = {}
    for phase, label in phases:
        if phase:
            done = run_cases(phase, fn, jobs=opts.jobs, label=label, ident=lambda u: u.ident, checkpoint=checkpoint)
            results.update({u.ident: r for u, r in zip(phase, done)})
    return results


def _documented_cases(cs: list[cases_mod.Case], vidur_err: str | None, datasets: dict, results: dict[str, dict]) -> list[dict]:
    """The document's cases in plan order: ``unavailable`` where vidur or the GPU's profile is missing, else
    each vidur call's case (and a trace point's per-request cases)."""
    out: list[dict] = []
    for c in cs:
        if vidur_err:
            out.append(tr.unavailable(c.id, kind="package-missing", message=(
                f"{vidur_err}. Install it with `pip install vidur=={VIDUR_PIN}` or point --tool-path / "
                f"MTAP_VIDUR_PATH at a python that has it."), **_common(c)))
        elif isinstance(datasets[c.hardware], str):
            out.append(tr.unavailable(c.id, kind="profile-missing", message=datasets[c.hardware], **_common(c)))
        else:
            out.append(results[c.id]["case"])
            out.extend(results[c.id].get("requests", []))
    return out


def _mark_determinism(units: list[Unit], results: dict[str, dict]) -> None:
    """``deterministic`` on the repeated case when it is ok: its second run gave the same metrics and CSVs."""
    repeat = next((u for u in units if u.repeat), None)
    if repeat is not None:
        first_run, second_run = results[repeat.case.id], results[repeat.ident]
        if first_run["case"]["status"] == "ok":
            first_run["case"]["deterministic"] = (second_run["fingerprint"] is not None
                                                  and second_run["fingerprint"] == first_run["fingerprint"])


@main.command("batches")
@click.argument("docs", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--hardware", default="H200-SXM-141GB", show_default=True, help="The hardware id whose cases to read.")
@click.option("--output", "output", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The batch-plan document to write (schemas/batch-plan.v1.schema.json).")
@click.option("--skip-measured", "skip", multiple=True, type=click.Path(path_type=Path, dir_okay=False),
              help="A groundtruth replay document whose ok compositions to leave out (plan the rest; repeatable).")
@click.option("--plan-version", type=click.Choice(["1", "2"]), default="2", show_default=True,
              help="2: each decode request at its own KV (the computation VIDUR predicts); 1: decode requests padded "
                   "to the longest KV (the committed replay/batch-plan.json of the first H200 replay).")
def batches_cmd(docs: tuple[Path, ...], hardware: str, output: Path, skip: tuple[Path, ...], plan_version: str) -> None:
    """Write the batch plan for a GPU replay of VIDUR's batches.

    Reads the ok cases of HARDWARE in the vidur tool-run DOCS, and each one's kept
    batch_composition.csv.xz and batch_metrics.csv.xz (artifacts checked against their sha256),
    and writes every distinct batch composition once: prefill requests' query and KV tokens,
    decode requests' count and longest KV. `groundtruth run --suite replay --plan OUTPUT` then
    measures them on that GPU, and `vidur-runner replay` compares.
    """
    import mtap_schemas as ms
    from mtap_schemas.paths import repo_root
    from mtap_vidur_runner import replay as replay_mod
    from mtap_vidur_runner import replay_report

    try:
        cases = replay_mod.load_cases(docs, hardware, repo_root())
    except replay_mod.ReplayError as exc:
        raise UserError(str(exc)) from None
    doc = replay_mod.plan(cases, hardware, version=int(plan_version))
    done: set[str] = set()
    try:
        for p in skip:
            done |= set(replay_report.read_measured(p, hardware)[0])
    except replay_mod.ReplayError as exc:
        raise UserError(str(exc)) from None
    total = len(doc["compositions"])
    doc["compositions"] = [c for c in doc["compositions"] if c["key"] not in done]
    if not doc["compositions"]:
        raise UserError(f"--skip-measured: every one of the {total} compositions is measured already; nothing to plan")
    ms.write(output, doc, "batch-plan", int(plan_version))
    n = sum(len(c.batches) for c in cases)
    click.echo(f"{output}: {len(doc['compositions'])} distinct compositions of {n} batches in {len(cases)} cases"
               + (f" ({total - len(doc['compositions'])} already measured, left out)" if done else ""), err=True)


@main.command("trace")
@click.option("--point", "points", multiple=True, required=True, metavar="DIR:ID:QPS:N",
              help="A kept case folder (with request_metrics.csv.xz), the point's id, its QPS ('static' for all at "
                   "t = 0) and how many of its first requests to keep; repeatable, in the order to serve.")
@click.option("--output", "output", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The serving-trace document to write (schemas/serving-trace.v1.schema.json).")
def trace_cmd(points: tuple[str, ...], output: Path) -> None:
    """Write VIDUR's W5 requests as a serving trace, for a serving engine to be measured on.

    Each --point takes the first N requests of a kept case (vidur-runner run --keep-raw): their
    prompt and output tokens and arrival times (request 0 at t = 0). serving-groundtruth serves
    the trace on a GPU; vidur-runner run --trace predicts the same requests.

    \b
    Example:
      vidur-runner trace --point data/evaluation/vidur/outputs/h200-vllm-qps1:qps1:1:80 \\
                         --point data/evaluation/vidur/outputs/h200-vllm-static:static:static:200 \\
                         --output data/workloads/serving/w5-serving-trace.json
    """
    import mtap_schemas as ms
    from mtap_schemas.paths import repo_root
    from mtap_vidur_runner import trace as trace_mod

    specs = []
    for spec in points:
        parts = spec.rsplit(":", 3)
        if len(parts) != 4:
            raise UserError(f"--point {spec!r}: expected DIR:ID:QPS:N (e.g. outputs/h200-vllm-qps1:qps1:1:80)")
        folder, pid, qps_text, n_text = parts
        try:
            qps = None if qps_text == "static" else float(qps_text)
            n = int(n_text)
        except ValueError:
            raise UserError(f"--point {spec!r}: QPS must be a number or 'static' and N an integer") from None
        if (qps is not None and qps <= 0) or n < 1:
            raise UserError(f"--point {spec!r}: QPS must be > 0 and N >= 1")
        path = Path(folder) / "request_metrics.csv.xz"
        if not path.exists():
            path = Path(folder) / "request_metrics.csv"
        specs.append((path, pid, qps, n))
    try:
        doc = trace_mod.document(specs, repo_root())
    except trace_mod.TraceError as exc:
        raise UserError(str(exc)) from None
    ms.write(output, doc, "serving-trace")
    click.echo(f"{output}: {len(doc['points'])} points, {sum(len(p['requests']) for p in doc['points'])} requests", err=True)


@main.command("replay")
@click.argument("docs", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--measured", "measured_paths", multiple=True, type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="A groundtruth tool-run document of `groundtruth run --suite replay` on that plan (repeatable: one per call).")
@click.option("--hardware", default="H200-SXM-141GB", show_default=True, help="The hardware id whose cases to compare.")
@click.option("--output", "output", type=click.Path(path_type=Path, file_okay=False), default=Path(OUTPUT), show_default=True,
              help="Folder for vidur-batches.tool-run.json, vidur-replay.tool-run.json and vidur-replay-report.md.")
@click.option("--overwrite", is_flag=True, help="Replace documents even where the keep policy would refuse.")
def replay_cmd(docs: tuple[Path, ...], measured_paths: tuple[Path, ...], hardware: str, output: Path, overwrite: bool) -> None:
    """Compare VIDUR's batch and request predictions with the GPU replay of its batches.

    Writes (1) vidur-batches.tool-run.json: VIDUR's predicted time of each distinct batch
    (tool vidur, keys <model>.batch.<composition>.fp16, the measured cases' keys), so the
    aggregate pairs every batch with its measurement in D1; (2) vidur-replay.tool-run.json
    (backend "replayed"): each case's request latencies (TTFT, TPOT, e2e p50/p90/p99, makespan)
    from VIDUR's timeline re-run with the measured batch times (device and eager), the
    scheduler's batches held fixed, with CDF points of both timelines; (3) vidur-replay-report.md.
    """
    from mtap_schemas.paths import repo_root
    from mtap_vidur_runner import replay_report

    try:
        written = replay_report.write_all(docs, measured_paths, hardware, output, repo_root(), overwrite=overwrite)
    except replay_report.ReplayError as exc:
        raise UserError(str(exc)) from None
    for line in written:
        click.echo(line, err=True)
    if written.exit_code:
        sys.exit(written.exit_code)  # 4: a document on disk had more ok cases and was kept, with its report


@main.command("profile")
@click.option("--hardware", type=click.Choice(sorted(HARDWARE_PROFILES)), default=None,
              help="mtap hardware id of this GPU (checked against the GPU found); sets the default --output.")
@click.option("--output", "--output-dir", "output_dir", type=click.Path(path_type=Path), default=None,
              help="Profile root: writes <DIR>/<model>/{mlp,attention}.csv.xz and profile-meta.json, resuming what is there.  "
                   "[default: data/profiles/vidur/<device of --hardware>]")
@click.option("--model", default="meta-llama/Llama-2-7b-hf", show_default=True)
@click.option("--device", default="cuda", show_default=True, help="torch device (cpu only for testing the profiler).")
@click.option("--max-tokens", default=4096, show_default=True, help="Largest MLP token count.")
@click.option("--max-seq-len", default=4096, show_default=True)
@click.option("--max-batch-size", default=128, show_default=True)
@click.option("--max-chunk-size", default=4096, show_default=True)
@click.option("--compile/--no-compile", "compile_ops", default=None, help="torch.compile RMSNorm/RoPE/SiLU-and-mul (default: on for cuda).")
@click.option("--time-budget", "--time-budget-s", "time_budget_s", default=1e9, type=click.FloatRange(min=0, min_open=True),
              help="Seconds of measuring; stops at a point boundary, writes everything, and the next run continues.")
@click.option("--coverage", "coverage_only", is_flag=True,
              help="Measure nothing: merge a killed run's partial files and print the grid coverage (no torch needed).")
def profile_cmd(hardware, output_dir, model, device, max_tokens, max_seq_len, max_batch_size, max_chunk_size, compile_ops,
                time_budget_s, coverage_only) -> None:
    """Measure VIDUR's operator profile of MODEL on this GPU (needs the [profile] extra: torch).

    Runs the model's per-layer ops (embedding, norms, QKV/O/up/down projections, RoPE,
    SiLU-and-mul, residual add) over VIDUR's token-count grid and attention (chunked prefill and
    decode) over VIDUR's (chunk, KV length, batch) grid, with random fp16 weights, and writes
    them in VIDUR's CSV schema. Resumable: points already in the output folder are skipped,
    every measured point is kept at once (a killed run loses nothing finished), and a profile of
    another GPU is refused. Prints the grid coverage (measured / needed, MLP and attention) as
    JSON. A full Llama-2-7B grid takes about 10 minutes on an H200.
    """
    from mtap_vidur_runner import profiler

    if model not in profiler.MODELS:
        raise UserError(f"--model: {model!r} unknown; known: {', '.join(profiler.MODELS)}")
    if output_dir is None:
        if hardware is None:
            raise UserError("--output: give --output DIR or --hardware ID")
        output_dir = Path("data/profiles/vidur") / HARDWARE_PROFILES[hardware][0]
    try:
        if coverage_only:
            cov = profiler.profile_coverage(output_dir, model, max_tokens, max_seq_len, max_batch_size, max_chunk_size)
            click.echo(json.dumps(cov, indent=2, sort_keys=True))
            return
        try:
            import torch  # noqa: F401
        except ImportError:
            raise UserError("torch: not installed (pip install 'mtap-vidur-runner[profile]')") from None
        command = "vidur-runner " + " ".join(sys.argv[1:]) if sys.argv and "vidur-runner" in sys.argv[0] else None
        meta = profiler.run_profile(output_dir, model, device, max_tokens, max_seq_len, max_batch_size, max_chunk_size,
                                    compile_ops=compile_ops, time_budget_s=time_budget_s, hardware=hardware, command=command)
    except (profiler.ProfileError, RuntimeError) as exc:
        raise UserError(str(exc)) from None
    click.echo(json.dumps(meta["coverage"], indent=2, sort_keys=True))


from mtap_vidur_runner.w5keys import w5keys_cmd  # noqa: E402 - VIDUR at the ground truth's W5 keys (issue 30)

main.add_command(w5keys_cmd)

if __name__ == "__main__":  # pragma: no cover
    main()
