"""Upstream-layout profiles -> the local HF-cache layout vidur 0.0.26 reads offline."""

from __future__ import annotations

import json
import lzma
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import H100_PROFILE, MODEL

from mtap_vidur_runner import profiles


def _upstream_tree(tmp: Path, shared: Path) -> Path:
    """An upstream data/profiling tree: shared's H100 mlp.csv (plain) + our attention.csv.xz, and H100 network CSVs."""
    root = tmp / "profiling"
    comp = root / "compute" / "h100" / MODEL
    comp.mkdir(parents=True)
    shutil.copyfile(shared / "compute" / "h100" / MODEL / "mlp.csv", comp / "mlp.csv")
    (comp / "attention.csv").write_bytes(lzma.decompress((H100_PROFILE / "attention.csv.xz").read_bytes()))
    shutil.copytree(shared / "network" / "h100_pairwise_nvlink", root / "network" / "h100_pairwise_nvlink")
    return root


def test_locate_shared_a100_is_incomplete(shared):
    ps = profiles.locate([shared], "a100", MODEL, "a100_pairwise_nvlink")
    assert not ps.complete
    assert "mlp" in ps.compute and ps.compute["mlp"].name == "mlp.csv"
    assert ps.missing == [f"a100/{MODEL}/attention.csv"]
    assert set(ps.network) == {"all_reduce", "send_recv"}


def test_locate_prefers_first_root_and_device_layout(tmp_path, shared):
    up = _upstream_tree(tmp_path, shared)
    ps = profiles.locate([up, H100_PROFILE.parents[2]], "h100", MODEL, "h100_pairwise_nvlink")
    assert ps.complete and ps.compute["mlp"] == up / "compute" / "h100" / MODEL / "mlp.csv"
    ps2 = profiles.locate([tmp_path / "nothing", H100_PROFILE.parents[2]], "h100", MODEL, "h100_pairwise_nvlink")
    assert ps2.compute["attention"] == H100_PROFILE / "attention.csv.xz" and not ps2.network


def test_install_layout_is_hf_cache(tmp_path, shared):
    up = _upstream_tree(tmp_path, shared)
    ps = profiles.locate([up], "h100", MODEL, "h100_pairwise_nvlink")
    cache = tmp_path / "cache"
    ds = profiles.install(ps, cache)
    org, name = ds.compute_repo.split("/")
    base = cache / "profiling_data" / "compute" / f"datasets--{org}--{name}"
    rev = (base / "refs" / "main").read_text()
    assert ds.compute_snapshot == base / "snapshots" / rev
    assert json.loads((ds.compute_snapshot / "config.json").read_text()) == {"model": MODEL, "device_sku": "h100"}
    # upstream's plain CSV becomes the .csv.xz vidur opens, byte for byte
    src = (up / "compute" / "h100" / MODEL / "mlp.csv").read_bytes()
    assert lzma.decompress((ds.compute_snapshot / "mlp.csv.xz").read_bytes()) == src
    assert json.loads((ds.network_snapshot / "config.json").read_text()) == {"sku": "h100_pairwise_nvlink"}
    assert {p.name for p in ds.network_snapshot.iterdir()} == {"all_reduce.csv.xz", "send_recv.csv.xz", "config.json"}
    # idempotent, and keyed by content (not by file name or compression)
    again = profiles.install(ps, cache)
    assert again == ds
    xz = tmp_path / "xz" / "h100" / MODEL
    xz.mkdir(parents=True)
    (xz / "mlp.csv.xz").write_bytes(lzma.compress(src))
    shutil.copyfile(up / "compute" / "h100" / MODEL / "attention.csv", xz / "attention.csv")
    ps_xz = profiles.locate([tmp_path / "xz"], "h100", MODEL, "h100_pairwise_nvlink")
    assert profiles.content_hash(ps_xz.compute) == ds.compute_sha256
    # a changed profile gets a new dataset (so vidur trains new predictors)
    (xz / "mlp.csv.xz").write_bytes(lzma.compress(b"".join(src.splitlines(keepends=True)[:-1])))
    assert profiles.content_hash(profiles.locate([tmp_path / "xz"], "h100", MODEL, "h").compute) != ds.compute_sha256


def test_huggingface_hub_resolves_offline(tmp_path, shared):
    """The layout is what huggingface_hub's snapshot_download returns offline (as vidur calls it)."""
    pytest.importorskip("huggingface_hub")
    up = _upstream_tree(tmp_path, shared)
    ds = profiles.install(profiles.locate([up], "h100", MODEL, "h100_pairwise_nvlink"), tmp_path / "cache")
    code = (
        "import sys; from huggingface_hub import snapshot_download\n"
        "for kind, repo in (('compute', sys.argv[2]), ('network', sys.argv[3])):\n"
        "    print(snapshot_download(repo_id=repo, repo_type='dataset', cache_dir=f'{sys.argv[1]}/profiling_data/{kind}/'))\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cache"), ds.compute_repo, ds.network_repo], env=env, capture_output=True, text=True, check=True).stdout.split()
    assert [Path(p).resolve() for p in out] == [ds.compute_snapshot.resolve(), ds.network_snapshot.resolve()]


def test_network_config_without_network_csvs(tmp_path):
    ps = profiles.locate([H100_PROFILE.parents[2]], "h100", MODEL, "h100_pairwise_nvlink")
    ds = profiles.install(ps, tmp_path)
    assert ds.network_sha256 is None
    assert [p.name for p in ds.network_snapshot.iterdir()] == ["config.json"]


def test_install_refuses_incomplete(tmp_path):
    ps = profiles.locate([tmp_path], "a100", MODEL, "a100_pairwise_nvlink")
    with pytest.raises(ValueError, match="attention.csv"):
        profiles.install(ps, tmp_path / "c")
