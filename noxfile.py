"""Sessions that chain mtap's microtools: each session installs only its own package (plus
mtap-schemas) into its own virtualenv. Every package's settings — virtualenv backend, what is
installed first (pins such as torch), its session, tags and default arguments — live in that
package's own ``pyproject.toml`` under ``[tool.mtap]``, read here with ``nox.project.load_toml``.

    nox -s astra vidur aggregate     # run two runners, then aggregate everything on disk
    nox -s tests                     # every package's tests, each in its own environment
    nox -t runner                    # every runner; -t consumer: aggregate, compose, figures
    nox -l                           # list sessions (each says if it needs a GPU or an outside tool)
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import nox

ROOT = Path(__file__).parent
SCHEMAS = "./schemas"
EVAL = "data/evaluation"
#: the linter, pinned for the whole tree (its settings: ruff.toml)
RUFF = "ruff==0.17.6"

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True


def _load() -> dict[str, dict[str, Any]]:
    """package folder -> its [tool.mtap] settings (with defaults)."""
    out = {}
    for pyproject in sorted((ROOT / "packages").glob("*/pyproject.toml")):
        settings = nox.project.load_toml(pyproject).get("tool", {}).get("mtap", {})
        project = nox.project.load_toml(pyproject)["project"]
        requires, extras = project.get("requires-python", ""), sorted(project.get("optional-dependencies", {}))
        out[pyproject.parent.name] = {"venv-backend": "uv|venv", "pre-install": [], "tags": [], "requires-python": requires,
                                      "extras": extras, "dist": project["name"], **settings}
    return out


def _skip_unsupported_python(session: nox.Session, package: str) -> None:
    """A package whose requires-python excludes this interpreter is skipped, saying so (CI's matrix runs 3.10-3.12)."""
    from packaging.specifiers import SpecifierSet

    version = session.run("python", "-c", "import platform; print(platform.python_version())", silent=True).strip()
    requires = PACKAGES[package]["requires-python"]
    if requires and version not in SpecifierSet(requires):
        session.skip(f"{package} requires Python {requires}; this is {version}")


PACKAGES = _load()


def install(session: nox.Session, package: str, extras: str = "") -> None:
    pre = PACKAGES[package]["pre-install"] + (PACKAGES[package].get("tests-pre-install", []) if extras == "[test]" else [])
    if pre:
        session.install(*pre)
    # uv keeps a local project it installed before while its version is unchanged (its cache key is the
    # pyproject, not the sources): in a reused virtualenv an edited package would run stale. pip rebuilds.
    fresh = ["--reinstall-package", "mtap-schemas", "--reinstall-package", PACKAGES[package]["dist"]] if session.venv_backend == "uv" else []
    session.install(*fresh, SCHEMAS, f"./packages/{package}{extras}")


def _register_runner(package: str, settings: dict[str, Any]) -> None:
    """`nox -s <session>`: install <package>, run `<command> run --output <output> <args> <posargs>`."""
    name, command = settings["session"], settings["command"]
    needs = "; ".join(settings.get("needs", [])) or "nothing outside PyPI"
    doc = f"{settings.get('summary', package)} -> {settings['output']}/ (needs {needs}; runner options after --)"

    @nox.session(name=name, venv_backend=settings["venv-backend"], tags=settings["tags"])
    def _session(session: nox.Session) -> None:
        # --image runs the tool through the docker SDK: the package's [docker] extra, where it has one
        image = any(a.split("=")[0] == "--image" for a in session.posargs)
        install(session, package, "[docker]" if image and "docker" in settings["extras"] else "")
        _setup_first(session, command, settings)
        started = time.time()
        # exit 4: the document on disk has more ok cases and was kept (the new one is beside it) — not a failure here
        session.run(command, "run", "--output", settings["output"], *settings.get("args", []), *session.posargs,
                    success_codes=[0, 4])
        for more in settings.get("also", []):  # further documents of the same runner (e.g. a second method)
            session.run(command, "run", "--output", settings["output"], *more, *session.posargs, success_codes=[0, 4])
        _summarise(session, _output_of(session.posargs, settings["output"]), started)

    _session.__doc__ = doc


def _output_of(posargs: list[str], default: str) -> Path:
    """The folder the runner wrote to: the last --output among the session's arguments, else the package's."""
    out = default
    for i, arg in enumerate(posargs):
        if arg == "--output" and i + 1 < len(posargs):
            out = posargs[i + 1]
        elif arg.startswith("--output="):
            out = arg.split("=", 1)[1]
    return Path(out)


def _summarise(session: nox.Session, folder: Path, since: float) -> None:
    """One line per document the session wrote, kept or had refused, so a run that produced nothing
    (no ok case, every document refused) says so at the end instead of a bare "successful"."""
    import json

    written, refused = [], []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if path.stat().st_mtime < since - 1:
            continue
        try:
            doc = json.loads(path.read_bytes())
            statuses = [c.get("status") for c in doc.get("cases", [])]
        except (OSError, ValueError, AttributeError):
            continue
        counts = ", ".join(f"{statuses.count(k)} {k}" for k in ("ok", "failed", "unavailable", "unsupported") if statuses.count(k))
        first_reason = next(((c.get("error") or {}).get("message", "") for c in doc.get("cases", []) if c.get("status") != "ok"), "")
        entry = (path, statuses.count("ok"), counts or "no cases", first_reason)
        (refused if path.name.endswith(".refused-fewer-ok.json") else written).append(entry)
    for path, _, counts, _ in written:
        session.log(f"wrote {path} ({counts})")
    for path, _, counts, _ in refused:
        kept = path.with_name(path.name.replace(".refused-fewer-ok.json", ".tool-run.json"))
        session.warn(f"kept {kept}: it has more ok cases than this run ({counts}), which is in {path} (git-ignored; "
                     f"--overwrite replaces)")
    if not written and not refused:
        session.warn(f"no document was written to {folder}")
    elif written and not any(ok for _, ok, _, _ in written):
        reason = next((r for *_, r in written + refused if r), "")
        session.warn("this session produced no ok case" + (f"; the first reason: {reason[:300]}" if reason else ""))


def _setup_first(session: nox.Session, command: str, settings: dict[str, Any]) -> None:
    """Runners whose tool is built from source (`setup-env` in [tool.mtap]): when no tool is given
    (no --tool-path/--image, none of the env vars), run `<runner> setup` first. It returns at once
    when a verified build is cached, builds the pinned source otherwise (MTAP_<TOOL>_SOURCE names an
    offline clone), and exits 2 naming each missing prerequisite — then the run records `unavailable`."""
    env_names = settings.get("setup-env")
    if env_names is None or session.posargs and any(a.split("=")[0] in ("--tool-path", "--image") for a in session.posargs):
        return
    if any(os.environ.get(name) for name in env_names["tool"]):
        return
    args = ["setup"]
    source = os.environ.get(env_names["source"])
    if source:
        args += ["--source", source]
    session.run(command, *args, success_codes=[0, 2])


for _package, _settings in PACKAGES.items():
    if "session" in _settings and "command" in _settings:
        _register_runner(_package, _settings)


@nox.session(venv_backend=PACKAGES["neusight-runner"]["venv-backend"], tags=["runner"])
def neusight(session: nox.Session) -> None:
    """NeuSight: re-score its artifact (../shared/neusight or MTAP_NEUSIGHT_ARTIFACT) -> data/evaluation/neusight/;
    live mode with MTAP_NEUSIGHT_PATH or `-- --neusight-dir CHECKOUT --neusight-python PY`; skipped, saying how
    to provide either, when neither is present (needs NeuSight's artifact or checkout)."""
    install(session, "neusight-runner")
    args = list(session.posargs)
    if not args and not os.environ.get("MTAP_NEUSIGHT_ARTIFACT"):
        shared = ROOT / ".." / "shared" / "neusight"
        if (shared / "label").is_dir():
            args = ["--artifact-dir", os.path.relpath(shared, ROOT)]
        elif not os.environ.get("MTAP_NEUSIGHT_PATH"):
            session.skip("no NeuSight artifact (../shared/neusight or MTAP_NEUSIGHT_ARTIFACT) and no checkout "
                         "(MTAP_NEUSIGHT_PATH or -- --neusight-dir DIR): nothing to run")
    session.run("neusight-runner", "run", "--output", f"{EVAL}/neusight", *args)


@nox.session(venv_backend=PACKAGES["aggregate"]["venv-backend"], tags=["consumer"])
def aggregate(session: nox.Session) -> None:
    """Aggregate every tool-run document under data/evaluation/ into one table, a coverage matrix, the MTAP tables
    and the README's generated D1 block."""
    install(session, "aggregate")
    session.run("mtap-aggregate", "run", "--evaluation-dir", EVAL, "--readme", "README.md", *session.posargs)


@nox.session(venv_backend=PACKAGES["compose-analysis"]["venv-backend"], tags=["consumer"])
def compose(session: nox.Session) -> None:
    """D2 compositional fidelity (layer -> model, compute -> system) from data/evaluation/."""
    install(session, "compose-analysis")
    session.run("compose-analysis", "run", "--evaluation-dir", EVAL, *session.posargs)


@nox.session(venv_backend=PACKAGES["figures"]["venv-backend"], tags=["consumer"])
def figures(session: nox.Session) -> None:
    """PNG + PDF figures from data/evaluation/ into figures/ (run aggregate and compose first)."""
    install(session, "figures")
    session.run("mtap-figures", "run", "--evaluation-dir", EVAL, "--output", "figures", *session.posargs)


@nox.session(name="ci-timing", venv_backend=PACKAGES["ci-timing"]["venv-backend"], tags=["consumer"])
def ci_timing(session: nox.Session) -> None:
    """GitHub Actions timings per tool -> data/evaluation/ci-timing/ + deployment-viability-report.md.

    nox -s ci-timing -- --repo OWNER/NAME [--runs 20]   (GITHUB_TOKEN raises the rate limit)
    nox -s ci-timing -- local [OPTIONS]                  (D4 measured here: clean clone, cold caches, twice)
    In GitHub Actions GITHUB_REPOSITORY/GITHUB_API_URL are used. With neither a repo nor
    arguments it scrapes nothing (no network): it rebuilds the report from data on disk and
    says how to scrape.
    """
    install(session, "ci-timing")
    if session.posargs and session.posargs[0] in ("local", "report", "run"):  # nox -s ci-timing -- local ...
        session.run("ci-timing", *session.posargs)
        return
    if session.posargs or os.environ.get("GITHUB_REPOSITORY"):
        session.run("ci-timing", "run", *session.posargs)
        return
    session.log("ci-timing: no --repo given and GITHUB_REPOSITORY unset, not scraping; "
                "to scrape: nox -s ci-timing -- --repo OWNER/NAME --runs 20")
    session.run("ci-timing", "report")


#: `nox -s images`: the base the runner images are built FROM (their Dockerfiles' ARG BASE), and the one
#: made here from Debian packages (debootstrap) when no registry answers
IMAGE_BASE = "python:3.11-slim-bookworm"
LOCAL_BASE = "localhost/mtap-base:bookworm"
IMAGE_ENGINES = ("docker", "podman", "buildah")


def _quiet(argv: list[str], timeout: float = 60) -> bool:
    import subprocess

    try:
        return subprocess.run(argv, capture_output=True, timeout=timeout).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _has_image(engine: str, name: str) -> bool:
    return _quiet([engine, "inspect", "--type", "image", name] if engine == "buildah" else [engine, "image", "inspect", name])


def _debian_mirror() -> str:
    """MTAP_DEBIAN_MIRROR, else this host's first Debian archive in /etc/apt/sources.list*, else deb.debian.org."""
    import re

    if os.environ.get("MTAP_DEBIAN_MIRROR"):
        return os.environ["MTAP_DEBIAN_MIRROR"]
    for f in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        text = f.read_text(errors="replace") if f.is_file() else ""
        for url in re.findall(r"^(?:URIs:|deb)\s+(?:\[[^]]*\]\s+)?(\S+)", text, flags=re.M):
            if url.rstrip("/").endswith("/debian"):
                return url
    return "http://deb.debian.org/debian"


def _local_base(session: nox.Session, engine: str) -> None:
    """LOCAL_BASE from Debian packages: debootstrap (minbase) of bookworm with python3, its venv module and pip,
    trusting this host's local CAs (/usr/local/share/ca-certificates, e.g. a proxy's) as the host's pip does."""
    import shutil
    import tempfile

    if os.geteuid() != 0 or not shutil.which("debootstrap"):
        session.error(f"no registry base and no way to build {LOCAL_BASE}: that needs root and debootstrap "
                      "(apt-get install debootstrap), or give a base with MTAP_IMAGE_BASE")
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="mtap-base-") as tmp:
        root, tar = Path(tmp) / "rootfs", Path(tmp) / "base.tar"
        session.run("debootstrap", "--variant=minbase", "--include=python3,python3-venv,python3-pip,ca-certificates",
                    "bookworm", str(root), _debian_mirror(), external=True, silent=True)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for f in (root / junk).glob("*"):
                if f.is_file():
                    f.unlink()
        cas = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
        for ca in cas:
            shutil.copy(ca, root / "usr/local/share/ca-certificates" / ca.name)
        if cas:
            session.run("chroot", str(root), "update-ca-certificates", external=True, silent=True)
        session.run("tar", "-C", str(root), "-cf", str(tar), ".", external=True)
        env = "PIP_CERT=/etc/ssl/certs/ca-certificates.crt"
        if engine == "buildah":
            ctr = session.run("buildah", "from", "scratch", external=True, silent=True).strip()
            session.run("buildah", "add", ctr, str(tar), "/", external=True, silent=True)
            session.run("buildah", "config", "--env", env, ctr, external=True)
            session.run("buildah", "commit", "--rm", ctr, LOCAL_BASE, external=True, silent=True)
        else:
            session.run(engine, "import", "--change", f"ENV {env}", str(tar), LOCAL_BASE, external=True, silent=True)
    session.log(f"{LOCAL_BASE}: built from Debian packages in {time.time() - started:.0f} s")


def _image_size(engine: str, name: str) -> int | None:
    import json
    import subprocess

    argv = [engine, "images", "--json", name] if engine == "buildah" else [engine, "image", "inspect", "--format", "{{.Size}}", name]
    res = subprocess.run(argv, capture_output=True, text=True)
    if res.returncode:
        return None
    return int(json.loads(res.stdout)[0]["size"]) if engine == "buildah" else int(res.stdout.strip())


@nox.session(python=False, tags=["images"])
def images(session: nox.Session) -> None:
    """Build the runner images (packages/<runner>/Dockerfile; -- astra-runner timeloop-runner picks) with docker,
    podman or buildah, whichever answers (MTAP_IMAGE_ENGINE picks), FROM python:3.11-slim-bookworm, or, when no
    registry answers, a Debian base built here (MTAP_IMAGE_BASE gives one). MTAP_<TOOL>_SOURCE (the runner's
    offline clone, as for `nox -s <runner>`) goes into the build context; without it setup clones from GitHub."""
    import re
    import shutil
    import tempfile

    wanted = {p: s for p, s in PACKAGES.items() if "image" in s and (not session.posargs or p in session.posargs)}
    unknown = set(session.posargs) - set(wanted)
    if unknown or not wanted:
        session.error(f"no image for {', '.join(sorted(unknown)) or 'any package'}; packages with an image: "
                      f"{', '.join(p for p, s in PACKAGES.items() if 'image' in s)}")
    engine = os.environ.get("MTAP_IMAGE_ENGINE") or next((e for e in IMAGE_ENGINES if _quiet([e, "info"])), None)
    if engine is None:
        session.error(f"no container engine answers ({', '.join(IMAGE_ENGINES)}: `<engine> info` failed)")
    base = os.environ.get("MTAP_IMAGE_BASE")
    if not base:
        base = IMAGE_BASE
        if not _has_image(engine, IMAGE_BASE) and not _quiet([engine, "pull", IMAGE_BASE], timeout=300):
            session.warn(f"{IMAGE_BASE}: not pulled ({engine} pull failed); using {LOCAL_BASE}")
            base = LOCAL_BASE
            if not _has_image(engine, LOCAL_BASE):
                _local_base(session, engine)
    build = {"docker": ["docker", "build"], "podman": ["podman", "build", "--isolation", "chroot"],
             "buildah": ["buildah", "bud", "--isolation", "chroot"]}[engine]
    for package, settings in wanted.items():
        dockerfile = ROOT / "packages" / package / "Dockerfile"
        with tempfile.TemporaryDirectory(prefix="mtap-image-") as ctx:
            # the build context: what the Dockerfile copies from the repository, and the tool's offline clone
            for src in re.findall(r"^COPY\s+(?!--from)(\S+)\s", dockerfile.read_text(), flags=re.M):
                if (ROOT / src).is_dir():
                    shutil.copytree(ROOT / src, Path(ctx) / src, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                elif (ROOT / src).is_file():
                    (Path(ctx) / src).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(ROOT / src, Path(ctx) / src)
            source = os.environ.get(settings.get("setup-env", {}).get("source", ""), "")
            if source:
                shutil.copytree(source, Path(ctx) / "tool-source" / settings["image-source"], symlinks=True)
            started = time.time()
            session.run(*build, "--build-arg", f"BASE={base}", "-t", settings["image"], "-f", str(dockerfile), ctx,
                        external=True)
        size = _image_size(engine, settings["image"])
        session.log(f"{settings['image']}: built in {time.time() - started:.0f} s with {engine} FROM {base} "
                    f"({'source ' + source if source else 'source cloned by setup'}); "
                    f"{'size ' + format(size / 1e6, '.0f') + ' MB' if size else 'size unknown'}")


BENCHES = {
    "bench-aggregate": ("aggregate", "[test]", "packages/aggregate/bench/bench_aggregate.py",
                        "mtap-aggregate run over 200,000 cases (~230 MB): <= 5 s wall, <= 1 GB peak RSS on 2 cores"),
    "bench-analytical": ("analytical-runner", "", "packages/analytical-runner/bench/bench_trace.py",
                         "analytical-runner's tracing time per model (target < 5 s each)"),
    "bench-vidur": ("vidur-runner", "", "packages/vidur-runner/bench/bench_overhead.py",
                    "vidur-runner's overhead over bare `python -m vidur.main`, warm cache (target <= 10%)"),
    "bench-replay": ("vidur-runner", "", "packages/vidur-runner/bench/bench_replay.py",
                     "vidur-runner replay over the committed H200 replay (target >= 10,000 batches/s), and the GPU replay's rate"),
    "bench-jobs": ("zigzag-runner", "", "packages/zigzag-runner/bench/bench_jobs.py",
                   "zigzag-runner --jobs 2 vs --jobs 1 on a layer subset, one run (target >= 1.8x on 2 cores)"),
}


def _register_bench(name: str, package: str, extras: str, script: str, doc: str) -> None:
    @nox.session(name=name, venv_backend=PACKAGES[package]["venv-backend"], tags=["bench"])
    def _bench(session: nox.Session) -> None:
        if not (ROOT / script).is_file():
            session.error(f"{script} is missing")
        install(session, package, extras)
        session.run("python", script, *session.posargs)

    _bench.__doc__ = doc


for _name, _spec in BENCHES.items():
    _register_bench(_name, *_spec)


def _register_package_tests(package: str) -> str:
    name = f"tests-{package}"
    settings = PACKAGES[package]

    @nox.session(name=name, venv_backend=settings.get("tests-venv-backend", settings["venv-backend"]), tags=["tests"])
    def _tests(session: nox.Session) -> None:
        _skip_unsupported_python(session, package)
        install(session, package, "[test]")
        if package == "aggregate":  # mtap-schemas' own tests run once, in a light environment
            session.run("pytest", "-q", "schemas/tests", env={"PYTHONDONTWRITEBYTECODE": "1"})
        session.run("pytest", "-q", f"packages/{package}/tests", *session.posargs, env={"PYTHONDONTWRITEBYTECODE": "1"})

    _tests.__doc__ = f"{package}'s tests in its own environment."
    return name


@nox.session(python=False, requires=[_register_package_tests(p) for p in sorted(PACKAGES)])
def tests(session: nox.Session) -> None:
    """Every package's tests (each tests-<package> session first, in its own environment)."""
    session.log(f"tests passed for: {', '.join(sorted(PACKAGES))}")


@nox.session(venv_backend="uv|venv", tags=["tests"])
def lint(session: nox.Session) -> None:
    """ruff (pinned) over the whole tree."""
    session.install(RUFF)
    session.run("ruff", "check", "noxfile.py", "schemas", "packages", *session.posargs)


@nox.session(python=False, requires=sorted(BENCHES))
def bench(session: nox.Session) -> None:
    """Every benchmark (speed targets live here, never in tests)."""
    session.log(f"benchmarks done: {', '.join(sorted(BENCHES))}")
