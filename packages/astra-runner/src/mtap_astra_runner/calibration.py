"""Network calibration: a machine's per-link latency and bandwidth fitted by running ASTRA-sim
against measured collectives that are not scored (schemas/calibration.v1.schema.json).

ASTRA-sim's own validation sets the network's latency and bandwidth from the hardware; here they
are fitted on a calibration split (by default all-reduce at 1 MiB and 1 GiB: two points, two
unknowns) and the other collectives are scored with them (``run --calibration``).

The model is ASTRA-sim itself: the simulated time ``T_i(L, u)`` of each point, ``L`` the link
latency (ns) and ``u = 1/B`` the inverse per-GPU bandwidth (s/B). :func:`fit` solves
``T_i(L, u) = measured_i`` by Newton's method on ``(L, u)``, each Jacobian taken from ASTRA-sim by
finite differences (two more simulations); ASTRA-sim's time is piecewise affine in ``(L, u)`` (its
chunks pipeline over the link: at 1 MiB each of the 2 NPUs' ring steps pays the latency, at 1 GiB
the transfer hides all but one), so once in the right piece one step lands on the solution.
:func:`local_model` then records that piece: ``T_i = c0 + cL·L + cW·1e9/B`` with its coefficients,
checked on probes around the fitted point (simulated vs affine prediction).

Everything is deterministic: the start is the catalog's figures, the steps and the stopping
rule are fixed, the fitted values are rounded (latency to 1e-3 ns, bandwidth to 1 B/s) before
they are simulated once more for the residuals.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mtap_schemas as ms
import mtap_schemas.toolrun as tr
from mtap_schemas.cli import UserError

from . import cases as cases_mod
from .runner import Unit, run_unit
from .tool import Tool

SCHEMA = "calibration"
#: the calibration split's default points: all-reduce at 1 MiB and 1 GiB
DEFAULT_POINTS = (("all-reduce", "1mib"), ("all-reduce", "1gib"))
BINARY = cases_mod.PRIMARY_BINARY
#: relative finite-difference steps of L and u; probe offsets of the linearity check
STEP = 1e-2
PROBES = ((-0.05, 0.0), (0.05, 0.0), (0.0, -0.05), (0.0, 0.05), (0.05, 0.05))
MAX_ITERATIONS = 20
MS_TO_NS = 1e6


class FitError(RuntimeError):
    """ASTRA-sim did not give a time, or the fit left the domain (L < 0 or B <= 0)."""


@dataclass(frozen=True)
class Point:
    """One measured case of the calibration split."""

    case: cases_mod.Case  #: the case ASTRA-sim simulates (the platform's keyed network case)
    measured_ns: float
    measured: dict[str, Any]  #: what the document says: case id, key, value, spread


def point_case(platform: str, collective: str, npus: int, size: str) -> cases_mod.Case:
    """The platform's keyed W6 case (its own network, ring, Congestion_Aware) for a point."""
    net = cases_mod.PLATFORMS[platform].network
    for c in cases_mod.build(platform):
        p = c.params
        if (
            c.study == "w6"
            and c.key
            and p["collective"] == collective
            and p["npus"] == npus
            and p["size"] == size
            and p["binary"] == BINARY
            and p["topology"] == net
        ):
            return c
    raise UserError(
        f"--platform {platform}: no W6 case {collective}.n{npus}.{size} (the platform plans "
        f"{sorted({c.params['npus'] for c in cases_mod.build(platform) if c.study == 'w6'})} NPUs)"
    )


def measured_points(
    path: Path, platform: str, npus: int, keys: list[tuple[str, str]], metric: str, timing: str
) -> tuple[list[Point], dict]:
    """The calibration points from a measured tool-run document: each key's ok case on the node
    the platform simulates at ``npus`` NPUs, its ``metric`` at ``timing`` (ms) and its spread."""
    doc = ms.read_tool_run(path)
    out = []
    for coll, size in keys:
        case = point_case(platform, coll, npus, size)
        found = [c for c in doc["cases"] if c.get("key") == case.key and c["hardware"] == case.hardware and c["status"] == "ok"]
        if len(found) != 1:
            raise UserError(f"{path}: field cases: expected one ok case with key {case.key} on {case.hardware}, found {len(found)}")
        c = found[0]
        vals = {m["name"]: m for m in c["metrics"] if m.get("timing") == timing}
        if metric not in vals or vals[metric]["kind"] != "measurement" or vals[metric]["unit"] != "ms":
            raise UserError(f"{path}: case {c['id']}: field metrics: no measured {metric} in ms at timing {timing}")
        spread = {k: vals[f"{metric}_{k}"]["value"] * MS_TO_NS for k in ("p10", "p90") if f"{metric}_{k}" in vals}
        if f"{metric}_spread" in vals:
            spread["relative"] = vals[f"{metric}_spread"]["value"]
        if f"{metric}_samples" in vals:
            spread["samples"] = int(vals[f"{metric}_samples"]["value"])
        value_ns = round(vals[metric]["value"] * MS_TO_NS, 3)
        out.append(
            Point(
                case,
                value_ns,
                {
                    "case": c["id"],
                    "key": c["key"],
                    "hardware": c["hardware"],
                    "metric": metric,
                    "timing": timing,
                    "value_ms": vals[metric]["value"],
                    "value_ns": value_ns,
                    "spread_ns": {k: round(v, 3) if k != "samples" and k != "relative" else v for k, v in spread.items()},
                },
            )
        )
    return out, doc


class Simulator:
    """ASTRA-sim's time of the calibration points at a given (latency ns, bandwidth B/s); every run
    is kept (latency, bandwidth, time per point) for the document."""

    def __init__(self, tool: Tool, hardware: dict[str, Any], points: list[Point], timeout: float) -> None:
        self.tool, self.hardware, self.points, self.timeout = tool, hardware, points, timeout
        self.runs: dict[tuple[float, float], list[int]] = {}

    def __call__(self, latency_ns: float, bandwidth: float) -> list[int]:
        key = (latency_ns, bandwidth)
        if key not in self.runs:
            if latency_ns < 0 or bandwidth <= 0:
                raise FitError(f"the fit left the domain: latency {latency_ns} ns, bandwidth {bandwidth} B/s")
            hw = with_network(self.hardware, latency_ns, bandwidth)
            times = []
            for p in self.points:
                r = run_unit(Unit(p.case, hw, self.tool, None, self.timeout, None))
                if r["status"] != "ok":
                    raise FitError(f"ASTRA-sim on {p.case.id} at {latency_ns} ns, {bandwidth} B/s: {r['status']}: {r['error']['message']}")
                times.append(int(next(m["value"] for m in r["metrics"] if m["name"] == "latency")))
            self.runs[key] = times
        return self.runs[key]


def with_network(hardware: dict[str, Any], latency_ns: float, bandwidth: float) -> dict[str, Any]:
    """A copy of a catalog entry with another interconnect latency and per-GPU bandwidth."""
    hw = copy.deepcopy(hardware)
    hw["interconnect"]["latency_ns"] = latency_ns
    hw["interconnect"]["bandwidth_bytes_per_s"] = bandwidth
    return hw


def _solve2(a: list[list[float]], b: list[float]) -> tuple[float, float]:
    det = a[0][0] * a[1][1] - a[0][1] * a[1][0]
    if det == 0:
        raise FitError("the two points depend on latency and bandwidth alike (singular Jacobian): choose points that tell them apart")
    return ((b[0] * a[1][1] - a[0][1] * b[1]) / det, (a[0][0] * b[1] - a[1][0] * b[0]) / det)


def _jacobian(sim: Simulator, lat: float, u: float) -> tuple[list[int], list[list[float]]]:
    """Times at (L, u) and dT/dL (ns/ns), dT/du (ns per s/B) by forward differences."""
    base = sim(lat, 1 / u)
    hl, hu = max(STEP * lat, 1.0), STEP * u
    t_l = sim(lat + hl, 1 / u)
    t_u = sim(lat, 1 / (u + hu))
    return base, [[(t_l[i] - base[i]) / hl, (t_u[i] - base[i]) / hu] for i in range(len(base))]


def resolution_ns(c_latency: float) -> float:
    """How close ASTRA-sim's time of a point can come to a target: it rounds the link latency to
    whole ns and the point pays it ``c_latency`` times, so its time moves in steps of about
    ``c_latency`` ns; half a step, and at least 1 ns (its integer-ns clock)."""
    return max(1.0, abs(c_latency) / 2)


def fit(sim: Simulator, start_latency_ns: float, start_bandwidth: float) -> dict[str, Any]:
    """Newton on (L, u = 1/B) from the catalog's figures until every point is within its
    resolution (:func:`resolution_ns`) of its measurement, at most MAX_ITERATIONS steps; the best
    iterate (least worst residual in resolutions) is kept, rounded (L to 1e-3 ns, B to 1 B/s)
    and simulated once more for the residuals."""
    target = [p.measured_ns for p in sim.points]
    lat, u = float(start_latency_ns), 1.0 / float(start_bandwidth)
    history: list[dict[str, Any]] = []
    best: tuple[float, int] | None = None
    for it in range(MAX_ITERATIONS):
        base, jac = _jacobian(sim, lat, u)
        res = [base[i] - target[i] for i in range(len(base))]
        tol = [resolution_ns(jac[i][0]) for i in range(len(base))]
        score = max(abs(r) / t for r, t in zip(res, tol))
        history.append(
            {
                "iteration": it,
                "latency_ns": round(lat, 3),
                "bandwidth_bytes_per_s": float(round(1 / u)),
                "simulated_ns": base,
                "residual_ns": [round(r, 3) for r in res],
                "resolution_ns": tol,
            }
        )
        if best is None or score < best[0]:
            best = (score, it)
        if score <= 1.0:
            break
        d_lat, d_u = _solve2(jac, [-r for r in res])
        lat, u = lat + d_lat, u + d_u
        if lat < 0 or u <= 0:
            raise FitError(f"the fit left the domain at iteration {it}: latency {lat:.3f} ns, inverse bandwidth {u:.3e} s/B")
    chosen = history[best[1]]
    latency, bandwidth = chosen["latency_ns"], chosen["bandwidth_bytes_per_s"]
    final = sim(latency, bandwidth)
    return {
        "latency_ns": latency,
        "bandwidth_bytes_per_s": bandwidth,
        "iterations": history,
        "chosen_iteration": best[1],
        "simulated_ns": final,
        "residual_ns": [round(final[i] - target[i], 3) for i in range(len(final))],
        "resolution_ns": chosen["resolution_ns"],
    }


def local_model(sim: Simulator, latency_ns: float, bandwidth: float) -> dict[str, Any]:
    """ASTRA-sim's affine piece around the fitted point: per point ``T = c0 + cL·L + cW·W`` with
    ``W = 1e9/B`` the link's time per byte (ns/B), so ``cW`` is the bytes on the critical path; the
    coefficients from central differences, the model checked on probes around the point (each
    simulated, its deviation from the model in ns)."""
    w = 1e9 / bandwidth
    hl, hw = max(STEP * latency_ns, 1.0), STEP * w
    t_lp, t_lm = sim(latency_ns + hl, bandwidth), sim(latency_ns - hl, bandwidth)
    t_wp, t_wm = sim(latency_ns, 1e9 / (w + hw)), sim(latency_ns, 1e9 / (w - hw))
    base = sim(latency_ns, bandwidth)
    coeffs = []
    for i in range(len(base)):
        c_l = (t_lp[i] - t_lm[i]) / (2 * hl)
        c_w = (t_wp[i] - t_wm[i]) / (2 * hw)
        coeffs.append({"c0_ns": round(base[i] - c_l * latency_ns - c_w * w, 3), "c_latency": round(c_l, 6), "c_bytes": round(c_w, 1)})
    probes = []
    for fl, fw in PROBES:
        lat_p, bw_p = round(latency_ns * (1 + fl), 3), float(round(bandwidth / (1 + fw)))
        t = sim(lat_p, bw_p)
        pred = [c["c0_ns"] + c["c_latency"] * lat_p + c["c_bytes"] * 1e9 / bw_p for c in coeffs]
        probes.append(
            {
                "latency_ns": lat_p,
                "bandwidth_bytes_per_s": bw_p,
                "simulated_ns": t,
                "model_ns": [round(x, 3) for x in pred],
                "deviation_ns": [round(t[i] - pred[i], 3) for i in range(len(t))],
            }
        )
    worst = max(abs(d) for p in probes for d in p["deviation_ns"])
    return {"coefficients": coeffs, "probes": probes, "max_deviation_ns": round(worst, 3)}


# --- reading a calibration document ---------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    path: str  #: repository-relative (what documents record)
    sha256: str
    doc: dict[str, Any]
    given: str = ""  #: the path as given (what error messages name)

    @property
    def hardware(self) -> str:
        return self.doc["hardware"]

    @property
    def latency_ns(self) -> float:
        return float(self.doc["fitted"]["latency_ns"])

    @property
    def bandwidth(self) -> float:
        return float(self.doc["fitted"]["bandwidth_bytes_per_s"])

    def covers(self, case: cases_mod.Case) -> bool:
        """A calibration point itself (any binary, same hardware, collective, NPUs and size): never scored."""
        p = case.params
        return (
            case.hardware == self.hardware
            and p.get("kind") == "collective"
            and any(
                (p["collective"], p["npus"], p["size_bytes"]) == (q["collective"], q["npus"], q["size_bytes"]) for q in self.doc["points"]
            )
        )

    def what(self) -> str:
        pts = " + ".join(f"{q['collective']} {q['size']}" for q in self.doc["points"])
        m = self.doc["measured"]
        return (
            f"network link latency and bandwidth fitted by ASTRA-sim to {pts} ({m['metric']}, {m['timing']} timing) "
            f"measured on this {self.hardware}: {self.path} (from {m['path']})"
        )

    def independence(self, other: dict[str, Any] | None = None) -> dict[str, Any]:
        what = self.what() if other is None else f"{self.what()}; {other['what']}"
        return tr.independence("calibrated-separately", what)


def load(path: Path) -> Calibration:
    """A calibration document, validated (a wrong field: exit 2, one line naming file and field)."""
    doc = ms.read(path, SCHEMA)
    for i, q in enumerate(doc["points"]):
        if q["size_bytes"] != cases_mod.SIZES.get(q["size"]):
            raise UserError(f"{path}: field points[{i}].size_bytes: expected {cases_mod.SIZES.get(q['size'])} for size {q['size']}")
    return Calibration(tr_relative(path), ms.sha256_file(path), doc, str(path))


def tr_relative(path: Path) -> str:
    from mtap_schemas.paths import relative_to_repo

    return relative_to_repo(path)


# --- writing one -----------------------------------------------------------------------------


def default_npus(platform: str) -> int:
    """The most NPUs the platform's smallest node holds (2 on the 2-GPU host, 8 on an HGX node)."""
    nodes = cases_mod.PLATFORMS[platform].nodes
    return max(n for n in cases_mod.NPUS if n <= min(nodes))


def default_output(platform: str) -> str:
    slug = cases_mod.PLATFORMS[platform].prefix.strip("/") or platform.lower()
    return f"data/calibration/astra-sim-{slug}.json"


def _spread(measured: dict[str, Any]) -> dict[str, Any]:
    """The measured point's spread (p10, p90, relative, samples): the fields it has."""
    spread = measured["spread_ns"]
    return {
        k: v
        for k, v in (
            ("p10_ns", spread.get("p10")),
            ("p90_ns", spread.get("p90")),
            ("relative", spread.get("relative")),
            ("samples", spread.get("samples")),
        )
        if v is not None
    }


def _point(i: int, p: Point, npus: int, fitted: dict[str, Any]) -> dict[str, Any]:
    """The document's entry of point ``i``: what was measured, and what ASTRA-sim simulates for it at the fit."""
    return {
        "case": p.measured["case"],
        "key": p.case.key,
        "collective": p.case.params["collective"],
        "size": p.case.params["size"],
        "size_bytes": p.case.params["size_bytes"],
        "npus": npus,
        "measured_ms": p.measured["value_ms"],
        "measured_ns": p.measured_ns,
        "spread": _spread(p.measured),
        "simulated_ns": fitted["simulated_ns"][i],
        "residual_ns": fitted["residual_ns"][i],
        "resolution_ns": round(fitted["resolution_ns"][i], 3),
    }


#: the calibration document's ``model.form``: what ASTRA-sim's local affine model says
MODEL_FORM = (
    "per point, ASTRA-sim's simulated time is piecewise affine in the link latency L (ns) and the link's "
    "time per byte W = 1e9/B (ns/B): T = c0_ns + c_latency * L + c_bytes * W around the fitted point; "
    "c_latency counts the latencies on the critical path, c_bytes the bytes serialised on it"
)


def _fit(catalog: dict[str, float], fitted: dict[str, Any]) -> dict[str, Any]:
    """The document's ``fit``: the method, where it started (the catalog's figures), every iterate and the one chosen."""
    return {
        "method": (
            f"Newton on (L, 1/B) from the catalog's figures, each Jacobian from ASTRA-sim by forward differences "
            f"(steps {STEP:g} of L and of 1/B), until every point is within its resolution; the best iterate, "
            f"rounded (L to 1e-3 ns, B to 1 B/s), simulated once more"
        ),
        "start": dict(catalog),
        "iterations": [dict(h, resolution_ns=[round(x, 3) for x in h["resolution_ns"]]) for h in fitted["iterations"]],
        "chosen_iteration": fitted["chosen_iteration"],
    }


def document(
    *,
    runner: tuple[str, str],
    command: list[str],
    tool: Tool,
    platform: str,
    npus: int,
    hardware: dict[str, Any],
    measured_path: Path,
    points: list[Point],
    metric: str,
    timing: str,
    fitted: dict[str, Any],
    model: dict[str, Any],
) -> dict[str, Any]:
    """The calibration v1 document of one fit."""
    from mtap_schemas.paths import portable_argv

    from .inputs import link_bandwidth_gbps

    ic = hardware["interconnect"]
    catalog = {"latency_ns": float(ic["latency_ns"]), "bandwidth_bytes_per_s": float(ic["bandwidth_bytes_per_s"])}
    case0 = points[0].case
    topology = case0.params["topology"]
    return {
        "schema": SCHEMA,
        "schema_version": ms.version(SCHEMA),
        "generated_by": {"name": runner[0], "version": runner[1], "command": [runner[0], *portable_argv(command)]},
        "tool": {"name": "astra-sim", "version": tool.version, "location": tool.location, "binary": BINARY},
        "hardware": hardware["id"],
        "platform": platform,
        "npus": npus,
        "network": {"topology": topology, "algorithm": case0.params["algorithm"], "catalog": dict(catalog)},
        "measured": {"path": tr_relative(measured_path), "sha256": ms.sha256_file(measured_path), "metric": metric, "timing": timing},
        "points": [_point(i, p, npus, fitted) for i, p in enumerate(points)],
        "model": {"form": MODEL_FORM, **model},
        "fit": _fit(catalog, fitted),
        "fitted": {
            "latency_ns": fitted["latency_ns"],
            "bandwidth_bytes_per_s": fitted["bandwidth_bytes_per_s"],
            "link_bandwidth_gbps": round(link_bandwidth_gbps(topology, npus, fitted["bandwidth_bytes_per_s"]), 6),
        },
    }
