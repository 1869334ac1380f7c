"""Which job belongs to which tool, and which step is setup, Docker build, run or teardown.

Convention (mtap's own workflows): one job per runner, named after it: ``astra``, ``vidur``,
``timeloop``, ``zigzag``, ``nnmeter``, ``neusight``, ``analytical``, ``aggregate``. A job name
is normalised before matching: the part after the last `` / `` (reusable-workflow callers
prefix ``caller / ``), lower-cased; matrix suffixes such as ``astra (docker)`` still match
``^astra``. When several tools match, the one whose matching pattern is longest wins (ties:
the smaller tool id), so ``^astra \\(docker\\)`` can be split off from ``^astra``.

Steps are classified by name (GitHub names unnamed steps ``Run <command>`` or
``Run <action>@<ref>``): teardown patterns first, then Docker build, then setup; anything else
is a run step. All patterns are Python regular expressions searched case-insensitively.
Every default can be replaced from a JSON file (``--config``), key by key.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: tool id (as in tool-run documents, schemas/README.md) -> job-name patterns
DEFAULT_TOOLS: dict[str, list[str]] = {
    "astra-sim": ["^astra"],
    "vidur": ["^vidur"],
    "timeloop": ["^timeloop"],
    "zigzag": ["^zigzag"],
    "nn-meter": ["^nn-?meter"],
    "neusight": ["^neusight"],
    "analytical": ["^analytical"],
    "groundtruth": ["^groundtruth"],
    "aggregate": ["^aggregate"],
}

DEFAULT_TEARDOWN_STEPS: list[str] = [r"^post ", r"^complete job$", r"actions/upload-artifact", r"^upload\b"]

DEFAULT_DOCKER_STEPS: list[str] = [
    r"\bdocker (image )?build\b",
    r"\bdocker compose build\b",
    r"\bbuildx build\b",
    r"docker/build-push-action",
    r"\bbuild (the )?(docker )?image\b",
    r"\bimage build\b",
]

DEFAULT_SETUP_STEPS: list[str] = [
    r"^set up ",  # "Set up job", "Set up Python 3.11", "Set up Docker Buildx"
    r"actions/(checkout|setup-[\w-]+|cache)",
    r"docker/(setup-[\w-]+|login-action)",
    r"\b(checkout|install|installs|installing|build|builds|building|compile|cache|restore|download|fetch|clone|bootstrap|prepare)\b",
    r"\b(pip|pip3|uv|apt-get|apt|conda|mamba|micromamba|npm|cmake|make)\b",
    r"\bdocker (pull|login)\b",
]

KEYS = ("tools", "setup_steps", "docker_steps", "teardown_steps")


class RulesError(ValueError):
    """A config file is unusable; ``str()`` is one line naming file and field."""


@dataclass
class Rules:
    tools: dict[str, list[str]] = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_TOOLS.items()})
    setup_steps: list[str] = field(default_factory=lambda: list(DEFAULT_SETUP_STEPS))
    docker_steps: list[str] = field(default_factory=lambda: list(DEFAULT_DOCKER_STEPS))
    teardown_steps: list[str] = field(default_factory=lambda: list(DEFAULT_TEARDOWN_STEPS))

    def __post_init__(self) -> None:
        self._tool_res = [(tool, [re.compile(p, re.IGNORECASE) for p in pats]) for tool, pats in self.tools.items()]
        self._setup = [re.compile(p, re.IGNORECASE) for p in self.setup_steps]
        self._docker = [re.compile(p, re.IGNORECASE) for p in self.docker_steps]
        self._teardown = [re.compile(p, re.IGNORECASE) for p in self.teardown_steps]

    def as_dict(self) -> dict[str, Any]:
        return {
            "tools": {k: list(v) for k, v in self.tools.items()},
            "setup_steps": list(self.setup_steps),
            "docker_steps": list(self.docker_steps),
            "teardown_steps": list(self.teardown_steps),
        }

    def tool_of(self, job_name: str) -> str | None:
        """The tool whose matching pattern is longest (most specific); ties go to the smaller
        tool id. Order-free, so the rules recorded in a document (JSON keys are sorted) give
        the same mapping when fed back as --config."""
        name = normalise_job_name(job_name)
        hits = [(-len(p.pattern), tool) for tool, patterns in self._tool_res for p in patterns if p.search(name)]
        return min(hits)[1] if hits else None

    def category_of(self, step_name: str) -> str:
        name = step_name.strip()
        if any(p.search(name) for p in self._teardown):
            return "teardown"
        if any(p.search(name) for p in self._docker):
            return "docker-build"
        if any(p.search(name) for p in self._setup):
            return "setup"
        return "run"


def normalise_job_name(name: str) -> str:
    return name.rsplit(" / ", 1)[-1].strip().lower()


def _patterns(value: Any, where: str, source: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
        raise RulesError(f"{source}: field {where}: expected a list of non-empty regular-expression strings")
    for p in value:
        try:
            re.compile(p)
        except re.error as exc:
            raise RulesError(f"{source}: field {where}: {p!r} is not a valid regular expression ({exc})") from None
    return list(value)


def rules_from_dict(data: Any, source: str = "<config>") -> Rules:
    """Defaults overridden key by key by ``data``; unknown keys and bad patterns are one-line errors."""
    if not isinstance(data, dict):
        raise RulesError(f"{source}: expected a JSON object with keys {', '.join(KEYS)}")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise RulesError(f"{source}: field {unknown[0]}: unknown key, expected one of {', '.join(KEYS)}")
    kwargs: dict[str, Any] = {}
    if "tools" in data:
        tools = data["tools"]
        if not isinstance(tools, dict) or not tools:
            raise RulesError(f"{source}: field tools: expected an object mapping tool id -> list of job-name patterns")
        kwargs["tools"] = {}
        for tool, pats in tools.items():
            if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", tool):
                raise RulesError(f"{source}: field tools.{tool}: tool id must be a lowercase slug like 'astra-sim'")
            kwargs["tools"][tool] = _patterns(pats, f"tools.{tool}", source)
    for key in KEYS[1:]:
        if key in data:
            kwargs[key] = _patterns(data[key], key, source)
    return Rules(**kwargs)


def load_rules(path: str | Path | None) -> Rules:
    if path is None:
        return Rules()
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"{source}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise RulesError(f"{source}: not valid UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RulesError(f"{source}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    return rules_from_dict(data, source)
