"""The runner kit: builder, case constructors, keep policy, parallel/sharded/resumable execution,
the process helper, the consumers' reader and paths. CLI behaviour is tested through a real
process (tests/kitdemo.py), where a traceback would really show."""

from __future__ import annotations

import json
import lzma
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mtap_schemas as ms
import mtap_schemas.toolrun as tr
from mtap_schemas import consume, keep, kinds, paths, proc
from mtap_schemas.execute import Checkpoint, parse_shard, plan_digest, run_cases, select_shard

HERE = Path(__file__).resolve().parent
SCHEMAS = HERE.parent
DEMO = HERE / "kitdemo.py"
W = {"workload": "W1", "hardware": "H100-SXM5-80GB"}


def demo(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(HERE), **(env or {})}
    return subprocess.run([sys.executable, str(DEMO), *args], capture_output=True, text=True, env=full_env,
                          cwd=cwd, timeout=timeout)


def doc_with(cases: list[dict]) -> dict:
    return tr.ToolRun("t", "1", tr.Tool("demo", "1", "native", "demo"), argv=["run"]).document(cases)


def ok_case(i: int) -> dict:
    return tr.ok(f"c{i}", metrics=[tr.metric("latency", 1.0 + i, "ms", "prediction")], **W)


# --- kinds and schema ----------------------------------------------------------------------

def test_error_kinds_in_code_equal_the_schema_enum() -> None:
    schema = json.loads((SCHEMAS / "tool-run.v2.schema.json").read_text())
    assert schema["$defs"]["error"]["properties"]["kind"]["enum"] == sorted(kinds.ERROR_KINDS)
    assert all(status in kinds.STATUSES for status, _ in kinds.ERROR_KINDS.values())


def test_documented_exit_codes_match_code() -> None:
    text = (SCHEMAS.parent / "packages" / "README.md").read_text()
    for code in kinds.Exit:
        assert f"| {int(code)} |" in text, f"exit code {int(code)} ({code.name}) not documented in packages/README.md"


# --- builder and constructors ----------------------------------------------------------------

def test_document_is_valid_v2_with_utc_z_and_no_machine_paths(tmp_path: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text("{}")
    run = tr.ToolRun("t", "1", tr.Tool("demo", "1", "native", tr.location_of(cfg)),
                     argv=["run", "--output", str(tmp_path / "o"), f"--config={cfg}", "--limit", "2"], config=cfg)
    doc = run.document([ok_case(0)], shard=(2, 3))
    ms.validate(doc, "tool-run", 2)
    assert doc["wall_clock"]["started_at"].endswith("Z") and "+" not in doc["wall_clock"]["started_at"]
    assert doc["invocation"]["command"] == ["t", "run", "--output", "<external>/o", "--config=<external>/c.json", "--limit", "2"]
    assert doc["invocation"]["shard"] == {"index": 2, "count": 3}
    assert doc["tool"]["location"].startswith("c.json (sha256 ")
    assert str(tmp_path) not in json.dumps(doc)


def test_schema_refuses_absolute_paths_and_offset_timestamps() -> None:
    doc = doc_with([ok_case(0)])
    unknown = json.loads(json.dumps(doc))
    unknown["tool"]["location"] = None  # a tool that was not found has no location
    ms.validate(unknown, "tool-run", 2)
    for mutate in (lambda d: d["invocation"]["command"].append("/home/me/out"),
                   lambda d: d["tool"].update(location="/work/build/bin/tool"),
                   lambda d: d["wall_clock"].update(started_at="2026-11-26T19:21:18+00:00"),
                   lambda d: d["cases"][0]["metrics"][0].update(value=-1.0),
                   lambda d: d["cases"].append({**d["cases"][0], "id": "x", "status": "failed", "metrics": [],
                                                "error": {"kind": "made-up-kind", "message": "m"}})):
        bad = json.loads(json.dumps(doc))
        mutate(bad)
        with pytest.raises(ms.SchemaError):
            ms.validate(bad, "tool-run", 2)


@pytest.mark.parametrize("value, expected", [(float("nan"), "finite"), (float("inf"), "finite"), (1e999, "finite"), (10**400, "finite"),
                                             (-0.5, "negative"), ("3", "expected a number"), (True, "expected a number")])
def test_invalid_metric_makes_a_failed_case_not_a_crash(value, expected) -> None:
    case = tr.ok("c", metrics=[{"name": "latency", "value": value, "unit": "ms", "kind": "prediction"}], **W)
    assert case["status"] == "failed" and case["error"]["kind"] == "invalid-value"
    assert expected in case["error"]["message"] and "latency" in case["error"]["message"]
    ms.validate(doc_with([case]), "tool-run", 2)


def test_negative_allowed_where_the_unit_can_be_negative_and_zero_divisor_refused() -> None:
    assert tr.ok("c", metrics=[tr.metric("error", -3.0, "%", "derived")], **W)["status"] == "ok"
    with pytest.raises(tr.InvalidValue, match="cycles per second: divisor is 0"):
        tr.ratio(5, 0, "cycles per second")


def test_latency_from_cycles_needs_a_clock() -> None:
    assert tr.latency_from_cycles(2_000, None) == [] and tr.latency_from_cycles(2_000, 0) == []
    assert tr.latency_from_cycles(2_000, 1e9) == [
        {"name": "latency", "value": 2e-06, "unit": "s", "kind": "derived", "timing": "simulated",
         "source": "cycles / clock_hz of the hardware catalog (1e+09 Hz)"}]


def test_constructors_refuse_unknown_error_kinds_and_ok_without_metrics() -> None:
    with pytest.raises(ValueError, match="not in"):
        tr.failed("c", kind="oops", message="m", **W)
    assert tr.ok("c", metrics=[], **W)["error"]["kind"] == "parse-failed"
    assert tr.from_error("c", kind="binary-missing", message="m", **W)["status"] == "unavailable"


# --- keep policy -------------------------------------------------------------------------------

def test_a_worse_run_never_replaces_a_better_document(tmp_path: Path) -> None:
    good = doc_with([ok_case(i) for i in range(3)])
    assert keep.save(good, tmp_path, "demo").exit_code == kinds.Exit.OK
    before = (tmp_path / "demo.tool-run.json").read_bytes()
    bad = doc_with([tr.failed("c0", kind="tool-crashed", message="exit 127", **W)])
    saved = keep.save(bad, tmp_path, "demo")
    assert saved.kept_existing and saved.exit_code == kinds.Exit.KEPT_EXISTING
    assert (tmp_path / "demo.tool-run.json").read_bytes() == before
    assert (tmp_path / "demo.refused-fewer-ok.json").is_file() and "--overwrite" in saved.message
    forced = keep.save(bad, tmp_path, "demo", overwrite=True)
    assert forced.exit_code == kinds.Exit.ALL_FAILED and not forced.kept_existing


def test_written_file_mode_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = keep.save(doc_with([ok_case(0)]), tmp_path, "demo").path
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_unwritable_output_is_found_before_work(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    if os.access(ro, os.W_OK):  # root ignores permissions: use a path under a file instead
        ro = tmp_path / "file"
        ro.write_text("x")
        ro = ro / "sub"
    with pytest.raises(keep.OutputError, match="output"):
        keep.check_writable(ro)


# --- execution -----------------------------------------------------------------------------------

def square(x: int) -> int:
    return x * x


def test_shards_partition_the_plan_deterministically() -> None:
    items = list(range(10))
    parts = [select_shard(items, (k, 3)) for k in (1, 2, 3)]
    assert sorted(sum(parts, [])) == items and parts[0] == [0, 3, 6, 9]
    for bad in ("0/3", "4/3", "a/b", "3"):
        with pytest.raises(ValueError, match="K/N"):
            parse_shard(bad)


def test_parallel_results_come_back_in_plan_order() -> None:
    assert run_cases(list(range(7)), square, jobs=2, ident=str) == [x * x for x in range(7)]


def test_checkpoint_resumes_only_the_same_plan(tmp_path: Path) -> None:
    cp = Checkpoint(tmp_path, "demo", plan_digest([1, 2, 3]))
    cp.record("1", {"v": 1})
    cp.close()
    assert Checkpoint(tmp_path, "demo", plan_digest([1, 2, 3]), resume=True).done == {"1": {"v": 1}}
    other = Checkpoint(tmp_path, "demo", plan_digest([9]), resume=True)
    assert other.done == {} and other.stale == 1
    # a line cut short by a kill is ignored
    with open(tmp_path / ".demo.progress.jsonl", "ab") as f:
        f.write(b'{"id": "2", "res')
    assert Checkpoint(tmp_path, "demo", plan_digest([1, 2, 3]), resume=True).done == {"1": {"v": 1}}


# --- the process helper ------------------------------------------------------------------------

def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    r = proc.run_tool(["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"], timeout=0.5)
    assert r.outcome == "timeout" and r.error(0.5)[0] == "timeout"
    time.sleep(0.2)
    grandchild = int(pidfile.read_text())
    assert not Path(f"/proc/{grandchild}").exists() or "Z" in Path(f"/proc/{grandchild}/stat").read_text().split()[2]


def test_signal_exit_and_missing_binary_are_told_apart() -> None:
    assert proc.run_tool(["sh", "-c", "kill -SEGV $$"]).error()[0] == "killed-by-signal"
    assert proc.run_tool(["sh", "-c", "echo boom >&2; exit 3"]).error() == ("tool-crashed", "sh exited 3: boom")
    assert proc.run_tool(["/nonexistent/tool"]).error()[0] == "binary-missing"


def test_captured_output_is_capped() -> None:
    r = proc.run_tool([sys.executable, "-c", "print('x' * 5_000_000)"], cap=10_000)
    assert len(r.stdout) < 11_000 and "left out" in r.stdout


# --- the runner CLI contract, as a real process ---------------------------------------------------

def test_cli_exit_codes_and_one_line_errors(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = demo("run", "--output", str(out), "--jobs", "1")
    assert r.returncode == 0, r.stderr
    assert "6 cases (6 ok)" in r.stderr
    before = (out / "demo.tool-run.json").read_bytes()
    r = demo("run", "--output", str(out), "--mode", "fail", "--jobs", "1")
    assert r.returncode == kinds.Exit.KEPT_EXISTING and (out / "demo.tool-run.json").read_bytes() == before
    assert "kept" in r.stderr and "Traceback" not in r.stderr
    r = demo("run", "--output", str(out), "--mode", "fail", "--overwrite", "--jobs", "1")
    assert r.returncode == kinds.Exit.ALL_FAILED
    for args, needle in ((["--limit", "0"], "--limit"), (["--cases", "0"], "selects no cases"),
                         (["--shard", "5/2"], "--shard"), (["--output", str(tmp_path / "f" / "x")], "output")):
        if args[0] == "--output":
            (tmp_path / "f").write_text("a file")
        r = demo("run", *(["--output", str(out)] if args[0] != "--output" else []), *args)
        assert r.returncode == kinds.Exit.USER_ERROR, (args, r.stderr)
        assert needle in r.stderr and "Traceback" not in r.stderr
        assert len([ln for ln in r.stderr.splitlines() if ln.startswith("Error")]) == 1


def test_output_is_identical_whatever_jobs_or_shards(tmp_path: Path) -> None:
    docs = {}
    for jobs in ("1", "2"):
        assert demo("run", "--output", str(tmp_path / jobs), "--cases", "9", "--jobs", jobs).returncode == 0
        docs[jobs] = ms.canonical(json.loads((tmp_path / jobs / "demo.tool-run.json").read_text()))["cases"]
    assert docs["1"] == docs["2"]
    merged = []
    for k in (1, 2, 3):
        assert demo("run", "--output", str(tmp_path / "s"), "--cases", "9", "--shard", f"{k}/3", "--jobs", "1").returncode == 0
        merged += json.loads((tmp_path / "s" / f"demo.shard-{k}-of-3.tool-run.json").read_text())["cases"]
    assert sorted(merged, key=lambda c: c["id"]) == docs["1"]


def test_sigterm_keeps_finished_cases_and_resume_runs_only_the_rest(tmp_path: Path) -> None:
    out, mark = tmp_path / "out", tmp_path / "ran.txt"
    env = {**os.environ, "PYTHONPATH": str(HERE), "KITDEMO_SLEEP": "0.4", "KITDEMO_MARK": str(mark)}
    p = subprocess.Popen([sys.executable, str(DEMO), "run", "--output", str(out), "--cases", "8", "--jobs", "1"],
                         env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not mark.exists() or len(mark.read_text().split()) < 3):
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    assert p.returncode == kinds.Exit.INTERRUPTED, err
    assert "Traceback" not in err and "--resume" in err
    assert not (out / "demo.tool-run.json").exists() and not list(out.glob(".*.tmp"))
    done_before = len(mark.read_text().split())
    r = subprocess.run([sys.executable, str(DEMO), "run", "--output", str(out), "--cases", "8", "--jobs", "1", "--resume"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    ran = mark.read_text().split()
    assert len(ran) - done_before <= 8 - (done_before - 1)  # at most the case in flight runs twice
    assert len(set(ran)) == 8 and len(json.loads((out / "demo.tool-run.json").read_text())["cases"]) == 8
    assert not (out / ".demo.progress.jsonl").exists()


def test_config_is_validated_by_its_schema_file(tmp_path: Path, monkeypatch) -> None:
    from mtap_schemas.cli import read_config

    monkeypatch.setenv("MTAP_SCHEMAS_DIR", str(tmp_path))  # installed or not, config schemas are found under it
    (tmp_path / "config").mkdir()
    schema = tmp_path / "config" / "kitdemo-test.v1.schema.json"
    schema.write_text(json.dumps({"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                                  "additionalProperties": False, "properties": {"batch": {"type": "integer"}}}))
    try:
        bad = tmp_path / "c.json"
        bad.write_text('{"batch": "x"}')
        with pytest.raises(ms.SchemaError, match=r"c.json: field batch: got str"):
            read_config(bad, "kitdemo-test")
        bad.write_bytes(b'{"batch": 1, "n": "\xff"}')
        with pytest.raises(ms.SchemaError, match="not UTF-8"):
            read_config(bad, "kitdemo-test")
        bad.write_text('{"batch": 1}')
        assert read_config(bad, "kitdemo-test") == {"batch": 1}
    finally:
        schema.unlink()


# --- the consumers' reader and paths ---------------------------------------------------------------

def test_reader_skips_bad_bytes_copies_and_repeated_ids(tmp_path: Path) -> None:
    doc = doc_with([ok_case(0), ok_case(1)])
    ms.write(tmp_path / "a" / "x.tool-run.json", doc, "tool-run", 2)
    ms.write(tmp_path / "b" / "copy.tool-run.json", doc, "tool-run", 2)
    dup = doc_with([ok_case(5), ok_case(5)])
    (tmp_path / "d.tool-run.json").write_text(ms.dumps(dup))
    (tmp_path / "bad.tool-run.json").write_bytes(b'{"schema": "tool-run", "x": "\xff\xfe"}')
    skipped: list = []
    documents = [(rel, doc) for rel, doc, _sha in consume.iter_tool_runs(tmp_path, skipped)]
    assert [p for p, _ in documents] == ["a/x.tool-run.json", "d.tool-run.json"]
    reasons = {s.path: s.reason for s in skipped}
    assert "not UTF-8" in reasons["bad.tool-run.json"]
    assert reasons["b/copy.tool-run.json"] == "identical to a/x.tool-run.json"
    assert "1 repeated case id" in reasons["d.tool-run.json"]
    assert len(dict(documents)["d.tool-run.json"]["cases"]) == 1


def _case_ids(rel: str, doc: dict, sha: str) -> tuple[str, list[str]]:  # a reduce for map_tool_runs (module level: it pickles)
    return sha, [c["id"] for c in doc["cases"]]


@pytest.mark.parametrize("jobs", [1, 2])
def test_map_tool_runs_gives_the_readers_results_in_order_whatever_the_workers(tmp_path: Path, jobs: int) -> None:
    """map_tool_runs (issue 32: a large folder read by worker processes) yields what iter_tool_runs yields, reduced,
    in path order, and skips the same files for the same reasons in the same order (copies, bad bytes, repeated ids)."""
    doc = doc_with([ok_case(0), ok_case(1)])
    ms.write(tmp_path / "a" / "x.tool-run.json", doc, "tool-run", 2)
    ms.write(tmp_path / "b" / "copy.tool-run.json", doc, "tool-run", 2)
    (tmp_path / "c.tool-run.json").write_bytes(b'{"schema": "tool-run", "x": "\xff\xfe"}')
    (tmp_path / "d.tool-run.json").write_text(ms.dumps(doc_with([ok_case(5), ok_case(5), ok_case(6)])))
    for i in range(4):
        ms.write(tmp_path / "e" / f"{i}.tool-run.json", doc_with([ok_case(10 + i)]), "tool-run", 2)
    want_skipped: list = []
    want = [(rel, sha, _case_ids(rel, d, sha)) for rel, d, sha in consume.iter_tool_runs(tmp_path, want_skipped)]
    skipped: list = []
    got = list(consume.map_tool_runs(tmp_path, skipped, _case_ids, jobs=jobs, min_bytes=0))
    assert got == want and skipped == want_skipped
    assert [rel for rel, _, _ in got] == ["a/x.tool-run.json", "d.tool-run.json"] + [f"e/{i}.tool-run.json" for i in range(4)]
    assert got[1][2][1] == ["c5", "c6"]


def test_reader_refuses_a_measurement_filed_under_another_gpu(tmp_path: Path) -> None:
    run = tr.ToolRun("groundtruth", "1", tr.Tool("groundtruth", "1", "measured", "torch 2.11"), argv=["run"],
                     environment={"python": "3", "platform": "linux", "cpu": "x", "gpu": {"name": "NVIDIA H200", "count": 2}})
    doc = run.document([tr.ok("m", metrics=[tr.metric("latency", 1.0, "ms", "measurement")],
                              workload="W6", hardware="HGX-H100x8")])
    ms.write(tmp_path / "gt.tool-run.json", doc, "tool-run", 2)
    skipped: list = []
    documents = list(consume.iter_tool_runs(tmp_path, skipped, hardware_gpus={"HGX-H100x8": "H100", "HGX-H200x8": "H200"}))
    assert not documents and "hardware mislabel" in skipped[0].reason and "H200" in skipped[0].reason


def test_confined_refuses_escapes_and_lzma_is_bounded(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    assert paths.confined(tmp_path / "in", "a/b.txt") == (tmp_path / "in" / "a" / "b.txt").resolve()
    for bad in ("../../etc/passwd", "/etc/passwd", ""):
        with pytest.raises(paths.PathError):
            paths.confined(tmp_path / "in", bad)
    (tmp_path / "in" / "link").symlink_to("/etc")
    with pytest.raises(paths.PathError, match="leaves"):
        paths.confined(tmp_path / "in", "link/passwd")
    bomb = tmp_path / "bomb.xz"
    bomb.write_bytes(lzma.compress(b"\0" * (8 << 20)))
    with pytest.raises(paths.PathError, match="more than"):
        paths.read_lzma_bounded(bomb, limit=1 << 20)
    assert len(paths.read_lzma_bounded(bomb, limit=8 << 20)) == 8 << 20


def test_independence_declares_a_known_class_and_what():
    from mtap_schemas import kinds, toolrun

    dep = toolrun.independence("shared-operators", "VIDUR's  profiled operators", ["vidur", "vidur"])
    assert dep == {"class": "shared-operators", "what": "VIDUR's profiled operators", "tools": ["vidur"]}
    case = toolrun.ok("c", workload="W5", hardware="H200-SXM-141GB", key="k",
                      metrics=[toolrun.metric("latency", 1.0, "ms", "measurement", timing="device")], independence=dep)
    assert case["independence"] == dep
    import pytest

    for bad in ("independent", "made-up"):
        with pytest.raises(ValueError):
            toolrun.independence(bad, "x")
    with pytest.raises(ValueError):
        toolrun.independence("tool-labels", "  ")
    # the schema's enum is the list minus `independent` (which is the absence of the field)
    import mtap_schemas as ms

    enum = ms.load_schema("tool-run", 2)["$defs"]["independence"]["properties"]["class"]["enum"]
    assert enum == sorted(c for c in kinds.REFERENCE_CLASSES if c != "independent")
    assert set(kinds.HEADLINE_CLASSES) <= set(kinds.REFERENCE_CLASSES)


def test_pair_class_reference_side_first_then_silicon_then_calibration():
    from mtap_schemas.kinds import pair_class

    shared = {"class": "shared-operators", "what": "replay of VIDUR's operators", "tools": ["vidur"]}
    calibrated = {"class": "calibrated-separately", "what": "VIDUR's H200 operator profile"}
    assert pair_class("vidur", calibrated, shared, False) == ("shared-operators", "replay of VIDUR's operators")
    assert pair_class("analytical", None, shared, False) == ("independent", "")  # another tool: independent of it
    assert pair_class("vidur", calibrated, None, False) == ("calibrated-separately", "VIDUR's H200 operator profile")
    assert pair_class("timeloop", None, None, True)[0] == "published-silicon"
    labels = {"class": "tool-labels", "what": "NeuSight's labels"}  # no tools named: any tool scored against it
    assert pair_class("analytical", None, labels, False)[0] == "tool-labels"
    assert pair_class("analytical", None, None, False) == ("independent", "")


def test_annotate_declares_after_the_run_once_and_refuses_a_second_class(tmp_path):
    import json

    import mtap_schemas as ms
    from mtap_schemas import annotate, toolrun

    run = toolrun.ToolRun("x-runner", "1", toolrun.Tool("x", "1", "native", "x==1"))
    cases = [toolrun.ok(f"c{i}", workload="W5", hardware=hw, key=f"llama2-7b.batch.p{i}x1.fp16",
                        metrics=[toolrun.metric("latency", 1.0, "ms", "prediction", timing="simulated")])
             for i, hw in enumerate(["H200-SXM-141GB", "H100-SXM5-80GB"])]
    path = tmp_path / "x.tool-run.json"
    ms.write(path, run.document(cases), "tool-run", 2)
    argv = [str(path), "--class", "calibrated-separately", "--what", "a profile", "--hardware", "H200-SXM-141GB", "--date", "2026-12-07"]
    assert annotate.main(argv) == 0
    doc = ms.read(path, "tool-run", 2)
    assert doc["cases"][0]["independence"] == {"class": "calibrated-separately", "what": "a profile"}
    assert doc["cases"][0]["parameters"]["independence_declared"].startswith("after the run, 2026-12-07")
    assert "independence" not in doc["cases"][1]  # another hardware id: untouched
    before = path.read_bytes()
    assert annotate.main(argv) == 0 and path.read_bytes() == before  # the same declaration twice changes nothing
    assert annotate.main([*argv[:4], "another profile", *argv[5:]]) == 2  # never silently replaced
    assert path.read_bytes() == before
    assert annotate.main([str(path), "--class", "independent", "--what", "x"]) == 2
    assert json.loads(before)["schema_version"] == "2.2.0"
