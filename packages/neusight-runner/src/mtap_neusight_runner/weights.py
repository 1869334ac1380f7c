"""Trained NeuSight weights made here (``neusight-runner train``) and their sha256 manifest.

A weights folder, as ``train`` writes it::

    DIR/weights.json                      manifest: every file below with its sha256 and size
    DIR/MLP_WAVE/<OP>/config.json         NeuSight's predictor config (as NeuSight's Trainer saves it)
    DIR/MLP_WAVE/<OP>/model.pth           the trained parameters (torch.save; ~6.3 MB each)
    DIR/dataset/train/{bmm,linear,vec}.csv  the tile tables NeuSight's predictor reads (rebuilt from its data)
    DIR/dataset/train/device_configs/     (NeuSight's training-GPU device configs, as its Dataset expects)

``verify`` hashes every required file and compares it with the manifest *before* anything is
handed to NeuSight (whose ``MLPredictor`` calls ``torch.load``, i.e. unpickles): a file that
differs, is missing, or is not listed is refused (``predictor-hash-mismatch`` /
``weights-missing``), so a tampered ``model.pth`` is never unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mtap_schemas import sha256_file as sha256

MANIFEST = "weights.json"
FORMAT = "mtap-neusight-weights/1"
OPS = ("BMM", "LINEAR", "VEC", "SOFTMAX", "LN")
TILE_TABLES = ("linear.csv", "bmm.csv", "vec.csv")
PREDICTOR = "MLP_WAVE"


class WeightsError(ValueError):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def required() -> list[str]:
    files = [f"{PREDICTOR}/{op}/{name}" for op in OPS for name in ("config.json", "model.pth")]
    return files + [f"dataset/train/{t}" for t in TILE_TABLES]


def write_manifest(root: Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    files = {}
    for rel in required():
        path = root / rel
        if not path.is_file():  # a partial training (some predictors): verify() refuses the folder
            continue
        files[rel] = {"sha256": sha256(path), "bytes": path.stat().st_size}
    doc = {"format": FORMAT, "files": files, **(extra or {})}
    (root / MANIFEST).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return doc


def verify(root: Path) -> dict[str, str]:
    """{relative path: sha256} of a weights folder whose files all match its manifest; else WeightsError."""
    manifest = root / MANIFEST
    try:
        doc = json.loads(manifest.read_text())
    except FileNotFoundError:
        raise WeightsError(
            "weights-missing", f"{manifest}: no manifest; --weights takes a folder written by `neusight-runner train`"
        ) from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise WeightsError("predictor-hash-mismatch", f"{manifest}: unreadable manifest ({exc})") from None
    files = doc.get("files") if isinstance(doc, dict) and doc.get("format") == FORMAT else None
    if not isinstance(files, dict):
        raise WeightsError("predictor-hash-mismatch", f"{manifest}: not a {FORMAT} manifest")
    out = {}
    for rel in required():
        path = root / rel
        entry = files.get(rel)
        if not path.is_file():
            raise WeightsError("weights-missing", f"{path}: missing from the weights folder")
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            raise WeightsError("predictor-hash-mismatch", f"{manifest}: no sha256 recorded for {rel}")
        got = sha256(path)
        if got != entry["sha256"]:
            raise WeightsError(
                "predictor-hash-mismatch",
                f"{path}: sha256 {got[:16]}… differs from the manifest's {entry['sha256'][:16]}…; refused before loading (never unpickled)",
            )
        out[rel] = got
    return out
