"""The problems Timeloop is given for the layer tables' layers (the plan made from the tables and
its errors: test_plan.py, shared with zigzag-runner; the tables themselves: schemas/tests/test_layers.py)."""

from __future__ import annotations

from mtap_schemas.layers import load_table
from mtap_timeloop_runner.problem import problem_yaml


def test_conv1_problem_file(data_dir):
    text = problem_yaml(load_table(data_dir, "resnet50").layers()[0])
    assert "instance: {C: 3, M: 64, R: 7, S: 7, N: 1, P: 112, Q: 112, Wstride: 2, Hstride: 2" in text
    assert "[[R, Wdilation], [P, Wstride]]" in text and "read-write: True" in text


def test_resnet50_distinct_problems(data_dir):
    layers = load_table(data_dir, "resnet50").layers()
    assert len({la.shape for la in layers}) == 24  # distinct problems the mapper runs
