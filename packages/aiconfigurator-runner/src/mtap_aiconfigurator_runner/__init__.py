"""aiconfigurator-runner: AIConfigurator 0.12.0 (NVIDIA Dynamo, PyPI) latency predictions as an mtap runner."""

__version__ = "1.0.0"
