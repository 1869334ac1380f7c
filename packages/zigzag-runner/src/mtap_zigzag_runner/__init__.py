"""zigzag-runner: runs KU Leuven's ZigZag (zigzag-dse) on mtap's accelerator workloads."""

__version__ = "2.1.0"
