"""The Eyeriss chip against the models: its published measurements as a tool-run document,
and a per-layer table of Timeloop, ZigZag and the chip.

    python -m mtap_zigzag_runner.eyeriss published   # data/silicon/eyeriss-jssc2017.json
                                                     #   -> data/evaluation/published/eyeriss-jssc2017.tool-run.json
    python -m mtap_zigzag_runner.eyeriss table       # -> data/evaluation/tables/eyeriss-cross-tool.md
    python -m mtap_zigzag_runner.eyeriss identical-spec  # -> data/evaluation/zigzag/identical-spec.md

Not a runner verb: it runs no tool. ``published`` turns the cited numbers of the paper
(``data/silicon/``) into ``reported`` measurement cases keyed like the runners' cases, so
aggregate can pair them; ``table`` reads the documents and writes Markdown; ``identical-spec``
writes the ResNet-50 table of Timeloop and ZigZag on one and the same Eyeriss spec.
"""

from __future__ import annotations

import dataclasses
import json
import re
import statistics
import sys
from pathlib import Path

import click

import mtap_schemas as ms
import mtap_schemas.toolrun as tr
from mtap_schemas.cli import UserError, runner_group
from mtap_schemas.keep import SUFFIX, save
from mtap_schemas.layers import LayerTableError, load_table

from . import __version__

SILICON = Path("data/silicon/eyeriss-jssc2017.json")
PUBLISHED = Path("data/evaluation/published/eyeriss-jssc2017.tool-run.json")
ZIGZAG = Path("data/evaluation/zigzag/zigzag-eyeriss.tool-run.json")
TIMELOOP = Path("data/evaluation/timeloop/timeloop-eyeriss.tool-run.json")
TABLE = Path("data/evaluation/tables/eyeriss-cross-tool.md")
#: ResNet-50 on one Eyeriss spec: Timeloop's eyeriss-like run, ZigZag's run of the same spec
#: (this package's eyeriss_chip.yaml, row-stationary unrolling) and ZigZag's shipped example.
TIMELOOP_RESNET = Path("data/evaluation/timeloop/timeloop.tool-run.json")
ZIGZAG_SPEC = Path("data/evaluation/zigzag/zigzag-identical-spec.tool-run.json")
ZIGZAG_SHIPPED = Path("data/evaluation/zigzag/zigzag.tool-run.json")
IDENTICAL_TABLE = Path("data/evaluation/zigzag/identical-spec.md")
DTYPE = "int16"
RESNET_TOTAL = "resnet50.model.b1.int16"
MODULE = "mtap_zigzag_runner.eyeriss"
PROG = f"python -m {MODULE}"
PAPER = tr.Tool("published", "JSSC 2017", "artifact", "doi:10.1109/JSSC.2016.2616357")


def _load_silicon(path: Path) -> dict:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON: {exc}") from None
    for field in ("paper", "hardware", "tables"):
        if field not in doc:
            raise UserError(f"{path}: field {field}: missing")
    return doc


def _metric(name: str, value: float, unit: str, source: str, kind: str = "measurement") -> dict:
    timing = "reported" if unit in ("ms", "s") and kind == "measurement" else None
    return tr.metric(name, value, unit, kind, timing=timing, source=source)


def _case_metrics(row: dict, table: str) -> list[dict]:
    src = f"JSSC 2017 {table.split(' (')[0]}"
    out = []
    if "processing_latency_ms" in row:
        out.append(_metric("latency", row["processing_latency_ms"], "ms", f"{src}, Processing Latency"))
    if "total_latency_ms" in row:
        out.append(_metric("total_latency", row["total_latency_ms"], "ms", f"{src}, Total Latency"))
    if "power_mw" in row:
        out.append(_metric("power", row["power_mw"], "mW", f"{src}, Power"))
    if "power_mw" in row and "total_latency_ms" in row:
        uj = round(row["power_mw"] * row["total_latency_ms"], 6)  # mW x ms = uJ
        out.append(_metric("chip_energy", uj, "uJ", f"{src}: Power x Total Latency (the table's Total power is "
                                                     "this average over the layers)", kind="derived"))
    for field, name, unit, label in (("dram_access_mb", "dram_access", "MB", "DRAM Accesses"),
                                     ("buffer_access_mb", "buffer_access", "MB", "Global Buff. Accesses"),
                                     ("active_pes", "active_pes", "count", "Num. of Active PEs"),
                                     ("zeros_in_ifmaps_percent", "zeros_in_ifmaps", "%", "Zeros in Ifmaps")):
        if field in row:
            out.append(_metric(name, row[field], unit, f"{src}, {label}"))
    if "dram_accesses_per_mac" in row:
        out.append(_metric("dram_accesses_per_mac", row["dram_accesses_per_mac"], "1", "JSSC 2017 abstract"))
    if "frames_per_s" in row:
        out.append(_metric("throughput", row["frames_per_s"], "frames/s", "JSSC 2017 abstract"))
    return out


def published_document(silicon_path: Path, data_dir: Path, argv: list[str]) -> dict:
    """The tool-run document of the paper's measurements (tool ``published``, backend
    ``artifact``): one case per layer and one per network total, keyed like the runners."""
    builder = tr.ToolRun("zigzag-runner", __version__, PAPER, argv=["-m", MODULE, *argv], prog="python", config=silicon_path)
    silicon = _load_silicon(silicon_path)
    artifact = tr.artifact(silicon_path)
    builder.setup_done()
    cases = []
    for i, t in enumerate(silicon["tables"]):
        model, batch = t["model"], t["batch"]
        try:
            table = load_table(data_dir, model)
        except LayerTableError as exc:
            raise UserError(str(exc)) from None
        layers = {la.name: la for la in table.layers(batch)}
        for j, row in enumerate(t["layers"]):
            name = row["layer"]
            if name == "total":
                key = f"{model}.conv-layers.b{batch}.{DTYPE}"
                macs = sum(la.case_macs for la in layers.values())
            elif name in layers:
                key = f"{model}.layer.{name}.b{batch}.{DTYPE}"
                macs = layers[name].case_macs
            else:
                raise UserError(f"{silicon_path}: field tables[{i}].layers[{j}].layer: {name!r} is not in {table.path}")
            if round(macs / 1e9, 2) != row["gmacs"]:
                raise UserError(f"{silicon_path}: field tables[{i}].layers[{j}].gmacs: {row['gmacs']} G, but the layer "
                                f"table gives {macs} MACs")
            params = {"model": model, "layer": name, "batch": batch, "macs": macs, "table": t["table"],
                      "paper": silicon["paper"]}
            try:
                metrics = _case_metrics(row, t["table"])
            except tr.InvalidValue as exc:
                raise UserError(f"{silicon_path}: field tables[{i}].layers[{j}]: {exc}") from None
            cases.append(tr.ok(f"eyeriss/{key}", workload=table.workload, hardware=silicon["hardware"], key=key,
                               parameters=params, metrics=metrics, artifacts=[artifact]))
    return builder.document(cases)


def _major(path: Path) -> int:
    """The tool-run major version a document declares (the table reads v1 and its successors
    alike: it needs only cases, keys and metrics); 1 when it declares none readable."""
    try:
        version = json.loads(Path(path).read_text(encoding="utf-8")).get("schema_version", "1")
        return int(str(version).split(".")[0])
    except (OSError, ValueError, AttributeError, UnicodeDecodeError):
        return 1


def _by_key(path: Path, hardware: str) -> dict[str, dict[str, float]] | None:
    """Metric values per case key of one document (ok cases on ``hardware``), None if absent."""
    if not Path(path).is_file():
        return None
    try:
        doc = ms.read(path, "tool-run", _major(path))
    except ms.SchemaError as exc:
        raise UserError(str(exc)) from None
    out = {}
    for c in doc["cases"]:
        if c["status"] == "ok" and c["hardware"] == hardware and c.get("key"):
            out[c["key"]] = {m["name"]: m["value"] for m in c["metrics"]}
    return out


def _cases_by_key(path: Path, hardware: str) -> dict[str, dict]:
    """The ok cases on ``hardware`` of one document by key (a one-line error if it is absent)."""
    if not Path(path).is_file():
        raise UserError(f"{path}: cannot read: not found")
    try:
        doc = ms.read(path, "tool-run", _major(path))
    except ms.SchemaError as exc:
        raise UserError(str(exc)) from None
    return {c["key"]: c for c in doc["cases"] if c["status"] == "ok" and c["hardware"] == hardware and c.get("key")}


def _values(case: dict | None) -> dict[str, float]:
    return {m["name"]: m["value"] for m in case["metrics"]} if case else {}


_TL_SPATIAL = re.compile(r"for (\w) in \[0:(\d+)\) \(Spatial-([XY])\)")
_ZZ_UNIT = re.compile(r"([A-Z]+)(\d+)")
#: Timeloop's dimension names as ZigZag's (M output channels = K, S filter rows = FY, ...)
_TL_TO_ZZ = {"M": "K", "C": "C", "S": "FY", "R": "FX", "Q": "OY", "P": "OX", "N": "B"}


def timeloop_spatial(map_text: str) -> tuple[str, int]:
    """The spatial unrolling of a Timeloop map (``timeloop-mapper``'s ``.map.txt``) in ZigZag's
    names, down a column (Spatial-Y) then across the columns (Spatial-X), and the PEs it uses."""
    down, across, pes = [], [], 1
    for dim, n, axis in _TL_SPATIAL.findall(map_text):
        if int(n) > 1:
            (down if axis == "Y" else across).append(f"{_TL_TO_ZZ[dim]}{n}")
            pes *= int(n)
    return " ".join(down + across), pes


def zigzag_pes(spatial: str) -> int:
    """PEs a ZigZag spatial unrolling such as ``FY7 OY14`` uses."""
    pes = 1
    for _dim, n in _ZZ_UNIT.findall(spatial):
        pes *= int(n)
    return pes


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _identical_spec_cases(timeloop: Path, zigzag_spec: Path, zigzag_shipped: Path) -> tuple[dict, dict, dict, list[str]]:
    """The ok cases of the three documents by key and Timeloop's ResNet-50 layer keys, checked:
    Timeloop has the layers and the total, ZigZag on the spec has every one of them."""
    tl = _cases_by_key(timeloop, "Eyeriss-like")
    zz = _cases_by_key(zigzag_spec, "Eyeriss")
    sh = _cases_by_key(zigzag_shipped, "Eyeriss-like")
    keys = [k for k in tl if k.startswith("resnet50.layer.")]
    if not keys or RESNET_TOTAL not in tl:
        raise UserError(f"{timeloop}: no ResNet-50 Eyeriss-like cases")
    missing = [k for k in [*keys, RESNET_TOTAL] if k not in zz]
    if missing:
        raise UserError(f"{zigzag_spec}: no ok case for {len(missing)} key(s), e.g. {missing[0]}")
    return tl, zz, sh, keys


def _identical_spec_intro(timeloop: Path, zigzag_spec: Path, zigzag_shipped: Path) -> list[str]:
    """The title, where the numbers come from, what the spec is, the columns, the table's header."""
    return [
        "# ResNet-50 on one Eyeriss spec: Timeloop vs ZigZag",
        "",
        "Generated by `python -m mtap_zigzag_runner.eyeriss identical-spec` (zigzag-runner) from",
        f"`{Path(timeloop).name}` (Timeloop v3.0.3, `data/timeloop/eyeriss-like/`, hardware Eyeriss-like),",
        f"`{Path(zigzag_spec).name}` (ZigZag 3.9.1 on `mtap_zigzag_runner/inputs/eyeriss_chip.yaml` with the",
        "row-stationary unrolling of `run.rs_mapping`, hardware Eyeriss) and, for reference,",
        f"`{Path(zigzag_shipped).name}` (ZigZag's shipped `eyeriss_like.yaml` + `mapping/default.yaml`).",
        "",
        "**The same specification.** Timeloop's `eyeriss-like/arch.yaml` and `eyeriss-chip/arch.yaml` are the",
        "same file but for comments (and so are their `constraints.yaml`), and ZigZag's `eyeriss_chip.yaml` is",
        "their transcription: 168 PEs as 12 x 14, 16-bit operands, per-PE scratch pads of 12 (ifmap), 224",
        "(filter) and 24 (psum) words, a 108 KB global buffer holding ifmaps and psums (filters bypass it),",
        "16 words per cycle to and from it, 200 MHz (the catalog clock of both hardware ids), and the relative",
        "energies of Eyeriss's normalisation (16-bit MAC 1, scratch pad 1, global buffer 6, DRAM 200).",
        "`tests/test_identical_spec.py` checks these fields in both files. Two bandwidths read alike but do",
        "not mean the same in the two tools (the test checks these too): Timeloop's DRAM has `width: 64` but no",
        "`read_bandwidth`, so Timeloop never limits it (the width only sets the access size its energy counts),",
        "while ZigZag's DRAM port moves 64 bits per cycle; and Timeloop's scratch pads move 2 words per cycle",
        "(`read_bandwidth: 2`), ZigZag's one. Beyond the spec each tool has its own model: the mapping search",
        "space, the spatial unrolling, stalls, and energy per access (notes below).",
        "",
        "Columns: PEs = PEs the spatial unrolling uses (of 168); cycles and utilisation as each tool reports",
        "them (of 168 PEs); util of its PEs = MACs / (ZigZag's PEs x its cycles), below 1 where ZigZag stalls",
        "or its unrolling does not divide the layer (ZigZag allows e.g. C10 on 64 channels); energy in relative uJ (MAC = 1 pJ) for Timeloop and ZigZag on the spec, absolute pJ-based",
        "uJ of ZigZag's own example energies for the shipped example (not comparable); ZZ/TL = ZigZag on the",
        "spec over Timeloop. Layers with one shape share one run of each tool.",
        "",
        "| layer | MACs | Timeloop unrolling | PEs | cycles | util | energy uJ | ZigZag unrolling | PEs | cycles "
        "| util | util of its PEs | energy uJ | cycles ZZ/TL | energy ZZ/TL | shipped example: unrolling | cycles | util |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]


@dataclasses.dataclass
class _Tally:
    """What the summary line says over the layers: the ZigZag/Timeloop ratios, PE comparisons."""

    cycles: list[float] = dataclasses.field(default_factory=list)
    energy: list[float] = dataclasses.field(default_factory=list)
    own_pe_util: list[float] = dataclasses.field(default_factory=list)  # ZigZag's MACs / (its PEs x its cycles)
    same_pes: int = 0
    more_pes: int = 0
    fewer_pes: int = 0


def _identical_spec_row(k: str, t: dict, z: dict, x: dict | None, repo: Path, timeloop: Path, tally: _Tally) -> str:
    """One layer's row (counted into ``tally``); its Timeloop unrolling read from the map file the case names."""
    tv, zv, xv = _values(t), _values(z), _values(x)
    maps = [a["path"] for a in t.get("artifacts", []) if a["path"].endswith(".map.txt")]
    tl_unroll, tl_pes = timeloop_spatial((repo / maps[0]).read_text(encoding="utf-8")) if maps else ("—", None)
    zz_unroll = z["parameters"].get("spatial_mapping", "—")
    zz_pes = zigzag_pes(zz_unroll)
    tally.same_pes += tl_pes == zz_pes
    tally.more_pes += tl_pes is not None and zz_pes > tl_pes
    tally.fewer_pes += tl_pes is not None and zz_pes < tl_pes
    if tl_pes and abs(tv["utilization"] - tl_pes / 168) > 0.01:
        raise UserError(f"{timeloop}: {k}: utilisation {tv['utilization']} is not its map's {tl_pes} PEs / 168")
    cr, er = _ratio(zv.get("cycles"), tv.get("cycles")), _ratio(zv.get("energy"), tv.get("energy"))
    tally.cycles.append(cr)
    tally.energy.append(er)
    tally.own_pe_util.append(zv["macs"] / zz_pes / zv["cycles"])
    name = k.replace("resnet50.layer.", "").replace(".b1.int16", "")
    return "| " + " | ".join([
        name, f"{int(tv['macs']):,}", tl_unroll, _num(tl_pes, "d"), _num(tv.get("cycles"), ",.0f"),
        _num(tv.get("utilization"), ".3f"), _num(tv.get("energy"), ",.1f"), zz_unroll, str(zz_pes),
        _num(zv.get("cycles"), ",.0f"), _num(zv.get("utilization"), ".3f"), f"{tally.own_pe_util[-1]:.3f}",
        _num(zv.get("energy"), ",.1f"), _num(cr, ".2f"), _num(er, ".2f"), x["parameters"].get("spatial_mapping", "—") if x else "—",
        _num(xv.get("cycles"), ",.0f"), _num(xv.get("utilization"), ".3f")]) + " |"


def _identical_spec_total_row(t: dict, z: dict, x: dict | None) -> str:
    """The ResNet-50 total's row."""
    tv, zv, xv = _values(t), _values(z), _values(x)
    return "| " + " | ".join([
        "**ResNet-50 (54 layers)**", f"{int(tv['macs']):,}", "", "", _num(tv.get("cycles"), ",.0f"),
        _num(tv.get("utilization"), ".3f"), _num(tv.get("energy"), ",.1f"), "", "", _num(zv.get("cycles"), ",.0f"),
        _num(zv.get("utilization"), ".3f"), "", _num(zv.get("energy"), ",.1f"),
        _num(_ratio(zv.get("cycles"), tv.get("cycles")), ".2f"), _num(_ratio(zv.get("energy"), tv.get("energy")), ".2f"),
        "", _num(xv.get("cycles"), ",.0f"), _num(xv.get("utilization"), ".3f")]) + " |"


def _identical_spec_summary(n: int, tally: _Tally) -> str:
    """The line under the table: medians and ranges of the ratios, PE counts compared."""
    cyc_r, en_r, share = tally.cycles, tally.energy, tally.own_pe_util
    return (f"Over the {n} layers: ZigZag/Timeloop cycles median {statistics.median(cyc_r):.2f} (range "
            f"{min(cyc_r):.2f} to {max(cyc_r):.2f}), energy median {statistics.median(en_r):.2f} (range "
            f"{min(en_r):.2f} to {max(en_r):.2f}); the two unrollings use the same number of PEs on {tally.same_pes} of "
            f"{n} layers (ZigZag uses more on {tally.more_pes}, fewer on {tally.fewer_pes}); ZigZag's utilisation of its own PEs is"
            f" a median {statistics.median(share):.2f} (range {min(share):.2f} to "
            f"{max(share):.2f}), Timeloop's is 1.00 on every layer (compute-bound).")


#: Why Timeloop and ZigZag differ on the same spec (the notes under the table).
_WHY_THEY_DIFFER = [
        "Why they differ on the same spec:",
        "- **Spatial unrolling and mapping search.** Timeloop's mapper searches the row-stationary mapspace",
        "  of `constraints.yaml` (filter rows S down a column with optional C and M, output rows Q and channels",
        "  M across the columns, any factor split), 500-mapping victory condition, optimising delay. ZigZag",
        "  gets one fixed row-stationary unrolling per layer (`rs_mapping`: FY down, OY across, free rows",
        "  filled with C, free columns with K, no M down a column) and LOMA searches only the temporal loop",
        "  orders. Timeloop's factors divide the layer's dimensions exactly (C8 of 64 channels down a",
        "  12-PE column), while ZigZag accepts a factor that does not (C11 of 64: 6 passes of 11 rows for 64",
        "  channels), so on most 1x1 layers ZigZag's unrolling has more PEs; the cycle ratio follows the PE",
        "  counts where ZigZag does not stall (ratio 0.78 with 154 against 112 PEs).",
        "- **Stalls and loading.** Timeloop's cycles are the slowest level's (compute, or a bandwidth-limited",
        "  buffer); here its utilisation equals its unrolling's PEs / 168 on every layer (the generator checks",
        "  it), so Timeloop finds every layer compute-bound. ZigZag's cycles add the stalls of its port model",
        "  (each port's bandwidth against the data each loop level moves) and the on- and off-loading of the",
        "  first and last tiles.",
        "- **DRAM bandwidth.** The clearest case is fc: Timeloop reports MACs / 100 PEs = 20,480 cycles",
        "  although its 2,048,000 16-bit weights alone are 512,000 64-bit DRAM words, because its DRAM is",
        "  unbounded; ZigZag, whose DRAM port moves 64 bits per cycle, reports 440,436 cycles at 0.028",
        "  utilisation. Its 1-word scratch-pad ports (Timeloop's: 2) also slow the layers whose spads refill",
        "  often. The column level of Timeloop's spec (a buffer-less level that only splits the array) has",
        "  no ZigZag counterpart.",
        "- **Energy per access.** Both are relative to a 16-bit MAC = 1, but Timeloop's PAT model prices each",
        "  buffer by its size and width (the 224-word filter spad costs more than the 12-word ifmap spad; the",
        "  global buffer's cost follows its 27 banks), while ZigZag charges the fixed figures of",
        "  `eyeriss_chip.yaml` (1, 1, 1, 6, 200 per 16 bits) per access of each port's width. The two tools also",
        "  count accesses differently (Timeloop per tile fill and read, with multicast across the array;",
        "  ZigZag per memory-level data movement of each operand).",
        "- **The shipped example is another spec.** ZigZag's `eyeriss_like.yaml` has 14 x 12 PEs but 64-byte",
        "  register files, an 8 KB output SRAM, 64 KB and 1 MB SRAMs and its own pJ energies, and",
        "  `mapping/default.yaml` unrolls K and C (e.g. K12 C3 on conv1); its numbers are ZigZag's, not",
        "  comparable with Timeloop's run of our spec.",
]


def identical_spec_table(timeloop: Path, zigzag_spec: Path, zigzag_shipped: Path, repo: Path = Path(".")) -> str:
    """ResNet-50 per layer: Timeloop and ZigZag on the same Eyeriss spec, and ZigZag's shipped example."""
    tl, zz, sh, keys = _identical_spec_cases(timeloop, zigzag_spec, zigzag_shipped)
    lines = _identical_spec_intro(timeloop, zigzag_spec, zigzag_shipped)
    tally = _Tally()
    lines += [_identical_spec_row(k, tl[k], zz[k], sh.get(k), repo, timeloop, tally) for k in keys]
    lines.append(_identical_spec_total_row(tl[RESNET_TOTAL], zz[RESNET_TOTAL], sh.get(RESNET_TOTAL)))
    lines += ["", _identical_spec_summary(len(keys), tally), "", *_WHY_THEY_DIFFER]
    return "\n".join(lines) + "\n"


def _num(v: float | None, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def _err(pred_ms: float | None, meas_ms: float | None) -> str:
    if pred_ms is None or not meas_ms:
        return "—"
    return f"{(pred_ms - meas_ms) / meas_ms * 100:+.0f}%"


def _cross_tool_intro(published: Path, zigzag: Path, timeloop: Path, tl: dict | None) -> list[str]:
    """The title, where the numbers come from, how to read them, the table's header."""
    return [
        "# Eyeriss: Timeloop vs ZigZag vs the chip, per CONV layer",
        "",
        "Generated by `python -m mtap_zigzag_runner.eyeriss table` (zigzag-runner) from",
        f"`{Path(published).name}` (the chip: JSSC 2017 Tables V and VI, `data/silicon/eyeriss-jssc2017.json`),",
        f"`{Path(zigzag).name}` and `{Path(timeloop).name}`"
        + (" (not present: no Timeloop run on the chip spec yet)." if tl is None else "."),
        "AlexNet at batch 4, VGG-16 at batch 3, 16-bit, on the same chip spec (168 PEs as 12 x 14, per-PE",
        "scratch pads of 12/224/24 words, 108 KB global buffer, 200 MHz); models' latency = cycles / 200 MHz.",
        "Chip latency is the paper's processing latency (total latency in parentheses); error = model",
        "latency against processing latency. Model energies are relative (16-bit MAC = 1 pJ, Eyeriss's",
        "normalisation), so they are not comparable with the chip's energy (power x total latency).",
        "",
        "| layer | chip latency ms (total) | chip power mW | chip energy uJ | chip active PEs "
        "| Timeloop cycles | Timeloop ms | err | Timeloop util | Timeloop energy (rel.) uJ "
        "| ZigZag cycles | ZigZag ms | err | ZigZag util | ZigZag energy (rel.) uJ |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]


def _cross_tool_row(k: str, p: dict[str, float], t: dict[str, float] | None, z: dict[str, float] | None) -> str:
    """One layer (or network total) of the chip with Timeloop's and ZigZag's figures beside it."""
    name = (k.replace(f".b4.{DTYPE}", "").replace(f".b3.{DTYPE}", "").replace(".layer.", " ")
            .replace(".conv-layers", " all CONV layers"))
    chip = _num(p.get("latency"), ".1f") + (f" ({p['total_latency']:.1f})" if "total_latency" in p else "")
    row = [name, chip, _num(p.get("power"), ".0f"), _num(p.get("chip_energy"), ",.0f"),
           _num(p.get("active_pes"), ".0f")]
    for d in (t, z):
        lat = d["latency"] * 1e3 if d and "latency" in d else None
        row += [_num(d.get("cycles") if d else None, ",.0f"), _num(lat, ".1f"), _err(lat, p.get("latency")),
                _num(d.get("utilization") if d else None, ".2f"), _num(d.get("energy") if d else None, ",.0f")]
    return "| " + " | ".join(row) + " |"


def _mean_errors(keys: list[str], pub: dict, tl: dict | None, zz: dict) -> list[str]:
    """Per model and tool: the mean absolute latency error over the layers both have."""
    lines = []
    for model in ("alexnet", "vgg16"):
        for tool, d in (("Timeloop", tl), ("ZigZag", zz)):
            errs = [abs(d[k]["latency"] * 1e3 - pub[k]["latency"]) / pub[k]["latency"] * 100
                    for k in keys if k.startswith(f"{model}.layer.") and d and k in d and "latency" in d[k]
                    and "latency" in pub[k]]
            if errs:
                lines.append(f"- {model} {tool}: {sum(errs) / len(errs):.0f}% over {len(errs)} layers")
    return lines


#: What the chip's measurements include that neither model does (the notes under the table).
_NOT_MODELLED = [
        "What the chip's figures include that neither model does:",
        "- **Zero gating**: the chip skips the MAC and the filter-scratch-pad read when an ifmap value is",
        "  zero (zeros in ifmaps: 0.01% in AlexNet conv1 to 79% in conv4, Table V); this saves power, not",
        "  cycles. Both models count every MAC at full energy.",
        "- **Run-length compression (RLC)** of ifmaps and ofmaps on the off-chip link, which cuts DRAM",
        "  traffic (and time when the link limits); the models move uncompressed 16-bit words.",
        "- **Clock network, control logic and leakage**: measured power covers the whole chip core; the",
        "  models' energy is the sum of per-access and per-MAC costs only. **I/O pads** have their own",
        "  supply (core 0.82-1.17 V, I/O 1.8 V, Table IV); the transcription we read does not say whether",
        "  the per-layer power includes them.",
        "- **The off-chip link** runs on its own clock (up to 90 MHz, Table IV) and the chip's total",
        "  latency includes time outside the processing latency; the models have one clock and a 64-bit",
        "  DRAM port at the core clock.",
        "- **Padding and the configuration per layer**: the chip's shapes are the padded ones (Table III);",
        "  Timeloop derives input size from output and filter size, ZigZag reads only the padding the",
        "  output needs.",
]


def cross_tool_table(published: Path, zigzag: Path, timeloop: Path) -> str:
    """Per CONV layer of AlexNet and VGG-16: the chip's published figures, Timeloop's and ZigZag's."""
    pub = _by_key(published, "Eyeriss")
    if pub is None:
        raise UserError(f"{published}: cannot read: not found (run `python -m mtap_zigzag_runner.eyeriss published` first)")
    zz = _by_key(zigzag, "Eyeriss") or {}
    tl = _by_key(timeloop, "Eyeriss")
    keys = list(pub)  # the paper's order: AlexNet conv1-5, total, VGG-16 conv1-1 ... conv5-3, total
    lines = _cross_tool_intro(published, zigzag, timeloop, tl)
    lines += [_cross_tool_row(k, pub[k], tl.get(k) if tl else None, zz.get(k)) for k in keys]
    lines += ["", "Mean absolute error of the models' latency against the chip's processing latency, per layer:", ""]
    lines += [*_mean_errors(keys, pub, tl, zz), "", *_NOT_MODELLED]
    return "\n".join(lines) + "\n"


@runner_group(PROG, __version__)
def main() -> None:
    """The Eyeriss chip's published measurements as data, and the cross-tool table."""


@main.command()
@click.option("--silicon", type=click.Path(dir_okay=False, path_type=Path), default=SILICON, show_default=True,
              help="The cited measurements (JSON).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("data"), show_default=True,
              help="The repository's data/ (workloads/layers/ for keys and MAC checks).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=PUBLISHED, show_default=True,
              help=f"The tool-run document to write (a name ending in {SUFFIX}).")
@click.option("--overwrite", is_flag=True, help="Replace the document even if it has more ok cases.")
def published(silicon, data_dir, output, overwrite) -> None:
    """Write the paper's measurements as a tool-run v2 document (tool `published`), under the
    runners' keep policy (a document with more ok cases is kept, exit 4)."""
    if not output.name.endswith(SUFFIX):
        raise UserError(f"--output {output}: expected a file name ending in {SUFFIX}")
    doc = published_document(silicon, data_dir, sys.argv[1:])
    saved = save(doc, output.parent, output.name[: -len(SUFFIX)], overwrite=overwrite)
    click.echo(saved.message, err=True)
    click.get_current_context().exit(int(saved.exit_code))


@main.command()
@click.option("--published", "published_path", type=click.Path(dir_okay=False, path_type=Path), default=PUBLISHED,
              show_default=True)
@click.option("--zigzag", type=click.Path(dir_okay=False, path_type=Path), default=ZIGZAG, show_default=True)
@click.option("--timeloop", type=click.Path(dir_okay=False, path_type=Path), default=TIMELOOP, show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=TABLE, show_default=True)
def table(published_path, zigzag, timeloop, output) -> None:
    """Write the per-layer Markdown table of Timeloop, ZigZag and the chip."""
    text = cross_tool_table(published_path, zigzag, timeloop)
    ms.write_text_atomic(output, text)
    click.echo(f"-> {output}", err=True)


@main.command("identical-spec")
@click.option("--timeloop", type=click.Path(dir_okay=False, path_type=Path), default=TIMELOOP_RESNET, show_default=True)
@click.option("--zigzag", type=click.Path(dir_okay=False, path_type=Path), default=ZIGZAG_SPEC, show_default=True)
@click.option("--shipped", type=click.Path(dir_okay=False, path_type=Path), default=ZIGZAG_SHIPPED, show_default=True)
@click.option("--repo", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              help="Where the Timeloop documents' map files (artifact paths) are read from.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=IDENTICAL_TABLE, show_default=True)
def identical_spec(timeloop, zigzag, shipped, repo, output) -> None:
    """Write the ResNet-50 table of Timeloop and ZigZag on the same Eyeriss spec."""
    text = identical_spec_table(timeloop, zigzag, shipped, repo)
    ms.write_text_atomic(output, text)
    click.echo(f"-> {output}", err=True)


if __name__ == "__main__":
    main()
