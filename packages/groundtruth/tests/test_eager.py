"""--attention eager: the Hugging Face models NeuSight traces (mtap_groundtruth.hf), their keys and parameters,
and that they compute what our SDPA models compute, attention done the unfused way (CPU, float64)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import mtap_schemas as ms
from mtap_groundtruth import cases, hf
from mtap_groundtruth.cli import main
from mtap_groundtruth.models import TINY, build_transformer

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.skipif(transformers.__version__ != hf.TRANSFORMERS_VERSION,
                                reason=f"needs transformers=={hf.TRANSFORMERS_VERSION} (the [test] extra installs it)")

REPO = Path(__file__).resolve().parents[3]
SHARED_CONFIGS = REPO.parent / "shared" / "neusight" / "data" / "DLmodel_configs"


def invoke(*args: str):
    from click.testing import CliRunner

    return CliRunner().invoke(main, list(args))


# --------------------------------------------------------------------------- the models


@pytest.mark.parametrize(("name", "cls", "params"), [
    ("bert-base", "BertForSequenceClassification", 109_482_240 + 768 * 2 + 2),  # BertModel + the 2-label classifier
    ("bert-large", "BertForSequenceClassification", 335_141_888 + 1024 * 2 + 2),
    ("gpt2", "GPT2LMHeadModel", 124_439_808),
    ("opt-1.3b", "OPTForCausalLM", 1_315_758_080),
])
def test_neusight_inference_classes_and_sizes(name: str, cls: str, params: int) -> None:
    """NeuSight's get_model for inference: BERT -> AutoModelForSequenceClassification, GPT-2/OPT -> AutoModelForCausalLM."""
    model = hf.build(name, torch.float32, torch.device("meta"))
    assert type(model).__name__ == cls and model.config._attn_implementation == "eager"
    d = hf.describe(model, name)
    assert d["model_parameters"] == params
    assert d["definition"] == f"transformers.{cls} 4.38.1" and d["attention"] == "eager"
    # the eager attention modules, not an SDPA or flash variant
    attn = {type(m).__name__ for m in model.modules() if "Attention" in type(m).__name__}
    assert not any("Sdpa" in a or "Flash" in a for a in attn), attn


@pytest.mark.parametrize("name", list(hf.CONFIGS))
def test_configs_are_neusights_own(name: str) -> None:
    """The configs equal NeuSight's JSON files (../shared/neusight, its artifact) and, for GPT-2 small,
    neusight-runner's models/gpt2.json (what its live mode gives NeuSight for W7)."""
    source, fields = hf.CONFIGS[name]
    if name == "gpt2":
        path = REPO / "packages" / "neusight-runner" / "src" / "mtap_neusight_runner" / "models" / "gpt2.json"
    else:
        path = SHARED_CONFIGS / source.rsplit("/", 1)[1]
        if not path.is_file():
            pytest.skip(f"no NeuSight artifact at {SHARED_CONFIGS}")
    assert json.loads(path.read_text()) == fields


def _float64(model: torch.nn.Module) -> torch.nn.Module:
    return model.to(torch.float64).eval()


def _gpt2_pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    """HF GPT2LMHeadModel (eager) and our SDPA DecoderModel with the same weights (Conv1D weights transposed)."""
    ref = _float64(hf.build("gpt2", torch.float32, torch.device("cpu"), tiny=True))
    ours = _float64(build_transformer(TINY["gpt2"].scaled(max_positions=ref.config.n_positions)))
    t = ref.transformer
    with torch.no_grad():
        ours.wte.weight.copy_(t.wte.weight)
        ours.wpe.weight.copy_(t.wpe.weight)
        for blk, h in zip(ours.blocks, t.h):
            for dst, src in ((blk.ln1, h.ln_1), (blk.ln2, h.ln_2)):
                dst.weight.copy_(src.weight), dst.bias.copy_(src.bias)
            for dst, src in ((blk.attention.qkv, h.attn.c_attn), (blk.attention.out, h.attn.c_proj), (blk.fc, h.mlp.c_fc),
                             (blk.proj, h.mlp.c_proj)):
                dst.weight.copy_(src.weight.T), dst.bias.copy_(src.bias)
        ours.ln_f.weight.copy_(t.ln_f.weight), ours.ln_f.bias.copy_(t.ln_f.bias)
    return ref, ours


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_gpt2_eager_equals_our_sdpa_model() -> None:
    """The W7 eager case computes the SDPA case's function (logits over every position, tied head)."""
    ref, ours = _gpt2_pair()
    ids = torch.randint(ref.config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        want = hf.forward(ref, ids, None).logits
        got = ours(ids)
    assert got.shape == want.shape and _rel(got, want) < 1e-10


def test_gpt2_eager_attention_is_the_unfused_formula() -> None:
    """Layer 0's attention as transformers 4.38.1 eager computes it equals matmul, scale, causal mask, softmax, matmul
    written out here (and differs from it without the mask: the check can fail)."""
    ref, _ = _gpt2_pair()
    attn = ref.transformer.h[0].attn
    x = torch.randn(2, 16, ref.config.n_embd, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = attn(x)[0]
        q, k, v = attn.c_attn(x).split(ref.config.n_embd, dim=2)
        heads, hd = ref.config.n_head, ref.config.n_embd // ref.config.n_head
        q, k, v = (z.view(2, 16, heads, hd).transpose(1, 2) for z in (q, k, v))
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
        causal = torch.ones(16, 16, dtype=torch.bool).tril()
        by_hand = attn.c_proj((scores.masked_fill(~causal, float("-inf")).softmax(-1) @ v).transpose(1, 2).reshape(2, 16, -1))
        unmasked = attn.c_proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 16, -1))
    assert _rel(out, by_hand) < 1e-12
    assert _rel(out, unmasked) > 1e-3


def test_bert_eager_equals_our_sdpa_model_pooler() -> None:
    """The W4 eager case (BertForSequenceClassification, the all-ones mask BertModel builds itself) has our
    SDPA BertModel's pooled output; the classifier (hidden x 2) comes on top."""
    ref = _float64(hf.build("bert-base", torch.float32, torch.device("cpu"), tiny=True))
    ours = _float64(build_transformer(TINY["bert-base"].scaled(max_positions=ref.config.max_position_embeddings)))
    b, e = ref.bert, ref.bert.embeddings
    with torch.no_grad():
        ours.word.weight.copy_(e.word_embeddings.weight)
        ours.position.weight.copy_(e.position_embeddings.weight)
        ours.token_type.weight.copy_(e.token_type_embeddings.weight)
        ours.ln.weight.copy_(e.LayerNorm.weight), ours.ln.bias.copy_(e.LayerNorm.bias)
        for mine, layer in zip(ours.layers, b.encoder.layer):
            s, o = layer.attention.self, layer.attention.output
            pairs = ((mine.attention.query, s.query), (mine.attention.key, s.key), (mine.attention.value, s.value),
                     (mine.attention.out, o.dense), (mine.ln1, o.LayerNorm), (mine.intermediate, layer.intermediate.dense),
                     (mine.output, layer.output.dense), (mine.ln2, layer.output.LayerNorm))
            for dst, src in pairs:
                dst.weight.copy_(src.weight), dst.bias.copy_(src.bias)
        ours.pooler.weight.copy_(b.pooler.dense.weight), ours.pooler.bias.copy_(b.pooler.dense.bias)
    ids = torch.randint(1, ref.config.vocab_size, (2, 20), generator=torch.Generator().manual_seed(5))
    mask = torch.ones(2, 20)
    with torch.no_grad():
        pooled = b(input_ids=ids, attention_mask=mask).pooler_output
        unmasked_call = b(input_ids=ids).pooler_output  # NeuSight's call: BertModel builds the same mask
        logits = hf.forward(ref, ids, mask).logits
        got = ours(ids)
        classified = ref.classifier(pooled)
    assert _rel(got, pooled) < 1e-10 and torch.equal(pooled, unmasked_call)
    assert logits.shape == (2, 2) and _rel(logits, classified) < 1e-12


def test_other_transformers_versions_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transformers, "__version__", "5.17.0")
    with pytest.raises(hf.TransformersMissing, match="4.38.1"):
        hf.require()


# --------------------------------------------------------------------------- keys and the CLI


def test_eager_keys_are_the_sdpa_keys_plus_the_suffix() -> None:
    sdpa, eager = cases.plan("neusight"), cases.plan("neusight", attention="eager")
    assert [c.key + ".eager-attn" for c in sdpa] == [c.key for c in eager]
    assert all(c.params["attention"] == "sdpa" for c in sdpa) and all(c.params["attention"] == "eager" for c in eager)
    assert [{k: v for k, v in c.params.items() if k != "attention"} for c in sdpa] == \
           [{k: v for k, v in c.params.items() if k != "attention"} for c in eager]
    single = cases.plan("single", attention="eager")
    w47 = [c for c in cases.plan("single") if c.workload in ("W4", "W7")]
    assert len(single) == 16 and [c.key for c in single] == [c.key + ".eager-attn" for c in w47]
    assert all(c.params["attention"] == "sdpa" for c in w47)
    with pytest.raises(ValueError, match="no transformer cases"):
        cases.plan("floor", attention="eager")


def test_bad_attention_value_is_one_line_exit_2(tmp_path: Path, data_dir: Path) -> None:
    for verb in ("cases", "run"):
        r = invoke(verb, "--attention", "flash", "--data-dir", str(data_dir), *(("--device", "cpu", "--output", str(tmp_path)) if verb == "run" else ()))
        assert r.exit_code == 2 and "--attention" in r.output and "flash" in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1
    r = invoke("run", "--suite", "floor", "--attention", "eager", "--device", "cpu", "--data-dir", str(data_dir), "--output", str(tmp_path))
    assert r.exit_code == 2 and "suite floor" in r.output and len(r.output.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*"))


def test_wrong_transformers_version_is_one_line_exit_2(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transformers, "__version__", "5.17.0")
    r = invoke("run", "--suite", "neusight", "--attention", "eager", "--device", "cpu", "--tiny", "--data-dir", str(data_dir),
               "--output", str(tmp_path))
    assert r.exit_code == 2 and "4.38.1" in r.output and len(r.output.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*"))


def test_cpu_eager_run_writes_suffixed_keys_naming_the_definition(tmp_path: Path, data_dir: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"include": ["bert-large.model.b8.*", "opt-1.3b.model.b2.*"], "iters": 2, "warmup": 1}))
    r = invoke("run", "--suite", "neusight", "--attention", "eager", "--device", "cpu", "--tiny", "--config", str(cfg),
               "--data-dir", str(data_dir), "--output", str(tmp_path), "--name", "e")
    assert r.exit_code == 0, r.output
    doc = ms.read_tool_run(tmp_path / "e.tool-run.json")
    assert [c["key"] for c in doc["cases"]] == ["bert-large.model.b8.s512.fp32.eager-attn", "opt-1.3b.model.b2.s2048.fp32.eager-attn"]
    bert, opt = (c["parameters"] for c in doc["cases"])
    assert all(c["status"] == "ok" for c in doc["cases"])
    assert bert["attention"] == opt["attention"] == "eager" and bert["attn_implementation"] == "eager"
    assert bert["definition"] == "transformers.BertForSequenceClassification 4.38.1"
    assert opt["definition"] == "transformers.OPTForCausalLM 4.38.1" and opt["neusight_tag"] == "opt_13-inf-2048-2"
    assert bert["model_config"].endswith("DLmodel_configs/bert_large.json") and bert["tf32"] is False
    assert doc["environment"]["packages"]["transformers"] == "4.38.1"
    r = invoke("cases", "--suite", "single", "--attention", "eager", "--data-dir", str(data_dir))
    rows = [json.loads(line) for line in r.output.splitlines()]
    assert len(rows) == 16 and rows[0]["key"] == "bert-base.model.b1.s128.fp32.eager-attn" and rows[0]["parameters"]["attention"] == "eager"
