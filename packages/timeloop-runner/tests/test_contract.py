"""The runner contract (packages/README.md) through real fake timeloop-mapper processes that
write a captured stats file, one test per defect of issue 15 that applies to timeloop-runner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FIXTURES, REPO, config, console, fake_bin, invoke

import mtap_schemas as ms

COMMITTED = REPO / "data" / "evaluation" / "timeloop" / "timeloop.tool-run.json"
STATS = FIXTURES / "eyeriss-like.conv1.stats.txt"
MAP = FIXTURES / "eyeriss-like.conv1.map.txt"

#: a stand-in for timeloop-mapper: the captured conv1 stats file (or, for problems with C = 3,
#: the file ALT) with Cycles and Computes made from the problem it is given (98 MACs a cycle),
#: and the captured mapping
FAKE = """#!{python}
import pathlib, re
inst = dict((k, int(v)) for k, v in re.findall(r"(\\w+): (\\d+)", pathlib.Path("problem.yaml").read_text().split("instance:")[1]))
macs = 1
for d in "CMRSNPQ":
    macs *= inst[d]
text = pathlib.Path({alt!r} if {alt!r} and inst["C"] == 3 else {stats!r}).read_text()
text = text.replace("Cycles: 1204224", f"Cycles: {{macs // 98}}").replace("Computes = 118013952", f"Computes = {{macs}}")
pathlib.Path("timeloop-mapper.stats.txt").write_text(text)
pathlib.Path("timeloop-mapper.map.txt").write_text(pathlib.Path({map!r}).read_text())
"""

ALEXNET = {"architectures": ["eyeriss-chip"], "models": ["alexnet"]}  # 5 layers + the total
SOME = {"architectures": ["eyeriss-like", "simba-like"], "models": ["bert-base"]}  # 2 x (6 matmuls + total)


def fake(tmp_path: Path, alt: Path | None = None) -> Path:
    return fake_bin(tmp_path / "bin", FAKE.format(python=sys.executable, stats=str(STATS), map=str(MAP),
                                                  alt=str(alt) if alt else None))


@pytest.mark.parametrize("script,kind", [("#!/bin/sh\necho 'ERROR: something broke' >&2\nexit 3\n", "tool-crashed"),
                                         ("#!/bin/sh\nkill -SEGV $$\n", "killed-by-signal")])
def test_broken_binary_never_replaces_the_committed_results(tmp_path, script, kind):
    out = tmp_path / "out"
    out.mkdir()
    (out / "timeloop.tool-run.json").write_bytes(COMMITTED.read_bytes())
    folder = fake_bin(tmp_path / "bin", script)
    res = console("run", "--output", out, "--tool-path", folder, "--config", config(tmp_path, ALEXNET), "--jobs", "1")
    assert res.returncode == 4, res.stderr
    assert (out / "timeloop.tool-run.json").read_bytes() == COMMITTED.read_bytes()
    assert "Traceback" not in res.stderr and "kept" in res.stderr.splitlines()[-1]
    refused = ms.read_tool_run(out / "timeloop.refused-fewer-ok.json")
    assert [c["status"] for c in refused["cases"]] == ["failed"] * 6
    assert {c["error"]["kind"] for c in refused["cases"][:5]} == {kind}
    assert refused["cases"][5]["error"]["kind"] == "incomplete"


def test_every_case_failed_is_exit_3(tmp_path):
    folder = fake_bin(tmp_path / "bin", "#!/bin/sh\necho 'ERROR: something broke' >&2\nexit 3\n")
    res = invoke("run", "--output", tmp_path / "out", "--data-dir", REPO / "data", "--tool-path", folder,
                 "--config", config(tmp_path, ALEXNET), "--jobs", "1")
    assert res.exit_code == 3, res.output
    cases = ms.read_tool_run(tmp_path / "out" / "timeloop.tool-run.json")["cases"]
    assert {c["status"] for c in cases} == {"failed"}
    assert "timeloop-mapper exited 3: ERROR: something broke (conv1)" == cases[0]["error"]["message"]


@pytest.mark.parametrize("subst,message", [
    ([("Cycles: 1204224", "Cycles: 0")], "metric cycles: got 0"),
    ([("Energy: 856.51 uJ", "Energy: 1e999 uJ")], "metric energy: got inf"),
    ([("Cycles: 1204224", "Cycles: 1e999")], "metric cycles: got inf"),
    ([("Computes = 118013952", "Computes = 0")], "metric macs: got 0"),
    ([("Utilization: 0.58", "Utilization: -0.58")], "metric utilization: got -0.58"),
])
def test_degenerate_stats_are_invalid_value_cases_not_a_crash(tmp_path, subst, message):
    """Issue 15's probes: `Cycles: 0` was a ZeroDivisionError in the model total and `Energy: 1e999`
    a schema error with nothing written. Now the layer is failed/invalid-value, the total incomplete."""
    edited = tmp_path / "conv1.stats.txt"  # the captured file with one line changed, for AlexNet conv1 (C = 3)
    text = STATS.read_text()
    for old, new in subst:
        assert old in text
        text = text.replace(old, new)
    edited.write_text(text)
    folder = fake(tmp_path, edited)
    res = invoke("run", "--output", tmp_path / "out", "--data-dir", REPO / "data", "--tool-path", folder,
                 "--config", config(tmp_path, ALEXNET), "--jobs", "1")
    assert res.exit_code == 0, res.output
    cases = {c["key"]: c for c in ms.read_tool_run(tmp_path / "out" / "timeloop.tool-run.json")["cases"]}
    conv1 = cases["alexnet.layer.conv1.b4.int16"]
    assert conv1["status"] == "failed" and conv1["error"]["kind"] == "invalid-value"
    assert message in conv1["error"]["message"] and "timeloop-mapper.stats.txt of conv1" in conv1["error"]["message"]
    assert cases["alexnet.layer.conv2.b4.int16"]["status"] == "ok"
    total = cases["alexnet.conv-layers.b4.int16"]
    assert total["status"] == "failed" and total["error"] == {"kind": "incomplete", "message": "no result for layer(s) conv1"}


def test_the_real_parser_reads_an_edited_fixture_as_the_writer_refuses_it():
    from mtap_schemas.toolrun import InvalidValue
    from mtap_timeloop_runner.parse import parse_stats
    from mtap_timeloop_runner.run import check_stats

    stats = parse_stats(STATS.read_text().replace("Energy: 856.51 uJ", "Energy: 1e999 uJ"))
    assert stats.energy_uj == float("inf")
    with pytest.raises(InvalidValue, match="metric energy: got inf"):
        check_stats(stats)
    check_stats(parse_stats(STATS.read_text()))  # the captured run itself passes


def _cases(path: Path) -> list[dict]:
    return ms.canonical(ms.read_tool_run(path))["cases"]


def test_document_is_the_same_for_any_jobs_and_shards_partition_it(tmp_path):
    folder = fake(tmp_path)
    cfg = config(tmp_path, SOME)
    common = ["run", "--tool-path", folder, "--config", cfg]
    one = console(*common, "--output", tmp_path / "j1", "--jobs", "1")
    two = console(*common, "--output", tmp_path / "j2", "--jobs", "2")
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    doc1, doc2 = (ms.read_tool_run(tmp_path / d / "timeloop.tool-run.json") for d in ("j1", "j2"))
    for d in (doc1, doc2):
        d["invocation"] = None
    assert ms.canonical(doc1)["cases"] == ms.canonical(doc2)["cases"]
    assert [c["status"] for c in doc1["cases"]] == ["ok"] * 14
    cycles = {c["key"]: next(m["value"] for m in c["metrics"] if m["name"] == "cycles") for c in doc1["cases"]}
    assert len(set(cycles.values())) > 3  # the fake gives each shape its own numbers
    shards = []
    for k in (1, 2, 3):
        res = invoke(*common, "--output", tmp_path / "shards", "--jobs", "1", "--shard", f"{k}/3", "--data-dir", REPO / "data")
        assert res.exit_code == 0, res.output
        doc = ms.read_tool_run(tmp_path / "shards" / f"timeloop.shard-{k}-of-3.tool-run.json")
        assert doc["invocation"]["shard"] == {"index": k, "count": 3}
        shards += doc["cases"]
    strip = lambda cs: sorted(([c["id"], c["status"], c["metrics"], c["parameters"]] for c in cs), key=str)  # noqa: E731
    assert strip(shards) == strip(doc1["cases"])


def test_unwritable_output_fails_before_the_first_case(tmp_path):
    marker = tmp_path / "ran"
    folder = fake_bin(tmp_path / "bin", f"#!/bin/sh\necho x >> {marker}\n")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    res = invoke("run", "--output", blocker / "out", "--data-dir", REPO / "data", "--tool-path", folder,
                 "--config", config(tmp_path, ALEXNET), "--jobs", "1")
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
    cfg = config(tmp_path, {"architectures": ["eyeriss-chip"], "models": ["alexnet"], "layers": ["conv1"]})
    t0 = time.monotonic()
    res = console("run", "--output", tmp_path / "out", "--tool-path", folder, "--timeout", "2", "--config", cfg,
                  "--jobs", "1", timeout=120)
    assert time.monotonic() - t0 < 60
    assert res.returncode == 3, res.stderr  # the only case failed
    (case,) = ms.read_tool_run(tmp_path / "out" / "timeloop.tool-run.json")["cases"]
    assert case["status"] == "failed" and case["error"]["kind"] == "timeout"
    assert "ran past 2 s" in case["error"]["message"]
    grandchild = int(pidfile.read_text())
    for _ in range(50):
        if not _running(grandchild):
            break
        time.sleep(0.1)
    assert not _running(grandchild), "the mapper's child outlived the timeout"


def test_config_timeout_applies_unless_given_on_the_command_line(tmp_path):
    folder = fake_bin(tmp_path / "bin", "#!/bin/sh\nsleep 30\n")
    cfg = config(tmp_path, {"architectures": ["eyeriss-chip"], "models": ["alexnet"], "layers": ["conv1"], "timeout_s": 0.5})
    res = invoke("run", "--output", tmp_path / "out", "--data-dir", REPO / "data", "--tool-path", folder,
                 "--config", cfg, "--jobs", "1")
    assert res.exit_code == 3
    (case,) = ms.read_tool_run(tmp_path / "out" / "timeloop.tool-run.json")["cases"]
    assert case["error"]["kind"] == "timeout" and "ran past 0.5 s" in case["error"]["message"]


def test_the_document_records_no_machine_path_and_keeps_maps_and_raw_files(tmp_path):
    folder = fake(tmp_path)
    cfg = config(tmp_path, {"architectures": ["eyeriss-chip"], "models": ["alexnet"], "layers": ["conv1", "conv2"]})
    res = invoke("run", "--output", tmp_path / "out", "--data-dir", REPO / "data", "--timeloop-bin", folder / "timeloop-mapper",
                 "--config", cfg, "--jobs", "1", "--keep-raw", tmp_path / "raw")
    assert res.exit_code == 0, res.output
    doc = ms.read_tool_run(tmp_path / "out" / "timeloop.tool-run.json")
    sha = ms.sha256_file(folder / "timeloop-mapper")
    assert doc["tool"] == {"name": "timeloop", "version": None, "backend": "native", "location": f"timeloop-mapper (sha256 {sha})"}
    assert str(tmp_path) not in (tmp_path / "out" / "timeloop.tool-run.json").read_text()
    arts = doc["cases"][0]["artifacts"]
    assert arts[-1] == {"path": "<external>/conv1.map.txt", "sha256": ms.sha256_file(MAP)}
    assert (tmp_path / "out" / "timeloop.maps" / "eyeriss-chip" / "conv1.map.txt").read_text() == MAP.read_text()
    kept = sorted(p.name for p in (tmp_path / "raw" / "eyeriss-chip" / "alexnet.conv1").iterdir())
    assert kept == ["eyeriss-chip-arch.yaml", "eyeriss-chip-constraints.yaml", "mapper.yaml", "problem.yaml",
                    "timeloop-mapper.log", "timeloop-mapper.map.txt", "timeloop-mapper.stats.txt"]


def test_sigterm_keeps_finished_cases_and_resume_runs_only_the_rest(tmp_path):
    marker, hang = tmp_path / "ran", tmp_path / "hang"
    script = FAKE.format(python=sys.executable, stats=str(STATS), map=str(MAP), alt=None) + f"""
with open({str(marker)!r}, "a") as f:
    f.write("x")
if pathlib.Path({str(hang)!r}).exists() and len(pathlib.Path({str(marker)!r}).read_text()) == 3:
    import time
    time.sleep(300)
"""
    folder = fake_bin(tmp_path / "bin", script)
    hang.write_text("")
    cfg = config(tmp_path, ALEXNET)  # 5 mapper runs
    args = [sys.executable, "-m", "mtap_timeloop_runner.cli", "run", "--output", str(tmp_path / "out"),
            "--tool-path", str(folder), "--config", str(cfg), "--jobs", "1"]
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(tmpdir)})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (marker.exists() and len(marker.read_text()) == 3):
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert list(tmpdir.iterdir()) == []  # the work folder and the captured output are cleaned up
    assert not (tmp_path / "out" / "timeloop.tool-run.json").exists()
    progress = (tmp_path / "out" / ".timeloop.progress.jsonl").read_text().splitlines()
    assert len(progress) == 1 + 2  # the plan line and the two finished runs
    hang.unlink()
    res = console(*args[3:], "--resume")
    assert res.returncode == 0, res.stderr
    assert len(marker.read_text()) == 3 + 3  # only the run in flight and the two after it ran again
    doc = ms.read_tool_run(tmp_path / "out" / "timeloop.tool-run.json")
    assert [c["status"] for c in doc["cases"]] == ["ok"] * 6
    assert not (tmp_path / "out" / ".timeloop.progress.jsonl").exists()
    fresh = console(*args[3:], "--output", tmp_path / "fresh")
    assert fresh.returncode == 0
    assert _cases(tmp_path / "fresh" / "timeloop.tool-run.json") == ms.canonical(doc)["cases"]
