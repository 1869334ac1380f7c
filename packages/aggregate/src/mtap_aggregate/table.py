"""The long table (one row per metric of each case) and what is derived from it with polars."""

from __future__ import annotations

import re

import polars as pl

from mtap_schemas.kinds import pair_class

STATUSES = ("ok", "failed", "unsupported", "unavailable")

#: Seconds per unit, for pairing times reported in different units.
TIME_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}

ROW_SCHEMA = {
    "tool": pl.Utf8,
    "backend": pl.Utf8,
    "source": pl.Utf8,
    "workload": pl.Utf8,
    "hardware": pl.Utf8,
    "case": pl.Utf8,
    "key": pl.Utf8,
    "status": pl.Utf8,
    "error_kind": pl.Utf8,
    "metric": pl.Utf8,
    "value": pl.Float64,
    "unit": pl.Utf8,
    "kind": pl.Utf8,
    "timing": pl.Utf8,
}
#: columns the reader adds for pairing (a case's tool-run 2.2 ``independence``); not written to the table file
INDEPENDENCE_SCHEMA = {"independence": pl.Utf8, "independence_tools": pl.Utf8, "independence_what": pl.Utf8}

#: What a pair's case key names, by the key's grammar (schemas/README.md): a layer of a model, a whole
#: model (or the summed layers of one), one batch a serving simulator formed, a serving run's request
#: latencies (percentiles, makespan), one request of a serving run (its own TTFT/TPOT/e2e; keys end in
#: .req<id>), a collective, or one training step. Rows of different scopes are never pooled.
SCOPES = ("layer", "model", "batch", "request", "one-request", "collective", "step")
_SCOPE_PATTERNS = (
    ("batch", re.compile(r"\.batch\.")),
    ("one-request", re.compile(r"\.serving\..*\.req[0-9]+$")),
    ("request", re.compile(r"\.serving\.")),
    ("step", re.compile(r"\.ddp-step\.")),
    ("collective", re.compile(r"^(all-reduce|all-gather|reduce-scatter|all-to-all|broadcast)\.")),
    ("layer", re.compile(r"\.layer\.")),
    ("model", re.compile(r"\.(model|conv-layers|prefill|decode)\.")),
)
#: a whole-model key whose second part is a layer name filed outside the layer table (W1's ResNet-50
#: conv1): the same computation as ``<model>.layer.<name>.…``, so it is paired once, under that key
_LAYER_ALIAS = re.compile(r"^(?P<model>[^.]+)\.(?P<rest>(?!layer\.|model\.|conv-layers\.|prefill\.|decode\.|batch\.|serving\.|ddp-step\.)[a-z][a-z0-9-]*\..+)$")


def scope_of(key: str) -> str:
    """The scope (:data:`SCOPES`) a case key names; a key of no known shape counts as a model."""
    for scope, pattern in _SCOPE_PATTERNS:
        if pattern.search(key):
            return scope
    return "layer" if _LAYER_ALIAS.match(key) else "model"


def computation_of(key: str) -> str:
    """The key of the computation a case key names: ``resnet50.conv1.b1.fp16`` is ``resnet50.layer.conv1.b1.fp16``."""
    if scope_of(key) != "layer" or ".layer." in key:
        return key
    found = _LAYER_ALIAS.match(key)
    return f"{found['model']}.layer.{found['rest']}" if found else key


def case_rows(rows: pl.DataFrame) -> pl.DataFrame:
    """One row per case (its first) with the columns the case counts need: tool, source, case, workload,
    status. Only these: a unique over every column copies the long table (10^6 cases: ~0.5 GB)."""
    return rows.select("tool", "source", "case", "workload", "status").unique(
        subset=["tool", "source", "case"], keep="first", maintain_order=True)


def coverage(rows: pl.DataFrame) -> pl.DataFrame:
    """Case counts per tool and workload, by status (each case counted once)."""
    cases = case_rows(rows)
    counts = cases.group_by(["tool", "workload"]).agg(
        [pl.col("status").eq(s).sum().cast(pl.Int64).alias(s) for s in STATUSES]
    )
    order = pl.col("workload").str.slice(1).cast(pl.Int64, strict=False)
    return counts.with_columns(order.alias("_n")).sort(["tool", "_n"]).drop("_n")


#: the tool name of cited, published measurements of real silicon (timing `reported`)
PUBLISHED = "published"


def errors_vs_measured(rows: pl.DataFrame, dropped: list[int] | None = None) -> pl.DataFrame:
    """Pair each ok prediction with the ok measurements of the same hardware, key and metric.

    The key names the computation exactly, so the workload is not part of the join (a
    ResNet-50 layer is the same whether a runner filed it under W1 or W2); the prediction's
    workload is reported. Each pair gets its reference class (:func:`mtap_schemas.kinds.pair_class`,
    from the two cases' ``independence``), its scope (:func:`scope_of`) and the computation it
    names (:func:`computation_of`); one computation is paired once per tool, hardware, metric and timing.
    """
    for name, dtype in INDEPENDENCE_SCHEMA.items():  # frames built without the reader's columns
        if name not in rows.columns:
            rows = rows.with_columns(pl.lit(None, dtype=dtype).alias(name))
    ok = rows.filter((pl.col("status") == "ok") & pl.col("key").is_not_null() & pl.col("value").is_not_null())
    pairs = _with_errors(_paired(ok))
    pairs = pairs.join(_spread(ok), on=["hardware", "key", "metric", "measured_timing"], how="left", nulls_equal=True,
                       maintain_order="left")
    finite = pairs.filter(pl.col("predicted").is_finite() & pl.col("ape_percent").is_finite())
    if dropped is not None:  # a unit conversion can overflow (1e308 s in ms): no finite error for such a pair
        dropped.append(pairs.height - finite.height)
    pairs = _classify(finite)
    pairs = (
        pairs
        .select(
            "tool",
            "workload",
            "hardware",
            "key",
            "metric",
            pl.col("m_unit").alias("unit"),
            "predicted",
            pl.col("m_value").alias("measured"),
            "measured_timing",
            "ape_percent",
            "measured_spread",
            "reference_class",
            "reference_note",
            "scope",
            "computation",
        )
        .sort(["tool", "workload", "hardware", "key", "metric", "measured_timing"], nulls_last=True)
    )
    return _once_per_computation(pairs)


def _paired(ok: pl.DataFrame) -> pl.DataFrame:
    """Each ok prediction joined with each ok measurement of the same hardware, key and metric."""
    published = (pl.col("tool") == PUBLISHED) & (pl.col("timing") == "reported")
    # a tool's output: its predictions, and what it derives from them (e.g. latency = cycles / clock)
    predicted = ok.filter(pl.col("kind").is_in(["prediction", "derived"]) & ~pl.col("backend").is_in(["measured", "replayed"])
                          & ~published)
    # our ground truth, and published silicon measurements with their citation (tool `published`);
    # a replayed timeline (a simulator's schedule re-run with measured batch times) is a reference of
    # its own: its timing says so ("device (replayed)"), so its rows never mix with direct measurements
    measured = ok.filter((pl.col("kind") == "measurement") & (pl.col("backend").is_in(["measured", "replayed"]) | published))
    measured = measured.with_columns(
        pl.when(pl.col("backend") == "replayed").then(pl.col("timing") + " (replayed)").otherwise(pl.col("timing")).alias("timing"),
        published.alias("published"))
    join_on = ["hardware", "key", "metric"]
    return predicted.select(
        "tool", "workload", *join_on, pl.col("value").alias("p_value"), pl.col("unit").alias("p_unit"),
        pl.col("independence").alias("p_class"), pl.col("independence_what").alias("p_what"),
    ).join(
        measured.select(*join_on, pl.col("value").alias("m_value"), pl.col("unit").alias("m_unit"), pl.col("timing").alias("measured_timing"),
                        pl.col("independence").alias("m_class"), pl.col("independence_tools").alias("m_tools"),
                        pl.col("independence_what").alias("m_what"), "published"),
        on=join_on,
        how="inner",
    )


def _spread(ok: pl.DataFrame) -> pl.DataFrame:
    """The ground truth's own spread per measurement: metric "<name>_spread" = (p90 - p10) / median."""
    return (
        ok.filter((pl.col("backend") == "measured") & pl.col("metric").str.ends_with("_spread") & (pl.col("unit") == "1"))
        .select("hardware", "key", pl.col("metric").str.strip_suffix("_spread").alias("metric"),
                pl.col("timing").alias("measured_timing"), pl.col("value").alias("measured_spread"))
        .unique(subset=["hardware", "key", "metric", "measured_timing"], keep="first", maintain_order=True)
    )


def _with_errors(pairs: pl.DataFrame) -> pl.DataFrame:
    """The prediction in the measurement's unit (``predicted``) and its error (``ape_percent``); pairs without one are dropped."""
    scale = pl.DataFrame({"unit": list(TIME_UNITS), "s": list(TIME_UNITS.values())})
    return (
        pairs.join(scale.rename({"unit": "p_unit", "s": "p_s"}), on="p_unit", how="left")
        .join(scale.rename({"unit": "m_unit", "s": "m_s"}), on="m_unit", how="left")
        .with_columns(
            # Same unit: compare directly. Both time units: convert. Otherwise the pair is dropped.
            pl.when(pl.col("p_unit") == pl.col("m_unit"))
            .then(pl.col("p_value"))
            .when(pl.col("p_s").is_not_null() & pl.col("m_s").is_not_null())
            .then(pl.col("p_value") * pl.col("p_s") / pl.col("m_s"))
            .otherwise(None)
            .alias("predicted")
        )
        .filter(pl.col("predicted").is_not_null() & (pl.col("m_value") > 0))
        .with_columns(((pl.col("predicted") - pl.col("m_value")).abs() / pl.col("m_value") * 100).alias("ape_percent"))
    )


def _once_per_computation(pairs: pl.DataFrame) -> pl.DataFrame:
    """One computation once: a key that aliases another's computation (resnet50.conv1 = resnet50.layer.conv1)
    gives way to the key that names it, for the same tool, hardware, metric and timing."""
    subset = ["tool", "hardware", "computation", "metric", "measured_timing"]
    named = pairs.filter(pl.col("key") == pl.col("computation")).select(subset).unique()
    aliases = pairs.filter(pl.col("key") != pl.col("computation"))
    if aliases.height:
        shadowed = aliases.join(named, on=subset, how="semi", nulls_equal=True).select("tool", "hardware", "key", "metric", "measured_timing")
        pairs = pairs.join(shadowed, on=["tool", "hardware", "key", "metric", "measured_timing"], how="anti", nulls_equal=True,
                           maintain_order="left")
    return pairs


_CLASS_INPUTS = ["tool", "p_class", "p_what", "m_class", "m_tools", "m_what", "published"]


def _classify(pairs: pl.DataFrame) -> pl.DataFrame:
    """Add reference_class/reference_note (the kit's pair_class, once per distinct declaration), scope and computation."""
    combos = pairs.select(_CLASS_INPUTS).unique(maintain_order=True)
    classes = []
    for tool, p_class, p_what, m_class, m_tools, m_what, pub in combos.iter_rows():
        prediction = {"class": p_class, "what": p_what or ""} if p_class else None
        reference = {"class": m_class, "what": m_what or "", "tools": m_tools.split(",") if m_tools else []} if m_class else None
        classes.append(pair_class(tool, prediction, reference, bool(pub)))
    combos = combos.with_columns(pl.Series("reference_class", [c for c, _ in classes], dtype=pl.Utf8),
                                 pl.Series("reference_note", [w for _, w in classes], dtype=pl.Utf8))
    keys = pairs.select("key").unique()
    keys = keys.with_columns(pl.Series("scope", [scope_of(k) for k in keys["key"]], dtype=pl.Utf8),
                             pl.Series("computation", [computation_of(k) for k in keys["key"]], dtype=pl.Utf8))
    return (pairs.join(combos, on=_CLASS_INPUTS, how="left", nulls_equal=True, maintain_order="left")
            .join(keys, on="key", how="left", maintain_order="left"))
