"""genz-runner: GenZ (genz-llm) as an mtap runner."""

__version__ = "1.0.0"
