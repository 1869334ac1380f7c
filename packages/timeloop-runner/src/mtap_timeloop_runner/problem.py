"""Timeloop problem specifications (v0.3 YAML) for one layer, with the CNN-layer shape inline so
no file of the Timeloop installation is needed."""

from __future__ import annotations

from mtap_schemas.layers import Layer

_SHAPE = """\
  shape:
    name: CNN-Layer
    dimensions: [C, M, R, S, N, P, Q]
    coefficients:
      - {name: Wstride, default: 1}
      - {name: Hstride, default: 1}
      - {name: Wdilation, default: 1}
      - {name: Hdilation, default: 1}
    data-spaces:
      - name: Weights
        projection:
          - [[C]]
          - [[M]]
          - [[R]]
          - [[S]]
      - name: Inputs
        projection:
          - [[N]]
          - [[C]]
          - [[R, Wdilation], [P, Wstride]]
          - [[S, Hdilation], [Q, Hstride]]
      - name: Outputs
        projection:
          - [[N]]
          - [[M]]
          - [[Q]]
          - [[P]]
        read-write: True
"""


def problem_yaml(layer: Layer) -> str:
    """The problem file for ``layer``: its seven loop bounds and its stride (padding is not
    modelled by Timeloop; the input extent follows from P, R and the stride)."""
    d = layer.dims
    inst = ", ".join(f"{k}: {d[k]}" for k in ("C", "M", "R", "S", "N", "P", "Q"))
    return (
        f"# {layer.model} {layer.name}: {layer.macs} MACs\n"
        "problem:\n"
        f"{_SHAPE}"
        f"  instance: {{{inst}, Wstride: {layer.stride}, Hstride: {layer.stride}, Wdilation: 1, Hdilation: 1}}\n"
    )
