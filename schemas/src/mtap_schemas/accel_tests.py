"""The tests both accelerator-model runners (timeloop-runner, zigzag-runner) must pass, written
once: their plan (:mod:`mtap_schemas.accel` through each runner's ``cases`` verb), its config and
layer-table errors, shards and limits. Each runner's tests subclass :class:`PlanTests` with its
adapter (CLI module, catalog, data it needs) and keep only what is its tool's own::

    class TestPlan(PlanTests):
        module = "mtap_timeloop_runner.cli"
        catalog = CATALOG
        defaults = DEFAULT_ARCHITECTURES
        data_parts = ("workloads", "hardware", "timeloop")
        fixtures = Path(__file__).parent / "fixtures"

The tests run the runner's real CLI, so a runner whose adapter drifts from the spine fails here.
They need pytest and the repository's ``data/`` (the runner's conftest gives ``data_dir``);
nothing outside tests imports this module.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner, Result

from .accel import Catalog
from .layers import LayerTableError, load_table


def config_file(tmp_path: Path, cfg: dict | str, name: str = "sel.json") -> Path:
    """``cfg`` (a dict as JSON, or the text itself) written to ``tmp_path/name``."""
    p = tmp_path / name
    p.write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
    return p


def invoke(module: str, *args: Any, **kw: Any) -> Result:
    """The runner's click group (``module.main``) run in-process on ``args``."""
    main = importlib.import_module(module).main
    return CliRunner().invoke(main, [str(a) for a in args], **kw)


def console(module: str, *args: Any, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The runner as a real process (``python -m module``, what the console script runs)."""
    full = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=timeout)


#: Edits of ResNet-50's layer table and the field each error must name.
BAD_TABLES = [
    (lambda doc: doc.update(schema_version="2.0.0"), "field schema_version"),
    (lambda doc: doc["layers"][0]["shape"].update(N="tokens"), "field layers[0].shape.N: 'tokens'"),
    (lambda doc: doc["layers"][0]["shape"].update(N="seq_len"), "field layers[0].shape.N: names parameter 'seq_len'"),
    (lambda doc: doc["layers"].append(doc["layers"][0]), "duplicate layer name(s) ['conv1']"),
    (lambda doc: doc.update(model="resnet18"), "field model: got 'resnet18'"),
]
#: Configs the runner must refuse in one line, and what the line names (None: the architectures field).
BAD_CONFIGS = [
    ({"<archs>": ["gpu"]}, None),
    ({"layers": ["conv9"]}, "field layers: unknown layer name(s) ['conv9']"),
    ({"batch": 0}, "batch"),
    ({"colour": 1}, "colour"),
    ("{", "not valid JSON"),
    ("[1, 2", "not valid JSON"),
]


class PlanTests:
    """The plan's contract, run against one runner; a subclass named ``Test...`` sets the adapter."""

    module: ClassVar[str]  # the runner's CLI module (has ``main``)
    catalog: ClassVar[Catalog]  # its architectures
    defaults: ClassVar[Sequence[str]]  # the architectures a config that names none runs
    data_parts: ClassVar[Sequence[str]] = ("workloads", "hardware")  # what of data/ its `cases` reads
    fixtures: ClassVar[Path]  # its tests/fixtures/ (the plans of the hard-coded tables)
    #: narrows the plan to what the fixtures hold, and the parameters added after they were made
    fixture_config: ClassVar[dict] = {}
    fixture_added: ClassVar[frozenset[str]] = frozenset()

    def invoke(self, *args: Any) -> Result:
        return invoke(self.module, *args)

    def plan(self, *args: Any) -> list[dict]:
        r = self.invoke("cases", *args)
        assert r.exit_code == 0, r.output
        return [json.loads(line) for line in r.output.splitlines()]

    def copy_data(self, tmp_path: Path, data_dir: Path) -> Path:
        data = tmp_path / "data"
        for part in self.data_parts:
            shutil.copytree(data_dir / part, data / part)
        return data

    @pytest.mark.parametrize("config, fixture", [
        (None, "cases-before-layer-tables.jsonl"),
        ({"batch": 2, "seq_len": 64}, "cases-before-layer-tables.b2-s64.jsonl"),
    ])
    def test_plan_is_identical_to_the_hard_coded_tables(self, tmp_path, data_dir, config, fixture):
        cfg = config_file(tmp_path, {**self.fixture_config, **(config or {})}, "c.json")
        plan = self.plan("--data-dir", data_dir, "--config", cfg)
        assert all(self.fixture_added <= set(p["parameters"]) for p in plan)
        for p in plan:
            p["parameters"] = {k: v for k, v in p["parameters"].items() if k not in self.fixture_added}
        assert "".join(json.dumps(p, sort_keys=True) + "\n" for p in plan) == (self.fixtures / fixture).read_text()

    def test_full_matrix(self, data_dir):
        plan = self.plan("--data-dir", data_dir)
        assert len(plan) == 63 * len(self.defaults)  # per architecture: W1 conv1, 54 layers, total, 6 BERT matmuls, total
        assert len({p["id"] for p in plan}) == len(plan)
        assert {p["hardware"] for p in plan} == {self.catalog.specs[a]["hardware"] for a in self.defaults}
        for i, arch in enumerate(self.defaults):
            block, dtype = plan[63 * i: 63 * (i + 1)], self.catalog.specs[arch]["dtype"]
            assert {p["parameters"][self.catalog.param] for p in block} == {arch}
            assert [p["key"] for p in block[:2]] == [f"resnet50.conv1.b1.{dtype}", f"resnet50.layer.conv1.b1.{dtype}"]
            assert block[0]["workload"] == "W1" and block[55]["key"] == f"resnet50.model.b1.{dtype}"
            assert block[-1]["key"] == f"bert-base.model.b1.s128.{dtype}" and block[-1]["parameters"]["layers"] == 6

    def test_chip_plan(self, tmp_path, data_dir):
        cfg = config_file(tmp_path, {self.catalog.config_field: ["eyeriss-chip"], "models": ["alexnet", "vgg16"]})
        plan = self.plan("--data-dir", data_dir, "--config", cfg)
        assert len(plan) == 5 + 1 + 13 + 1
        assert plan[0]["key"] == "alexnet.layer.conv1.b4.int16" and plan[0]["hardware"] == "Eyeriss"
        assert plan[5]["key"] == "alexnet.conv-layers.b4.int16" and plan[5]["parameters"]["macs"] == 2_663_139_456
        assert plan[6]["key"] == "vgg16.layer.conv1-1.b3.int16" and plan[6]["workload"] == "W9"
        assert plan[1]["parameters"]["instances"] == 2  # conv2: two groups

    def test_every_architecture_is_selectable(self, tmp_path, data_dir):
        # the config schema lets a config choose every architecture of the catalog
        for arch, spec in self.catalog.specs.items():
            (first,) = self.plan("--data-dir", data_dir, "--limit", "1",
                                 "--config", config_file(tmp_path, {self.catalog.config_field: [arch]}, f"{arch}.json"))
            assert first["hardware"] == spec["hardware"] and first["id"].startswith(f"{arch}/")

    def test_limit_takes_the_first_cases(self, data_dir):
        arch = self.defaults[0]
        dtype = self.catalog.specs[arch]["dtype"]
        assert [p["id"] for p in self.plan("--data-dir", data_dir, "--limit", "3")] == [
            f"{arch}/resnet50.conv1.b1.{dtype}", f"{arch}/resnet50.layer.conv1.b1.{dtype}",
            f"{arch}/resnet50.layer.layer1-0-conv1.b1.{dtype}"]

    def test_shards_partition_the_plan(self, data_dir):
        full = self.invoke("cases", "--data-dir", data_dir).output.splitlines()
        parts = [self.invoke("cases", "--data-dir", data_dir, "--shard", f"{k}/4").output.splitlines() for k in (1, 2, 3, 4)]
        assert sorted(sum(parts, [])) == sorted(full) and [p[0] for p in parts] == full[:4]

    @pytest.mark.parametrize("edit, message", BAD_TABLES)
    def test_bad_layer_table_is_one_line_exit_2(self, tmp_path, data_dir, edit, message):
        data = self.copy_data(tmp_path, data_dir)
        path = data / "workloads" / "layers" / "resnet50.layers.json"
        doc = json.loads(path.read_text())
        edit(doc)
        path.write_text(json.dumps(doc))
        r = self.invoke("cases", "--data-dir", data)
        assert r.exit_code == 2 and isinstance(r.exception, SystemExit)
        assert str(path) in r.output and message in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1

    def test_missing_layer_table_is_exit_2(self, tmp_path, data_dir):
        data = self.copy_data(tmp_path, data_dir)
        (data / "workloads" / "layers" / "bert-base.layers.json").unlink()
        r = self.invoke("cases", "--data-dir", data)
        assert r.exit_code == 2 and "bert-base.layers.json: cannot read" in r.output
        with pytest.raises(LayerTableError):
            load_table(data, "bert-base")

    def test_missing_hardware_catalog_is_exit_2(self, tmp_path):
        r = self.invoke("cases", "--data-dir", tmp_path)
        assert r.exit_code == 2 and "hardware.json: cannot read" in r.output

    def test_hardware_id_missing_from_the_catalog_is_exit_2(self, tmp_path, data_dir):
        data = self.copy_data(tmp_path, data_dir)
        path = data / "hardware" / "hardware.json"
        doc = json.loads(path.read_text())
        hw = self.catalog.specs[self.defaults[0]]["hardware"]
        doc["hardware"] = [h for h in doc["hardware"] if h["id"] != hw]
        path.write_text(json.dumps(doc))
        r = self.invoke("cases", "--data-dir", data)
        assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1
        assert f"field hardware: no id {hw!r} ({self.catalog.needed.format(arch=self.defaults[0])})" in r.output

    @pytest.mark.parametrize("text, message", BAD_CONFIGS)
    def test_bad_config_is_one_line_exit_2_and_writes_nothing(self, tmp_path, data_dir, text, message):
        if isinstance(text, dict) and "<archs>" in text:
            text, message = {self.catalog.config_field: text["<archs>"]}, self.catalog.config_field
        cfg = config_file(tmp_path, text, "c.json")
        out = tmp_path / "out"
        r = self.invoke("run", "--config", cfg, "--data-dir", data_dir, "--output", out)
        assert r.exit_code == 2 and isinstance(r.exception, SystemExit)
        assert message in r.output and str(cfg) in r.output
        assert len(r.output.strip().splitlines()) == 1
        assert not out.exists() or not any(out.iterdir())  # at most the folder the writability check made

    @pytest.mark.parametrize("verb", ["cases", "run"])
    def test_non_utf8_config_is_exit_2(self, tmp_path, data_dir, verb):
        cfg = tmp_path / "c.json"
        cfg.write_bytes(b'{"layers": ["conv1\xff"]}')
        r = self.invoke(verb, "--config", cfg, "--data-dir", data_dir, *(["--output", tmp_path / "o"] if verb == "run" else []))
        assert r.exit_code == 2 and "c.json: not UTF-8" in r.output

    def test_a_selection_of_no_cases_is_exit_2(self, tmp_path, data_dir):
        arch = self.defaults[0]
        cfg = config_file(tmp_path, {self.catalog.config_field: [arch], "models": ["resnet50"], "layers": ["fc"]})  # 1 case
        r = self.invoke("run", "--config", cfg, "--data-dir", data_dir, "--output", tmp_path / "o", "--shard", "2/2")
        assert r.exit_code == 2 and "selects no cases in shard 2/2" in r.output
        assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())

    def test_empty_layer_list_selects_no_cases_exit_2(self, tmp_path, data_dir):
        r = self.invoke("run", "--config", config_file(tmp_path, {"layers": []}), "--data-dir", data_dir, "--output", tmp_path / "o")
        assert r.exit_code == 2 and "selects no cases; nothing to run" in r.output
