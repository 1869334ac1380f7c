"""timeloop-runner: runs NVlabs Timeloop's mapper on mtap's accelerator workloads."""

__version__ = "2.0.0"
