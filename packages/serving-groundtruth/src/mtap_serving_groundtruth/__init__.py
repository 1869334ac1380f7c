"""serving-groundtruth: a real continuous-batching engine's request latencies on W5's trace."""

__version__ = "0.1.0"
