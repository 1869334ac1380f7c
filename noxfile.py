"""Sessions that chain mtap's microtools: each runner session installs only its own package
(plus mtap-schemas) into its own virtualenv and writes to data/evaluation/<tool>/.

    nox -s astra vidur aggregate     # run two runners, then aggregate everything on disk
    nox -s tests                     # every package's tests, each in its own environment
    nox -l                           # list sessions
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

ROOT = Path(__file__).parent
SCHEMAS = "./schemas"
EVAL = "data/evaluation"

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

# uv is fast where it works; packages that need PyTorch use pip, which takes the CPU build
# that pip can find for the pinned version instead of a multi-GB CUDA build.
FAST = "uv|venv"
PIP = "venv"

#: package folder -> (nox backend, extra pip requirements installed first)
PACKAGES: dict[str, tuple[str, list[str]]] = {
    "aggregate": (FAST, []),
    "compose-analysis": (FAST, []),
    "figures": (FAST, []),
    "ci-timing": (FAST, []),
    "analytical-runner": (PIP, ["torch==2.13.0"]),
    # mlc-chakra without its declared deps (~100 packages it does not need here)
    "astra-runner": (FAST, ["--no-deps", "mlc-chakra==1.0.0"]),
    "timeloop-runner": (FAST, []),
    "zigzag-runner": (FAST, []),
    "neusight-runner": (FAST, []),
    # nn-meter==2.0 pins that clash with the rest (setuptools<81, scikit-learn==1.2.2, numpy<2): own venv
    "nnmeter-runner": (PIP, ["torch==2.13.0", "setuptools<81", "numpy<2", "scikit-learn==1.2.2"]),
    # measures on a GPU; CI runs its tests on the CPU build
    "groundtruth": (PIP, ["torch==2.13.0"]),
    # vidur==0.0.26 from PyPI is a dependency (no torch); the [profile] extra (torch) is GPU-only
    "vidur-runner": (FAST, []),
}


def install(session: nox.Session, package: str, extras: str = "") -> None:
    backend, pre = PACKAGES[package]
    if pre:
        session.install(*pre)
    session.install(SCHEMAS, f"./packages/{package}{extras}")


def runner_session(name: str, package: str, command: str, *default_args: str) -> None:  # noqa: D401
    """Register `nox -s <name>`: install <package>, run `<command> run --output data/evaluation/<tool> ...`."""

    @nox.session(name=name, venv_backend=PACKAGES[package][0])
    def _session(session: nox.Session) -> None:
        install(session, package)
        session.run(command, "run", *default_args, *session.posargs)

    _session.__doc__ = f"Run {package} ({command} run {' '.join(default_args)}); extra args after --."


runner_session("analytical", "analytical-runner", "analytical-runner", "--output", f"{EVAL}/analytical")


@nox.session(name="bench-analytical", venv_backend=PIP)
def bench_analytical(session: nox.Session) -> None:
    """analytical-runner's benchmark: tracing time per model (target < 5 s each)."""
    install(session, "analytical-runner")
    session.run("python", "packages/analytical-runner/bench/bench_trace.py", *session.posargs)


# ASTRA-sim from ASTRA_SIM_BIN or `nox -s astra -- --tool-path DIR`; without one: astra-sim.unavailable.tool-run.json
runner_session("astra", "astra-runner", "astra-runner", "--output", f"{EVAL}/astra-sim")
# Timeloop from MTAP_TIMELOOP_PATH or `nox -s timeloop -- --tool-path DIR`; without one an existing
# timeloop.tool-run.json with real results is kept (the runner's default; `-- --overwrite` replaces it)
runner_session("timeloop", "timeloop-runner", "timeloop-runner", "--output", f"{EVAL}/timeloop")
runner_session("zigzag", "zigzag-runner", "zigzag-runner", "--output", f"{EVAL}/zigzag")
# nn-Meter predictors from MTAP_NNMETER_PREDICTOR_DIR or `nox -s nnmeter -- --predictor-dir DIR`
# (sha256-checked); without them kernel detection only, latency cases `unavailable`
runner_session("nnmeter", "nnmeter-runner", "nnmeter-runner", "--output", f"{EVAL}/nn-meter")
# Needs a CUDA GPU (refuses to run without one); the committed data came from the lent H100s
# through packages/groundtruth/scripts/device-run.sh. Extra args after --, e.g. -- --suite multi.
runner_session("groundtruth", "groundtruth", "groundtruth", "--output", f"{EVAL}/groundtruth")
# VIDUR offline from the committed H100 profile (data/profiles/vidur/); A100 cases are `unavailable`
# unless upstream's full profile dir is given: `nox -s vidur -- --profiles <vidur checkout>/data/profiling`.
# Trained predictors are cached in ~/.cache/mtap/vidur (MTAP_VIDUR_CACHE): the first run trains (~2 min).
runner_session("vidur", "vidur-runner", "vidur-runner", "--output", f"{EVAL}/vidur", "--keep-outputs", f"{EVAL}/vidur/outputs")


@nox.session(name="bench-vidur", venv_backend=FAST)
def bench_vidur(session: nox.Session) -> None:
    """vidur-runner's overhead over the bare `python -m vidur.main` for one case, warm cache (target <= 10%)."""
    install(session, "vidur-runner")
    session.run("python", "packages/vidur-runner/bench/bench_overhead.py", *session.posargs)


@nox.session(venv_backend=FAST)
def neusight(session: nox.Session) -> None:
    """NeuSight: re-score its artifact (../shared/neusight or MTAP_NEUSIGHT_ARTIFACT) into
    data/evaluation/neusight/neusight.tool-run.json; live mode with MTAP_NEUSIGHT_PATH or
    `-- --neusight-dir CHECKOUT --neusight-python PY` (neusight-live.tool-run.json); skipped,
    saying how to provide either, when neither is present."""
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


@nox.session(venv_backend=FAST)
def aggregate(session: nox.Session) -> None:
    """Aggregate every tool-run document under data/evaluation/ into one table and a coverage matrix."""
    install(session, "aggregate")
    session.run("mtap-aggregate", "run", "--evaluation-dir", EVAL, *session.posargs)


@nox.session(venv_backend=FAST)
def compose(session: nox.Session) -> None:
    """D2 compositional fidelity (layer -> model, compute -> system) from data/evaluation/."""
    install(session, "compose-analysis")
    session.run("compose-analysis", "run", "--evaluation-dir", EVAL, *session.posargs)


@nox.session(venv_backend=FAST)
def figures(session: nox.Session) -> None:
    """PNG + PDF figures from data/evaluation/ into figures/ (run aggregate and compose first)."""
    install(session, "figures")
    session.run("mtap-figures", "run", "--evaluation-dir", EVAL, "--output", "figures", *session.posargs)


@nox.session(name="ci-timing", venv_backend=FAST)
def ci_timing(session: nox.Session) -> None:
    """GitHub Actions timings per tool -> data/evaluation/ci-timing/ + deployment-viability-report.md.

    nox -s ci-timing -- --repo OWNER/NAME [--runs 20]   (GITHUB_TOKEN raises the rate limit)
    In GitHub Actions GITHUB_REPOSITORY/GITHUB_API_URL are used. With neither a repo nor
    arguments it scrapes nothing (no network): it rebuilds the report from data on disk and
    says how to scrape.
    """
    install(session, "ci-timing")
    if session.posargs or os.environ.get("GITHUB_REPOSITORY"):
        session.run("ci-timing", "run", *session.posargs)
        return
    session.log("ci-timing: no --repo given and GITHUB_REPOSITORY unset, not scraping; "
                "to scrape: nox -s ci-timing -- --repo OWNER/NAME --runs 20")
    session.run("ci-timing", "report")


@nox.session(name="bench-aggregate", venv_backend=FAST)
def bench_aggregate(session: nox.Session) -> None:
    """aggregate's time over 100,000 generated case rows (target < 2 s on 2 cores)."""
    install(session, "aggregate", "[test]")
    session.run("python", "packages/aggregate/bench/bench_aggregate.py", *session.posargs)


def _register_package_tests(package: str) -> str:
    name = f"tests-{package}"

    @nox.session(name=name, venv_backend=PACKAGES[package][0])
    def _tests(session: nox.Session) -> None:
        install(session, package, "[test]")
        if package == "aggregate":
            session.run("pytest", "-q", "schemas/tests", env={"PYTHONDONTWRITEBYTECODE": "1"})
        session.run("pytest", "-q", f"packages/{package}/tests", *session.posargs, env={"PYTHONDONTWRITEBYTECODE": "1"})

    _tests.__doc__ = f"{package}'s tests in its own environment."
    return name


@nox.session(python=False, requires=[_register_package_tests(p) for p in sorted(PACKAGES)])
def tests(session: nox.Session) -> None:
    """Every package's tests (each tests-<package> session first, in its own environment)."""
    session.log(f"tests passed for: {', '.join(sorted(PACKAGES))}")


@nox.session(venv_backend=FAST)
def lint(session: nox.Session) -> None:
    """ruff over the whole tree."""
    session.install("ruff")
    session.run("ruff", "check", "noxfile.py", "schemas", "packages", *session.posargs)


@nox.session(python=False, requires=["bench-aggregate", "bench-analytical", "bench-vidur"])
def bench(session: nox.Session) -> None:
    """Every benchmark (speed targets live here, never in tests): bench-aggregate, bench-analytical, bench-vidur."""
    session.log("benchmarks done: bench-aggregate, bench-analytical, bench-vidur")
