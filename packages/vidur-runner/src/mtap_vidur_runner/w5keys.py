"""VIDUR's execution-time prediction at the ground truth's static W5 keys (issue 30: the W5 cross-tool table).

The ground truth (packages/groundtruth, suite ``single``) times Llama-2-7B's whole forward pass at
``llama2-7b.prefill.b1.t<T>.fp16`` (one request of T prompt tokens) and
``llama2-7b.decode.b<B>.kv<KV>.fp16`` (one decode step of B sequences with KV cached tokens each,
attending over KV + 1). VIDUR predicts only batches its scheduler forms, so each key is one
VIDUR simulation of a trace (VIDUR's own ``trace_replay`` generator, its vllm scheduler and
random-forest predictor at the settings of every other vidur-runner document) built so that the
scheduler forms exactly that batch, and the key's value is VIDUR's predicted
``batch_execution_time`` of that one batch (``batch_metrics.csv``), its composition read from the
launcher's ``batch_composition.csv`` (the lists VIDUR's predictor was given) and checked:

- prefill T: one request of T prompt tokens and 1 output token; the only batch is its prefill
  (one request, T query tokens, KV T).
- decode B x KV: B requests at t = 0 with KV - 1 prompt tokens and 2 output tokens. VIDUR counts
  the token its prefill produces as processed, so each request has KV tokens processed when its
  one decode iteration runs; the vllm scheduler runs every prefill first, then one pure decode
  batch of the B requests, 1 query token and KV + 1 KV tokens each (the ground truth's attention
  length). A simulation whose batches do not contain exactly that batch is ``failed``.

VIDUR's batch time is its model time: the 32 decoder layers' operators; VIDUR leaves out the
embedding and the LM head (``vidur/entities/execution_time.py``), which the ground truth's forward
pass includes (the LM head on the last token).
"""

from __future__ import annotations

import json
import lzma
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

import mtap_schemas.toolrun as tr
from mtap_schemas.cli import RunOptions, UserError, finish, run_options
from mtap_schemas.paths import relative_to_repo

from . import cases as cases_mod
from . import simulate

NAME = "vidur-w5-keys"
HARDWARE = ("H100-SXM5-80GB", "H200-SXM-141GB")
PREFILL_TOKENS = (128, 256, 512, 1024, 2048)
DECODE_BATCHES = (1, 2, 4, 8, 16, 32)
DECODE_KV = (512, 1024, 2048)
SCHEDULER = "vllm"  # VIDUR's default replica scheduler, as the committed vidur-serving-defaults run
#: the files each case's value is read from, kept (xz) under --keep-raw
KEPT = ("batch_metrics.csv", "batch_composition.csv")


@dataclass(frozen=True)
class KeyCase:
    hardware: str
    phase: str  # "prefill" or "decode"
    batch: int
    tokens: int  # prefill: prompt tokens; decode: cached KV tokens

    @property
    def key(self) -> str:
        if self.phase == "prefill":
            return f"{cases_mod.MODEL_KEY}.prefill.b{self.batch}.t{self.tokens}.fp16"
        return f"{cases_mod.MODEL_KEY}.decode.b{self.batch}.kv{self.tokens}.fp16"

    @property
    def id(self) -> str:
        return f"{self.hardware}:{self.key}"

    @property
    def device(self) -> str:
        return cases_mod.HARDWARE[self.hardware][0]

    @property
    def slug(self) -> str:
        return f"{self.device}-{self.phase}-b{self.batch}-{'t' if self.phase == 'prefill' else 'kv'}{self.tokens}"

    @property
    def prompt_tokens(self) -> int:
        return self.tokens if self.phase == "prefill" else self.tokens - 1

    @property
    def output_tokens(self) -> int:
        return 1 if self.phase == "prefill" else 2

    def point(self) -> dict[str, Any]:
        """The trace: every request at t = 0."""
        return {
            "id": self.slug,
            "arrival": "static",
            "qps": None,
            "requests": [
                {"id": i, "arrival_s": 0.0, "prompt_tokens": self.prompt_tokens, "output_tokens": self.output_tokens}
                for i in range(self.batch)
            ],
        }

    def expected(self) -> tuple[bool, int, int, int]:
        """The batch whose time is the key's value: (is_prefill, requests, query tokens each, KV tokens each)."""
        if self.phase == "prefill":
            return True, 1, self.tokens, self.tokens
        return False, self.batch, 1, self.tokens + 1

    def composition(self) -> str:
        """The batch as vidur-batches keys name compositions (replay.Batch.exact_key)."""
        pre, n, q, kv = self.expected()
        return f"p{q}x{kv}" if pre else f"d{n}x{kv}"

    def parameters(self) -> dict[str, Any]:
        pre, n, q, kv = self.expected()
        out = {
            "model": cases_mod.MODEL_KEY,
            "phase": self.phase,
            "batch": self.batch,
            "dtype": "fp16",
            "tensor_parallel": 1,
            "pipeline_parallel": 1,
            "scheduler": SCHEDULER,
            "variant": "defaults",
            "request_generator": "trace_replay",
            "trace_requests": self.batch,
            "trace_arrival": "all at t = 0",
            "trace_prompt_tokens": self.prompt_tokens,
            "trace_output_tokens": self.output_tokens,
            "batch_read": "the prefill batch (the simulation's only batch)"
            if pre
            else "the one decode batch (after every request's prefill batch)",
            "batch_composition": self.composition(),
            "batch_requests": n,
            "batch_q_tokens_each": q,
            "batch_kv_tokens_each": kv,
            "vidur_model_time": "32 decoder layers; no embedding or LM head (vidur/entities/execution_time.py)",
        }
        out["tokens" if pre else "kv"] = self.tokens
        return out

    def plan(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "workload": cases_mod.WORKLOAD, "hardware": self.hardware, "parameters": self.parameters()}


def build_cases(hardware: tuple[str, ...] = HARDWARE) -> list[KeyCase]:
    out = []
    for hw in hardware:
        out += [KeyCase(hw, "prefill", 1, t) for t in PREFILL_TOKENS]
        out += [KeyCase(hw, "decode", b, kv) for b in DECODE_BATCHES for kv in DECODE_KV]
    return out


def _common(c: KeyCase) -> dict[str, Any]:
    return {"workload": cases_mod.WORKLOAD, "hardware": c.hardware, "key": c.key, "parameters": c.parameters()}


class CompositionError(Exception):
    """VIDUR's batches do not include the batch a key names."""


def find_batch(c: KeyCase, outdir: Path):
    """The one batch of ``outdir`` (a vidur output folder) that is the key's composition (replay.Batch)."""
    from .replay import ReplayError, read_batches

    try:
        batches = read_batches(outdir / simulate.COMPOSITION_FILE, outdir / "batch_metrics.csv")
    except ReplayError as exc:
        raise CompositionError(str(exc)) from None
    pre, n, q, kv = c.expected()
    hits = [b for b in batches if len(b.rows) == n and all(r.is_prefill == pre and r.q == q and r.kv == kv for r in b.rows)]
    if len(hits) != 1:
        formed = ", ".join(f"{b.id}:{b.exact_key}" for b in batches[:8]) + (" ..." if len(batches) > 8 else "")
        raise CompositionError(
            f"vidur formed {len(hits)} batches of composition {c.composition()} "
            f"({'prefill' if pre else 'decode'}), expected 1; its batches: {formed}"
        )
    return hits[0], len(batches)


@dataclass(frozen=True)
class Unit:
    case: KeyCase
    compute_repo: str
    network_repo: str
    cache: str
    python: str
    timeout: float
    profile: str
    keep_dir: str | None = None

    @property
    def ident(self) -> str:
        return self.case.id


def _kept(c: KeyCase, outdir: Path, keep_dir: Path | None) -> list[dict]:
    refs = []
    for rel in KEPT:
        src = outdir / rel
        if keep_dir is None:
            refs.append(tr.artifact(src, name=f"vidur-output/{rel}"))
            continue
        dst = keep_dir / c.slug / (rel + ".xz")
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(lzma.compress(src.read_bytes(), preset=9))
        refs.append(tr.artifact(dst, name=f"{relative_to_repo(keep_dir)}/{c.slug}/{dst.name}"))
    return refs


def run_unit(u: Unit) -> dict[str, Any]:
    """One vidur simulation; the key's case (``ok`` with VIDUR's predicted time of the batch, or failed)."""
    from . import trace as trace_mod
    from .cli import profile_independence

    c = u.case
    with tempfile.TemporaryDirectory(prefix=f"mtap-vidur-{c.slug}-") as tmp:
        trace_file = Path(tmp) / "trace.csv"
        trace_mod.write_trace_csv(c.point(), trace_file)
        sc = simulate.SimCase(
            cases_mod.MODEL,
            c.device,
            cases_mod.HARDWARE[c.hardware][1],
            SCHEDULER,
            0.0,
            c.batch,
            1,
            4096,
            1.0,
            cases_mod.DEFAULTS["seed"],
            arrival="static",
            trace_file=str(trace_file),
        )
        out_root = Path(tmp) / "out"
        args = simulate.vidur_args(sc, u.compute_repo, u.network_repo, Path(u.cache), out_root)
        res = simulate.run_vidur(args, out_root, python=u.python, timeout=u.timeout, device=c.device, composition=True)
        if res.error is not None or res.output_dir is None:
            kind, message = res.error or ("parse-failed", "vidur wrote no output folder")
            return {"case": tr.from_error(c.id, kind=kind, message=message, **_common(c))}
        try:
            batch, n_batches = find_batch(c, res.output_dir)
        except CompositionError as exc:
            return {"case": tr.failed(c.id, kind="parse-failed", message=str(exc), **_common(c))}
        ms = batch.predicted_s * 1e3
        if not ms > 0:
            return {
                "case": tr.failed(
                    c.id, kind="invalid-value", message=f"batch {batch.id}: batch_execution_time {batch.predicted_s}", **_common(c)
                )
            }
        params = {**c.parameters(), "batch_id": batch.id, "simulation_batches": n_batches}
        case = tr.ok(
            c.id,
            workload=cases_mod.WORKLOAD,
            hardware=c.hardware,
            key=c.key,
            parameters=params,
            metrics=[tr.metric("latency", round(ms, 6), "ms", "prediction", timing="simulated")],
            artifacts=_kept(c, res.output_dir, Path(u.keep_dir) if u.keep_dir else None),
            independence=profile_independence(u.profile),
        )
    return {"case": case}


@click.command("w5-keys")
@run_options(
    tool="vidur",
    output="data/evaluation/vidur",
    timeout=600,
    tool_path_help="A Python interpreter (or virtualenv folder) that has vidur installed.  [default: this interpreter]",
)
@click.option("--hardware", "hardware", multiple=True, type=click.Choice(HARDWARE), default=HARDWARE, show_default=True)
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where the HF-cache layout and vidur's trained predictors live.  [default: $MTAP_VIDUR_CACHE or ~/.cache/mtap/vidur]",
)
@click.option("--key", "keys", multiple=True, help="Only this case key (repeatable).  [default: every key]")
@click.option("--plan", "plan_only", is_flag=True, help="Print the planned cases as JSON lines; run nothing.")
def w5keys_cmd(opts: RunOptions, hardware: tuple[str, ...], cache_dir: Path | None, keys: tuple[str, ...], plan_only: bool) -> None:
    """VIDUR's predicted time of the ground truth's static W5 batches: prefill b1 x T 128-2048 and decode
    B 1-32 x KV 512-2048 (the keys of groundtruth's h100-x1 / h200-x1 documents), one VIDUR simulation
    per key (trace_replay, vllm scheduler, the predictor settings of every vidur-runner document),
    writing OUTPUT/vidur-w5-keys.tool-run.json. Each case's value is the batch_execution_time of the
    one batch of that composition (checked in batch_composition.csv)."""
    from click.core import ParameterSource

    from . import __version__
    from . import cli as cli_mod

    cs = _selected(opts, hardware, keys)
    if plan_only:
        for c in cs:
            click.echo(json.dumps(c.plan(), sort_keys=True))
        return
    if click.get_current_context().get_parameter_source("name") == ParameterSource.DEFAULT and not opts.shard:
        opts.name = NAME  # beside vidur.tool-run.json, never over it
    python = cli_mod.resolve_python(opts.tool_path)
    version, pkgs, vidur_err = cli_mod.probe_vidur(python)
    tool = tr.Tool("vidur", version, "native", cli_mod.tool_location(opts.tool_path))
    builder = tr.ToolRun(cli_mod.RUNNER, __version__, tool, config=None, packages=pkgs)
    cache = cli_mod.predictor_cache((cache_dir or cli_mod.default_cache_dir()).expanduser(), pkgs).resolve()
    keep = str(opts.keep_raw.resolve()) if opts.keep_raw is not None else None
    datasets, profile_of = ({}, {}) if vidur_err else cli_mod.install_profiles(
        (c.hardware for c in cs), [opts.data_dir / "profiles" / "vidur"], cache)
    # by hardware id, then in plan order
    units = [Unit(c, ds.compute_repo, ds.network_repo, str(cache), python, opts.timeout, profile_of[hw], keep)
             for hw, ds in sorted(datasets.items()) if not isinstance(ds, str) for c in cs if c.hardware == hw]
    checkpoint = opts.checkpoint({"cases": [c.plan() for c in cs], "vidur": version, "keep_raw": keep is not None})
    builder.setup_done()
    warm, rest = cli_mod.warm_first(units)  # trains the predictors into the cache if cold: alone, before the rest
    results = cli_mod.run_phases([(warm, "vidur"), (rest, "vidur")], run_unit, opts, checkpoint)
    finish(builder, _documented_cases(cs, vidur_err, datasets, results), opts, checkpoint)


def _selected(opts: RunOptions, hardware: tuple[str, ...], keys: tuple[str, ...]) -> list[KeyCase]:
    """The planned cases of ``hardware`` and ``keys`` (every key when none), --shard / --limit applied; a
    --config or an unknown key is a user error."""
    if opts.config is not None:
        raise UserError("--config: w5-keys has no config (its cases are the ground truth's keys)")
    planned = [c for c in build_cases() if c.hardware in hardware]
    unknown = sorted(set(keys) - {c.key for c in planned})
    if unknown:
        raise UserError(f"--key {unknown[0]}: not a key of w5-keys (see --plan)")
    return opts.select([c for c in planned if not keys or c.key in keys])


def _documented_cases(cs: list[KeyCase], vidur_err: str | None, datasets: dict, results: dict[str, dict]) -> list[dict]:
    """The document's cases in plan order: ``unavailable`` where vidur or the GPU's profile is missing, else
    the simulation's case."""
    from .cli import VIDUR_PIN

    out = []
    for c in cs:
        if vidur_err:
            out.append(
                tr.unavailable(
                    c.id,
                    kind="package-missing",
                    message=f"{vidur_err}. Install it with `pip install vidur=={VIDUR_PIN}`.",
                    **_common(c),
                )
            )
        elif isinstance(datasets.get(c.hardware), str):
            out.append(tr.unavailable(c.id, kind="profile-missing", message=datasets[c.hardware], **_common(c)))
        else:
            out.append(results[c.id]["case"])
    return out
