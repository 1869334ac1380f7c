"""The local source of D4: time each runner from a clean clone with cold caches, here.

For every runner and every pass (default two): ``git clone`` the repository's committed HEAD
into a fresh folder, point the pip / uv / XDG / mtap caches at empty folders, install the
runner's nox session (``nox -s SESSION --install-only``), run the runner's own setup command
when it has one (``astra-runner setup``, ``timeloop-runner setup``), then its first result
(``nox -s SESSION --no-install -- --output OUT <args>``). Each phase is a step with its start
and end time, each runner a job named after its session (so ``Rules.tool_of`` maps it like a
GitHub job), each pass a run: the document has the shape the GitHub scraper writes (ci-timing
v2, ``source.kind: local``) and the same report generator reads it.

Determinism: the tool-run documents of the passes are compared case by case (status and
metrics, through ``mtap_schemas.canonical``); each job records what it was compared with.

Install path: what the runner spec says worked (a registry package, a source build, a Docker
image), or ``unavailable`` with the failing step's last line as the reason. A runner may reuse
a verified source build from the mtap cache (``reuse_build``): its ``build.json`` (measured
when it was built) is copied into the job as ``reused_build`` and the report says so; the
build is never re-timed or invented here.

Every command goes through ``mtap_schemas.proc.run_tool`` (own process group, timeout kills
the group).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mtap_schemas
from mtap_schemas.paths import portable_text
from mtap_schemas.proc import run_tool

from .client import public_url
from .rules import Rules
from .scrape import Scrape, document, run_record

INSTALL_KINDS = ("registry", "source-build", "docker-image")
#: cache variables pointed at an empty folder per pass (cold caches)
COLD_CACHE_VARS = ("XDG_CACHE_HOME", "PIP_CACHE_DIR", "UV_CACHE_DIR", "MTAP_CACHE_DIR")
KEYS = {"session", "job", "args", "setup", "install", "detail", "reuse_build", "image"}
#: container engines asked, in order, for the size of a runner's image (docker, or podman / buildah without a daemon)
IMAGE_ENGINES = ("docker", "podman", "buildah")


class LocalError(ValueError):
    """A runners file or option is unusable; ``str()`` is one line naming file and field."""


@dataclass
class Runner:
    """One runner to measure. ``args`` and ``setup`` may hold ``{out}`` (the pass's output
    folder), ``{bin}`` (the session's virtualenv bin folder) and ``{clone}``."""

    session: str
    job: str
    args: list[str] = field(default_factory=list)
    setup: list[list[str]] = field(default_factory=list)
    install: str = "registry"
    detail: str = ""
    reuse_build: str | None = None  # tool folder under the mtap cache whose verified build.json is reused
    image: str | None = None  # docker-image runners: the image their setup builds (its size is recorded)


#: mtap's runners, as measured by `ci-timing local` with no --runners file. ``{ext}`` and
#: ``{shared}`` are replaced by --ext-dir and --shared-dir.
DEFAULT_RUNNERS: list[dict[str, Any]] = [
    {"session": "zigzag", "job": "zigzag", "args": ["--output", "{out}", "--limit", "2"], "install": "registry",
     "detail": "zigzag-runner with zigzag-dse, installed by uv from PyPI"},
    {"session": "vidur", "job": "vidur", "args": ["--output", "{out}", "--limit", "1"], "install": "registry",
     "detail": "vidur-runner with vidur 0.0.26, installed by uv from PyPI; committed Llama-2-7B profiles, predictors trained on first use (cold mtap cache)"},
    {"session": "neusight", "job": "neusight", "args": ["--output", "{out}", "--artifact-dir", "{shared}/neusight", "--limit", "2"],
     "install": "registry", "detail": "neusight-runner, installed by uv from PyPI, re-scoring NeuSight's published artifact (../shared/neusight; no NeuSight code run)"},
    {"session": "astra", "job": "astra", "args": ["--output", "{out}", "--limit", "2"],
     "setup": [["{bin}/astra-runner", "setup", "--source", "{ext}/astra-sim", "--jobs", "2"]], "install": "source-build",
     "detail": "astra-runner setup: ASTRA-sim 2.0 analytical backend built from a local upstream clone", "reuse_build": "astra-sim"},
    {"session": "timeloop", "job": "timeloop", "args": ["--output", "{out}", "--limit", "2"],
     "setup": [["{bin}/timeloop-runner", "setup", "--source", "{ext}/timeloop", "--jobs", "2"]], "install": "source-build",
     "detail": "timeloop-runner setup: Timeloop v3.0.3 built from a local upstream clone", "reuse_build": "timeloop"},
    {"session": "analytical", "job": "analytical", "args": ["--output", "{out}", "--limit", "2"], "install": "registry",
     "detail": "analytical-runner; pip pre-installs torch==2.13.0 and takes the first wheel the host's package sources offer (CPU build where a CPU wheelhouse or index is configured)"},
    {"session": "nnmeter", "job": "nnmeter", "args": ["--output", "{out}", "--limit", "2"], "install": "registry",
     "detail": "nnmeter-runner with nn-meter 2.0 by pip, torch==2.13.0 as for analytical; latency predictors not given, so kernel detection only"},
    {"session": "groundtruth", "job": "groundtruth", "args": ["--output", "{out}", "--limit", "2"], "install": "registry",
     "detail": "groundtruth with torch from PyPI (needs a CUDA GPU)"},
]


def _str_list(value: Any, where: str, source: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise LocalError(f"{source}: field {where}: expected a list of strings")
    return list(value)


def _fill(text: str, subst: dict[str, str]) -> str:
    """``text`` with each ``{key}`` of ``subst`` replaced by its value."""
    for key, value in subst.items():
        text = text.replace("{" + key + "}", value)
    return text


def runners_from(data: Any, source: str, subst: dict[str, str]) -> list[Runner]:
    """Runner specs from a JSON list (see DEFAULT_RUNNERS), ``{ext}``/``{shared}`` replaced."""
    if not isinstance(data, list) or not data:
        raise LocalError(f"{source}: expected a non-empty JSON list of runner objects")
    out: list[Runner] = []
    for i, item in enumerate(data):
        where = f"[{i}]"
        if not isinstance(item, dict):
            raise LocalError(f"{source}: field {where}: expected a runner object")
        unknown = sorted(set(item) - KEYS)
        if unknown:
            raise LocalError(f"{source}: field {where}.{unknown[0]}: unknown key, expected one of {', '.join(sorted(KEYS))}")
        for key in ("session", "job"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise LocalError(f"{source}: field {where}.{key}: expected a non-empty string")
        install = item.get("install", "registry")
        if install not in INSTALL_KINDS:
            raise LocalError(f"{source}: field {where}.install: got {install!r}, expected one of {', '.join(INSTALL_KINDS)}")
        setup = item.get("setup", [])
        if not isinstance(setup, list):
            raise LocalError(f"{source}: field {where}.setup: expected a list of commands (lists of strings)")
        reuse = item.get("reuse_build")
        if reuse is not None and not isinstance(reuse, str):
            raise LocalError(f"{source}: field {where}.reuse_build: expected a tool folder name or null")
        image = item.get("image")
        if image is not None and (not isinstance(image, str) or not image):
            raise LocalError(f"{source}: field {where}.image: expected an image name or null")

        out.append(
            Runner(
                session=item["session"],
                job=item["job"],
                args=[_fill(a, subst) for a in _str_list(item.get("args", []), f"{where}.args", source)],
                setup=[[_fill(a, subst) for a in _str_list(c, f"{where}.setup[{j}]", source)] for j, c in enumerate(setup)],
                install=install,
                detail=str(item.get("detail", "")),
                reuse_build=reuse,
                image=image,
            )
        )
    # a session may be measured along several install paths (e.g. `astra` natively and through its image),
    # each its own job
    jobs = [r.job for r in out]
    if len(set(jobs)) != len(jobs):
        raise LocalError(f"{source}: a job is listed twice")
    return out


def load_runners(path: str | None, subst: dict[str, str]) -> list[Runner]:
    if path is None:
        return runners_from(DEFAULT_RUNNERS, "<default runners>", subst)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise LocalError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LocalError(f"{path}: not valid JSON: {exc}") from None
    return runners_from(data, path, subst)


def find_build(cache_root: Path, tool: str) -> tuple[Path, dict[str, Any]] | None:
    """The newest verified build (``build.json`` with ``verify.ok``) of ``tool`` in the cache."""
    found = []
    for path in sorted(cache_root.glob(f"{tool}/*/build.json")):
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(info, dict) and isinstance(info.get("verify"), dict) and info["verify"].get("ok") is True:
            found.append((str(info.get("built_at", "")), path, info))
    if not found:
        return None
    _, path, info = max(found)
    return path.parent, info


def reused_record(folder: Path, info: dict[str, Any]) -> dict[str, Any]:
    verify = info.get("verify") or {}
    seconds = info.get("build_seconds")
    return {
        "path": f"<mtap cache>/{folder.parent.name}/{folder.name}",  # ~/.cache/mtap or MTAP_CACHE_DIR
        "version": str(info.get("version") or info.get("commit") or "unknown"),
        "built_at": info.get("built_at") if isinstance(info.get("built_at"), str) else None,
        "build_seconds": float(seconds) if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds >= 0 else None,
        "verify": f"{verify.get('case')}: {verify.get('metric')} {verify.get('got')} (expected {verify.get('expected')})",
    }


_SOURCE_VARS = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONSTRAINT", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL",
                "UV_INDEX", "UV_DEFAULT_INDEX", "UV_FIND_LINKS", "UV_CONSTRAINT")
_SOURCE_KEYS = ("index-url", "extra-index-url", "find-links", "constraint")


def _public(value: str) -> str:
    return " ".join(public_url(v)[0] if "://" in v else v for v in value.split())


def package_sources(env: dict[str, str]) -> list[str]:
    """Where pip and uv take packages from besides their caches (a local wheelhouse or mirror
    makes a "cold" install faster than on a fresh machine): pip's configured index / find-links /
    constraints, the matching PIP_* / UV_* variables, and uv's config files. URLs without
    credentials."""
    out = [f"env {k}={_public(env[k])}" for k in _SOURCE_VARS if env.get(k)]
    res = run_tool(["python3", "-m", "pip", "config", "list"], timeout=60, env=env)
    for line in res.stdout.splitlines() if res.ok else []:
        key, sep, value = line.partition("=")
        if sep and key.rpartition(".")[2] in _SOURCE_KEYS and not key.startswith(":env:"):
            out.append(f"pip {key}={_public(value.strip().strip(chr(39)).strip(chr(34)))}")
    for path in (Path("/etc/uv/uv.toml"), Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "uv" / "uv.toml"):
        if path.is_file():
            out.append(f"uv config {path}")
    return out


def image_record(name: str, env: dict[str, str]) -> dict[str, Any] | None:
    """The image a docker-image runner's setup built: {name, id, size_bytes, engine}, from the first engine
    that knows it (``docker image inspect``, ``podman image inspect``, ``buildah images --json``); None if none does."""
    for engine in IMAGE_ENGINES:
        if not shutil.which(engine, path=env.get("PATH")):
            continue
        argv = [engine, "images", "--json", name] if engine == "buildah" else [engine, "image", "inspect", name]
        res = run_tool(argv, timeout=120, env=env)
        if not res.ok:
            continue
        try:
            info = json.loads(res.stdout)[0]
            image_id = str(info.get("Id") or info.get("id"))
            size = int(info.get("Size") if "Size" in info else info.get("size"))
        except (ValueError, TypeError, IndexError, KeyError, AttributeError):
            continue
        return {"name": name, "id": image_id, "size_bytes": size, "engine": engine}
    return None


def _now() -> datetime:
    return datetime.now(UTC)


def _child_env(base: dict[str, str], caches: Path, mtap_cache: Path) -> dict[str, str]:
    """The environment of every command of a pass: caches cold, no enclosing virtualenv."""
    env = dict(base)
    venv = env.pop("VIRTUAL_ENV", None)
    if sys.prefix != sys.base_prefix or venv:  # run from a venv (e.g. nox's): its bin must not shadow python3/nox
        drop = {str(Path(sys.prefix) / "bin")} | ({str(Path(venv) / "bin")} if venv else set())
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p not in drop)
    for var in COLD_CACHE_VARS:
        env[var] = str(caches / var.lower())
    env["MTAP_CACHE_DIR"] = str(mtap_cache)
    env.pop("PYTHONPATH", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def read_cases(folder: Path) -> dict[str, dict[str, Any]]:
    """(document file name, case id) -> canonical {status, metrics} of every tool-run document in ``folder``."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.tool-run.json")) if folder.is_dir() else []:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        for case in doc.get("cases", []) if isinstance(doc, dict) else []:
            if isinstance(case, dict) and isinstance(case.get("id"), str):
                out[f"{path.name}:{case['id']}"] = mtap_schemas.canonical({"status": case.get("status"), "metrics": case.get("metrics")})
    return out


def compare(first: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Cases of both passes compared: identical (status and metrics equal) or differing (ids)."""
    common = sorted(set(first) & set(other))
    differing = [c for c in common if first[c] != other[c]]
    only = sorted(set(first) ^ set(other))
    return {"compared": len(common), "identical": len(common) - len(differing), "differing": differing[:50], "unmatched": len(only)}


@dataclass
class Pass:
    started: datetime
    steps: list[dict[str, Any]]
    conclusion: str
    install_path: dict[str, Any]
    cases: dict[str, dict[str, Any]]
    output: Path
    image: dict[str, Any] | None = None


def _step(number: int, name: str, argv: list[str], cwd: Path | None, env: dict[str, str], timeout: float, log: Path,
          named: dict[str, str] | None = None) -> tuple[dict[str, Any], Any]:
    """Run one step; the recorded command names the pass's folders by label (``named``), never a machine path."""
    start = _now()
    result = run_tool(argv, timeout=timeout, cwd=cwd, env=env)
    end = _now()
    with log.open("a", encoding="utf-8") as fh:
        fh.write(f"$ {shlex.join(argv)}  # {result.outcome} {result.returncode} {result.seconds:.1f} s\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}\n")
    step = {"number": number, "name": name, "conclusion": "success" if result.ok else "failure", "started_at": start, "completed_at": end,
            "command": [portable_text(a, named) for a in argv]}
    return step, result


def _why(result: Any, what: str) -> str:
    if result.outcome == "timeout":
        return f"{what} timed out after {result.seconds:.0f} s"
    return f"{what} failed ({result.outcome} {result.returncode}): {result.last_line() or 'no output'}"[:400]


def measure_pass(runner: Runner, repo: Path, commit: str, work: Path, nox: list[str], base_env: dict[str, str], timeout: float, mtap_cache: Path | None) -> Pass:
    """One cold pass of one runner: clone, checkout of ``commit``, install, setup, first result."""
    work.mkdir(parents=True)
    clone, out, caches = work / "clone", work / "out", work / "caches"
    out.mkdir()
    env = _child_env(base_env, caches, mtap_cache or (caches / "mtap"))
    log = work / "commands.log"
    started = _now()
    steps: list[dict[str, Any]] = []
    # attempted: the path tried, kept when it gave no result (kind is then "unavailable"), for the success table
    install = {"kind": runner.install, "detail": runner.detail, "reason": None, "attempted": runner.install}
    named = {str(work): "<pass>", str(repo): "<repository>"}

    def step(name: str, argv: list[str], cwd: Path | None) -> Any:
        record, result = _step(len(steps) + 1, name, argv, cwd, env, timeout, log, named)
        steps.append(record)
        return result

    def fail(what: str, result: Any) -> Pass:
        return Pass(started, steps, "unavailable", {**install, "kind": "unavailable", "reason": _why(result, what)}, {}, out, None)

    for name, argv, cwd, what in _install_steps(runner, repo, clone, commit, nox):
        res = step(name, argv, cwd)
        if not res.ok:
            return fail(what, res)
    subst = {"out": str(out), "bin": str(_session_bin(clone, runner.session)), "clone": str(clone)}
    for command in runner.setup:
        argv = [_fill(a, subst) for a in command]
        # a docker-image runner's setup builds its image: named so that the rules count it as a Docker build
        what = "Build the image" if runner.install == "docker-image" else "Build and verify the tool"
        res = step(f"{what} ({Path(argv[0]).name} {' '.join(argv[1:2])})", argv, clone)
        if not res.ok:
            return fail(shlex.join(argv[:2]), res)
    image = image_record(runner.image, env) if runner.image else None
    res = step("First result", [*nox, "-s", runner.session, "--no-install", "--", *[_fill(a, subst) for a in runner.args]], clone)
    cases = read_cases(out)
    if not res.ok:
        return Pass(started, steps, "failure", install, cases, out, image)
    ok = sum(1 for c in cases.values() if c.get("status") == "ok")
    if not ok:
        # the runner ran but produced no ok case: the install path did not give a result
        reason = f"first result: no ok case in {len(cases)} case(s) written under --output"
        return Pass(started, steps, "failure", {**install, "kind": "unavailable", "reason": reason}, cases, out, image)
    return Pass(started, steps, "success", install, cases, out, image)


def _install_steps(runner: Runner, repo: Path, clone: Path, commit: str, nox: list[str]) -> list[tuple[str, list[str], Path | None, str]]:
    """(step name, command, folder, what failed) of a pass's clone, checkout and install. Every pass measures
    the same commit, even when the repository's HEAD moves meanwhile."""
    return [
        ("Clone the repository (git clone)", ["git", "clone", "--quiet", "--no-hardlinks", "--no-checkout", str(repo), str(clone)],
         None, "git clone"),
        (f"Checkout of the measured commit {commit[:12]}", ["git", "-C", str(clone), "checkout", "--quiet", "--detach", commit],
         None, f"git checkout {commit[:12]}"),
        (f"Install the {runner.session} session (nox --install-only, cold caches)", [*nox, "-s", runner.session, "--install-only"],
         clone, f"nox -s {runner.session} --install-only"),
    ]


def _session_bin(clone: Path, session: str) -> Path:
    """The bin folder of the session's virtualenv in the clone (the only one there when nox named it otherwise)."""
    bin_dir = clone / ".nox" / session.replace("-", "_") / "bin"
    if not bin_dir.is_dir():
        hits = sorted((clone / ".nox").glob("*/bin"))
        bin_dir = hits[0] if len(hits) == 1 else bin_dir
    return bin_dir


def measure(
    repo: Path,
    runners: list[Runner],
    *,
    rules: Rules,
    passes: int = 2,
    nox: list[str] | None = None,
    timeout: float = 3600.0,
    work_dir: Path | None = None,
    keep: bool = False,
    log_dir: Path | None = None,
    mtap_cache: Path | None = None,
    not_measured: dict[str, str] | None = None,
    command: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
    env: dict[str, str] | None = None,
) -> Scrape:
    """The ci-timing v2 document (``source.kind: local``) of ``passes`` cold passes per runner."""
    nox = nox or ["python3", "-m", "nox"]
    base_env = dict(os.environ if env is None else env)
    mtap_cache = mtap_cache or Path(base_env.get("MTAP_CACHE_DIR") or Path.home() / ".cache" / "mtap")
    commit, branch = _head(repo)
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    sources = package_sources(_child_env(base_env, Path(tempfile.gettempdir()) / "unused", mtap_cache))
    root = Path(tempfile.mkdtemp(prefix="ci-timing-local-", dir=work_dir))
    if progress:
        progress(f"working in {root}{' (kept)' if keep else ''}")
    per_runner: dict[str, list[Pass]] = {}
    reused: dict[str, dict[str, Any] | None] = {}
    try:
        for runner in runners:
            found = find_build(mtap_cache, runner.reuse_build) if runner.reuse_build else None
            reused[runner.job] = reused_record(*found) if found else None
            per_runner[runner.job] = []
            folder = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in runner.job)
            for k in range(1, passes + 1):
                if progress:
                    progress(f"{runner.job}: pass {k}/{passes}")
                work = root / folder / f"pass-{k}"
                per_runner[runner.job].append(
                    measure_pass(runner, repo, commit, work, nox, base_env, timeout, mtap_cache if reused[runner.job] else None))
                _tidy_pass(work, f"{folder}.pass-{k}.log", log_dir, keep)
        records = [run_record(_pass_run(k, runners, per_runner, branch, commit), _pass_jobs(k, runners, per_runner, reused), rules)
                   for k in range(1, passes + 1)]
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    records.sort(key=lambda r: r["run_number"], reverse=True)
    source = _local_source(repo, commit, branch, passes, load, sources, runners, not_measured, command)
    doc = document(records, client=f"mtap_schemas.proc.run_tool, git, {shlex.join(nox)}", source=source, rules=rules, missing=[],
                   scraped_at=_now())
    return Scrape(doc, None, 0)


def _local_source(repo: Path, commit: str, branch: str | None, passes: int, load: list[float], sources: list[str],
                  runners: list[Runner], not_measured: dict[str, str] | None, command: list[str] | None) -> dict[str, Any]:
    """The document's ``source`` (kind local): the commit measured, how, on which host, what was not measured."""
    return {
        "kind": "local",
        "repository": portable_text(str(repo)),
        "commit": commit,
        "branch": branch,
        "passes": passes,
        "cold_caches": list(COLD_CACHE_VARS),
        "host": {"platform": f"{platform.system()} {platform.release()} {platform.machine()}", "cpus": os.cpu_count() or 0,
                 "python": platform.python_version(), "load_average": load,
                 "package_sources": [portable_text(x) for x in sources]},
        "runners": [r.session for r in runners],
        "not_measured": [{"session": s, "reason": r} for s, r in sorted((not_measured or {}).items())],
        "command": [portable_text(a) for a in command or []],
    }


def _head(repo: Path) -> tuple[str, str | None]:
    """(commit, branch) of the repository's HEAD: what every pass measures."""
    head = run_tool(["git", "-C", str(repo), "rev-parse", "HEAD"], timeout=60)
    if not head.ok:
        raise LocalError(f"{repo}: not a git repository with a commit: {head.last_line() or head.outcome}")
    branch_res = run_tool(["git", "-C", str(repo), "rev-parse", "--abbrev-ref", "HEAD"], timeout=60)
    return head.stdout.strip(), branch_res.stdout.strip() if branch_res.ok else None


def _tidy_pass(work: Path, log_name: str, log_dir: Path | None, keep: bool) -> None:
    """After a pass: its command log copied to ``log_dir`` as ``log_name``, its clone and caches removed unless ``keep``."""
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        log = work / "commands.log"
        if log.is_file():
            shutil.copyfile(log, log_dir / log_name)
    if not keep:
        shutil.rmtree(work / "clone", ignore_errors=True)
        shutil.rmtree(work / "caches", ignore_errors=True)


def _pass_jobs(k: int, runners: list[Runner], per_runner: dict[str, list[Pass]], reused: dict) -> list[dict[str, Any]]:
    """Pass ``k``'s jobs, one per runner, shaped as parsed GitHub jobs; each later pass compared with the first
    (the first pass carries no comparison of its own)."""
    jobs = []
    for index, runner in enumerate(runners, 1):
        p = per_runner[runner.job][k - 1]
        first = per_runner[runner.job][0]
        det = compare(first.cases, p.cases) if k > 1 and first.cases and p.cases else None
        jobs.append({
            "id": index, "name": runner.job, "run_attempt": 1, "conclusion": p.conclusion,
            "created_at": p.started, "started_at": p.started, "completed_at": p.steps[-1]["completed_at"],
            "runner_name": f"local {platform.node() or 'host'}", "steps": p.steps,
            "install_path": p.install_path, "determinism": det, "reused_build": reused[runner.job],
            **({"image": p.image} if runner.image else {}),
        })
    return jobs


def _pass_run(k: int, runners: list[Runner], per_runner: dict[str, list[Pass]], branch: str | None, commit: str) -> dict[str, Any]:
    """Pass ``k`` as a parsed GitHub run: a success when every runner's pass was, started with its first runner."""
    conclusions = [per_runner[r.job][k - 1].conclusion for r in runners]
    starts = [per_runner[r.job][k - 1].started for r in runners]
    concl = "success" if all(c == "success" for c in conclusions) else "failure"
    return {"id": k, "run_number": k, "run_attempt": 1, "workflow": "ci-timing local", "event": "local",
            "head_branch": branch, "head_sha": commit, "conclusion": concl, "created_at": min(starts), "html_url": None}
