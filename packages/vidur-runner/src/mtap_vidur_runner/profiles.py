"""Find VIDUR profiles in upstream layout and lay them out as the local Hugging Face cache vidur reads offline.

vidur 0.0.26 downloads its profiling data from the Hugging Face Hub (`snapshot_download`) and
ships none. Offline it reads the same files from a local HF cache:

    <cache>/profiling_data/compute/datasets--<org>--<name>/snapshots/<rev>/{mlp.csv.xz,attention.csv.xz,config.json}
    <cache>/profiling_data/network/datasets--<org>--<name>/snapshots/<rev>/{all_reduce.csv.xz,send_recv.csv.xz,config.json}
    (+ refs/main naming <rev>)

Upstream's GitHub repository (and this project's committed profile) keep the same CSVs as

    <root>/compute/<device>/<model>/{mlp,attention}.csv[.xz]     (upstream data/profiling/)
    <root>/<device>/<model>/{mlp,attention}.csv[.xz]             (data/profiles/vidur/)
    <root>/network/<sku>/{all_reduce,send_recv}.csv[.xz]

The dataset name carries a hash of the CSVs' content, so vidur's predictor cache (keyed by the
dataset name and the predictor settings) is keyed by profile content: a sweep trains once,
and a changed profile trains anew.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

COMPUTE_FILES = ("mlp", "attention")
NETWORK_FILES = ("all_reduce", "send_recv")
ORG = "mtap-local"


@dataclass
class ProfileSet:
    """The profile files found for one (device, model, network sku)."""

    device: str
    model: str
    network_sku: str
    compute: dict[str, Path] = field(default_factory=dict)  # "mlp"/"attention" -> file
    network: dict[str, Path] = field(default_factory=dict)  # "all_reduce"/"send_recv" -> file
    missing: list[str] = field(default_factory=list)  # what was looked for and not found
    searched: list[Path] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all(k in self.compute for k in COMPUTE_FILES)


def _find_file(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.csv.xz", f"{stem}.csv"):
        p = folder / name
        if p.is_file():
            return p
    return None


def compute_dirs(root: Path, device: str, model: str) -> list[Path]:
    """Folders under `root` that may hold <device>/<model> compute profiles, most specific first."""
    return [
        root / device / model,
        root / "compute" / device / model,
        root / "profiling" / "compute" / device / model,
        root / "data" / "profiling" / "compute" / device / model,
    ]


def network_dirs(root: Path, sku: str) -> list[Path]:
    return [
        root / "network" / sku,
        root / "profiling" / "network" / sku,
        root / "data" / "profiling" / "network" / sku,
        root / sku,
    ]


def locate(roots: list[Path], device: str, model: str, network_sku: str) -> ProfileSet:
    """Look through `roots` in order; the first folder holding a file wins, per file.

    mlp and attention are taken from the same folder (a profile is one measurement campaign):
    the first folder with both wins; failing that, the first with either (reported incomplete).
    """
    ps = ProfileSet(device=device, model=model, network_sku=network_sku)
    partial: dict[str, Path] | None = None
    for root in roots:
        for d in compute_dirs(root, device, model):
            ps.searched.append(d)
            found = {s: f for s in COMPUTE_FILES if (f := _find_file(d, s)) is not None}
            if len(found) == len(COMPUTE_FILES):
                ps.compute = found
                break
            if found and partial is None:
                partial = found
        if ps.complete:
            break
    if not ps.complete and partial:
        ps.compute = partial
    for s in COMPUTE_FILES:
        if s not in ps.compute:
            ps.missing.append(f"{device}/{model}/{s}.csv")
    for root in roots:
        for d in network_dirs(root, network_sku):
            found = {s: f for s in NETWORK_FILES if (f := _find_file(d, s)) is not None}
            if len(found) == len(NETWORK_FILES):
                ps.network = found
                break
        if ps.network:
            break
    return ps


def read_csv_bytes(path: Path) -> bytes:
    """A profile CSV's bytes; an .xz one decompressed with the kit's bound (a bomb or a truncated file is refused)."""
    from mtap_schemas.paths import read_lzma_bounded

    return read_lzma_bounded(path) if path.name.endswith(".xz") else path.read_bytes()


def content_hash(files: dict[str, Path]) -> str:
    """sha256 over (name, sha256 of the uncompressed CSV) pairs: same data, same key, .csv or .csv.xz."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(read_csv_bytes(files[name])).hexdigest().encode() + b"\n")
    return h.hexdigest()


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in s.lower()).strip("-")


@dataclass
class Datasets:
    """The two dataset ids to hand to vidur, and where their snapshots are."""

    compute_repo: str
    network_repo: str
    compute_snapshot: Path
    network_snapshot: Path
    compute_sha256: str
    network_sha256: str | None


def _snapshot(cache: Path, kind: str, repo: str, rev: str) -> Path:
    org, name = repo.split("/")
    base = cache / "profiling_data" / kind / f"datasets--{org}--{name}"
    return base / "snapshots" / rev


def _write_snapshot(cache: Path, kind: str, repo: str, rev: str, files: dict[str, Path], config: dict) -> Path:
    """Create the snapshot folder atomically (built beside it, then renamed)."""
    org, name = repo.split("/")
    base = cache / "profiling_data" / kind / f"datasets--{org}--{name}"
    snap = base / "snapshots" / rev
    if not (snap / "config.json").is_file():
        tmp = base / "snapshots" / f".{rev}.tmp{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        for stem, src in files.items():
            dst = tmp / f"{stem}.csv.xz"
            if src.name.endswith(".xz"):
                shutil.copyfile(src, dst)
            else:
                dst.write_bytes(lzma.compress(src.read_bytes(), preset=6))
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        try:
            os.replace(tmp, snap)
        except OSError:  # another process made it first
            shutil.rmtree(tmp, ignore_errors=True)
    (base / "refs").mkdir(parents=True, exist_ok=True)
    (base / "refs" / "main").write_text(rev)
    return snap


def install(ps: ProfileSet, cache: Path) -> Datasets:
    """Lay out `ps` (complete) under `cache` in HF-cache form; idempotent and keyed by content."""
    if not ps.complete:
        raise ValueError(f"incomplete profile for {ps.device}/{ps.model}: missing {', '.join(ps.missing)}")
    csha = content_hash(ps.compute)
    compute_repo = f"{ORG}/vidur-{_slug(ps.model)}-{ps.device}-{csha[:12]}"
    csnap = _write_snapshot(
        cache, "compute", compute_repo, csha[:40], ps.compute, {"model": ps.model, "device_sku": ps.device}
    )
    nsha = content_hash(ps.network) if ps.network else None
    # With TP=1 and PP=1 vidur reads only the network dataset's config.json, no network CSV.
    network_repo = f"{ORG}/vidur-network-{_slug(ps.network_sku)}-{(nsha or 'none')[:12]}"
    nrev = (nsha or hashlib.sha256(ps.network_sku.encode()).hexdigest())[:40]
    nsnap = _write_snapshot(cache, "network", network_repo, nrev, ps.network, {"sku": ps.network_sku})
    return Datasets(compute_repo, network_repo, csnap, nsnap, csha, nsha)
