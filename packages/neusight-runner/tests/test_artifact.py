import json
import shutil
import statistics

import pytest

from mtap_neusight_runner import artifact
from mtap_neusight_runner.mapping import parse_tag


def test_pairing_counts_what_cannot_be_paired(mini):
    pairing = artifact.pair(mini)
    got = {(p.device, p.method, p.tag.text) for p in pairing.pairs}
    assert got == {
        ("NVIDIA_H100_80GB_HBM3", "neusight", "bert_large-inf-512-8"),
        ("NVIDIA_H100_80GB_HBM3", "neusight", "gpt2_large-inf-1024-4"),
        ("NVIDIA_H100_80GB_HBM3", "neusight", "switchxl4-inf-512-1"),
        ("NVIDIA_H100_80GB_HBM3", "roofline", "bert_large-inf-512-8"),
        ("NVIDIA_L4", "neusight", "bert_large-inf-512-8"),
    }
    assert pairing.skipped["prediction without label"] == ["NVIDIA_H100_80GB_HBM3/neusight/gpt3_27-train-2048-2"]
    assert pairing.skipped["label without roofline prediction"] == [
        "NVIDIA_H100_80GB_HBM3/gpt2_large-inf-1024-4",
        "NVIDIA_H100_80GB_HBM3/switchxl4-inf-512-1",
    ]


def test_missing_label_is_a_counted_skip(mini):
    (mini / "label/NVIDIA_H100_80GB_HBM3/bert_large-inf-512-8.json").unlink()
    pairing = artifact.pair(mini)
    assert "NVIDIA_H100_80GB_HBM3/neusight/bert_large-inf-512-8" in pairing.skipped["prediction without label"]
    assert "NVIDIA_H100_80GB_HBM3/roofline/bert_large-inf-512-8" in pairing.skipped["prediction without label"]
    assert not any(p.tag.text == "bert_large-inf-512-8" and p.device.endswith("HBM3") for p in pairing.pairs)


def test_missing_prediction_is_a_counted_skip(mini):
    (mini / "results/prediction/NVIDIA_L4/neusight/bert_large-inf-512-8.json").unlink()
    pairing = artifact.pair(mini)
    assert pairing.skipped["label without neusight prediction"] == ["NVIDIA_L4/bert_large-inf-512-8"]


def test_device_without_any_prediction_is_counted(mini):
    shutil.rmtree(mini / "results/prediction/NVIDIA_L4")
    assert artifact.pair(mini).skipped["label without any prediction"] == ["NVIDIA_L4/bert_large-inf-512-8"]


def test_unknown_device_is_a_one_line_error(mini):
    (mini / "label/Imaginary_GPU").mkdir()
    with pytest.raises(artifact.ArtifactError) as err:
        artifact.pair(mini)
    msg = str(err.value)
    assert "\n" not in msg and "Imaginary_GPU" in msg and "data/device_configs/Imaginary_GPU.json" in msg


def test_unknown_method_folder_is_a_one_line_error(mini):
    (mini / "results/prediction/NVIDIA_L4/oracle").mkdir()
    with pytest.raises(artifact.ArtifactError, match="unknown method folder"):
        artifact.pair(mini)


def _cases(root):
    units, skipped = artifact.units(root, artifact.pair(root))
    return [artifact.case_for(u) for u in units], skipped


def _case(cases, case_id):
    return next(c for c in cases if c["id"] == case_id)


L4 = "artifact:NVIDIA_L4:neusight:bert_large-inf-512-8"


@pytest.mark.parametrize(
    "body, kind, expected",
    [
        ({"num_layer": 24}, "parse-failed", "bert_large-inf-512-8.json: field e2e_latency: missing"),
        ('{"e2e_latency": "fast"}', "parse-failed", "field e2e_latency: got 'fast', expected a number"),
        (b'{"e2e_latency": 1.0, "x": "\xff"}', "parse-failed", "not UTF-8"),
        ('{"e2e_latency": 1e999}', "invalid-value", "label/NVIDIA_L4/bert_large-inf-512-8.json: metric latency: got inf"),
        ('{"e2e_latency": -3.5}', "invalid-value", "cannot be negative"),
        ('{"e2e_latency": 0}', "invalid-value", "field e2e_latency (the APE's divisor): divisor is 0.0"),
    ],
)
def test_a_bad_label_is_a_failed_case_naming_file_and_field(mini, body, kind, expected):
    """issue 15: a degenerate number gives a failed case, never a crash or an aborted run."""
    path = mini / "label/NVIDIA_L4/bert_large-inf-512-8.json"
    if isinstance(body, bytes):
        path.write_bytes(body)
    else:
        path.write_text(body if isinstance(body, str) else json.dumps(body))
    cases, _ = _cases(mini)
    bad = _case(cases, L4)
    assert (bad["status"], bad["error"]["kind"]) == ("failed", kind) and expected in bad["error"]["message"], bad["error"]
    assert bad["metrics"] == [] and bad["artifacts"]  # the files it came from are still named
    assert [c["status"] for c in cases if c["id"] != L4] == ["ok"] * 3  # the other pairs are unaffected
    assert "NVIDIA_L4" not in {r["device"] for r in artifact.mean_ape_table(artifact.pair(mini), mini)}


def test_a_bad_prediction_value_is_invalid_value(mini):
    (mini / "results/prediction/NVIDIA_L4/neusight/bert_large-inf-512-8.json").write_text('{"e2e_latency": NaN}')
    bad = _case(_cases(mini)[0], L4)
    assert bad["error"]["kind"] == "invalid-value"
    assert "results/prediction/NVIDIA_L4/neusight/bert_large-inf-512-8.json: metric latency: got nan" in bad["error"]["message"]
    rows = artifact.mean_ape_table(artifact.pair(mini), mini)
    assert "NVIDIA_L4" not in {r["device"] for r in rows}  # no number from a pair without a usable latency


def test_not_an_artifact_folder(tmp_path):
    with pytest.raises(artifact.ArtifactError, match="no label/ folder"):
        artifact.pair(tmp_path)


def test_cases_from_mini(mini):
    cases, skipped = _cases(mini)
    assert [c["id"] for c in cases] == [
        "artifact:H100-SXM5-80GB:neusight:bert_large-inf-512-8",
        "artifact:H100-SXM5-80GB:neusight:gpt2_large-inf-1024-4",
        "artifact:H100-SXM5-80GB:roofline:bert_large-inf-512-8",
        "artifact:NVIDIA_L4:neusight:bert_large-inf-512-8",
    ]
    assert list(skipped.values()) == [["NVIDIA_H100_80GB_HBM3/neusight/switchxl4-inf-512-1"]]
    by_id = {c["id"]: c for c in cases}
    bert = by_id["artifact:H100-SXM5-80GB:neusight:bert_large-inf-512-8"]
    assert (bert["workload"], bert["key"]) == ("W4", "bert-large.model.b8.s512.fp32.eager-attn")
    assert bert["parameters"]["workload_fit"] == "family" and bert["parameters"]["tf32"] is False
    # NeuSight traces and measures with attn_implementation="eager": every case says so, its label too
    assert all(c["parameters"]["attention"] == "eager" and c["key"].endswith(".eager-attn") for c in cases)
    kinds = {m["name"] + "/" + m["kind"]: m for m in bert["metrics"]}
    assert kinds["latency/measurement"]["source"] == "label/NVIDIA_H100_80GB_HBM3/bert_large-inf-512-8.json"
    assert kinds["latency/prediction"]["timing"] == "reported"
    assert {a["path"] for a in bert["artifacts"]} >= {
        "label/NVIDIA_H100_80GB_HBM3/bert_large-inf-512-8.json",
        "results/prediction/NVIDIA_H100_80GB_HBM3/neusight/bert_large-inf-512-8.json",
        "data/device_configs/NVIDIA_H100_80GB_HBM3.json",
    }
    # A baseline is never recorded as NeuSight's own latency prediction.
    roof = by_id["artifact:H100-SXM5-80GB:roofline:bert_large-inf-512-8"]
    assert [m["name"] for m in roof["metrics"] if m["kind"] == "prediction"] == ["baseline_latency"]
    l4 = by_id["artifact:NVIDIA_L4:neusight:bert_large-inf-512-8"]
    assert l4["hardware"] == "NVIDIA_L4" and l4["parameters"]["hardware_in_catalog"] is False


def _ape(cases, case_id, name="latency_ape"):
    case = next(c for c in cases if c["id"] == case_id)
    return next(m["value"] for m in case["metrics"] if m["name"] == name)


def test_ape_against_hand_checked_pairs(shared_neusight):
    cases, _ = _cases(shared_neusight)
    # Hand-checked from the label and prediction files:
    # H100 bert_large inf 512/8: NeuSight 86.17573908843104 ms vs label 69.84225921630859 ms
    assert _ape(cases, "artifact:H100-SXM5-80GB:neusight:bert_large-inf-512-8") == pytest.approx(
        (86.17573908843104 - 69.84225921630859) / 69.84225921630859 * 100, rel=1e-12
    )
    assert _ape(cases, "artifact:H100-SXM5-80GB:neusight:bert_large-inf-512-8") == pytest.approx(23.386, abs=1e-3)
    # H100 bert_large inf 512/8 roofline: 48.067689805644946 vs 69.84225921630859 -> 31.18 %
    assert _ape(cases, "artifact:H100-SXM5-80GB:roofline:bert_large-inf-512-8", "baseline_latency_ape") == pytest.approx(31.177, abs=1e-3)
    # V100 gpt2_large inf 1024/4: 756.2678728187004 vs 728.7697509765625 -> 3.773 %
    assert _ape(cases, "artifact:Tesla_V100-PCIE-32GB:neusight:gpt2_large-inf-1024-4") == pytest.approx(3.773, abs=1e-3)


def test_h100_means_reproduce_the_paper(shared_neusight):
    pairing = artifact.pair(shared_neusight, devices=["NVIDIA_H100_80GB_HBM3"])
    rows = {r["method"]: r for r in artifact.mean_ape_table(pairing, shared_neusight)}
    assert (rows["neusight"]["pairs"], round(rows["neusight"]["mean_ape"], 1)) == (34, 7.6)
    assert (rows["roofline"]["pairs"], round(rows["roofline"]["mean_ape"], 0)) == (22, 34)
    assert (rows["micro"]["pairs"], round(rows["micro"]["mean_ape"], 0)) == (22, 20)
    for r in rows.values():
        assert r["authors_pairs"] == r["pairs"] and r["max_abs_diff"] < 1e-9


def test_recomputed_ape_equals_authors_summary_everywhere(shared_neusight):
    cases, _ = _cases(shared_neusight)
    diffs = []
    for c in cases:
        m = {x["name"]: x["value"] for x in c["metrics"] if x["kind"] == "derived"}
        ours = [v for k, v in m.items() if k.endswith("_ape")]
        theirs = [v for k, v in m.items() if k.endswith("_ape_reported")]
        if theirs:
            diffs.append(abs(ours[0] - theirs[0]))
    assert len(diffs) > 300 and max(diffs) < 1e-9
    assert statistics.mean(_ape(cases, c["id"]) for c in cases if c["id"].startswith("artifact:H100-SXM5-80GB:neusight:")) < 10
    assert parse_tag("gpt2_large-train-1024-4-pp4_4")  # a tag the artifact has without a label


TABLE_MODELS = {
    "BERT-Large": ("bert_large", 512),
    "GPT2-Large": ("gpt2_large", 1024),
    "GPT3-XL": ("gpt3_xl", 2048),
    "OPT-1.3B": ("opt_13", 2048),
    "GPT3-2.7B": ("gpt3_27", 2048),
    "SwitchTrans": ("switchxl4", 512),
}
TABLE_METHODS = {"Roofline": "roofline", "Habitat": "habitat", "Li et al.": "micro", "NeuSight": "neusight"}


@pytest.mark.parametrize(("table", "mode"), [("nvidia_inf.csv", "inf"), ("nvidia_train.csv", "train")])
def test_paper_tables_reproduce_to_a_tenth_of_a_point(shared_neusight, table, mode):
    """Every figure of the authors' per-GPU tables (APE, one decimal) equals our recomputation."""
    import csv

    apes = {(p.device, p.method, p.tag.text): p.ape for p in artifact.pair(shared_neusight).pairs}
    compared = 0
    for block in (shared_neusight / "summary" / table).read_text().split("\n\n"):
        rows = list(csv.reader(block.strip().splitlines()))
        if len(rows) < 4:
            continue
        device, header, batches = rows[0][0], rows[1], rows[2]
        models, current = [], None
        for h in header[1:]:
            current = h or current
            models.append(current)
        for row in rows[3:]:
            for i, text in enumerate(row[1:]):
                if not text:
                    continue
                model, seq = TABLE_MODELS[models[i]]
                ours = apes[(device, TABLE_METHODS[row[0]], f"{model}-{mode}-{seq}-{batches[i + 1]}")]
                assert round(ours, 1) == pytest.approx(float(text), abs=0.051), (device, row[0], models[i], batches[i + 1])
                compared += 1
    assert compared == {"inf": 216, "train": 104}[mode]


def test_committed_live_roofline_equals_published(shared_neusight, data_dir):
    """data/evaluation/neusight/neusight-live-own.tool-run.json: NeuSight's roofline, run live from
    its code, against the authors' published roofline predictions for the same configurations."""
    import mtap_schemas as ms

    path = data_dir / "evaluation/neusight/neusight-live-own.tool-run.json"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    doc = ms.read_tool_run(path)
    compared = 0
    for case in doc["cases"]:
        if case["status"] != "ok":
            continue
        p = case["parameters"]
        published = json.loads(
            (shared_neusight / "results/prediction" / p["neusight_device"] / p["method"] / f"{p['neusight_tag']}.json").read_text()
        )
        assert case["metrics"][0]["value"] == pytest.approx(published["e2e_latency"], rel=1e-6)
        compared += 1
    assert compared == 7
