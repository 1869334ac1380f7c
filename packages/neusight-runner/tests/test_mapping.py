from mtap_neusight_runner.mapping import case_key, hardware_id, parse_tag


def test_parse_tag_variants():
    t = parse_tag("gpt2_large-train-1024-16-pp4_1")
    assert (t.model, t.mode, t.seq_len, t.batch, t.variant, t.gpus) == ("gpt2_large", "train", 1024, 16, "pp4_1", 4)
    assert parse_tag("bert_large-inf-512-8").variant == ""
    assert parse_tag("bert_large-inf-512-8-fusion").gpus == 1
    assert parse_tag("not a tag") is None
    assert parse_tag("bert_large-infer-512-8") is None


def test_case_keys_follow_schema_readme():
    """Every key names the eager attention NeuSight traces (suffix .eager-attn), in every mode."""
    key = lambda s: case_key(parse_tag(s)).removesuffix(".eager-attn")  # noqa: E731
    for tag in ("bert_large-inf-512-8", "bert_large-inf-512-8-fusion", "gpt3_27-train-2048-1", "gpt2_large-train-1024-16-dp4",
                "gpt2_large-train-1024-16-tp4", "gpt3_xl-train-2048-4-pp4_1"):
        assert case_key(parse_tag(tag)).endswith(".eager-attn") and parse_tag(tag).parameters()["attention"] == "eager"
    assert key("bert_large-inf-512-8") == "bert-large.model.b8.s512.fp32"
    assert key("bert_large-inf-512-8-fusion") == "bert-large.model-compiled.b8.s512.fp32"
    assert key("gpt3_27-train-2048-1") == "gpt3-2.7b.train-step.b1.s2048.fp32"
    assert key("gpt2_large-train-1024-16-dp4") == "gpt2-large.ddp-step.n4.b4.s1024.fp32"  # batch per GPU
    assert key("gpt2_large-train-1024-16-tp4") == "gpt2-large.tp-step.n4.b16.s1024.fp32"
    assert key("gpt3_xl-train-2048-4-pp4_1") == "gpt3-xl.pp-step.n4.mb1.b4.s2048.fp32"
    assert case_key(parse_tag("switchxl4-inf-512-1")) is None


def test_only_the_h100_maps_onto_the_catalog():
    assert hardware_id("NVIDIA_H100_80GB_HBM3") == ("H100-SXM5-80GB", True)
    # No NeuSight A100 is the SXM4 80 GB part mtap catalogues.
    for a100 in ("NVIDIA_A100-PCIE-40GB", "NVIDIA_A100-SXM4-40GB", "NVIDIA_A100_80GB_PCIe"):
        assert hardware_id(a100) == (a100, False)
