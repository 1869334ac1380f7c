"""mtap runner for ASTRA-sim 2.0's analytical network backend."""

__version__ = "2.1.0"
