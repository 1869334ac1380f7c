"""The long table (one row per metric of each case) and what is derived from it with polars."""

from __future__ import annotations

import polars as pl

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


def coverage(rows: pl.DataFrame) -> pl.DataFrame:
    """Case counts per tool and workload, by status (each case counted once)."""
    cases = rows.unique(subset=["tool", "source", "case"], keep="first", maintain_order=True)
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
    workload is reported.
    """
    ok = rows.filter((pl.col("status") == "ok") & pl.col("key").is_not_null() & pl.col("value").is_not_null())
    published = (pl.col("tool") == PUBLISHED) & (pl.col("timing") == "reported")
    # a tool's output: its predictions, and what it derives from them (e.g. latency = cycles / clock)
    predicted = ok.filter(pl.col("kind").is_in(["prediction", "derived"]) & ~pl.col("backend").is_in(["measured", "replayed"])
                          & ~published)
    # our ground truth, and published silicon measurements with their citation (tool `published`);
    # a replayed timeline (a simulator's schedule re-run with measured batch times) is a reference of
    # its own: its timing says so ("device (replayed)"), so its rows never mix with direct measurements
    measured = ok.filter((pl.col("kind") == "measurement") & (pl.col("backend").is_in(["measured", "replayed"]) | published))
    measured = measured.with_columns(
        pl.when(pl.col("backend") == "replayed").then(pl.col("timing") + " (replayed)").otherwise(pl.col("timing")).alias("timing"))
    # the ground truth's own spread per measurement: metric "<name>_spread" = (p90 - p10) / median
    spread = (
        ok.filter((pl.col("backend") == "measured") & pl.col("metric").str.ends_with("_spread") & (pl.col("unit") == "1"))
        .select("hardware", "key", pl.col("metric").str.strip_suffix("_spread").alias("metric"),
                pl.col("timing").alias("measured_timing"), pl.col("value").alias("measured_spread"))
        .unique(subset=["hardware", "key", "metric", "measured_timing"], keep="first", maintain_order=True)
    )
    join_on = ["hardware", "key", "metric"]
    pairs = predicted.select(
        "tool", "workload", *join_on, pl.col("value").alias("p_value"), pl.col("unit").alias("p_unit")
    ).join(
        measured.select(*join_on, pl.col("value").alias("m_value"), pl.col("unit").alias("m_unit"), pl.col("timing").alias("measured_timing")),
        on=join_on,
        how="inner",
    )
    scale = pl.DataFrame({"unit": list(TIME_UNITS), "s": list(TIME_UNITS.values())})
    pairs = (
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
    pairs = pairs.join(spread, on=["hardware", "key", "metric", "measured_timing"], how="left", nulls_equal=True,
                       maintain_order="left")
    finite = pairs.filter(pl.col("predicted").is_finite() & pl.col("ape_percent").is_finite())
    if dropped is not None:  # a unit conversion can overflow (1e308 s in ms): no finite error for such a pair
        dropped.append(pairs.height - finite.height)
    pairs = (
        finite
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
        )
    )
    return pairs.sort(["tool", "workload", "hardware", "key", "metric", "measured_timing"], nulls_last=True)


def mape(errors: pl.DataFrame) -> pl.DataFrame:
    """Mean absolute percentage error per tool, workload, hardware and measurement timing."""
    return (
        errors.group_by(["tool", "workload", "hardware", "measured_timing"])
        .agg(pl.len().alias("pairs"), pl.col("ape_percent").mean().alias("mape_percent"))
        .sort(["tool", "workload", "hardware", "measured_timing"], nulls_last=True)
    )
