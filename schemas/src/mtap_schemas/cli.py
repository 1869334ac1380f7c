"""The runner CLI kit: one contract for every runner, like Singer taps.

    main = runner_group("zigzag-runner", __version__, "zigzag", __doc__)

    @main.command()
    @run_options(tool="zigzag", output="data/evaluation/zigzag", tool_path=False, config_schema="zigzag-runner")
    def run(opts: RunOptions) -> None:
        ...
        finish(builder, cases, opts)

Verbs: ``run`` (all options below) and ``cases`` (only those that shape the plan: ``--config``,
``--data-dir``, ``--limit``, ``--shard``). The tool location comes from ``--tool-path`` or the
environment variable ``MTAP_<TOOL>_PATH`` (tool name upper-cased, ``-`` -> ``_``); a runner's old
flag and variable names stay as hidden aliases. Known user errors (bad config, unreadable
catalog, unwritable output) end with one line and exit 2, never a traceback; unexpected ones
keep theirs (exit 1). Exit codes are :class:`mtap_schemas.kinds.Exit`.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click

from .execute import Checkpoint, CheckpointError, Interrupted, available_cores, parse_shard, plan_digest, select_shard
from .keep import OutputError, check_writable, save
from .kinds import Exit
from .paths import PathError

#: True while a runner's ``main`` runs; before that (imports) a signal ends the process with one line
_IN_MAIN = False


def _early_signal(signum: int, _frame: Any) -> None:
    """SIGINT/SIGTERM that arrive while a runner is still importing: exit 130 with one line (no
    traceback, not 143); once ``main`` runs, SIGINT is Python's KeyboardInterrupt and SIGTERM raises
    :class:`Interrupted`, which the group turns into the same exit 130."""
    name = signal.Signals(signum).name
    if _IN_MAIN:
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        from .proc import kill_active

        kill_active()
        raise Interrupted(f"received {name}")
    sys.stderr.write(f"interrupted ({name}) before the run started; nothing was written\n")
    raise SystemExit(int(Exit.INTERRUPTED))


def _install_early_signals() -> None:
    """Only in a process whose handlers are still Python's defaults (not under a test runner's own)."""
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _early_signal)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _early_signal)
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = _excepthook
    if hasattr(signal, "SIGXFSZ") and signal.getsignal(signal.SIGXFSZ) == signal.SIG_DFL:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past a file-size limit a write fails (EFBIG): one line, not a core dump


def missing_package_line(exc: BaseException, prog: str | None = None) -> str | None:
    """One line for a tool's Python package that is not installed (``ModuleNotFoundError`` of a
    module, ``PackageNotFoundError`` of a distribution), with the install hint; None for other errors."""
    from importlib.metadata import PackageNotFoundError

    if isinstance(exc, PackageNotFoundError):  # (a subclass of ModuleNotFoundError)
        what = f"the Python package {str(exc.args[0] if exc.args else exc)!r} is not installed"
    elif isinstance(exc, ModuleNotFoundError) and exc.name:
        what = f"the Python module {exc.name.split('.')[0]!r} is not installed"
    else:
        return None
    prog = prog or Path(sys.argv[0]).name or "this runner"
    return (f"Error: {what} in this environment ({sys.executable}); {prog} needs it: install the runner with its "
            f"dependencies (pip install ./packages/{prog} into a virtualenv, or run it through its nox session)")


def _excepthook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
    """A tool package missing while a runner imports (before ``main``): one line and exit 2, no traceback."""
    line = missing_package_line(exc)
    if line is None:
        _previous_excepthook(kind, exc, tb)
        return
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    os._exit(int(Exit.USER_ERROR))


_previous_excepthook = sys.excepthook


class UserError(click.ClickException):
    """A known user error: ``Error: <file>: field <x>: <what was expected>``, exit 2, no traceback."""

    exit_code = int(Exit.USER_ERROR)

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


def tool_env_var(tool: str) -> str:
    """``astra-sim`` -> ``MTAP_ASTRA_SIM_PATH``: the one env-var pattern for a tool's location."""
    return f"MTAP_{re.sub(r'[^A-Za-z0-9]+', '_', tool).upper()}_PATH"


class RunnerGroup(click.Group):
    """Turns the library's known errors into one-line exit-2 errors and interrupts into exit 130;
    usage errors are one line too (no Usage/Try lines)."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        global _IN_MAIN
        _IN_MAIN = True
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"Error: {' '.join(exc.format_message().split())}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(int(Exit.INTERRUPTED))
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        from . import SchemaError

        try:
            return super().invoke(ctx)
        except (SchemaError, OutputError, PathError, CheckpointError) as exc:
            raise UserError(str(exc)) from None
        except ImportError as exc:  # a tool's package missing inside a command: one line with the hint
            line = missing_package_line(exc, ctx.find_root().info_name)
            if line is None:
                raise
            raise UserError(line.removeprefix("Error: ")) from None
        except Interrupted as exc:
            click.echo(f"interrupted ({exc}); finished cases are kept for --resume", err=True)
            ctx.exit(int(Exit.INTERRUPTED))
        except KeyboardInterrupt:
            click.echo("interrupted; finished cases are kept for --resume", err=True)
            ctx.exit(int(Exit.INTERRUPTED))


def runner_group(prog: str, version: str, help_text: str | None = None) -> Callable[[Callable[..., Any]], click.Group]:
    """Decorator for a runner's top-level group: ``-h/--help``, ``--version``."""

    def decorate(f: Callable[..., Any]) -> click.Group:
        f = click.version_option(version, prog_name=prog)(f)
        return click.group(cls=RunnerGroup, help=help_text or f.__doc__,
                           context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})(f)

    return decorate


@dataclass
class RunOptions:
    """Every option of the contract, parsed once. Options a verb does not offer are None/False."""

    verb: str
    config: Path | None
    data_dir: Path
    limit: int | None
    shard: tuple[int, int] | None
    output: Path | None = None
    name: str | None = None
    tool_path: Path | None = None
    image: str | None = None
    timeout: float | None = None
    keep_raw: Path | None = None
    jobs: int = 1
    overwrite: bool = False
    resume: bool = False
    config_doc: dict[str, Any] | None = None
    extra: dict[str, Any] | None = None

    def select(self, items: Sequence[Any]) -> list[Any]:
        """The planned items after ``--shard`` and ``--limit`` (in that order); none left is a user error."""
        chosen = select_shard(items, self.shard)[: self.limit] if self.limit else select_shard(items, self.shard)
        if not chosen:
            where = f"config {self.config}" if self.config else "the built-in matrix"
            shard = f" in shard {self.shard[0]}/{self.shard[1]}" if self.shard else ""
            raise UserError(f"{where}: selects no cases{shard}; nothing to run")
        return chosen

    def checkpoint(self, plan: Any) -> Checkpoint:
        assert self.output is not None and self.name is not None
        return Checkpoint(self.output, self.name, plan_digest(plan), resume=self.resume)


class _Shard(click.ParamType):
    name = "K/N"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        try:
            return parse_shard(str(value))
        except ValueError as exc:
            self.fail(str(exc).removeprefix("--shard: "), param, ctx)


def run_options(*, tool: str, output: str, verb: str = "run", tool_path: bool = True, image: bool = False,
                timeout: float | None = None, keep_raw: bool = True, jobs: bool = True,
                config_schema: str | None = None, config_help: str = "JSON selecting or overriding cases.",
                tool_path_help: str | None = None, aliases: Sequence[str] = (), env_aliases: Sequence[str] = (),
                keep_raw_aliases: Sequence[str] = ()) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The contract's options for ``verb`` (``run`` or ``cases``); the command receives one ``opts: RunOptions``
    (plus its own options as keyword arguments, collected into ``opts.extra``)."""
    running = verb == "run"
    env = tool_env_var(tool)
    opts: list[Callable[[Any], Any]] = [
        click.option("--config", type=click.Path(dir_okay=False, path_type=Path), default=None,
                      help=f"{config_help}  [default: the built-in matrix]"),
        click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("data"),
                     show_default=True, help="The repository's data/ (hardware and workload catalogs)."),
        click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N planned cases (smoke tests)."),
        click.option("--shard", type=_Shard(), default=None,
                     help="Only slice K of N of the case matrix (deterministic; aggregate merges the shards' documents)."),
    ]
    if running:
        opts += [
            click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=Path(output), show_default=True,
                         help="Folder the document is written to, as NAME.tool-run.json."),
            click.option("--name", default=None, help=f"File stem of the document.  [default: {tool}, or {tool}.shard-K-of-N]"),
            click.option("--overwrite", is_flag=True, help="Replace an existing document even if it has more ok cases."),
            click.option("--resume", is_flag=True, help="Continue an interrupted run of the same plan: finished cases are not run again."),
        ]
        if jobs:
            opts.append(click.option("--jobs", type=click.IntRange(min=1), default=available_cores(), show_default=True,
                                     help="Cases run in parallel worker processes; the document is the same for any N."))
        if tool_path:
            opts.append(click.option("--tool-path", type=click.Path(path_type=Path), envvar=[env, *env_aliases],
                                     show_envvar=True, default=None,
                                     help=tool_path_help or f"Where {tool} is (binary, folder or checkout)."))
            for i, alias in enumerate(aliases):
                opts.append(click.option(alias, f"_alias_tool_path_{i}", type=click.Path(path_type=Path), hidden=True, default=None))
        if image:
            opts.append(click.option("--image", default=None, help=f"Run {tool} inside this Docker image instead."))
        if timeout is not None:
            opts.append(click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=timeout,
                                     show_default=True, help="Seconds one case may run before its process group is killed."))
        if keep_raw:
            opts.append(click.option("--keep-raw", type=click.Path(file_okay=False, path_type=Path), default=None,
                                     help="Keep the tool's raw output files in this folder."))
            for i, alias in enumerate(keep_raw_aliases):
                opts.append(click.option(alias, f"_alias_keep_raw_{i}", type=click.Path(file_okay=False, path_type=Path),
                                         hidden=True, default=None))

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def wrapper(**kwargs: Any) -> Any:
            common = {k: kwargs.pop(k) for k in ("config", "data_dir", "limit", "shard", "output", "name", "overwrite",
                                                 "resume", "jobs", "tool_path", "image", "timeout", "keep_raw") if k in kwargs}
            ctx = click.get_current_context()
            for k in [k for k in kwargs if k.startswith("_alias_")]:
                value = kwargs.pop(k)
                target = "tool_path" if k.startswith("_alias_tool_path") else "keep_raw"
                # an old flag on the command line wins over an env var (but not over the new flag)
                from_env = ctx.get_parameter_source(target) in (click.core.ParameterSource.ENVIRONMENT,
                                                                 click.core.ParameterSource.DEFAULT)
                if value is not None and (common.get(target) is None or from_env):
                    common[target] = value
            o = RunOptions(verb=verb, **common)
            if running and o.name is None:
                o.name = f"{tool}.shard-{o.shard[0]}-of-{o.shard[1]}" if o.shard and o.shard[1] > 1 else tool
            elif running:
                check_name(o.name)
            if o.config is not None and config_schema is not None:
                o.config_doc = read_config(o.config, config_schema)
            if running and o.output is not None:
                check_writable(o.output)
            o.extra = kwargs
            return f(o, **kwargs)

        for opt in reversed(opts):
            wrapper = opt(wrapper)
        return wrapper

    return decorate


#: a document's file stem: letters, digits, ``.``, ``_``, ``-``; not starting with ``.`` or ``-``
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


def check_name(name: str | None) -> str:
    """``--name`` is a file stem inside ``--output``: never empty, a path, hidden, or odd characters."""
    if name is None or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise UserError(f"--name: got {name!r}, expected a file stem of letters, digits, '.', '_' or '-' "
                        f"(no path separators, not starting with '.' or '-', at most 128 characters)")
    return name


def read_config(path: str | os.PathLike[str], runner: str) -> dict[str, Any]:
    """Read a runner config (plain JSON object) and validate it against ``schemas/config/<runner>.v1.schema.json``."""
    from . import SchemaError, _schema_dir, validate_with

    source = str(path)
    try:
        raw = Path(path).read_bytes()
        text = raw.decode("utf-8")
    except OSError as exc:
        raise SchemaError(f"{source}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SchemaError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    import orjson

    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise SchemaError(f"{source}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(doc, dict):
        raise SchemaError(f"{source}: expected a JSON object at the top level, got {type(doc).__name__}")
    schema_file = _schema_dir() / "config" / f"{runner}.v1.schema.json"
    validate_with(doc, schema_file, source)
    return doc


def finish(builder: Any, cases: Sequence[dict[str, Any]], opts: RunOptions, checkpoint: Checkpoint | None = None) -> NoReturn:
    """Write the document under the keep policy, say what happened in one line, exit with the contract's code."""
    from . import SchemaError

    assert opts.output is not None and opts.name is not None
    doc = builder.document(cases, shard=opts.shard)
    try:
        saved = save(doc, opts.output, opts.name, overwrite=opts.overwrite)
    except SchemaError as exc:  # the runner built an invalid document: a bug, with its traceback (exit 1)
        raise RuntimeError(f"runner bug, the document it built is invalid: {exc}") from exc
    if checkpoint is not None:
        checkpoint.finish()
    click.echo(saved.message, err=True)
    click.get_current_context().exit(int(saved.exit_code))


_install_early_signals()
