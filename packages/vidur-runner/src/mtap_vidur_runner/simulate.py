"""Build and run one `python -m vidur.main` invocation (offline) and find its output folder."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from mtap_schemas import proc

#: Random-forest settings: one grid point instead of vidur's 27 (which take hours on 2 cores),
#: and the smallest cross-validation vidur's GridSearchCV accepts (with one point it picks nothing).
RF_SETTINGS = {
    "num_estimators": "250",
    "max_depth": "16",
    "min_samples_split": "2",
    "k_fold_cv_splits": "2",
    # vidur's default (2M tokens) costs 18 min and 4.6 GB per cold run for the same results
    "prediction_max_tokens_per_request": "65536",
}


#: Device SKUs vidur 0.0.26 lacks, registered in the vidur process before `vidur.main` runs
#: (BaseDeviceSKUConfig.create_from_type_string matches str(get_type()) against --replica_config_device).
#: total_memory_gb sets the KV-cache capacity (vidur's memory planner); fp16_tflops only the MFU metric.
EXTRA_DEVICE_SKUS = {
    # NVIDIA H200 SXM: 143,771 MiB as nvidia-smi reports it (140 GiB); Hopper compute as vidur's H100 (1000)
    "h200": {"fp16_tflops": 1000, "total_memory_gb": 140},
}

#: The batch-composition file the launcher writes beside vidur's output folder (then moved into it).
COMPOSITION_FILE = "batch_composition.csv"

#: Registers the device SKU named by the variable `sku` ("name:fp16_tflops:total_memory_gb", or "-": none).
LAUNCHER_SKU = """\
if sku != '-':
    # a device SKU vidur lacks: BaseDeviceSKUConfig.create_from_type_string matches str(get_type())
    from dataclasses import make_dataclass, field
    from vidur.config.device_sku_config import BaseDeviceSKUConfig
    name, tflops, mem = sku.split(':')
    # kept in a global: __subclasses__() holds only weak references
    SKU_CLASS = make_dataclass(name.upper() + 'DeviceSKUConfig', [('fp16_tflops', int, field(default=int(tflops))),
                               ('total_memory_gb', int, field(default=int(mem)))], bases=(BaseDeviceSKUConfig,),
                               namespace={'get_type': staticmethod(lambda: name)})
"""

#: `python -c LAUNCHER SKU COMPOSITION ARGS...`: registers SKU (or "-"), records vidur's batches into
#: the CSV file COMPOSITION (or "-"), then runs vidur.main with ARGS.
LAUNCHER = """\
import csv, runpy, sys
sku, composition = sys.argv.pop(1), sys.argv.pop(1)
""" + LAUNCHER_SKU + """\
ROWS = []
if composition != '-':
    # every batch vidur forms: per request, the query tokens and the KV tokens the execution-time
    # predictor is given (blank where vidur's list is shorter than the batch: vidur 0.0.26's orca
    # scheduler appends no KV entry for a newly admitted request, so its predictor never sees that
    # request's attention), the tokens processed before this batch, and the request's arrival (s)
    from vidur.entities.batch import Batch
    _init = Batch.__init__
    def _record(self, *a, **k):
        _init(self, *a, **k)
        kvs = list(self._num_kv_tokens)
        for i, (r, q) in enumerate(zip(self._requests, self._num_q_tokens)):
            ROWS.append((self._id, r.id, q, kvs[i] if i < len(kvs) else '', r.num_processed_tokens,
                         int(not r.is_prefill_complete), r.num_prefill_tokens, repr(float(r.arrived_at))))
    Batch.__init__ = _record
sys.argv[0] = 'vidur.main'
try:
    runpy.run_module('vidur.main', run_name='__main__', alter_sys=True)
finally:
    if composition != '-':
        with open(composition, 'w', newline='') as f:
            w = csv.writer(f, lineterminator='\\n')
            w.writerow(['batch_id', 'request_id', 'num_q_tokens', 'num_kv_tokens', 'num_processed_tokens', 'is_prefill',
                        'request_prefill_tokens', 'arrived_at'])
            w.writerows(ROWS)
"""


def vidur_command(python: str, device: str, args: list[str], composition: Path | None = None) -> list[str]:
    """`python -m vidur.main ARGS`; through the launcher when the device is one vidur lacks
    (registered first) or when the batch composition is to be written to `composition`."""
    sku = EXTRA_DEVICE_SKUS.get(device)
    if sku is None and composition is None:
        return [python, "-m", "vidur.main", *args]
    spec = f"{device}:{sku['fp16_tflops']}:{sku['total_memory_gb']}" if sku else "-"
    return [python, "-c", LAUNCHER, spec, str(composition) if composition else "-", *args]


@dataclass(frozen=True)
class SimCase:
    """The simulator-facing parameters of one case."""

    model: str
    device: str  # vidur device sku: h100, a100
    network_device: str  # vidur node sku: h100_pairwise_nvlink, ...
    scheduler: str  # vllm, sarathi, orca
    qps: float
    num_requests: int
    min_tokens: int
    max_tokens: int
    pd_ratio: float
    seed: int
    chunk_size: int | None = None
    tensor_parallel: int = 1
    pipeline_stages: int = 1
    arrival: str = "poisson"  # or "static": every request at t=0
    #: a serving trace's point as VIDUR's trace-replay CSV (replaces the synthetic generator)
    trace_file: str | None = None
    #: scheduler and cache settings a config sets to match a serving engine (None: VIDUR's defaults)
    batch_size_cap: int | None = None
    block_size: int | None = None
    num_blocks: int | None = None
    max_tokens_in_batch: int | None = None


def vidur_args(case: SimCase, compute_repo: str, network_repo: str, cache_dir: Path, output_dir: Path) -> list[str]:
    """Arguments after `python -m vidur.main` for `case`."""
    a = [
        "--seed", str(case.seed),
        "--replica_config_model_name", case.model,
        "--replica_config_device", case.device,
        "--replica_config_network_device", case.network_device,
        "--replica_config_tensor_parallel_size", str(case.tensor_parallel),
        "--replica_config_num_pipeline_stages", str(case.pipeline_stages),
        "--cluster_config_num_replicas", "1",
        "--replica_scheduler_config_type", case.scheduler,
    ]
    if case.trace_file is not None:
        a += [
            "--request_generator_config_type", "trace_replay",
            "--trace_request_generator_config_trace_file", case.trace_file,
            "--trace_request_generator_config_prefill_scale_factor", "1",
            "--trace_request_generator_config_decode_scale_factor", "1",
            "--trace_request_generator_config_time_scale_factor", "1",
            "--trace_request_generator_config_max_tokens", str(case.max_tokens),
        ]
    else:
        a += _synthetic_args(case)
    return a + _predictor_args(case, compute_repo, network_repo, cache_dir, output_dir)


def _synthetic_args(case: SimCase) -> list[str]:
    a = [
        "--request_generator_config_type", "synthetic",
        "--synthetic_request_generator_config_num_requests", str(case.num_requests),
        "--synthetic_request_generator_config_seed", str(case.seed),
        "--length_generator_config_type", "uniform",
        "--uniform_request_length_generator_config_min_tokens", str(case.min_tokens),
        "--uniform_request_length_generator_config_max_tokens", str(case.max_tokens),
        "--uniform_request_length_generator_config_prefill_to_decode_ratio", repr(float(case.pd_ratio)),
        "--uniform_request_length_generator_config_seed", str(case.seed),
    ]
    if case.arrival == "static":
        a += ["--interval_generator_config_type", "static"]
    else:
        a += [
            "--interval_generator_config_type", "poisson",
            "--poisson_request_interval_generator_config_qps", repr(float(case.qps)),
            "--poisson_request_interval_generator_config_seed", str(case.seed),
        ]
    return a


def _predictor_args(case: SimCase, compute_repo: str, network_repo: str, cache_dir: Path, output_dir: Path) -> list[str]:
    rf = "--random_forrest_execution_time_predictor_config_"
    a = [
        "--execution_time_predictor_config_type", "random_forrest",
        rf + "model_profiling_dataset", compute_repo,
        rf + "network_profiling_dataset", network_repo,
        rf + "cache_dir", str(cache_dir),
    ]
    for k, v in RF_SETTINGS.items():
        a += [rf + k, v]
    if case.scheduler == "sarathi" and case.chunk_size:
        a += ["--sarathi_scheduler_config_chunk_size", str(case.chunk_size)]
    if case.batch_size_cap is not None:
        a += [f"--{case.scheduler}_scheduler_config_batch_size_cap", str(case.batch_size_cap)]
    if case.max_tokens_in_batch is not None and case.scheduler == "vllm":
        a += ["--vllm_scheduler_config_max_tokens_in_batch", str(case.max_tokens_in_batch)]
    if case.block_size is not None:
        a += ["--cache_config_block_size", str(case.block_size)]
    if case.num_blocks is not None:
        a += ["--cache_config_num_blocks", str(case.num_blocks)]
    a += [
        "--metrics_config_output_dir", str(output_dir),
        "--no-metrics_config_store_plots",  # plots need kaleido + Chrome
        "--no-metrics_config_enable_chrome_trace",
        "--metrics_config_keep_individual_batch_metrics",  # writes batch_metrics.csv
        "--metrics_config_store_token_completion_metrics",  # writes the per-token (TBT) distribution
    ]
    return a


def offline_env(base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["HF_HUB_OFFLINE"] = "1"
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    env["WANDB_MODE"] = "disabled"
    env.setdefault("PYTHONHASHSEED", "0")
    return env


@dataclass
class SimResult:
    seconds: float
    output_dir: Path | None  # the timestamped folder vidur wrote
    #: (error kind, message) when the call did not succeed: timeout, out-of-memory, signal or exit status told apart
    error: tuple[str, str] | None


def run_vidur(args: list[str], output_root: Path, python: str | None = None, timeout: float | None = None,
              device: str | None = None, composition: bool = False) -> SimResult:
    """Run vidur into a fresh `output_root` (vidur writes a timestamped folder inside it), in its
    own process group through mtap_schemas.proc: a timeout kills the whole group. With
    `composition`, vidur's batches are recorded and written into that folder as COMPOSITION_FILE."""
    output_root.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in output_root.iterdir()}
    comp = output_root / COMPOSITION_FILE if composition else None
    cmd = vidur_command(python or sys.executable, device or "", args, comp)
    result = proc.run_tool(cmd, timeout=timeout, env=offline_env())
    new = sorted(p for p in output_root.iterdir() if p.name not in before and p.is_dir())
    if comp is not None and comp.is_file() and new:
        os.replace(comp, new[-1] / COMPOSITION_FILE)
    error = None
    if not result.ok:
        kind, message = result.error(timeout)
        error = (kind, f"python -m vidur.main: {message}")
    elif not new:
        error = ("parse-failed", f"python -m vidur.main exited 0 but wrote no output folder under {output_root.name}")
    return SimResult(result.seconds, new[-1] if new else None, error)
