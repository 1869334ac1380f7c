"""nnmeter-runner: nn-Meter 2.0 (PyPI) kernel detection and latency prediction as an mtap runner."""

__version__ = "2.0.0"
