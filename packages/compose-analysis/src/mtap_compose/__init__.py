"""compose-analysis: D2 compositional fidelity from tool-run documents."""

__version__ = "2.0.0"
