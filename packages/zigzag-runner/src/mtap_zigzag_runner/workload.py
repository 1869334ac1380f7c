"""A layer as a ZigZag workload layer (the dict form of ZigZag's YAML workload)."""

from __future__ import annotations

from mtap_schemas.layers import Layer

EQUATION = "O[b][k][oy][ox]+=W[k][c][fy][fx]*I[b][c][iy][ix]"


def zigzag_layer(layer: Layer, precision: dict[str, int], layer_id: int = 0) -> dict:
    """ZigZag's loop names: B batch, K output and C input channels, OY/OX output rows/columns,
    FY/FX filter rows/columns; the input extent follows from stride and padding."""
    d = layer.dims
    s = layer.stride
    out = {
        "id": layer_id,
        "name": layer.name,
        "operator_type": "Conv",
        "equation": EQUATION,
        "dimension_relations": [f"ix={s}*ox+1*fx", f"iy={s}*oy+1*fy"],
        "loop_dims": ["B", "K", "C", "OY", "OX", "FY", "FX"],
        "loop_sizes": [d["N"], d["M"], d["C"], d["Q"], d["P"], d["S"], d["R"]],
        "operand_precision": dict(precision),
        "operand_source": {"I": 0},
    }
    if layer.padding:
        # Padding before the first row/column as the model pads; after the last one only as
        # much as the output grid actually reads (224 + 3 + 2 = 229 for conv1).
        p, h = layer.padding, layer.in_hw
        after_x = (d["P"] - 1) * s + d["R"] - h - p
        after_y = (d["Q"] - 1) * s + d["S"] - h - p
        out["pr_loop_dims"] = ["IX", "IY"]
        out["pr_loop_sizes"] = [h, h]
        out["padding"] = [[p, after_x], [p, after_y]]
    return out
