"""ci-timing command line: `run` scrapes GitHub Actions history and writes the report,
`report` rebuilds the report from what is on disk, `rules` prints the default classification."""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import sys
from pathlib import Path

import click

import mtap_schemas
from mtap_schemas.execute import Interrupted, handle_signals

from . import __version__
from .client import DEFAULT_API_URL, check_api_url, make_client, public_url
from .local import LocalError, load_runners, measure
from .report import build_report
from .rules import Rules, RulesError, load_rules
from .scrape import AccessError, Scrape, StoppedEarly, scrape

DEFAULT_OUTPUT = "data/evaluation/ci-timing"
DEFAULT_REPORT = "data/evaluation/deployment-viability-report.md"
DEFAULT_EVAL = "data/evaluation"

#: exit status when a scrape stopped early: a partial document (complete: false) was written,
#: or nothing if no run had been read.
EXIT_INCOMPLETE = 3
#: exit status when the scrape read to the end but left out malformed runs or jobs: the
#: document was written with complete: false and each one named in `missing`. (Not 4: across
#: mtap, 4 means "the document on disk was kept", mtap_schemas.kinds.Exit.KEPT_EXISTING.)
EXIT_SKIPPED = 5


def _unwritable(path: Path, want_dir: bool) -> str | None:
    """Why ``path`` (a folder to write into, or a file to write) cannot be written, or None.
    Checked before the scrape, without creating anything."""
    probe = path if want_dir else path.parent  # click already refuses a folder given as --report
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    return None


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  GITHUB_TOKEN=... ci-timing run --repo OWNER/NAME --runs 20
  ci-timing run --repo OWNER/NAME --workflow ci.yml --branch main
  ci-timing run --repo OWNER/NAME --api-url https://ghe.example.com/api/v3
  ci-timing local --only zigzag --only vidur   # measure runners here (clean clone, cold caches)
  ci-timing report          # rebuild the report from data/evaluation/, no network
  ci-timing rules > rules.json   # start a --config from the defaults
""",
)
@click.version_option(__version__, prog_name="ci-timing")
def main() -> None:
    """Scrape GitHub Actions timings per tool for mtap's deployment-viability report (D4).

    Reads the last N completed workflow runs of a repository, every job and its step timings,
    through the GitHub REST API (PyGithub: pagination, retries and rate-limit waits come from
    the library). Each job is mapped to a tool by its name (`astra`, `vidur`, `timeloop`,
    `zigzag`, `nnmeter`, `neusight`, `analytical`, `aggregate`, ...) and its steps are classed
    as setup, Docker build, run or teardown by name patterns (see `ci-timing rules`). Writes
    data/evaluation/ci-timing/ci-timing.json (schema ci-timing v2) and
    data/evaluation/deployment-viability-report.md. `ci-timing local` measures the runners here
    instead (clean clone, cold caches, two passes) into local.json; the report shows both.

    The token is read from GITHUB_TOKEN only and is never printed or written; without it,
    public repositories are read anonymously at GitHub's lower rate limit.
    """


def _one_line(exc: BaseException) -> str:
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return " ".join(text.split())[:300]


def _fail(message: str) -> click.ClickException:
    exc = click.ClickException(message)
    exc.exit_code = 2
    return exc


def _write_and_report(doc: dict, output: str, name: str, report_path: str, no_report: bool, evaluation_dir: str) -> Path:
    """Validate and write the ci-timing v2 document, then the report from it and every other
    document in the same folder (GitHub and local sources in one report)."""
    try:
        path = mtap_schemas.write(Path(output) / f"{name}.json", doc, "ci-timing", 2)
    except (OSError, mtap_schemas.SchemaError, ValueError, TypeError) as exc:  # orjson's encode error is a TypeError
        raise _fail(f"{Path(output) / f'{name}.json'}: not written: {_one_line(exc)}") from None
    click.echo(f"wrote {path} ({len(doc['runs'])} runs, {sum(len(r['jobs']) for r in doc['runs'])} jobs)", err=True)
    if not no_report:
        inputs = [path] + [p for p in sorted(Path(output).glob("*.json")) if p.resolve() != path.resolve()]
        try:
            report, _ = build_report(inputs, Path(evaluation_dir), Path(report_path))
        except (OSError, mtap_schemas.SchemaError) as exc:
            raise _fail(f"{report_path}: not written: {_one_line(exc)}") from None
        click.echo(f"wrote {report}", err=True)
    return path


@main.command()
@click.option("--repo", "repository", envvar="GITHUB_REPOSITORY", metavar="OWNER/NAME", help="Repository to read. [default: $GITHUB_REPOSITORY]")
@click.option("--runs", default=20, show_default=True, type=click.IntRange(1, 1000), help="How many of the latest completed workflow runs to read.")
@click.option("--api-url", envvar="GITHUB_API_URL", default=DEFAULT_API_URL, show_default=True, help="API root; for GitHub Enterprise Server https://HOST/api/v3. [env: GITHUB_API_URL]")
@click.option("--workflow", default=None, help="Only runs of this workflow (file name like ci.yml, or numeric id).")
@click.option("--branch", default=None, help="Only runs on this branch.")
@click.option("--event", default=None, help="Only runs triggered by this event (push, pull_request, schedule, ...).")
@click.option("--attempts", type=click.Choice(["all", "latest"]), default="all", show_default=True, help="Count the jobs of every attempt of a re-run workflow run (a failure fixed by a re-run still counts as a failure), or only the latest attempt.")
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None, help="JSON file overriding the job->tool mapping and step patterns, key by key (see `ci-timing rules`).")
@click.option("--output", default=DEFAULT_OUTPUT, show_default=True, type=click.Path(file_okay=False), help="Folder the document is written to, as NAME.json.")
@click.option("--name", default="ci-timing", show_default=True, help="File stem of the document.")
@click.option("--report", "report_path", default=DEFAULT_REPORT, show_default=True, type=click.Path(dir_okay=False), help="Where to write the Markdown report.")
@click.option("--no-report", is_flag=True, help="Write only the JSON document.")
@click.option("--evaluation-dir", default=DEFAULT_EVAL, show_default=True, type=click.Path(file_okay=False), help="Where the runners' *.tool-run.json documents are (determinism column).")
@click.option("--max-wait", default=600.0, show_default=True, type=click.FloatRange(0), help="Longest rate-limit wait (seconds) to sit out; a longer one stops the scrape with what was gathered.")
@click.option("--retries", default=5, show_default=True, type=click.IntRange(0, 20), help="Retries of a request after a server error, dropped connection or rate-limit wait (exponential backoff).")
@click.option("--timeout", default=30.0, show_default=True, type=click.FloatRange(1), help="Seconds before one request times out.")
@click.option("--request-interval", default=0.25, show_default=True, type=click.FloatRange(0), help="Seconds between API requests (PyGithub's throttle).")
@click.option("-v", "--verbose", is_flag=True, help="Log every API request to stderr (PyGithub's debug log; the token is masked by the library).")
def run(
    repository: str | None,
    runs: int,
    api_url: str,
    workflow: str | None,
    branch: str | None,
    event: str | None,
    attempts: str,
    config: str | None,
    output: str,
    name: str,
    report_path: str,
    no_report: bool,
    evaluation_dir: str,
    max_wait: float,
    retries: int,
    timeout: float,
    request_interval: float,
    verbose: bool,
) -> None:
    """Scrape the last N completed runs and write the document and the report.

    Exit 0: complete. Exit 2: the repository cannot be read (HTTP 401/404, API unreachable,
    bad --config, output not writable): one line, nothing written. Exit 3: the scrape stopped
    early (rate limit longer than --max-wait, retries exhausted, a listing page that is not the
    documented shape): the runs read so far are written with `complete: false` and a `missing`
    list, or nothing if no run was read. Exit 5: read to the end, but malformed runs or jobs
    (a null name, a bad timestamp, ...) were left out: written with `complete: false`, each one
    named with its reason in `missing`.
    """
    if not repository:
        raise click.UsageError("no repository: pass --repo OWNER/NAME or set GITHUB_REPOSITORY")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repository):
        raise click.BadParameter(f"got {repository!r}, expected OWNER/NAME", param_hint="--repo")
    try:
        rules = load_rules(config)
    except RulesError as exc:
        raise _fail(str(exc)) from None
    api_url = _public_api_url(api_url)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise click.BadParameter(f"got {name!r}, expected a file stem such as ci-timing (letters, digits, . _ -)", param_hint="--name")
    _check_writable(output, report_path, no_report, "nothing scraped")
    token = os.environ.get("GITHUB_TOKEN") or None
    # PyGithub logs retries at INFO to its own stderr handler; we print one line per wait instead.
    logging.getLogger("github").setLevel(logging.DEBUG if verbose else logging.WARNING)
    gh = _client(api_url, token, max_wait, retries, timeout, request_interval)
    result = _scrape_showing_progress(
        gh,
        repository=repository,
        runs=runs,
        rules=rules,
        api_url=api_url,
        authenticated=token is not None,
        command=_run_command(repository, runs, api_url, attempts, workflow, branch, event, config),
        workflow=workflow,
        branch=branch,
        event=event,
        attempts=attempts,
        max_wait=max_wait,
        retries=retries,
    )
    _write_and_report(result.doc, output, name, report_path, no_report, evaluation_dir)
    _exit_for(result)


def _client(api_url: str, token: str | None, max_wait: float, retries: int, timeout: float, request_interval: float):
    """The PyGithub client (retries, rate-limit waits up to ``max_wait``), saying on stderr how long it waits."""

    def on_wait(seconds: float, status: int) -> None:
        if seconds >= 1:
            click.echo(f"ci-timing: HTTP {status} rate limit: waiting {seconds:.0f} s as the API asks (--max-wait {max_wait:g})", err=True)

    return make_client(api_url, token, max_wait=max_wait, retries=retries, timeout=timeout, request_interval=request_interval, on_wait=on_wait, user_agent=f"mtap-ci-timing/{__version__}")


def _scrape_showing_progress(gh, **kwargs) -> Scrape:
    """``scrape`` with a progress bar on stderr (a step a run), the client closed after. A repository that
    cannot be read is exit 2, a scrape that stopped before any run was read exit 3 (nothing written)."""
    with click.progressbar(length=kwargs["runs"], label=f"runs of {kwargs['repository']}", file=sys.stderr) as bar:
        try:
            return scrape(gh, progress=bar.update, **kwargs)
        except AccessError as exc:
            raise _fail(str(exc)) from None
        except StoppedEarly as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(EXIT_INCOMPLETE)
        finally:
            gh.close()


def _public_api_url(api_url: str) -> str:
    """--api-url without credentials, checked; says on stderr when some were dropped. Credentials in the URL
    are never sent (PyGithub builds requests from scheme, host, port and path) and never recorded: from here
    on only the public form of the URL exists."""
    api_url, had_secret = public_url(api_url, query=False)
    problem = check_api_url(api_url)
    if problem:
        raise click.BadParameter(f"got {api_url!r}: {problem}", param_hint="--api-url")
    if had_secret:
        click.echo("ci-timing: --api-url: the credentials in the URL are ignored and not recorded; give a token in GITHUB_TOKEN", err=True)
    return api_url


def _check_writable(output: str, report_path: str, no_report: bool, nothing: str) -> None:
    """Refuse (exit 2, before any work) an --output folder or --report file that cannot be written."""
    for option, target, want_dir in (("--output", Path(output), True), ("--report", Path(report_path), False)):
        if option == "--report" and no_report:
            continue
        why = _unwritable(target, want_dir)
        if why:
            raise _fail(f"{option} {target}: {why}; {nothing}")


def _run_command(repository: str, runs: int, api_url: str, attempts: str, workflow: str | None, branch: str | None,
                 event: str | None, config: str | None) -> list[str]:
    """The command the document records: the options that shape the scrape, defaults left out."""
    command = ["ci-timing", "run", "--repo", repository, "--runs", str(runs)]
    if api_url != DEFAULT_API_URL:
        command += ["--api-url", api_url]
    if attempts != "all":
        command += ["--attempts", attempts]
    for flag, value in (("--workflow", workflow), ("--branch", branch), ("--event", event), ("--config", config)):
        if value:
            command += [flag, value]
    return command


def _exit_for(result: Scrape) -> None:
    """After writing: say what an incomplete document lacks, and exit 3 (stopped early) or 5 (malformed items
    left out); return when complete."""
    if result.skipped:
        first = result.doc["missing"][0]
        click.echo(
            f"{'ci-timing' if result.stopped else 'Error'}: {result.skipped} malformed item(s) left out, written with complete: false and each named"
            f" under `missing`; the first: {first['what']}: {first['reason']}",
            err=True,
        )
    if result.stopped:
        click.echo(f"Error: scrape incomplete, written with complete: false: {result.stopped}", err=True)
        sys.exit(EXIT_INCOMPLETE)
    if result.skipped:
        sys.exit(EXIT_SKIPPED)


@main.command()
@click.option("--repo-dir", default=".", show_default=True, type=click.Path(file_okay=False, exists=True), help="The git repository to clone (its committed HEAD; uncommitted changes are not measured).")
@click.option("--runners", "runners_file", default=None, type=click.Path(dir_okay=False), help="JSON list of runner specs (session, job, args, setup, install, detail, reuse_build) instead of mtap's runners.")
@click.option("--only", multiple=True, metavar="SESSION", help="Measure only these sessions (repeatable).")
@click.option("--not-measured", "not_measured", multiple=True, metavar="SESSION=REASON", help="Record SESSION as not measured, with REASON (repeatable); it gets no number.")
@click.option("--passes", default=2, show_default=True, type=click.IntRange(1, 10), help="Cold passes per runner (determinism needs 2).")
@click.option("--timeout", default=3600.0, show_default=True, type=click.FloatRange(1), help="Seconds before one step (clone, install, setup, first result) is killed with its process group.")
@click.option("--nox", "nox_cmd", default="python3 -m nox", show_default=True, help="How to call nox (split like a shell would).")
@click.option("--ext-dir", default="/work/ext", show_default=True, help="Local upstream clones for source builds ({ext} in runner specs).")
@click.option("--shared-dir", default="../shared", show_default=True, help="Shared data folder ({shared} in runner specs).")
@click.option("--work-dir", default=None, type=click.Path(file_okay=False), help="Where the temporary clones go. [default: the system temp folder]")
@click.option("--log-dir", default=None, type=click.Path(file_okay=False), help="Copy each pass's command log (commands, exit, output tails) here as SESSION.pass-K.log.")
@click.option("--keep", is_flag=True, help="Keep the clones, caches and logs (printed at the end).")
@click.option("--output", default=DEFAULT_OUTPUT, show_default=True, type=click.Path(file_okay=False), help="Folder the document is written to, as NAME.json.")
@click.option("--name", default="local", show_default=True, help="File stem of the document.")
@click.option("--report", "report_path", default=DEFAULT_REPORT, show_default=True, type=click.Path(dir_okay=False), help="Where to write the Markdown report (GitHub rows from OUTPUT/ci-timing.json join it).")
@click.option("--no-report", is_flag=True, help="Write only the JSON document.")
@click.option("--evaluation-dir", default=DEFAULT_EVAL, show_default=True, type=click.Path(file_okay=False), help="Where the runners' *.tool-run.json documents are (determinism records).")
def local(repo_dir: str, runners_file: str | None, only: tuple[str, ...], not_measured: tuple[str, ...], passes: int, timeout: float,
          nox_cmd: str, ext_dir: str, shared_dir: str, work_dir: str | None, log_dir: str | None, keep: bool, output: str, name: str,
          report_path: str, no_report: bool, evaluation_dir: str) -> None:
    """Measure each runner here from a clean clone with cold caches (D4 without GitHub).

    Per runner and pass: git clone of the committed HEAD, nox --install-only with pip/uv/XDG/mtap
    caches empty, the runner's setup command (astra/timeloop: `<runner> setup --source`, or a
    verified build reused from the mtap cache, recorded as such), then the first result
    (`nox -s SESSION --no-install -- --output OUT --limit N`). The passes' tool-run cases are
    compared for determinism. Writes OUTPUT/NAME.json (ci-timing v2, source.kind local) and the
    report. Exit 0 when written (a runner that failed is data: conclusion failure/unavailable);
    exit 2: bad options or runners file, nothing written.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise click.BadParameter(f"got {name!r}, expected a file stem (letters, digits, . _ -)", param_hint="--name")
    skipped: dict[str, str] = {}
    for item in not_measured:
        session, sep, reason = item.partition("=")
        if not sep or not session or not reason.strip():
            raise click.BadParameter(f"got {item!r}, expected SESSION=REASON", param_hint="--not-measured")
        skipped[session] = reason.strip()
    subst = {"ext": str(Path(ext_dir).resolve()), "shared": str(Path(shared_dir).resolve())}
    try:
        runners = load_runners(runners_file, subst)
    except LocalError as exc:
        raise _fail(str(exc)) from None
    known = {r.session for r in runners}
    for session in [*only, *skipped]:
        if session not in known:
            raise _fail(f"{session}: no such runner session (known: {', '.join(sorted(known))})")
    if only:
        runners = [r for r in runners if r.session in only]
    runners = [r for r in runners if r.session not in skipped]
    _check_writable(output, report_path, no_report, "nothing measured")
    if not runners:
        raise _fail("no runner left to measure (every session is under --not-measured or outside --only)")
    command = ["ci-timing", "local", "--passes", str(passes)] + [a for s in only for a in ("--only", s)] + \
        [a for s, r in sorted(skipped.items()) for a in ("--not-measured", f"{s}={r}")]
    try:
        with handle_signals():  # SIGTERM/SIGINT: the running step's process group is killed, nothing written
            result = measure(Path(repo_dir).resolve(), runners, rules=Rules(), passes=passes, nox=shlex.split(nox_cmd), timeout=timeout,
                             work_dir=Path(work_dir) if work_dir else None, keep=keep, log_dir=Path(log_dir) if log_dir else None,
                             not_measured=skipped, command=command, progress=lambda text: click.echo(f"ci-timing local: {text}", err=True))
    except LocalError as exc:
        raise _fail(str(exc)) from None
    except Interrupted:
        click.echo("ci-timing local: interrupted, the running step was killed; nothing written", err=True)
        sys.exit(130)
    _write_and_report(result.doc, output, name, report_path, no_report, evaluation_dir)


@main.command()
@click.option("--input", "inputs", multiple=True, type=click.Path(dir_okay=False), help=f"A ci-timing document, v1 or v2 (repeatable; absent files are skipped). [default: every {DEFAULT_OUTPUT}/*.json]")
@click.option("--evaluation-dir", default=DEFAULT_EVAL, show_default=True, type=click.Path(file_okay=False), help="Where the runners' *.tool-run.json documents are (determinism records).")
@click.option("--output", default=DEFAULT_REPORT, show_default=True, type=click.Path(dir_okay=False), help="Where to write the Markdown report.")
def report(inputs: tuple[str, ...], evaluation_dir: str, output: str) -> None:
    """Rebuild deployment-viability-report.md from the documents on disk (no network)."""
    paths = [Path(p) for p in inputs] or sorted(Path(DEFAULT_OUTPUT).glob("*.json")) or [Path(DEFAULT_OUTPUT) / "ci-timing.json"]
    try:
        path, had_ci = build_report(paths, Path(evaluation_dir), Path(output))
    except mtap_schemas.SchemaError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"{output}: not written: {_one_line(exc)}") from None
    note = "" if had_ci else f" (no ci-timing document yet: {', '.join(p.as_posix() for p in paths)} absent)"
    click.echo(f"wrote {path}{note}", err=True)


@main.command()
@click.option("--config", type=click.Path(dir_okay=False), default=None, help="Show the rules this config file gives instead of the defaults.")
def rules(config: str | None) -> None:
    """Print the job->tool mapping and step patterns as JSON (a starting point for --config)."""
    try:
        click.echo(json.dumps(load_rules(config).as_dict(), indent=2))
    except RulesError as exc:
        raise _fail(str(exc)) from None


if __name__ == "__main__":  # pragma: no cover
    main()
