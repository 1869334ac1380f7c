"""The runner contract (packages/README.md) through real fake binaries, one test per defect of
issue 15 that applies to astra-runner: lost results, parallel and sharded runs, checks before
work, timeouts that leave nothing running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, config, console, fake_bin, invoke

import mtap_schemas as ms

COMMITTED = REPO / "data" / "evaluation" / "astra-sim" / "astra-sim.tool-run.json"

#: a stand-in that reads its inputs like ASTRA-sim and reports every NPU finished, the cycles
#: derived from the trace bytes (deterministic, different per case)
SIMULATE = """#!{python}
import pathlib, re, sys
args = dict(a.lstrip("-").split("=", 1) for a in sys.argv[1:])
net = pathlib.Path(args["network-configuration"]).read_text()
n = int(re.search(r"npus_count: \\[ (\\d+) \\]", net).group(1))
size = sum(p.stat().st_size for p in pathlib.Path(args["workload-configuration"]).parent.glob("*.et"))
bw = re.search(r"bandwidth: \\[ ([0-9.e+]+) \\]", net).group(1)
for i in range(n):
    print(f"[2026-01-01 00:00:00.000] [workload] [info] sys[{{i}}] finished, {{size + i + len(bw)}} cycles, exposed communication {{i}} cycles.")
    print(f"[2026-01-01 00:00:00.000] [statistics] [info] sys[{{i}}], Wall time: {{size + i + len(bw)}}")
    print(f"[2026-01-01 00:00:00.000] [statistics] [info] sys[{{i}}], Comm time: {{size // 7 + i}}")
"""

SOME = {"include": ["w6/all-reduce.n8.*", "w6/all-reduce.n2.*", "topology/all-gather.*/ring.*", "scaling/all-reduce.*",
                    "w10/*", "scaling/resnet50.*"]}


def simulate_bin(tmp_path: Path) -> Path:
    return fake_bin(tmp_path / "bin", SIMULATE.format(python=sys.executable))


@pytest.mark.parametrize("script,kind", [("#!/bin/sh\nexit 127\n", "tool-crashed"),
                                         ("#!/bin/sh\nkill -SEGV $$\n", "killed-by-signal")])
def test_broken_binary_never_replaces_the_committed_results(tmp_path, script, kind):
    """Issue 15's probe: a binary that exits 127 or segfaults turned the committed document
    (345 ok) into failed cases. Now: exit 4, the document byte for byte as it was."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "astra-sim.tool-run.json").write_bytes(COMMITTED.read_bytes())
    folder = fake_bin(tmp_path / "bin", script)
    res = console("run", "--output", out, "--tool-path", folder, "--config", config(tmp_path, REFERENCE_AND_SOME), "--jobs", "1")
    assert res.returncode == 4, res.stderr
    assert (out / "astra-sim.tool-run.json").read_bytes() == COMMITTED.read_bytes()
    assert "Traceback" not in res.stderr and "kept" in res.stderr.splitlines()[-1]
    refused = ms.read_tool_run(out / "astra-sim.refused-fewer-ok.json")
    runnable = [c for c in refused["cases"] if not c["id"].startswith("scaling/")]
    assert runnable and {c["status"] for c in runnable} == {"failed"} and {c["error"]["kind"] for c in runnable} == {kind}
    assert {c["error"]["kind"] for c in refused["cases"] if c["id"].startswith("scaling/")} == {"incomplete"}


REFERENCE_AND_SOME = {"include": ["reference/*", "w6/all-reduce.n8.*", "scaling/all-reduce.1mib.*"]}


def test_every_case_failed_is_exit_3(tmp_path):
    folder = fake_bin(tmp_path / "bin", "#!/bin/sh\nexit 127\n")
    res = invoke("run", "--output", tmp_path / "out", "--data-dir", REPO / "data", "--tool-path", folder,
                 "--config", config(tmp_path, REFERENCE_AND_SOME), "--jobs", "1")
    assert res.exit_code == 3, res.output
    doc = ms.read_tool_run(tmp_path / "out" / "astra-sim.tool-run.json")
    assert {c["status"] for c in doc["cases"]} == {"failed"}
    assert all("AstraSim_Analytical_Congestion" in c["error"]["message"] and "exited 127" in c["error"]["message"]
               for c in doc["cases"] if not c["id"].startswith("scaling/"))


def _cases(path: Path) -> list[dict]:
    return ms.canonical(ms.read_tool_run(path))["cases"]


def test_document_is_the_same_for_any_jobs_and_shards_partition_it(tmp_path):
    folder = simulate_bin(tmp_path)
    cfg = config(tmp_path, SOME)
    common = ["run", "--tool-path", folder, "--config", cfg, "--compute-source", "roofline"]
    one = console(*common, "--output", tmp_path / "j1", "--jobs", "1")
    two = console(*common, "--output", tmp_path / "j2", "--jobs", "2")
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    doc1, doc2 = (ms.read_tool_run(tmp_path / d / "astra-sim.tool-run.json") for d in ("j1", "j2"))
    for d in (doc1, doc2):
        d["invocation"] = None
    assert ms.canonical(doc1) == ms.canonical(doc2)
    statuses = [c["status"] for c in doc1["cases"]]
    assert set(statuses) == {"ok", "unsupported"} and statuses.count("unsupported") == 2  # doubleBinaryTree all-gather
    planned = invoke("cases", "--config", cfg).output.splitlines()
    assert [c["id"] for c in doc1["cases"]] == [json.loads(line)["id"] for line in planned] and len(planned) == 6 + 6 + 8 + 6 + 2 + 2 + 4
    shards = []
    for k in (1, 2, 3):
        res = invoke(*common, "--output", tmp_path / "shards", "--jobs", "1", "--shard", f"{k}/3")
        assert res.exit_code == 0, res.output
        doc = ms.read_tool_run(tmp_path / "shards" / f"astra-sim.shard-{k}-of-3.tool-run.json")
        assert doc["invocation"]["shard"] == {"index": k, "count": 3}
        shards += doc["cases"]
    assert sorted(shards, key=lambda c: c["id"]) == sorted(doc1["cases"], key=lambda c: c["id"])


def test_unwritable_output_fails_before_the_first_case(tmp_path):
    marker = tmp_path / "ran"
    folder = fake_bin(tmp_path / "bin", f"#!/bin/sh\necho x >> {marker}\n")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    res = invoke("run", "--output", blocker / "out", "--data-dir", REPO / "data", "--tool-path", folder,
                 "--config", config(tmp_path, REFERENCE_AND_SOME), "--jobs", "1")
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit)
    assert res.output.count("\n") == 1 and "a-file/out" in res.output
    assert not marker.exists()


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_timeout_kills_the_whole_process_group_and_records_timeout(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    folder = fake_bin(tmp_path / "bin", f"#!/bin/sh\nsleep 300 &\necho $! > {pidfile}\nwait\n")
    t0 = time.monotonic()
    res = console("run", "--output", tmp_path / "out", "--tool-path", folder, "--timeout", "2",
                  "--config", config(tmp_path, {"studies": ["reference"]}), "--jobs", "1", timeout=120)
    assert time.monotonic() - t0 < 60
    assert res.returncode == 3, res.stderr  # the only case failed
    (case,) = ms.read_tool_run(tmp_path / "out" / "astra-sim.tool-run.json")["cases"]
    assert case["status"] == "failed" and case["error"]["kind"] == "timeout"
    assert "ran past 2 s" in case["error"]["message"]
    grandchild = int(pidfile.read_text())
    for _ in range(50):
        if not _running(grandchild):
            break
        time.sleep(0.1)
    assert not _running(grandchild), "the tool's child outlived the timeout"


def test_config_timeout_applies_unless_given_on_the_command_line(tmp_path):
    folder = fake_bin(tmp_path / "bin", "#!/bin/sh\nsleep 30\n")
    cfg = config(tmp_path, {"studies": ["reference"], "timeout_s": 0.5})
    res = invoke("run", "--output", tmp_path / "out", "--data-dir", REPO / "data", "--tool-path", folder,
                 "--config", cfg, "--jobs", "1")
    assert res.exit_code == 3
    (case,) = ms.read_tool_run(tmp_path / "out" / "astra-sim.tool-run.json")["cases"]
    assert case["error"]["kind"] == "timeout" and "ran past 0.5 s" in case["error"]["message"]


def test_sigterm_keeps_finished_cases_and_resume_runs_only_the_rest(tmp_path):
    marker, hang = tmp_path / "ran", tmp_path / "hang"
    script = SIMULATE.format(python=sys.executable) + f"""
with open({str(marker)!r}, "a") as f:
    f.write("x")
if pathlib.Path({str(hang)!r}).exists() and len(pathlib.Path({str(marker)!r}).read_text()) == 4:
    import time
    time.sleep(300)
"""
    folder = fake_bin(tmp_path / "bin", script)
    hang.write_text("")
    cfg = config(tmp_path, {"include": ["w6/all-reduce.n8.*"]})  # 6 cases
    args = [sys.executable, "-m", "mtap_astra_runner.cli", "run", "--output", str(tmp_path / "out"), "--tool-path", str(folder),
            "--config", str(cfg), "--jobs", "1"]
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(tmpdir)})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (marker.exists() and len(marker.read_text()) == 4):
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert list(tmpdir.iterdir()) == []  # the case's work folder and the captured output are cleaned up
    assert not (tmp_path / "out" / "astra-sim.tool-run.json").exists()
    progress = (tmp_path / "out" / ".astra-sim.progress.jsonl").read_text().splitlines()
    assert len(progress) == 1 + 3  # the plan line and the three finished cases
    hang.unlink()
    res = console(*args[3:], "--resume")
    assert res.returncode == 0, res.stderr
    assert len(marker.read_text()) == 4 + 3  # only the case in flight and the two after it ran again
    doc = ms.read_tool_run(tmp_path / "out" / "astra-sim.tool-run.json")
    assert [c["status"] for c in doc["cases"]] == ["ok"] * 6
    assert not (tmp_path / "out" / ".astra-sim.progress.jsonl").exists()
    fresh = console(*args[3:], "--output", tmp_path / "fresh")
    assert fresh.returncode == 0
    assert _cases(tmp_path / "fresh" / "astra-sim.tool-run.json") == ms.canonical(doc)["cases"]
