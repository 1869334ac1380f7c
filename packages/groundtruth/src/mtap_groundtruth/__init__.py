"""groundtruth: measured latencies of mtap's workloads on real GPUs (PyTorch, random weights)."""

__version__ = "0.4.0"
