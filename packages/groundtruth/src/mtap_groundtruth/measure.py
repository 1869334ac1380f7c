"""Single-device measurements (suites ``single`` and ``neusight``): builds each case's
computation with random weights, counts its FLOPs on the meta device, times it eagerly and
through CUDA-graph replays, and returns the case's metrics."""

from __future__ import annotations

import copy
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

import mtap_schemas.toolrun as tr

from . import stats, timing
from .cases import Case
from .flops import count_flops
from .models import CNNS, CONFIGS, TINY, build_transformer, cnn_layers, init_random_, resnet50

DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


@dataclass
class Settings:
    device: torch.device
    iters: int = 50
    warmup: int = 10
    tiny: bool = False
    tf32: bool = False
    graphs: bool = True  # device time through CUDA graphs (off: eager only, e.g. for NeuSight's eager labels)


@dataclass
class Work:
    """One case's computation: ``infer`` (timed as ``latency``), optional ``train``
    (forward + backward, timed as ``forward_backward_latency``), and parameters describing it."""

    infer: Callable[[], object]
    train: Callable[[], object] | None = None
    params: dict[str, Any] = field(default_factory=dict)


def configure_backends(settings: Settings) -> None:
    """fp32 means true fp32 unless --tf32 (TF32 off for matmuls and cuDNN, as NeuSight measured)."""
    torch.backends.cuda.matmul.allow_tf32 = settings.tf32
    torch.backends.cudnn.allow_tf32 = settings.tf32
    torch.set_float32_matmul_precision("high" if settings.tf32 else "highest")
    torch.backends.cudnn.benchmark = settings.device.type == "cuda"


class Bench:
    """Builds computations; keeps the last model so cases that share it don't rebuild it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._model_key: tuple | None = None
        self._model: nn.Module | None = None
        self._meta: dict[tuple, nn.Module] = {}

    # -- models -----------------------------------------------------------------
    def _build(self, name: str, dtype: torch.dtype, device: torch.device, attention: str = "sdpa") -> nn.Module:
        if attention == "eager":  # the Hugging Face model NeuSight traces, its own initialisation, built in place
            from . import hf

            return hf.build(name, dtype, device, tiny=self.settings.tiny)
        with torch.device("meta"):
            if name in CNNS:
                model = CNNS[name]()
            else:
                cfg = (TINY if self.settings.tiny else CONFIGS)[name]
                model = build_transformer(cfg)
        model = model.to(dtype=dtype).eval()
        if device.type == "meta":
            return model
        model = model.to_empty(device=device)
        return init_random_(model)

    def model(self, name: str, dtype: torch.dtype, device: torch.device, attention: str = "sdpa") -> nn.Module:
        key = (name, dtype, device.type, attention)
        if device.type == "meta":
            if key not in self._meta:
                self._meta[key] = self._build(name, dtype, device, attention)
            return self._meta[key]
        if self._model_key != key:
            self.release()
            self._model = self._build(name, dtype, device, attention)
            self._model_key = key
        assert self._model is not None
        return self._model

    def release(self) -> None:
        self._model = None
        self._model_key = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # -- computations -----------------------------------------------------------
    def work(self, case: Case, device: torch.device) -> Work:
        p = case.params
        dtype = DTYPES[p["dtype"]]
        tiny = self.settings.tiny
        gen = torch.Generator(device="cpu").manual_seed(1234)

        def randn(*shape: int) -> torch.Tensor:
            if device.type == "meta":
                return torch.empty(shape, dtype=dtype, device=device)
            return torch.randn(shape, generator=gen, dtype=torch.float32).to(device=device, dtype=dtype)

        def randint(high: int, *shape: int) -> torch.Tensor:
            if device.type == "meta":
                return torch.empty(shape, dtype=torch.long, device=device)
            return torch.randint(high, shape, generator=gen).to(device)

        if case.kind in ("conv1", "layer"):
            image = 32 if tiny else 224
            batch = min(p["batch"], 2) if tiny else p["batch"]
            ordered = cnn_layers(p.get("model", "resnet50"), batch, image)
            layers = {n: (m, s) for n, m, s in ordered}
            meta_mod, shape = layers[p["layer"]]
            mod = copy.deepcopy(meta_mod).to(dtype=dtype)
            if device.type != "meta":
                mod = init_random_(mod.to_empty(device=device))
            x = randn(*shape)
            with torch.device("meta"):
                out_shape = tuple(meta_mod(torch.empty(shape)).shape)
            grad_out = randn(*out_shape)
            needs_input_grad = p["layer"] != ordered[0][0]  # the first layer's input is the image: no gradient
            xg = x.detach().clone().requires_grad_(needs_input_grad)
            wrt = [xg] if needs_input_grad else []
            wrt += [prm for prm in mod.parameters()]
            if device.type == "meta":  # grads of meta leaves stay meta; nothing to reset
                pass

            def infer() -> object:
                with torch.no_grad():
                    return mod(x)

            def train() -> object:
                # As a training step after zero_grad(set_to_none=True): gradients are written,
                # not accumulated (input gradient for every layer but conv1, weight and bias).
                for t in wrt:
                    t.grad = None
                mod(xg).backward(grad_out)
                return None

            desc = {"input_shape": "x".join(map(str, shape)), "output_shape": "x".join(map(str, out_shape)), "module": type(mod).__name__}
            if isinstance(mod, nn.Conv2d):
                desc.update(in_channels=mod.in_channels, out_channels=mod.out_channels, kernel=mod.kernel_size[0], stride=mod.stride[0], padding=mod.padding[0])
                if mod.groups != 1:
                    desc["groups"] = mod.groups
            # forward+backward only for ResNet-50's layers (ASTRA-sim's per-layer training compute);
            # W8/W9 are inference workloads (and the FLOP counter overcounts grouped convs' backward)
            return Work(infer, train if p.get("model", "resnet50") == "resnet50" else None, desc)

        if case.kind in ("resnet50", "cnn"):
            image = 32 if tiny else 224
            batch = min(p["batch"], 2) if tiny else p["batch"]
            model = self.model(p["model"], dtype, device)
            x = randn(batch, 3, image, image)

            def infer_resnet() -> object:
                with torch.no_grad():
                    return model(x)

            return Work(infer_resnet, None, {"image": image, "batch_run": batch})

        if case.kind == "transformer":
            batch = min(p["batch"], 2) if tiny else p["batch"]
            seq = min(p["seq"], 32) if tiny else p["seq"]
            if p.get("attention") == "eager":
                from . import hf

                hf_model = self.model(p["model"], dtype, device, "eager")
                ids = randint(hf_model.config.vocab_size, batch, seq)
                mask = torch.ones(batch, seq, device=device) if hf.needs_mask(hf_model) else None

                def infer_hf() -> object:
                    with torch.no_grad():
                        return hf.forward(hf_model, ids, mask)

                return Work(infer_hf, None, hf.describe(hf_model, p["model"]) | {"batch_run": batch, "seq_run": seq})
            model = self.model(p["model"], dtype, device)
            cfg = model.cfg
            ids = randint(cfg.vocab, batch, seq)

            def infer_tf() -> object:
                with torch.no_grad():
                    return model(ids)

            return Work(infer_tf, None, _cfg_params(cfg) | {"batch_run": batch, "seq_run": seq,
                                                            "definition": f"mtap_groundtruth.models.{type(model).__name__} (F.scaled_dot_product_attention)"})

        if case.kind in ("prefill", "decode"):
            model = self.model("llama2-7b", dtype, device)
            cfg = model.cfg
            if case.kind == "prefill":
                tokens = min(p["tokens"], 32) if tiny else p["tokens"]
                ids = randint(cfg.vocab, 1, tokens)

                def infer_prefill() -> object:
                    with torch.no_grad():
                        return model.prefill(ids)

                return Work(infer_prefill, None, _cfg_params(cfg) | {"tokens_run": tokens, "logits": "last-token"})
            batch = min(p["batch"], 2) if tiny else p["batch"]
            kv = min(p["kv"], 32) if tiny else p["kv"]
            ids = randint(cfg.vocab, batch, 1)
            if device.type == "meta":
                cache = [(torch.empty(batch, cfg.heads, kv + 1, cfg.hidden // cfg.heads, dtype=dtype, device=device),) * 2 for _ in model.layers]
            else:
                cache = model.new_cache(batch, kv + 1, dtype, device)

            def infer_decode() -> object:
                with torch.no_grad():
                    return model.decode(ids, cache, kv)

            return Work(infer_decode, None, _cfg_params(cfg) | {"batch_run": batch, "kv_run": kv, "kv_cache_bytes": 2 * len(cache) * cache[0][0].numel() * cache[0][0].element_size()})

        raise ValueError(f"case {case.key}: kind {case.kind!r} is not a single-device case")


def _cfg_params(cfg: Any) -> dict[str, Any]:
    return {"hidden": cfg.hidden, "layers": cfg.layers, "heads": cfg.heads, "ffn": cfg.ffn, "vocab": cfg.vocab, "lm_head": cfg.lm_head}


def flop_metrics(bench: Bench, case: Case) -> tuple[int, int | None]:
    meta = torch.device("meta")
    work = bench.work(case, meta)
    fwd = count_flops(work.infer)
    train = count_flops(work.train) if work.train is not None else None
    return fwd, train


def measure(bench: Bench, case: Case) -> tuple[list[dict], dict[str, Any]]:
    """Time one case; returns (metrics, extra parameters). Raises on failure."""
    s = bench.settings
    dev = s.device
    fwd_flops, train_flops = flop_metrics(bench, case)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    work = bench.work(case, dev)
    metrics: list[dict] = []
    params: dict[str, Any] = dict(work.params)
    params["device"] = dev.type
    params["tf32"] = s.tf32 if case.params.get("dtype") == "fp32" else False
    if s.tiny:
        params["tiny"] = True

    def series(fn: Callable[[], object], name: str, flops: int) -> None:
        eager_ms = timing.eager(fn, dev, s.warmup, s.iters)
        device_ms = None
        if dev.type == "cuda" and s.graphs:
            reps = timing.reps_for(stats.percentile(eager_ms, 50))
            params[f"{name}_graph_reps"] = reps
            device_ms = timing.graph(fn, dev, s.warmup, s.iters, reps)
            metrics.extend(stats.time_metrics(device_ms, "device", name))
        metrics.extend(stats.time_metrics(eager_ms, "eager-end-to-end", name))
        prefix = "" if name == "latency" else name.removesuffix("_latency") + "_"
        basis = device_ms if device_ms is not None else eager_ms
        med = stats.percentile(basis, 50)
        if flops and med > 0:
            metrics.append(tr.metric(f"{prefix}achieved_flops", round(flops / (med / 1e3), 1), "FLOP/s", "derived",
                                     timing="device" if device_ms is not None else "eager-end-to-end"))

    series(work.infer, "latency", fwd_flops)
    metrics.append(tr.metric("flops", fwd_flops, "FLOP", "derived"))
    if work.train is not None:
        series(work.train, "forward_backward_latency", train_flops or 0)
        metrics.append(tr.metric("forward_backward_flops", train_flops or 0, "FLOP", "derived"))
    if dev.type == "cuda":
        metrics.append(tr.metric("peak_memory", int(torch.cuda.max_memory_allocated(dev)), "B", "measurement"))
    del work
    return metrics, params


def run_cases(cases: list[Case], settings: Settings, hardware: str, progress: Callable[[Case], None] | None = None,
              deadline: float | None = None, on_case: Callable[[Case, dict], None] | None = None,
              common: dict[str, Any] | None = None) -> list[dict]:
    """Measure each case into a tool-run case (``mtap_schemas.toolrun`` constructors); a case that
    raises becomes a ``failed`` case naming the error. ``common`` parameters go into every case;
    ``on_case(case, result)`` is called after each case (the CLI checkpoints there)."""
    configure_backends(settings)
    if settings.device.type == "cpu":
        torch.set_num_threads(1)  # OpenMP spinning on a shared host distorts CPU smoke timings badly
    bench = Bench(settings)
    common = dict(common or {})
    out = []
    for case in cases:
        base = {"workload": case.workload, "hardware": hardware, "key": case.key}
        params = dict(case.params)
        if deadline is not None and time.monotonic() > deadline:
            result = tr.failed(case.case_id(hardware), **base, parameters=_params(params | common), kind="timeout",
                               message="not measured: the run's --time-budget was spent before this case")
        else:
            try:
                metrics, extra = measure(bench, case)
                result = tr.ok(case.case_id(hardware), **base, parameters=_params(params | extra | common), metrics=metrics)
            except Exception as exc:  # noqa: BLE001 - one broken case must not lose the others
                msg = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
                kind = "out-of-memory" if "out of memory" in msg.lower() else "measurement-failed"
                result = tr.failed(case.case_id(hardware), **base, parameters=_params(params | {"device": settings.device.type} | common),
                                   kind=kind, message=msg)
                if settings.device.type == "cuda":
                    bench.release()
        out.append(result)
        if progress:
            progress(case)
        if on_case:
            on_case(case, result)
    bench.release()
    return out


def _params(p: dict[str, Any]) -> dict[str, Any]:
    return dict(sorted(p.items()))


def resnet50_train_flops(batch: int, image: int = 224) -> int:
    """FLOPs of one ResNet-50 training step's forward and backward (meta device)."""
    import torch.nn.functional as F

    with torch.device("meta"):
        model = resnet50().train()
        x = torch.empty(batch, 3, image, image)
        y = torch.zeros(batch, dtype=torch.long)

        def step() -> None:
            F.cross_entropy(model(x), y).backward()

        return count_flops(step)
