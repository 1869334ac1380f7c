"""Step classification, per-job seconds and spread statistics (pure functions, no API)."""

from __future__ import annotations

import json
import statistics
from datetime import UTC, datetime, timedelta

import pytest

from mtap_ci_timing.rules import (
    Rules,
    RulesError,
    load_rules,
    normalise_job_name,
    rules_from_dict,
)
from mtap_ci_timing.timing import job_timing, percentile, spread, tool_summaries

T = datetime(2026, 1, 1, tzinfo=UTC)


def steps(*spec):
    out, t = [], T
    for n, (name, secs) in enumerate(spec, 1):
        out.append({"number": n, "name": name, "conclusion": "success", "started_at": t, "completed_at": t + timedelta(seconds=secs)})
        t += timedelta(seconds=secs)
    return out, t


@pytest.mark.parametrize(
    "name, category",
    [
        ("Set up job", "setup"),
        ("Run actions/checkout@v4", "setup"),
        ("Set up Python 3.11", "setup"),
        ("Run actions/setup-python@v5", "setup"),
        ("Run pip install -e packages/astra-runner", "setup"),
        ("Install dependencies", "setup"),
        ("Run sudo apt-get install -y cmake", "setup"),
        ("Run actions/cache@v4", "setup"),
        ("Build docker image", "docker-build"),
        ("Run docker build -t timeloop .", "docker-build"),
        ("Run docker/build-push-action@v6", "docker-build"),
        ("Run nox -s astra", "run"),
        ("Run astra-runner run --output data/evaluation/astra-sim", "run"),
        ("Run timeloop in docker", "run"),
        ("Post Run actions/checkout@v4", "teardown"),
        ("Complete job", "teardown"),
        ("Run actions/upload-artifact@v4", "teardown"),
        ("Upload tool-run documents", "teardown"),
        # the steps of .github/workflows/evaluation.yml (checkout and setup-python above)
        ("install nox", "setup"),
        ("run astra", "run"),
        ("Run actions/download-artifact@v4", "setup"),
        ("aggregate this run's documents", "run"),
    ],
)
def test_default_step_categories(name, category):
    assert Rules().category_of(name) == category


@pytest.mark.parametrize(
    "job, tool",
    [
        ("astra", "astra-sim"),
        ("astra (docker)", "astra-sim"),
        ("tools / vidur", "vidur"),
        ("nnmeter", "nn-meter"),
        ("nn-meter", "nn-meter"),
        ("NeuSight", "neusight"),
        ("zigzag", "zigzag"),
        ("timeloop", "timeloop"),
        ("analytical", "analytical"),
        ("aggregate", "aggregate"),
        ("lint", None),
        ("build-astra", None),
    ],
)
def test_default_job_mapping(job, tool):
    assert Rules().tool_of(job) == tool


def test_most_specific_tool_pattern_wins_regardless_of_order():
    for tools in ({"astra-sim": ["^astra"], "astra-docker": [r"^astra \(docker\)"]}, {"astra-docker": [r"^astra \(docker\)"], "astra-sim": ["^astra"]}):
        rules = rules_from_dict({"tools": tools})
        assert rules.tool_of("astra (docker)") == "astra-docker" and rules.tool_of("astra") == "astra-sim"
    assert rules_from_dict({"tools": {"b": ["x"], "a": ["x"]}}).tool_of("x") == "a"


def test_normalise_job_name():
    assert normalise_job_name("CI / runners / Astra (ubuntu)") == "astra (ubuntu)"


def test_job_timing_setup_is_span_to_last_setup_step_before_first_run_step():
    s, end = steps(("Set up job", 2), ("Run actions/checkout@v4", 3), ("Build docker image", 50), ("Run astra", 40), ("Install extras", 5), ("Run report", 10), ("Complete job", 1))
    t = job_timing({"created_at": T - timedelta(seconds=4), "started_at": T, "completed_at": end, "steps": s}, Rules())
    assert t["setup_seconds"] == 55  # job start -> end of the Docker build, the install after "Run astra" is not time-to-first-result
    assert t["run_seconds"] == 50
    assert t["docker_build_seconds"] == 50
    assert t["teardown_seconds"] == 1
    assert t["total_seconds"] == 111
    assert t["queue_seconds"] == 4
    assert [x["category"] for x in t["steps"]] == ["setup", "setup", "docker-build", "run", "setup", "run", "teardown"]


def test_job_timing_without_run_steps_and_unstarted_steps():
    s, end = steps(("Set up job", 2), ("Install", 8))
    s.append({"number": 3, "name": "Run astra", "conclusion": "skipped", "started_at": None, "completed_at": None})
    t = job_timing({"started_at": T, "completed_at": end, "steps": s}, Rules())
    assert t["setup_seconds"] == 10 and t["run_seconds"] is None and t["docker_build_seconds"] is None
    assert t["queue_seconds"] is None
    assert t["steps"][2]["seconds"] is None


def test_percentile_matches_linear_interpolation():
    vals = [float(v) for v in range(1, 11)]
    assert percentile(vals, 0.1) == pytest.approx(1.9)
    assert percentile(vals, 0.9) == pytest.approx(9.1)
    assert percentile([5.0], 0.9) == 5.0


def test_spread():
    s = spread([44, None, 40, 42, 41, 43])
    assert s == {"n": 5, "median": 42, "p10": 40.4, "p90": 43.6, "stdev": round(statistics.stdev([40, 41, 42, 43, 44]), 3), "min": 40, "max": 44}
    assert spread([7.5])["stdev"] is None and spread([7.5])["median"] == 7.5
    assert spread([None])["n"] == 0 and spread([])["median"] is None


def test_tool_summaries_counts_every_job_and_times_only_successes():
    def j(name, tool, concl, setup, docker=None):
        return {"name": name, "tool": tool, "conclusion": concl, "setup_seconds": setup, "run_seconds": 1.0, "docker_build_seconds": docker, "total_seconds": setup + 1}

    runs = [
        {"jobs": [j("astra", "astra-sim", "success", 10.0), j("lint", None, "success", 1.0)]},
        {"jobs": [j("astra", "astra-sim", "failure", 99.0), j("astra (docker)", "astra-sim", "success", 30.0, docker=20.0)]},
        {"jobs": [j("astra", "astra-sim", "skipped", 0.0)]},
    ]
    tools, unmapped = tool_summaries(runs)
    assert unmapped == [{"name": "lint", "count": 1}]
    (row,) = tools
    assert row["jobs"] == 4 and row["conclusions"] == {"failure": 1, "skipped": 1, "success": 2}
    assert row["success_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert row["setup_seconds"]["n"] == 2 and row["setup_seconds"]["max"] == 30.0  # the failed 99 s is not a setup time
    assert row["docker"] == {"jobs": 1, "success": 1} and row["native"] == {"jobs": 2, "success": 1}
    assert row["job_names"] == ["astra", "astra (docker)"]


def test_config_overrides_key_by_key(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"tools": {"astra-sim": ["^sim-astra$"]}, "setup_steps": ["^prepare"]}))
    rules = load_rules(path)
    assert rules.tool_of("sim-astra") == "astra-sim" and rules.tool_of("astra") is None
    assert rules.category_of("prepare env") == "setup" and rules.category_of("Install deps") == "run"
    assert rules.teardown_steps == Rules().teardown_steps  # untouched keys keep their defaults


@pytest.mark.parametrize(
    "data, fragment",
    [
        ([], "expected a JSON object"),
        ({"tool": {}}, "field tool: unknown key"),
        ({"tools": {"Astra Sim": ["x"]}}, "field tools.Astra Sim: tool id must be a lowercase slug"),
        ({"setup_steps": "install"}, "field setup_steps: expected a list"),
        ({"docker_steps": ["(unclosed"]}, "field docker_steps: '(unclosed' is not a valid regular expression"),
    ],
)
def test_bad_config_is_one_line(data, fragment):
    with pytest.raises(RulesError) as err:
        rules_from_dict(data, "rules.json")
    assert fragment in str(err.value) and "\n" not in str(err.value) and str(err.value).startswith("rules.json: ")
