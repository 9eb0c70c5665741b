"""Every registered op schema (torch.ops.na_cuda.*, written from the rule list in csrc/core/rules/rules.h) matches the
Python objects that call it: the ops are ``lif_forward`` plus ``lif_<rule>`` and ``<rule>_backward`` for every rule
of ``na_cuda.rules.RULES``; after the input(s) come the neuron's fields (``LifParams.op_args``, by name and type),
the rule's (its ``options()`` keys, in ``op_args()`` order, by type), then ``decay`` and ``reset_mechanism``."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from helpers import needs_native

from na_cuda.params import LifParams
from na_cuda.rules import RULES

pytestmark = needs_native

# The Python type each schema type takes (float also takes an int in torch's schema matching; we pass floats).
_TYPES = {"float": float, "int": int, "bool": bool, "str": str}


def _ops() -> set[str]:
    return {n for n in dir(torch.ops.na_cuda) if hasattr(getattr(torch.ops.na_cuda, n), "default")}


def _args(op: str) -> list:
    return list(getattr(torch.ops.na_cuda, op).default._schema.arguments)


def _check_value(arg, value) -> None:
    t = str(arg.type)
    if t.startswith("Optional["):
        if value is None:
            return
        t = t[len("Optional[") : -1]
    assert type(value) is _TYPES[t], f"{arg.name}: schema type {arg.type}, Python value {value!r}"


def test_the_ops_are_the_forward_and_two_per_rule():
    want = {"lif_forward"} | {f"lif_{r}" for r in RULES} | {f"{r}_backward" for r in RULES}
    assert _ops() == want


@pytest.mark.parametrize("op", sorted({"lif_forward"} | {f"lif_{r}" for r in RULES} | {f"{r}_backward" for r in RULES}))
def test_the_schema_matches_the_python_fields(op):
    neuron = LifParams()
    fields = {f.name for f in dataclasses.fields(LifParams)}
    args = _args(op)
    inputs = ["grad_out", "c"] if op.endswith("_backward") else ["c"]
    assert [a.name for a in args[: len(inputs)]] == inputs
    assert all(str(a.type) == "Tensor" for a in args[: len(inputs)])
    rest = args[len(inputs) :]
    # the neuron: LifParams.op_args(), each a LifParams field of that name and type
    values = neuron.op_args()
    head, rest = rest[: len(values)], rest[len(values) :]
    assert len(head) == len(values)
    for arg, value in zip(head, values):
        assert arg.name in fields and getattr(neuron, arg.name) == value, arg.name
        _check_value(arg, value)
    # the rule: its options' names in op_args order
    name = None if op == "lif_forward" else op.removeprefix("lif_").removesuffix("_backward")
    if name is not None:
        rule = RULES[name]()
        opts, values = rule.options(), rule.op_args()
        head, rest = rest[: len(values)], rest[len(values) :]
        assert [a.name for a in head] == list(opts) and tuple(opts[a.name] for a in head) == values
        for arg, value in zip(head, values):
            _check_value(arg, value)
    # the trailing optional arguments: the learnable decay and the neuron's reset_mechanism, both None by default
    assert [(a.name, str(a.type)) for a in rest] == [
        ("decay", "Optional[Tensor]"),
        ("reset_mechanism", "Optional[str]"),
    ]
    assert "reset_mechanism" in fields and all(a.default_value is None and a.kwarg_only is False for a in rest)
