"""`train`, `--weights` and `compare`: trained NeuSight weights made here, sha256-checked, scored.

CPU only. Tests that need a NeuSight checkout and its Python (MTAP_NEUSIGHT_PATH,
MTAP_NEUSIGHT_PYTHON) skip without them; CI has neither.
"""

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import mtap_schemas as ms
import mtap_schemas.toolrun as tr
from mtap_neusight_runner import live, train, train_shim, weights
from mtap_neusight_runner.cli import main
from mtap_neusight_runner.compare import compare, markdown
from mtap_neusight_runner.mapping import parse_tag

HERE = Path(__file__).resolve().parent
MINI = HERE / "fixtures" / "artifact-mini"
REPO = HERE.parents[2]
COMMITTED = REPO / "data" / "evaluation" / "neusight" / "neusight-training.json"
H100 = "NVIDIA_H100_80GB_HBM3"


def fake_weights(root: Path) -> Path:
    """A weights folder shaped like `train` writes it (content is not NeuSight's: only hashes are checked here)."""
    for i, rel in enumerate(weights.required()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes([i]) * 2048)
    weights.write_manifest(root)
    return root


def fake_checkout(root: Path) -> Path:
    (root / "neusight" / "Prediction").mkdir(parents=True)
    (root / "neusight" / "Prediction" / "predictor.py").write_text("")
    for op in weights.OPS:
        d = root / "scripts" / "asplos" / "data" / "predictor" / "MLP_WAVE" / op
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps({"architecture": "MLP_WAVE_MM"}))
    data = root / "scripts" / "asplos" / "data"
    (data / "dataset" / "train").mkdir(parents=True)
    (data / "device_configs").mkdir()
    (data / "device_configs" / f"{H100}.json").write_text(json.dumps({"Device": "NVIDIA H100 80GB HBM3"}))
    (data / "DLmodel_configs").mkdir()
    (data / "DLmodel_configs" / "bert_large.json").write_text("{}")
    return root


class Marker:
    """Unpickling this creates a file: proves whether a pickle was ever loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def own_case(device: str = H100, tag: str = "bert_large-inf-512-8") -> live.OwnCase:
    return live.OwnCase(device, "neusight", parse_tag(tag))


def test_manifest_verifies_and_names_every_file(tmp_path):
    root = fake_weights(tmp_path / "w")
    got = weights.verify(root)
    assert set(got) == set(weights.required()) and len(got) == 13
    assert got["MLP_WAVE/BMM/model.pth"] == weights.sha256(root / "MLP_WAVE/BMM/model.pth")


@pytest.mark.parametrize("rel", ["MLP_WAVE/LN/model.pth", "MLP_WAVE/BMM/config.json", "dataset/train/bmm.csv"])
def test_a_changed_file_is_refused(tmp_path, rel):
    root = fake_weights(tmp_path / "w")
    with open(root / rel, "ab") as f:
        f.write(b"!")
    with pytest.raises(weights.WeightsError) as exc:
        weights.verify(root)
    assert exc.value.kind == "predictor-hash-mismatch" and rel in str(exc.value)


def test_missing_manifest_or_file_is_weights_missing(tmp_path):
    root = fake_weights(tmp_path / "w")
    (root / "MLP_WAVE" / "VEC" / "model.pth").unlink()
    with pytest.raises(weights.WeightsError) as exc:
        weights.verify(root)
    assert exc.value.kind == "weights-missing"
    (root / weights.MANIFEST).unlink()
    with pytest.raises(weights.WeightsError) as exc:
        weights.verify(root)
    assert exc.value.kind == "weights-missing" and "neusight-runner train" in str(exc.value)


def test_a_file_absent_from_the_manifest_is_refused(tmp_path):
    root = fake_weights(tmp_path / "w")
    doc = json.loads((root / weights.MANIFEST).read_text())
    del doc["files"]["MLP_WAVE/SOFTMAX/model.pth"]
    (root / weights.MANIFEST).write_text(json.dumps(doc))
    with pytest.raises(weights.WeightsError) as exc:
        weights.verify(root)
    assert exc.value.kind == "predictor-hash-mismatch"


def test_tampered_pickle_is_refused_before_any_unpickling(tmp_path):
    root = fake_weights(tmp_path / "w")
    marker = tmp_path / "unpickled"
    (root / "MLP_WAVE" / "BMM" / "model.pth").write_bytes(pickle.dumps(Marker(str(marker))))
    co = fake_checkout(tmp_path / "co")
    # a Python that does not exist: had the runner started NeuSight, the case would be binary-missing
    u = live.Unit(own_case(), co, None, "/nonexistent/python", 10.0, None, weights=root)
    out = live.run_unit(u)
    case = out["case"]
    assert case["status"] == "unavailable" and case["error"]["kind"] == "predictor-hash-mismatch"
    assert "never unpickled" in case["error"]["message"] and out["env"] == {}
    assert not marker.exists()
    pickle.loads((root / "MLP_WAVE" / "BMM" / "model.pth").read_bytes())  # the file is live: loading it would mark
    assert marker.exists()


def test_weights_missing_refusal_stays_without_weights(tmp_path):
    co = fake_checkout(tmp_path / "co")
    out = live.run_unit(live.Unit(own_case(), co, None, "/nonexistent/python", 10.0, None))
    assert out["case"]["error"]["kind"] == "weights-missing"
    assert "MLP_WAVE/BMM/model.pth" in out["case"]["error"]["message"]


def test_verified_weights_replace_the_checkout_files(tmp_path):
    root = fake_weights(tmp_path / "w")
    co = fake_checkout(tmp_path / "co")
    out = live.run_unit(live.Unit(own_case(), co, None, "/nonexistent/python", 10.0, None, weights=root))
    # the checkout has no model.pth: with --weights the case gets past that refusal to start NeuSight
    assert out["case"]["error"]["kind"] == "binary-missing"
    job = live.job_for(own_case(), co, Path("dev.json"), Path("m.json"), tmp_path / "r", root)
    assert job["predictor_path"] == str(root / "MLP_WAVE") and job["tile_dataset_dir"] == str(root / "dataset" / "train")
    rf = live.OwnCase(H100, "roofline", parse_tag("bert_large-inf-512-8"))
    assert live.job_for(rf, co, Path("d"), Path("m"), tmp_path / "r", root)["tile_dataset_dir"] == ""


def test_trace_cache_copies_graphs_both_ways(tmp_path):
    job = {"model_config_path": "x/bert_large.json", "execution_type": "inf", "sequence_length": 512, "batch_size": 8, "options": ""}
    results, cache = tmp_path / "results", tmp_path / "cache"
    (results / "opgraph").mkdir(parents=True)
    (results / "opgraph" / "bert_large-inf-512-8.csv").write_text("a")
    live._traces(cache, results, job, into_cache=True)
    assert (cache / "opgraph" / "bert_large-inf-512-8.csv").read_text() == "a"
    fresh = tmp_path / "fresh"
    live._traces(cache, fresh, job, into_cache=False)
    assert (fresh / "opgraph" / "bert_large-inf-512-8.csv").read_text() == "a"
    assert not (fresh / "opgraph_raw").exists()


def test_scalar_recorder_and_cost_split():
    train_shim.RECORDED.clear()
    w = train_shim.ScalarRecorder("logdir")
    w.add_scalar("train_loss", 0.5, 0)
    w.add_scalar("validation avg_err", 0.25, 0)
    w.close()
    assert train_shim.RECORDED == [("train_loss", 0.5, 0), ("validation avg_err", 0.25, 0)]
    groups = train._groups(list(weights.OPS), {op: 100 for op in weights.OPS}, 3)
    assert sorted(sum(groups, [])) == sorted(weights.OPS) and groups[0] == ["BMM"]
    assert train._groups(["LN"], {"LN": 5}, 4) == [["LN"]]


def test_train_cli_refuses_bad_arguments(tmp_path):
    r = CliRunner().invoke(main, ["train", "--tool-path", str(tmp_path), "--weights-out", str(tmp_path / "w")])
    assert r.exit_code == 2 and "not a NeuSight checkout" in r.output
    r = CliRunner().invoke(main, ["train", "--tool-path", str(tmp_path), "--weights-out", str(tmp_path / "w"), "--epochs-for", "CONV=3"])
    assert r.exit_code == 2 and "--epochs-for" in r.output


def test_run_refuses_weights_outside_live_mode(tmp_path):
    r = CliRunner().invoke(main, ["run", "--artifact-dir", str(MINI), "--weights", str(tmp_path), "--output", str(tmp_path)])
    assert r.exit_code == 2 and "--weights" in r.output


def _doc(cases):
    return tr.ToolRun("neusight-runner", "1", tr.Tool("neusight-trained", None, "native", "x"), argv=[]).document(cases)


def test_compare_scores_against_labels_next_to_published(tmp_path):
    label = json.loads((MINI / "label" / H100 / "bert_large-inf-512-8.json").read_text())["e2e_latency"]
    published = json.loads((MINI / "results" / "prediction" / H100 / "neusight" / "bert_large-inf-512-8.json").read_text())["e2e_latency"]
    ours = label * 1.10
    c = live.result_case(own_case(), ours, "x.json", [])
    nolabel = live.result_case(own_case(tag="gpt3_27-inf-2048-8"), 5.0, "y.json", [])
    result = compare(_doc([c, nolabel]), MINI)
    row = next(r for r in result["rows"] if r["tag"] == "bert_large-inf-512-8")
    assert row["ours_ape"] == pytest.approx(10.0)
    assert row["published_ape"] == pytest.approx(abs(published - label) / label * 100)
    assert row["ours_vs_published"] == pytest.approx((ours - published) / published * 100)
    g = result["per_gpu"][0]
    assert g["predicted"] == 2 and g["labelled"] == 1 and g["ours_mean_ape"] == pytest.approx(10.0)
    assert "| NVIDIA_H100_80GB_HBM3 | no (held out) | 2 | 1 | 10.0 % |" in markdown(result)


@pytest.mark.skipif(not COMMITTED.is_file(), reason="no committed training document")
def test_committed_training_document():
    doc = ms.read(COMMITTED, "training", 1)
    names = {p["name"] for p in doc["predictors"]}
    assert names == set(weights.OPS)
    for p in doc["predictors"]:
        assert len(p["curve"]) == p["epochs_used"]
        finite = [e for e in p["curve"] if e["validation_mean_rel_error"] is not None]
        best = min(finite, key=lambda e: e["validation_mean_rel_error"])
        assert best["epoch"] == p["best_epoch"]
        nan = [e["epoch"] for e in p["curve"] if e["train_loss"] is None]
        assert p["diverged_at_epoch"] == (nan[0] if nan else None)
        if nan:
            assert any(p["name"] in n and "NaN" in n for n in doc["notes"])
        if p["epochs_used"] < p["epochs_configured"]:
            assert p["name"] in doc["notes"][0] and "FEWER epochs" in doc["notes"][0]
    assert doc["totals"]["cpu_s"] == pytest.approx(sum(p["cpu_s"] for p in doc["predictors"]), abs=0.01)
    assert doc["determinism"] is not None and len(doc["determinism"]["runs"]) == 2
    assert doc["determinism"]["bit_identical"] == (len(set(doc["determinism"]["runs"])) == 1)


NEUSIGHT = os.environ.get("MTAP_NEUSIGHT_PATH")
NEUSIGHT_PY = os.environ.get("MTAP_NEUSIGHT_PYTHON")


@pytest.mark.skipif(not (NEUSIGHT and NEUSIGHT_PY), reason="needs MTAP_NEUSIGHT_PATH and MTAP_NEUSIGHT_PYTHON")
def test_real_training_one_epoch_is_deterministic(tmp_path):
    doc = train.train(Path(NEUSIGHT), NEUSIGHT_PY, tmp_path / "w", {"LN": 1}, determinism=("LN", 1), jobs=1)
    ms.validate(doc, "training", 1)
    (p,) = doc["predictors"]
    assert p["name"] == "LN" and p["epochs_used"] == 1 and len(p["curve"]) == 1 and p["cpu_s"] > 0
    assert doc["determinism"]["bit_identical"] is True and doc["determinism"]["max_abs_param_diff"] == 0.0
    assert (tmp_path / "w" / "dataset" / "train" / "bmm.csv").stat().st_size > 1 << 20
    shutil.rmtree(tmp_path / "w")


def _train_line(name: str, ok: bool = True) -> str:
    return "MTAP-TRAIN " + json.dumps({"name": name, "ok": ok, "error": None if ok else {"message": "boom"}})


def test_a_predictor_without_a_result_is_named_with_its_reason_and_the_others_kept():
    outputs = [_train_line("VEC"), "", "MTAP-ENV {}\n", _train_line("LN", ok=False)]
    missing = train._not_trained(["BMM", "LINEAR", "VEC", "SOFTMAX", "LN"], outputs,
                                 {"BMM": "NeuSight training (train-0) failed: python ran past 480 s; its process group was killed"})
    assert set(missing) == {"BMM", "LINEAR", "SOFTMAX", "LN"}
    assert "480 s" in missing["BMM"] and "no result line" in missing["SOFTMAX"] and missing["LN"] == "boom"
    with pytest.raises(train.TrainError, match="no predictor was trained"):
        train._not_trained(["BMM"], [""], {})


def test_train_cli_predictors_option():
    from mtap_neusight_runner.cli import _only

    eps = {op: 100 for op in weights.OPS}
    assert _only(eps, None) == eps
    assert _only(eps, "vec, LN") == {"VEC": 100, "LN": 100}
    for bad in ("CONV", ",", ""):
        with pytest.raises(Exception, match="--predictors"):
            _only(eps, bad)


GPU_RUNS = REPO / "data" / "evaluation" / "neusight" / "training-gpu"


@pytest.mark.skipif(not GPU_RUNS.is_dir(), reason="no committed GPU training documents")
def test_committed_gpu_trainings_agree_bit_for_bit_where_both_trained():
    """Two full trainings at the authors' recipe on two H100 machines (issue 27): the predictors both
    trained have the same weights' sha256; the first run's missing BMM is named in its notes."""
    runs = [ms.read(GPU_RUNS / f"h100-run{k}.training.json", "training", 1) for k in (1, 2)]
    sha = [{p["name"]: p["weights"]["sha256"] for p in d["predictors"]} for d in runs]
    both = sorted(set(sha[0]) & set(sha[1]))
    assert both == ["LN", "SOFTMAX", "VEC"] and all(sha[0][n] == sha[1][n] for n in both)
    assert all(p["epochs_used"] == p["epochs_configured"] == 100 for d in runs for p in d["predictors"])
    assert any(n.startswith("BMM: NOT trained") for n in runs[0]["notes"])
    linear = next(p for p in runs[0]["predictors"] if p["name"] == "LINEAR")
    assert linear["diverged_at_epoch"] == 3 and linear["best_epoch"] == 0
