"""Run ZigZag once per distinct (accelerator, layer shape), and ZigZag's part of building the
cases from those runs (the building itself: :func:`mtap_schemas.accel.build_case`).

:func:`run_unit` is what a worker process runs (``mtap_schemas.execute.run_cases``); it returns
plain JSON (checkpointed for ``--resume``), with the result already checked, so composing the
cases afterwards never meets a value a metric cannot take.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import signal
import tempfile
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import mtap_schemas.toolrun as tr
from mtap_schemas import accel
from mtap_schemas.accel import Case
from mtap_schemas.layers import Layer
from mtap_schemas.toolrun import InvalidValue

from .cases import HARDWARE
from .parse import LayerResult, ResultParseError, parse_complete
from .workload import zigzag_layer

# ZigZag's own settings, fixed: LOMA temporal-mapping search (exhaustive over loop-prime-factor
# orderings, deterministic), lowest latency first, at most 3 generated spatial mappings.
SETTINGS = {"temporal_mapping_search_engine": "loma", "opt": "latency", "lpf_limit": 6,
            "nb_spatial_mappings_generated": 3}


@dataclass(frozen=True)
class Unit:
    """One ZigZag run: a layer shape on an accelerator (the first layer of the plan with it)."""

    ident: str
    arch: str
    layer: Layer
    timeout: float | None = None
    keep_raw: str | None = None


def inputs_dir() -> Path:
    """zigzag/inputs/ of the installed zigzag-dse (the example hardware and mappings)."""
    return Path(str(resources.files("zigzag") / "inputs"))


def own_inputs_dir() -> Path:
    """This package's own accelerator and mapping files (the Eyeriss chip)."""
    return Path(str(resources.files("mtap_zigzag_runner") / "inputs"))


def spec_file(arch: str, part: str) -> Path:
    """The accelerator (``part="accelerator"``) or mapping file of ``arch``."""
    hw = HARDWARE[arch]
    return (own_inputs_dir() if hw.get("own") else inputs_dir()) / hw[part]


def spec_where(arch: str, part: str) -> str:
    """Where the file is, as the document records it: ``zigzag-dse==<v>:zigzag/inputs/<file>``
    for a shipped example, ``mtap-zigzag-runner==<v>:mtap_zigzag_runner/inputs/<file>`` for ours."""
    from importlib import metadata

    from . import __version__

    file = HARDWARE[arch][part]
    if HARDWARE[arch].get("own"):
        return f"mtap-zigzag-runner=={__version__}:mtap_zigzag_runner/inputs/{file}"
    return f"zigzag-dse=={metadata.version('zigzag-dse')}:zigzag/inputs/{file}"


#: The Eyeriss array: 12 PEs down a column (ZigZag's D1), 14 columns (D2).
EYERISS_ROWS, EYERISS_COLS = 12, 14


def rs_mapping(layer: Layer) -> list[dict]:
    """ZigZag mapping with the chip's row-stationary unrolling (Chen et al., JSSC 2017):
    filter rows (FY) down a column and output rows (OY) across the columns form a PE set; sets
    that leave rows or columns free are replicated with more input channels (C, down the
    column, whose psums add up vertically) or more filters (K, across). ZigZag trims a factor
    that does not divide the layer."""
    d = layer.dims
    fy = min(d["S"], EYERISS_ROWS)
    oy = min(d["Q"], EYERISS_COLS)
    c = min(EYERISS_ROWS // fy, d["C"])
    k = min(EYERISS_COLS // oy, d["M"])
    d1 = [f"FY, {fy}"] * (fy > 1) + [f"C, {c}"] * (c > 1)
    d2 = [f"OY, {oy}"] * (oy > 1) + [f"K, {k}"] * (k > 1)
    spatial = {dim: units for dim, units in (("D1", d1), ("D2", d2)) if units}
    return [{"name": "default", "spatial_mapping": spatial or None,
             "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"}}]


def _quiet_logging() -> None:
    # ZigZag calls logging.basicConfig(INFO) on every run; a root handler makes that a no-op.
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.NullHandler())
    root.setLevel(logging.WARNING)


class _Timeout(BaseException):
    """Raised by SIGALRM inside the ZigZag call (a BaseException: ZigZag's own handlers do not catch it)."""


def _alarm(_signum: int, _frame: Any) -> None:
    raise _Timeout


@contextlib.contextmanager
def _time_limit(seconds: float | None):
    """ZigZag runs in this process (its API): ``--timeout`` stops it with SIGALRM."""
    if not seconds:
        yield
        return
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def check_result(r: LayerResult) -> None:
    """Raise :class:`InvalidValue` for a result value no layer can have."""
    accel.check_figures([("cycles", r.cycles, "cycles"), ("energy", r.energy_pj, "pJ"), ("macs", r.macs, "count"),
                         ("utilization", r.utilization, "1")], "layer")


def _keep(dump: Path, keep_raw: str | None, ident: str) -> None:
    if keep_raw is not None:
        shutil.copytree(dump, Path(keep_raw) / ident, dirs_exist_ok=True)


def run_unit(unit: Unit) -> dict[str, Any]:
    """Run ZigZag on one layer: ``{"layer", "result", "error": [kind, message]}``."""
    from zigzag.api import get_hardware_performance_zigzag

    layer = unit.layer
    hw = HARDWARE[unit.arch]
    out: dict[str, Any] = {"layer": layer.name, "result": None, "error": None}
    _quiet_logging()
    with tempfile.TemporaryDirectory(prefix="mtap-zigzag-") as tmp:
        if hw["mapping"] is None:
            mapping = Path(tmp) / "mapping.yaml"
            mapping.write_text(json.dumps(rs_mapping(layer)), encoding="utf-8")  # JSON is YAML
        else:
            mapping = spec_file(unit.arch, "mapping")
        try:
            with contextlib.redirect_stdout(io.StringIO()), _time_limit(unit.timeout):
                get_hardware_performance_zigzag(
                    [zigzag_layer(layer, hw["precision"])], str(spec_file(unit.arch, "accelerator")), str(mapping),
                    dump_folder=tmp, loma_show_progress_bar=False, **SETTINGS,
                )
        except _Timeout:
            out["error"] = ["timeout", f"zigzag ran past {unit.timeout:g} s on {layer.name}; stopped"]
            return out
        except Exception as exc:  # the tool broke on this layer: a failed case naming why
            text = str(exc).strip()
            out["error"] = ["tool-crashed", f"zigzag raised {type(exc).__name__} on {layer.name}: "
                                            f"{text.splitlines()[0][:300] if text else ''}"]
            return out
        finally:
            _keep(Path(tmp), unit.keep_raw, unit.ident)
        path = Path(tmp) / f"{layer.name}_complete.json"
        try:
            result = parse_complete(path)
            check_result(result)
        except ResultParseError as exc:
            out["error"] = ["parse-failed", str(exc).replace(tmp, "<dump>")]
            return out
        except InvalidValue as exc:
            out["error"] = ["invalid-value", f"{layer.name}_complete.json: {exc}"]
            return out
        out["result"] = asdict(result)
        return out


class ZigZagResults(accel.Adapter):
    """How a ZigZag run's result becomes a case (:func:`mtap_schemas.accel.build_case`): an ok
    layer case names the spatial unrolling ZigZag used, the operand precisions and its settings."""

    result_key = "result"
    totals = ("cycles", "energy_pj", "macs", "utilization")
    energy_unit = "pJ"

    def layer_metrics(self, r: dict, clock_hz: float | None, k: int) -> list[dict]:
        return [tr.metric("cycles", r["cycles"] * k, "cycles", "prediction", timing="simulated"),
                *tr.latency_from_cycles(r["cycles"] * k, clock_hz),
                tr.metric("energy", round(r["energy_pj"] * k / 1e6, 6), "uJ", "prediction"),
                tr.metric("energy_per_mac", round(tr.ratio(r["energy_pj"], r["macs"], "energy_per_mac: MACs"), 6), "pJ/MAC",
                          "derived"),
                tr.metric("utilization", round(r["utilization"], 6), "1", "prediction"),
                tr.metric("macs", r["macs"] * k, "count", "prediction")]

    def layer_params(self, case: Case, r: dict) -> dict:
        precision = " ".join(f"{k}={v}" for k, v in HARDWARE[case.arch]["precision"].items())
        return {"spatial_mapping": r["spatial_mapping"], "precision_bits": precision,
                "zigzag_settings": ", ".join(f"{k}={v}" for k, v in SETTINGS.items())}
