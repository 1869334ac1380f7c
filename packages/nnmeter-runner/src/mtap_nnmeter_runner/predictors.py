"""nn-Meter's four built-in predictors, the sha256 list their files must match, and the check.

A predictor is a folder ``<name>/`` with one scikit-learn pickle per kernel type
(``conv-bn-relu.pkl``, ...) and ``fusion_rules.json``. Unpickling runs code, so a file is only
ever unpickled from bytes whose sha256 was compared with the expected list first (see
:func:`read_verified`); nothing here imports nn-Meter.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from mtap_schemas import sha256_file

#: mtap hardware id -> nn-Meter predictor name (nn_meter/configs/predictors.yaml, version 1.0)
PREDICTORS: dict[str, str] = {
    "cortexA76cpu": "cortexA76cpu_tflite21",
    "adreno640gpu": "adreno640gpu_tflite21",
    "adreno630gpu": "adreno630gpu_tflite21",
    "myriadvpu": "myriadvpu_openvino2019r2",
    # built here with nn-Meter's builder on ONNX Runtime 1.30 CPU (issue #19; data/profiles/nn-meter/)
    "xeon-emr-ort1.30-t1": "xeonemr_ort130_t1",
    "xeon-emr-ort1.30-t4": "xeonemr_ort130_t4",
}
#: the predictors nn-Meter released (downloaded by nn-Meter, pinned in pinned_predictors.json)
RELEASED = ("cortexA76cpu_tflite21", "adreno640gpu_tflite21", "adreno630gpu_tflite21", "myriadvpu_openvino2019r2")

RULES_FILE = "fusion_rules.json"
HASHES_FORMAT = "mtap-nnmeter-predictor-hashes/1"
SHA256 = re.compile(r"^[0-9a-f]{64}$")


class HashesError(ValueError):
    """A hashes file is malformed; ``str()`` is one line naming the file and field."""


def pinned_hashes_path() -> Path:
    return Path(str(resources.files(__package__) / "pinned_predictors.json"))


def load_hashes(path: Path | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """``{predictor: {file: {"sha256": ..., "size": ...}}}`` from the pinned list or a user file."""
    source = path or pinned_hashes_path()
    try:
        doc = json.loads(Path(source).read_text(encoding="utf-8"))
    except OSError as exc:
        raise HashesError(f"{source}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise HashesError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise HashesError(f"{source}: not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(doc, dict) or doc.get("format") != HASHES_FORMAT:
        raise HashesError(f"{source}: field format: expected {HASHES_FORMAT!r}")
    predictors = doc.get("predictors")
    if not isinstance(predictors, dict):
        raise HashesError(f"{source}: field predictors: expected an object {{predictor: {{file: {{sha256, size}}}}}}")
    for name, files in predictors.items():
        if not isinstance(files, dict) or not files:
            raise HashesError(f"{source}: field predictors.{name}: expected a non-empty object of files")
        for fname, entry in files.items():
            where = f"{source}: field predictors.{name}.{fname}"
            if "/" in fname or "\\" in fname or fname in ("", ".", ".."):
                raise HashesError(f"{where}: expected a plain file name")
            if not isinstance(entry, dict) or not SHA256.match(str(entry.get("sha256", ""))):
                raise HashesError(f"{where}.sha256: expected 64 lowercase hex digits")
            size = entry.get("size")
            if size is not None and (not isinstance(size, int) or size < 0):
                raise HashesError(f"{where}.size: expected a non-negative integer or null")
    return predictors


def nnmeter_package_dir() -> Path | None:
    """Where nn_meter is installed, found WITHOUT importing it (importing writes ~/.nn_meter)."""
    spec = importlib.util.find_spec("nn_meter")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def kernel_lists() -> dict[str, list[str]]:
    """Kernel types of each built-in predictor, read from nn-Meter's own predictors.yaml."""
    import yaml

    pkg = nnmeter_package_dir()
    if pkg is None:
        return {}
    entries = yaml.safe_load((pkg / "configs" / "predictors.yaml").read_text(encoding="utf-8"))
    return {e["name"]: list(e["kernel_predictors"]) for e in entries}


def predictor_kernels(expected: dict[str, dict[str, dict[str, Any]]]) -> dict[str, list[str]]:
    """Kernel types of every predictor: nn-Meter's predictors.yaml for its released ones, the
    ``<kernel>.pkl`` entries of the expected sha256 list for predictors built with its builder."""
    out = kernel_lists()
    for name, files in expected.items():
        if name not in out:
            out[name] = sorted(f.split(".pkl")[0] for f in files if f.endswith((".pkl", ".pkl.xz")))
    return out


def kernel_file(kernel: str, pins: dict[str, Any] | None) -> str:
    """``<kernel>.pkl``, or ``<kernel>.pkl.xz`` where the expected list names only that: an
    xz-compressed nn-Meter pickle (predictors built here are stored compressed; the sha256 is of
    the stored bytes, checked before decompressing and unpickling)."""
    if pins and f"{kernel}.pkl.xz" in pins and f"{kernel}.pkl" not in pins:
        return f"{kernel}.pkl.xz"
    return f"{kernel}.pkl"


@dataclass
class Check:
    """Outcome of looking at a predictor folder (no file is unpickled here)."""

    ok: bool
    kind: str | None = None  # predictor-missing | predictor-hash-mismatch | predictor-unpinned
    message: str | None = None
    folder: Path | None = None
    files: dict[str, str] | None = None  # file name -> sha256, when ok


def predictor_folder(root: Path, name: str) -> Path:
    """``<root>/<name>`` or, for an nn-Meter data folder, ``<root>/predictor/<name>``."""
    direct = root / name
    if direct.is_dir() or not (root / "predictor" / name).is_dir():
        return direct
    return root / "predictor" / name


def check(root: Path | None, name: str, kernels: list[str], expected: dict[str, dict[str, dict[str, Any]]],
          hashes_source: str) -> Check:
    """Are all files of predictor ``name`` present under ``root`` with the expected sha256?"""
    if name in RELEASED:
        how = ("pass --predictor-dir DIR (env MTAP_NNMETER_PREDICTOR_DIR) holding "
               f"{name}/ with {', '.join(k + '.pkl' for k in kernels)} and {RULES_FILE} "
               f"(nn-Meter's release asset v1.0-data/{name}.zip, unpacked)")
    else:
        how = (f"pass --tool-path DIR (env MTAP_NN_METER_PATH) holding {name}/ with its <kernel>.pkl[.xz] files and "
               f"{RULES_FILE}, built with nn-Meter's builder (nnmeter-runner build-predictor; the committed ones: "
               "--tool-path data/profiles/nn-meter/predictors --predictor-hashes "
               "data/profiles/nn-meter/predictors/hashes.json)")
    if root is None and name not in RELEASED:
        return Check(False, "predictor-missing", f"predictor {name} not given: {how}")
    if root is None:
        return Check(False, "predictor-missing",
                     f"predictor {name} not given: nn-Meter 2.0 downloads it from a GitHub release asset at first "
                     f"use, which is unreachable here; {how}")
    folder = predictor_folder(root, name)
    pins = expected.get(name)
    needed = [kernel_file(k, pins) for k in kernels] + [RULES_FILE]
    missing = [f for f in needed if not (folder / f).is_file()]
    if missing:
        return Check(False, "predictor-missing", f"{folder}: missing {', '.join(missing)}; {how}", folder)
    unpinned = [f for f in needed if not pins or f not in pins]
    if unpinned:
        return Check(False, "predictor-unpinned",
                     f"{hashes_source}: no expected sha256 for {name}/{', '.join(unpinned)}: refusing to unpickle "
                     "files of unknown origin; pass --predictor-hashes FILE listing them", folder)
    files: dict[str, str] = {}
    for fname in needed:
        path = folder / fname
        want = pins[fname]
        size = path.stat().st_size
        if want.get("size") is not None and size != want["size"]:
            return Check(False, "predictor-hash-mismatch",
                         f"{path}: size {size} B, expected {want['size']} B ({hashes_source}); refused before "
                         "unpickling", folder)
        got = sha256_file(path)
        if got != want["sha256"]:
            return Check(False, "predictor-hash-mismatch",
                         f"{path}: sha256 {got}, expected {want['sha256']} ({hashes_source}); refused before "
                         "unpickling", folder)
        files[fname] = got
    return Check(True, folder=folder, files=files)


def read_verified(path: Path, sha256: str) -> bytes:
    """The file's bytes, if and only if they hash to ``sha256`` (hash and use the SAME bytes)."""
    data = Path(path).read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise PermissionError(f"{path}: sha256 {got}, expected {sha256}; refused before unpickling")
    return data


#: sha256 of each released fusion-rule file (same Git LFS pointers as the pinned list, whose
#: fusion_rules.json entries equal these; a test checks it). --rules-dir files are checked
#: against the expected list (pinned, or --predictor-hashes).
RULES_SHA256: dict[str, str] = {
    "cortexA76cpu_tflite21": "9880312f7e78dd33b2ab815d5d2c87a5ec856c4b0feb37f61a4bb0ba5cfa435b",
    "adreno640gpu_tflite21": "ed5f38bc5aa6be59e1794bdca776509db398a06ad9bb9d19cedd365589bad77c",
    "adreno630gpu_tflite21": "ed5f38bc5aa6be59e1794bdca776509db398a06ad9bb9d19cedd365589bad77c",
    "myriadvpu_openvino2019r2": "578f9852a4619bd6afc900e1b31a7b2b5f1d4b5e0ea8b8629effaa17afd80537",
}
