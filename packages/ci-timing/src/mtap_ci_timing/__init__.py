"""ci-timing: GitHub Actions timings per tool, for mtap's deployment-viability report (D4)."""

__version__ = "0.1.0"
