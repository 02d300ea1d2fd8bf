"""A fold's inference network (engine.model: BN with its moving statistics, Dense layers and
engine.model's activations) written as a list of ops, so that the part after any layer is itself
a network: the input layer's units are the network inputs, a hidden layer's units the
activations of its nodes.

The explanations (bnapp.analyses.explain) need what engine.model.forward does not give: Shapley
values the linearity of the first Dense layer after the units, integrated gradients the backward
pass. run_ops is tested against engine.model.predict, and gradients against torch autograd of
bnapp.engine.reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnapp.engine.model import ArchSpec, Weights, activate, activation_slope, bn_scale_shift
from bnapp.engine.results import Layer


@dataclass(frozen=True)
class Op:
    """One step of the inference network: "scale" (h * a + b, a BN at inference), "dense"
    (h @ a + b) or "act" (engine.model's activation `name`)."""

    kind: str
    a: np.ndarray | None = None
    b: np.ndarray | None = None
    name: str = ""


def network_ops(spec: ArchSpec, weights: Weights) -> list[Op]:
    """The inference network, from what enters it to its output (n, 1)."""
    ops = [Op("scale", *bn_scale_shift(weights.input_bn))] if weights.input_bn is not None else []
    for i, (k, b) in enumerate(zip(weights.kernels[:-1], weights.biases[:-1], strict=True)):
        ops.append(Op("dense", k, b))
        if weights.hidden_bn:
            ops.append(Op("scale", *bn_scale_shift(weights.hidden_bn[i])))
        ops.append(Op("act", name=spec.activation))
    ops += [Op("dense", weights.kernels[-1], weights.biases[-1]),
            Op("act", name=spec.output_activation)]
    return ops


def split_ops(ops: list[Op], layer: Layer) -> tuple[list[Op], list[Op]]:
    """(head, tail): head maps network inputs to the layer's units (the input layer: nothing;
    hidden layer i: the activations of its nodes), tail maps those units to the output."""
    if layer.kind == "input":
        return [], ops
    acts = [i for i, op in enumerate(ops[:-1]) if op.kind == "act"]
    cut = acts[layer.index] + 1
    return ops[:cut], ops[cut:]


def run_ops(ops: list[Op], h: np.ndarray) -> np.ndarray:
    h = np.asarray(h, dtype=np.float64)
    for op in ops:
        if op.kind == "scale":
            h = h * op.a + op.b
        elif op.kind == "dense":
            h = h @ op.a + op.b
        else:
            h = activate(op.name, h)
    return h


def gradients(ops: list[Op], h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(output (n,), d output / d h (n, units)): the forward pass, then the backward pass by the
    chain rule through each op (scale: a; dense: a transposed; activation: its slope)."""
    h = np.asarray(h, dtype=np.float64)
    slopes = []
    for op in ops:
        if op.kind == "scale":
            slopes.append(op.a)
            h = h * op.a + op.b
        elif op.kind == "dense":
            slopes.append(None)
            h = h @ op.a + op.b
        else:
            out = activate(op.name, h)
            slopes.append(activation_slope(op.name, h, out))
            h = out
    grad = np.ones_like(h)
    for op, slope in zip(reversed(ops), reversed(slopes), strict=True):
        grad = grad @ op.a.T if op.kind == "dense" else grad * slope
    return h[:, 0], grad
