"""vidur-runner: run the real VIDUR simulator (vidur from PyPI) offline on mtap's W5 serving matrix."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import click

from mtap_vidur_runner import __version__, simulate
from mtap_vidur_runner import cases as cases_mod
from mtap_vidur_runner import parse as parse_mod
from mtap_vidur_runner import profiles as profiles_mod

TOOL = "vidur"
VIDUR_PIN = "0.0.26"


class UserError(click.ClickException):
    """A known user error: one line, exit status 2, nothing written."""

    exit_code = 2


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


def resolve_python(tool_path: str | None) -> str:
    """The interpreter that runs `python -m vidur.main`: --tool-path / MTAP_VIDUR_PATH (a python
    executable or a virtualenv folder), else this interpreter."""
    if not tool_path:
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
        ns: dict = {}
        import contextlib
        import io

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(PROBE, ns)  # noqa: S102 - our own constant
        pkgs = json.loads(buf.getvalue())
    else:
        try:
            proc = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, timeout=120)
        except OSError as exc:
            return None, {}, f"cannot start {python}: {exc}"
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            return None, {}, f"{python} failed: {last}"
        pkgs = json.loads(proc.stdout.strip().splitlines()[-1])
    importable = pkgs.pop("_importable")
    if not importable or "vidur" not in pkgs:
        return None, {}, f"vidur is not installed for {python}"
    return pkgs.get("vidur"), pkgs, None


def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def _common(f):
    f = click.option("--config", "config_path", type=click.Path(path_type=Path), default=None, help="JSON file narrowing/overriding the matrix (fields: " + ", ".join(sorted(cases_mod.DEFAULTS)) + ").")(f)
    f = click.option("--data-dir", type=click.Path(path_type=Path), default=Path("data"), show_default=True, help="The repository's data/ (hardware and workload catalogs, committed profiles under profiles/vidur/).")(f)
    f = click.option("--limit", type=click.IntRange(min=1), default=None, help="Run only the first N cases.")(f)
    return f


def _plan(config_path: Path | None, data_dir: Path, limit: int | None) -> tuple[dict, list[cases_mod.Case]]:
    try:
        cfg = cases_mod.load_config(config_path)
        cs = cases_mod.build_cases(cfg, data_dir, config_path)
    except cases_mod.ConfigError as exc:
        raise UserError(str(exc)) from None
    return cfg, cs[:limit] if limit else cs


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="vidur-runner")
def main() -> None:
    """Run VIDUR (Microsoft's LLM-serving simulator, `vidur` from PyPI, pinned 0.0.26) offline on
    mtap's W5 matrix: Llama-2-7B, schedulers vllm / sarathi (chunk 512) / orca x QPS 1, 2, 4 x 500
    requests (uniform 128-512 tokens, prefill:decode 20, seed 42, TP=1 PP=1), on each GPU that has
    profiles, and write one tool-run v1 document.

    VIDUR needs per-GPU operator profiles (mlp.csv, attention.csv). The runner takes them from
    --profiles DIR (upstream microsoft/vidur `data/profiling/` layout) and from the committed
    data/profiles/vidur/<device>/ (our own H100 profile, made by `vidur-runner profile`), lays
    them out as the local Hugging Face cache vidur reads offline, and keeps vidur's trained
    predictors in a cache keyed by profile content (--cache-dir, default ~/.cache/mtap/vidur).

    \b
    Example:
      vidur-runner run --output data/evaluation/vidur
      vidur-runner run --profiles ~/vidur/data/profiling     # adds A100 if attention.csv is there
      vidur-runner cases --limit 3
    """


@main.command("cases")
@_common
def cases_cmd(config_path: Path | None, data_dir: Path, limit: int | None) -> None:
    """Print the planned cases as JSON lines; runs nothing."""
    _, cs = _plan(config_path, data_dir, limit)
    for c in cs:
        click.echo(json.dumps(c.plan(), sort_keys=True))


def _unavailable(c: cases_mod.Case, kind: str, message: str) -> dict:
    return {
        "id": c.id, "key": c.key, "workload": cases_mod.WORKLOAD, "hardware": c.hardware,
        "parameters": c.parameters(), "status": "unavailable",
        "error": {"kind": kind, "message": message}, "metrics": [], "artifacts": [],
    }


def _profile_missing_message(ps: profiles_mod.ProfileSet) -> str:
    return (
        f"no complete VIDUR profile for {ps.device} / {ps.model}: missing {', '.join(ps.missing)} "
        f"(looked in {len(ps.searched)} folders, e.g. {_rel(ps.searched[0]) if ps.searched else '-'}). "
        f"Provide one with --profiles DIR (upstream microsoft/vidur data/profiling/ layout: "
        f"compute/{ps.device}/{ps.model}/{{mlp,attention}}.csv) or measure one on that GPU with "
        f"`vidur-runner profile` into data/profiles/vidur/{ps.device}/."
    )


def _case_slug(c: cases_mod.Case) -> str:
    return f"{c.device}-{c.scheduler}-qps{c.qps:g}".replace(".", "_")


def _artifacts(outdir: Path, keep_dir: Path | None, c: cases_mod.Case) -> list[dict]:
    """file refs for vidur's outputs; copied (xz) under keep_dir when given, else named by vidur's folder."""
    import lzma

    from mtap_schemas import sha256_file

    refs = []
    for rel in parse_mod.ARTIFACTS:
        src = outdir / rel
        if not src.is_file():
            continue
        if keep_dir is not None:
            dst = keep_dir / _case_slug(c) / (Path(rel).name + ".xz")
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(lzma.compress(src.read_bytes(), preset=9))
            refs.append({"path": _rel(dst), "sha256": sha256_file(dst)})
        else:
            refs.append({"path": f"vidur-output/{rel}", "sha256": sha256_file(src)})
    return refs


def _run_case(c: cases_mod.Case, ds: profiles_mod.Datasets, cache: Path, python: str, timeout: float, keep_dir: Path | None, work: Path) -> tuple[dict, simulate.SimResult, list[dict] | None]:
    sc = simulate.SimCase(
        cases_mod.MODEL, c.device, c.network_device, c.scheduler, c.qps, c.num_requests,
        c.min_tokens, c.max_tokens, c.pd_ratio, c.seed, c.chunk_size if c.scheduler == "sarathi" else None,
    )
    out_root = Path(tempfile.mkdtemp(prefix=_case_slug(c) + "-", dir=work))
    args = simulate.vidur_args(sc, ds.compute_repo, ds.network_repo, cache, out_root)
    res = simulate.run_vidur(args, out_root, python=python, timeout=timeout)
    doc = {
        "id": c.id, "key": c.key, "workload": cases_mod.WORKLOAD, "hardware": c.hardware,
        "parameters": c.parameters(), "status": "ok", "error": None, "metrics": [], "artifacts": [],
    }
    metrics = None
    if res.returncode != 0 or res.output_dir is None:
        last = [ln for ln in res.log_tail.strip().splitlines() if ln.strip()][-1:] or ["(no output)"]
        kind = "timeout" if res.returncode == -9 else "tool-crashed"
        doc.update(status="failed", error={"kind": kind, "message": f"python -m vidur.main exited {res.returncode}: {last[0][:400]}"})
    else:
        try:
            metrics = parse_mod.parse_output(res.output_dir)
            doc["metrics"] = metrics
            doc["artifacts"] = _artifacts(res.output_dir, keep_dir, c)
        except parse_mod.ParseError as exc:
            doc.update(status="failed", error={"kind": "parse-failed", "message": str(exc)})
    return doc, res, metrics


@main.command("run")
@_common
@click.option("--output", "output_dir", type=click.Path(path_type=Path), default=Path("data/evaluation/vidur"), show_default=True, help="Folder the document is written to.")
@click.option("--name", default=TOOL, show_default=True, help="File stem of the document (<name>.tool-run.json).")
@click.option("--profiles", "profile_dirs", multiple=True, type=click.Path(path_type=Path, exists=True, file_okay=False), help="Extra VIDUR profile folder(s), upstream layout (compute/<device>/<model>/...) or <device>/<model>/...; searched before data/profiles/vidur. Also MTAP_VIDUR_PROFILES (os.pathsep-separated).")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None, help="Where the HF-cache layout and vidur's trained predictors live (default: $MTAP_VIDUR_CACHE or ~/.cache/mtap/vidur).")
@click.option("--tool-path", default=None, envvar="MTAP_VIDUR_PATH", help="Python interpreter (or virtualenv folder) that has vidur installed; default: this interpreter, where vidur is a dependency. Env MTAP_VIDUR_PATH.")
@click.option("--keep-outputs", type=click.Path(path_type=Path), default=None, help="Copy each case's request/batch/TBT CSVs (xz) here and reference them as artifacts.")
@click.option("--print-timings", is_flag=True, help="After each vidur call, print {case, vidur_seconds} as a JSON line on stderr (for the benchmark).")
def run_cmd(config_path, data_dir, limit, output_dir, name, profile_dirs, cache_dir, tool_path, keep_outputs, print_timings) -> None:
    """Run the cases and write <output>/<name>.tool-run.json (a tool-run v1 document)."""
    import mtap_schemas as ms

    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.monotonic()
    cfg, cs = _plan(config_path, data_dir, limit)
    python = resolve_python(tool_path)
    cache = (cache_dir or default_cache_dir()).expanduser()
    roots = list(profile_dirs)
    roots += [Path(p) for p in os.environ.get("MTAP_VIDUR_PROFILES", "").split(os.pathsep) if p]
    roots.append(data_dir / "profiles" / "vidur")

    version, pkgs, vidur_err = probe_vidur(python)
    cache = predictor_cache(cache, pkgs)
    if version and version != VIDUR_PIN:
        click.echo(f"warning: vidur {version} found, mtap pins {VIDUR_PIN}", err=True)

    datasets: dict[str, profiles_mod.Datasets | str] = {}
    for hw in sorted({c.hardware for c in cs}):
        dev, net = cases_mod.HARDWARE[hw]
        ps = profiles_mod.locate(roots, dev, cases_mod.MODEL, net)
        if not ps.complete:
            datasets[hw] = _profile_missing_message(ps)
            continue
        cache.mkdir(parents=True, exist_ok=True)
        datasets[hw] = profiles_mod.install(ps, cache)
    setup_s = time.monotonic() - t0

    t1 = time.monotonic()
    results: list[dict] = []
    work = Path(tempfile.mkdtemp(prefix="vidur-runs-", dir=cache if cache.is_dir() else None))
    det_done = not cfg["determinism_check"]
    try:
        with click.progressbar(cs, label="vidur cases", file=sys.stderr, item_show_func=lambda c: c.id if c else "") as bar:
            for c in bar:
                ds = datasets[c.hardware]
                if vidur_err:
                    results.append(_unavailable(c, "package-missing", f"{vidur_err}. Install it with `pip install vidur=={VIDUR_PIN}` or point --tool-path / MTAP_VIDUR_PATH at a python that has it."))
                    continue
                if isinstance(ds, str):
                    results.append(_unavailable(c, "profile-missing", ds))
                    continue
                doc, res, metrics = _run_case(c, ds, cache, python, cfg["timeout_s"], keep_outputs, work)
                if print_timings:
                    click.echo(json.dumps({"case": c.id, "vidur_seconds": round(res.seconds, 3)}), err=True)
                if not det_done and doc["status"] == "ok":
                    det_done = True
                    doc2, res2, metrics2 = _run_case(c, ds, cache, python, cfg["timeout_s"], None, work)
                    same_metrics = metrics2 == metrics
                    same_files = all(
                        ms.sha256_file(res.output_dir / rel) == ms.sha256_file(res2.output_dir / rel)
                        for rel in parse_mod.ARTIFACTS if (res.output_dir / rel).is_file()
                    ) if res2.output_dir else False
                    doc["deterministic"] = bool(doc2["status"] == "ok" and same_metrics and same_files)
                results.append(doc)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    run_s = time.monotonic() - t1

    command = ["vidur-runner", "run"]
    if config_path:
        command += ["--config", _rel(config_path)]
    if data_dir != Path("data"):
        command += ["--data-dir", _rel(data_dir)]
    for p in profile_dirs:
        command += ["--profiles", _rel(p)]
    if limit:
        command += ["--limit", str(limit)]
    command += ["--output", _rel(output_dir)]
    if name != TOOL:
        command += ["--name", name]
    if keep_outputs:
        command += ["--keep-outputs", _rel(keep_outputs)]
    doc = {
        "schema": "tool-run",
        "schema_version": ms.version("tool-run"),
        "runner": {"name": "vidur-runner", "version": __version__},
        "tool": {"name": TOOL, "version": version, "backend": "native", "location": f"python -m vidur.main ({'--tool-path' if tool_path else 'runner environment'})"},
        "environment": ms.environment(gpu=None, packages=pkgs),
        "invocation": {"command": command, "config": {"path": _rel(config_path), "sha256": ms.sha256_file(config_path)} if config_path else None},
        "wall_clock": {"started_at": started, "setup_seconds": round(setup_s, 3), "run_seconds": round(run_s, 3)},
        "cases": results,
    }
    out = ms.write(output_dir / f"{name}.tool-run.json", doc, "tool-run")
    counts: dict[str, int] = {}
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    click.echo(f"wrote {out}: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())), err=True)


@main.command("profile")
@click.option("--output-dir", type=click.Path(path_type=Path), default=Path("data/profiles/vidur/h100"), show_default=True, help="Writes <output-dir>/<model>/{mlp,attention}.csv.xz and profile-meta.json.")
@click.option("--model", default="meta-llama/Llama-2-7b-hf", show_default=True)
@click.option("--device", default="cuda", show_default=True, help="torch device (cpu only for testing the profiler).")
@click.option("--max-tokens", default=4096, show_default=True, help="Largest MLP token count.")
@click.option("--max-seq-len", default=4096, show_default=True)
@click.option("--max-batch-size", default=128, show_default=True)
@click.option("--max-chunk-size", default=4096, show_default=True)
@click.option("--compile/--no-compile", "compile_ops", default=None, help="torch.compile RMSNorm/RoPE/SiLU-and-mul (default: on for cuda).")
@click.option("--time-budget-s", default=1e9, type=float, help="Stop profiling attention grid points after this long (the rest are skipped and counted).")
def profile_cmd(output_dir, model, device, max_tokens, max_seq_len, max_batch_size, max_chunk_size, compile_ops, time_budget_s) -> None:
    """Measure VIDUR's operator profile of MODEL on this GPU (needs the [profile] extra: torch).

    Runs the model's per-layer ops (embedding, norms, QKV/O/up/down projections, RoPE,
    SiLU-and-mul, residual add) over VIDUR's token-count grid and attention (chunked prefill and
    decode) over VIDUR's (chunk, KV length, batch) grid, with random fp16 weights, and writes
    them in VIDUR's CSV schema. Takes a few minutes on an H100.
    """
    try:
        import torch  # noqa: F401
    except ImportError:
        raise UserError("torch: not installed (pip install 'mtap-vidur-runner[profile]')") from None
    from mtap_vidur_runner import profiler

    if model not in profiler.MODELS:
        raise UserError(f"--model: {model!r} unknown; known: {', '.join(profiler.MODELS)}")
    meta = profiler.run_profile(output_dir, model, device, max_tokens, max_seq_len, max_batch_size, max_chunk_size, compile_ops=compile_ops, time_budget_s=time_budget_s)
    click.echo(json.dumps(meta, indent=2, sort_keys=True))
