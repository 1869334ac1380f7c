"""``ort_cpu``: an nn-Meter customized backend (nn-Meter docs, builder/prepare_backend.md: a
``BaseBackend`` subclass with a profiler and a parser, registered with
``nn-meter register --backend META.yaml``) that times ONNX models with ONNX Runtime on this CPU.

Its profiler is ``ortprofile.measure`` (the code that measured the committed kernels on the
device machine). Import this module only where nn-Meter may be imported (a worker with a private
HOME: registering writes ``~/.nn_meter/config/registry.yaml``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nn_meter.builder.backend_meta.utils import Latency, ProfiledResults
from nn_meter.builder.backends import BaseBackend, BaseParser, BaseProfiler

from . import ortprofile

NAME = "ort_cpu"


class OrtCpuProfiler(BaseProfiler):
    def __init__(self, threads: int = 1, timing: dict[str, Any] | None = None) -> None:
        self.threads = threads
        self.timing = dict(timing or ortprofile.KERNEL_TIMING)
        #: model path -> the full statistics of its runs (nn-Meter keeps only Latency(median, std))
        self.records: dict[str, dict[str, Any]] = {}

    def profile(self, model_path: str, **kwargs: Any) -> str:
        stats = ortprofile.measure(Path(model_path).read_bytes(), [self.threads], **self.timing)[f"t{self.threads}"]
        self.records[str(model_path)] = stats
        return json.dumps(stats)


class OrtCpuParser(BaseParser):
    def __init__(self) -> None:
        self.latency = Latency()
        self.stats: dict[str, Any] = {}

    def parse(self, content: str) -> OrtCpuParser:
        self.stats = json.loads(content)
        # nn-Meter's label is Latency(avg, std); the median is the robust centre of the runs
        self.latency = Latency(self.stats["median"], self.stats["std"])
        return self

    @property
    def results(self) -> ProfiledResults:
        return ProfiledResults({"latency": self.latency})


class OrtCpuBackend(BaseBackend):
    profiler_class = OrtCpuProfiler
    parser_class = OrtCpuParser

    def update_configs(self) -> None:
        configs = self.configs or {}
        self.parser_kwargs = {}
        self.profiler_kwargs = {"threads": int(configs.get("THREADS", 1))}
        if configs.get("TIMING"):  # ortprofile.time_session's arguments (default: KERNEL_TIMING)
            self.profiler_kwargs["timing"] = dict(configs["TIMING"])

    def convert_model(self, model_path: str, save_path: str, input_shape: Any = None) -> str:
        return model_path  # kernels are already ONNX

    def test_connection(self) -> None:
        import onnxruntime

        assert "CPUExecutionProvider" in onnxruntime.get_available_providers()


def meta(package_location: str, config_file: str) -> dict[str, Any]:
    """The registration file ``nn-meter register --backend`` reads."""
    return {
        "builtin_name": NAME,
        "package_location": package_location,
        "class_module": "mtap_nnmeter_runner.backend",
        "class_name": "OrtCpuBackend",
        "defaultConfigFile": config_file,
    }
