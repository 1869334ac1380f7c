"""A tiny runner built only from the kit, for the kit's tests (run as a real process).

    python kitdemo.py run --output DIR [--cases N] [--mode ok|fail|invalid|mixed] [--sleep S] [--jobs N] ...
"""

from __future__ import annotations

import json
import os
import time

import click

import mtap_schemas.toolrun as tr
from mtap_schemas.cli import RunOptions, finish, run_options, runner_group
from mtap_schemas.execute import run_cases


@runner_group("kitdemo", "0.1.0")
def main() -> None:
    """A demo runner (tests only)."""


def plan(n: int, mode: str) -> list[dict]:
    return [{"id": f"case-{i:03d}", "i": i, "mode": mode} for i in range(n)]


def run_one(unit: dict) -> dict:
    tool_sleep = os.environ.get("KITDEMO_TOOL_SLEEP")
    if tool_sleep:  # a "tool" child process in its own group, run from a temp folder (fault tests)
        import tempfile

        from mtap_schemas.proc import run_tool

        with tempfile.TemporaryDirectory(prefix="mtap-kitdemo-", dir=os.environ.get("KITDEMO_TMP")) as tmp:
            run_tool(["sleep", tool_sleep], cwd=tmp)
    sleep = float(os.environ.get("KITDEMO_SLEEP", "0"))
    if sleep:
        time.sleep(sleep)
    marker = os.environ.get("KITDEMO_MARK")
    if marker:
        with open(marker, "a") as f:
            f.write(unit["id"] + "\n")
    common = {"workload": "W1", "hardware": "H100-SXM5-80GB", "key": f"demo.case{unit['i']}"}
    mode = unit["mode"]
    if mode == "fail" or (mode == "mixed" and unit["i"] % 2):
        return tr.failed(unit["id"], kind="tool-crashed", message="demo tool exited 1", **common)
    value = -1.0 if mode == "invalid" else unit["i"] * 1.5 + 1
    return tr.ok(unit["id"], metrics=[tr.metric("latency", value, "ms", "prediction", timing="simulated")], **common)


@main.command()
@run_options(tool="demo", output="out", tool_path=False, timeout=None, keep_raw=False)
@click.option("--cases", "n", type=int, default=6)
@click.option("--mode", default="ok")
def run(opts: RunOptions, n: int, mode: str) -> None:
    builder = tr.ToolRun("kitdemo", "0.1.0", tr.Tool("demo", "1", "native", "demo"))
    units = opts.select(plan(n, mode))
    cp = opts.checkpoint(units)
    builder.setup_done()
    cases = run_cases(units, run_one, jobs=opts.jobs, label="demo", ident=lambda u: u["id"], checkpoint=cp)
    finish(builder, cases, opts, cp)


@main.command()
@run_options(tool="demo", output="out", verb="cases")
@click.option("--cases", "n", type=int, default=6)
def cases(opts: RunOptions, n: int) -> None:
    for unit in opts.select(plan(n, "ok")):
        click.echo(json.dumps(unit, sort_keys=True))


if __name__ == "__main__":
    main()
