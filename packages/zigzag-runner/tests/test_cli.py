"""The runner's help and version (its plan and config errors: test_plan.py, shared with
timeloop-runner; real ZigZag runs: test_contract.py, test_shipped.py)."""

from __future__ import annotations

from conftest import invoke


def test_help_and_version():
    r = invoke("--help")
    assert r.exit_code == 0 and "zigzag-dse" in r.output and "Examples" in r.output
    run_help = invoke("run", "--help").output
    assert "--jobs" in run_help and "--timeout" in run_help and "--keep-raw" in run_help
    assert "--tool-path PATH" not in run_help and "--image" not in run_help  # ZigZag is the installed package
    r = invoke("--version")
    assert r.exit_code == 0 and "2.1.0" in r.output
