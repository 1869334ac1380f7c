"""Where LLMCompass is: ``--tool-path`` / ``MTAP_LLMCOMPASS_PATH`` (a checkout or source folder),
else the verified build of ``llmcompass-runner setup`` in the user cache (``setup.BUILD.find()``);
and whether the runner's Python has LLMCompass's dependencies."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from mtap_schemas import toolcache

#: files a usable LLMCompass source tree has (what the driver imports and reads)
REQUIRED = (
    "software_model/transformer.py",
    "software_model/matmul.py",
    "design_space_exploration/dse.py",
    "hardware_model/compute_module.py",
    "configs/GA100.json",
    "systolic_array_model/look_up_table_16_16.csv",
)
#: LLMCompass's Python dependencies (imported at module level by software_model/*.py), as pinned in pyproject.toml
PYTHON_DEPS = {"torch": "torch==2.13.0", "numpy": "numpy==1.26.4", "pandas": "pandas==2.2.3", "scalesim": "scalesim==2.0.2"}
SETUP_HINT = (
    "run `llmcompass-runner setup` (fetches the pinned LLMCompass commit into the user cache), or pass "
    "--tool-path / MTAP_LLMCOMPASS_PATH naming an LLMCompass checkout"
)


@dataclass(frozen=True)
class Located:
    path: Path  # the source tree (software_model/, configs/, ...)
    version: str  # git:<sha>[-dirty] | folder (no git)
    how: str  # "tool-path" | "setup build"
    commit: str | None


def missing_files(path: Path) -> list[str]:
    return [r for r in REQUIRED if not (path / r).is_file()]


def git_version(path: Path) -> tuple[str, str | None]:
    try:
        top = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if not top or Path(top).resolve() != path.resolve():  # not a checkout of its own (or inside another repository)
            return "folder (not a git checkout)", None
        sha = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return "folder (not a git checkout)", None
    if not toolcache.HEX40.match(sha):
        return "folder (not a git checkout)", None
    return f"git:{sha}" + ("-dirty" if dirty else ""), sha


def locate(tool_path: Path | None) -> Located | str:
    """The LLMCompass tree to run, or a message saying why there is none."""
    if tool_path is not None:
        path = tool_path.expanduser()
        if not path.is_dir():
            return f"--tool-path {tool_path}: not a folder; {SETUP_HINT}"
        gone = missing_files(path)
        if gone:
            return f"--tool-path {tool_path}: not an LLMCompass source tree (no {gone[0]}); {SETUP_HINT}"
        version, sha = git_version(path)
        return Located(path.resolve(), version, "tool-path", sha)
    from .setup import BUILD, SOURCE_DIR

    found = BUILD.find()
    if found is None:
        return f"LLMCompass is not set up: {SETUP_HINT}"
    info = toolcache.read_build_json(found) or {}
    return Located(found / SOURCE_DIR, str(info.get("version")), "setup build", info.get("commit"))


def missing_python() -> list[str]:
    return [pin for mod, pin in PYTHON_DEPS.items() if not toolcache.python_module(mod)]
