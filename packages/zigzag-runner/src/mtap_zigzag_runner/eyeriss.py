"""The Eyeriss chip against the models: its published measurements as a tool-run document,
and a per-layer table of Timeloop, ZigZag and the chip.

    python -m mtap_zigzag_runner.eyeriss published   # data/silicon/eyeriss-jssc2017.json
                                                     #   -> data/evaluation/published/eyeriss-jssc2017.tool-run.json
    python -m mtap_zigzag_runner.eyeriss table       # -> data/evaluation/tables/eyeriss-cross-tool.md

Not a runner verb: it runs no tool. ``published`` turns the cited numbers of the paper
(``data/silicon/``) into ``reported`` measurement cases keyed like the runners' cases, so
aggregate can pair them; ``table`` reads the documents and writes Markdown.
"""

from __future__ import annotations

import json
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
DTYPE = "int16"
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


def _num(v: float | None, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def _err(pred_ms: float | None, meas_ms: float | None) -> str:
    if pred_ms is None or not meas_ms:
        return "—"
    return f"{(pred_ms - meas_ms) / meas_ms * 100:+.0f}%"


def cross_tool_table(published: Path, zigzag: Path, timeloop: Path) -> str:
    pub = _by_key(published, "Eyeriss")
    if pub is None:
        raise UserError(f"{published}: cannot read: not found (run `python -m mtap_zigzag_runner.eyeriss published` first)")
    zz = _by_key(zigzag, "Eyeriss") or {}
    tl = _by_key(timeloop, "Eyeriss")
    keys = list(pub)  # the paper's order: AlexNet conv1-5, total, VGG-16 conv1-1 ... conv5-3, total

    lines = [
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
    for k in keys:
        p = pub[k]
        z = zz.get(k)
        t = tl.get(k) if tl else None
        name = (k.replace(f".b4.{DTYPE}", "").replace(f".b3.{DTYPE}", "").replace(".layer.", " ")
                .replace(".conv-layers", " all CONV layers"))
        chip = _num(p.get("latency"), ".1f") + (f" ({p['total_latency']:.1f})" if "total_latency" in p else "")
        row = [name, chip, _num(p.get("power"), ".0f"), _num(p.get("chip_energy"), ",.0f"),
               _num(p.get("active_pes"), ".0f")]
        for d in (t, z):
            lat = d["latency"] * 1e3 if d and "latency" in d else None
            row += [_num(d.get("cycles") if d else None, ",.0f"), _num(lat, ".1f"), _err(lat, p.get("latency")),
                    _num(d.get("utilization") if d else None, ".2f"), _num(d.get("energy") if d else None, ",.0f")]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Mean absolute error of the models' latency against the chip's processing latency, per layer:", ""]
    for model in ("alexnet", "vgg16"):
        for tool, d in (("Timeloop", tl), ("ZigZag", zz)):
            errs = [abs(d[k]["latency"] * 1e3 - pub[k]["latency"]) / pub[k]["latency"] * 100
                    for k in keys if k.startswith(f"{model}.layer.") and d and k in d and "latency" in d[k]
                    and "latency" in pub[k]]
            if errs:
                lines.append(f"- {model} {tool}: {sum(errs) / len(errs):.0f}% over {len(errs)} layers")
    lines += [
        "",
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


if __name__ == "__main__":
    main()
