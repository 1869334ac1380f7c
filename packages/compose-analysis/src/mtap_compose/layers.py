"""Layer → model: does the sum of per-layer predictions match the measured whole model?

Keys (schemas/README.md): ``<model>.layer.<layer>.<config>`` and ``<model>.model.<config>``,
e.g. ``resnet50.layer.layer1-0-conv1.b1.fp32`` and ``resnet50.model.b1.fp32``.
"""

from __future__ import annotations

import polars as pl

#: Measurement timing preferred when pairing: device time is what kernel-level models predict.
TIMING_PREFERENCE = ["device", "eager-end-to-end"]


#: ``<model>.<scope>.<rest>``: the model is everything before the first ``.layer.`` or ``.model.``, so a
#: model name with dots (``llama-3.1-8b.model.b1.fp16``) stays whole
KEY = r"^(.+?)\.(layer|model)\.(.+)$"


def _split(frame: pl.DataFrame) -> pl.DataFrame:
    parts = pl.col("key").str.extract_groups(KEY)
    rest = pl.col("_rest").str.split(".")
    return frame.with_columns(
        parts.struct.field("1").alias("model"),
        parts.struct.field("2").alias("scope"),
        parts.struct.field("3").alias("_rest"),
    ).with_columns(
        pl.when(pl.col("scope") == "layer")
        .then(rest.list.get(0))
        .otherwise(None)
        .alias("layer"),
        pl.when(pl.col("scope") == "layer")
        .then(rest.list.slice(1).list.join("."))
        .otherwise(pl.col("_rest"))
        .alias("config"),
    ).drop("_rest")


def _measured(frame: pl.DataFrame) -> pl.DataFrame:
    """One measured latency per (hardware, key): the preferred timing available."""
    m = frame.filter((pl.col("backend") == "measured") & (pl.col("kind") == "measurement") & (pl.col("metric") == "latency"))
    rank = pl.col("timing").replace_strict(TIMING_PREFERENCE, list(range(len(TIMING_PREFERENCE))), default=99)
    return (
        m.with_columns(rank.alias("_rank"))
        .sort(["hardware", "key", "_rank"])
        .unique(subset=["hardware", "key"], keep="first", maintain_order=True)
        .select("hardware", "key", pl.col("ms").alias("measured_ms"), pl.col("timing").alias("measured_timing"))
    )


def layer_to_model(frame: pl.DataFrame) -> list[dict]:
    frame = _split(frame.filter(pl.col("key").str.contains(r"\.(layer|model)\.")))
    measured = _measured(frame)
    predicted = frame.filter((pl.col("kind") == "prediction") & (pl.col("metric") == "latency"))
    layers = predicted.filter(pl.col("scope") == "layer").join(measured, on=["hardware", "key"], how="left")
    models = predicted.filter(pl.col("scope") == "model").select("tool", "hardware", "model", "config", pl.col("ms").alias("model_predicted_ms"))
    measured_models = _split(measured).filter(pl.col("scope") == "model").select(
        "hardware", "model", "config", pl.col("measured_ms").alias("measured_model_ms"), pl.col("measured_timing").alias("model_timing")
    )
    grouped = (
        layers.with_columns((pl.col("ms") - pl.col("measured_ms")).abs().truediv(pl.col("measured_ms")).mul(100).alias("ape"))
        .group_by(["tool", "hardware", "model", "config"])
        .agg(
            pl.len().alias("layers"),
            pl.col("measured_ms").is_not_null().sum().alias("layers_measured"),
            pl.col("ms").sum().alias("sum_layers_predicted_ms"),
            pl.col("measured_ms").sum().alias("_sum_measured"),
            pl.col("ape").mean().alias("mean_layer_ape_percent"),
        )
        .join(models, on=["tool", "hardware", "model", "config"], how="left")
        .join(measured_models, on=["hardware", "model", "config"], how="left")
        .sort(["tool", "hardware", "model", "config"])
    )
    out = []
    for r in grouped.iter_rows(named=True):
        meas = r["measured_model_ms"]
        composed = abs(r["sum_layers_predicted_ms"] - meas) / meas * 100 if meas else None
        model_ape = abs(r["model_predicted_ms"] - meas) / meas * 100 if (meas and r["model_predicted_ms"] is not None) else None
        mean_ape = r["mean_layer_ape_percent"]
        out.append({
            "tool": r["tool"],
            "hardware": r["hardware"],
            "model": r["model"],
            "config": r["config"],
            "layers": r["layers"],
            "layers_measured": r["layers_measured"],
            "sum_layers_predicted_ms": r["sum_layers_predicted_ms"],
            "model_predicted_ms": r["model_predicted_ms"],
            "measured_model_ms": meas,
            "sum_layers_measured_ms": r["_sum_measured"] if r["layers_measured"] else None,
            "measured_timing": r["model_timing"] if meas else None,
            "mean_layer_ape_percent": mean_ape,
            "composed_ape_percent": composed,
            "model_ape_percent": model_ape,
            "amplification": composed / mean_ape if (composed is not None and mean_ape) else None,
        })
    return out
