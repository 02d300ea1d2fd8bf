"""The network family of the study: specification, weights and inference, in numpy.

Keras semantics (see ../shared/docs/paper-notes.md): BN momentum 0.99, epsilon 1e-3, moving
variance from the biased batch variance, Glorot-uniform kernels, zero biases, gamma 1, beta 0;
plain SGD, MSE loss. A hidden BN sits between its Dense layer and the activation, as the study
does. The torch reference every faster trainer is tested against is `bnapp.engine.reference`, kept
apart so that loading this module (every cached result needs it) does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ACTIVATIONS = ("tanh", "relu", "sigmoid")
OUTPUT_ACTIVATIONS = ("linear", "relu")
INPUT_MODES = ("raw", "zscore")
BN_MOMENTUM = 0.99
BN_EPSILON = 1e-3
# how a training step updates the BN moving statistics, as (decay, Keras 2 form) for the kernel:
# Keras 3 computes moving * momentum + batch * (1 - momentum) in the variable's float64; Keras 2
# (tf-keras) computes moving - (moving - batch) * decay with decay = 1 - momentum rounded to
# float32, 0.009999999776... (see docs/keras.md). Both are real Keras; "keras3" is the default.
BN_DECAYS = {"keras3": (1.0 - BN_MOMENTUM, False),
             "keras2": (float(np.float32(1.0 - BN_MOMENTUM)), True)}


@dataclass(frozen=True)
class ArchSpec:
    """One network of the study's family: [BN] -> (Dense -> [BN] -> act) x L -> Dense(1, out)."""

    hidden: tuple[int, ...] = (6,)
    activation: str = "sigmoid"
    output_activation: str = "linear"
    input_bn: bool = True
    hidden_bn: bool = True
    input_mode: str = "raw"

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError("hidden must list at least one layer width, each >= 1")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, not {self.activation!r}")
        if self.output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(
                f"output_activation must be one of {OUTPUT_ACTIVATIONS}, not {self.output_activation!r}"
            )
        if self.input_mode not in INPUT_MODES:
            raise ValueError(f"input_mode must be one of {INPUT_MODES}, not {self.input_mode!r}")

    @classmethod
    def study_e2e(cls) -> ArchSpec:
        """DLNNe2e: BN(5) -> Dense(6) -> BN(6) -> sigmoid -> Dense(1) on raw inputs (87 params)."""
        return cls()

    @classmethod
    def study_zscore(cls) -> ArchSpec:
        """DLNNnorm: Dense(6, sigmoid) -> Dense(6, sigmoid) -> Dense(1) on z-scores (85 params)."""
        return cls(hidden=(6, 6), input_bn=False, hidden_bn=False, input_mode="zscore")

    def param_counts(self, n_inputs: int) -> ParamCounts:
        trainable = non_trainable = 0
        if self.input_bn:
            trainable += 2 * n_inputs
            non_trainable += 2 * n_inputs
        width = n_inputs
        for h in self.hidden:
            trainable += width * h + h
            if self.hidden_bn:
                trainable += 2 * h
                non_trainable += 2 * h
            width = h
        trainable += width + 1
        return ParamCounts(trainable, non_trainable)

    @property
    def label(self) -> str:
        """Short name in the study's notation, e.g. 'BN+FC6+BN+Out1 (sigmoid, raw)'."""
        parts = ["BN"] if self.input_bn else []
        for h in self.hidden:
            parts.append(f"FC{h}")
            if self.hidden_bn:
                parts.append("BN")
        parts.append("Out1")
        out = "" if self.output_activation == "linear" else f"/{self.output_activation} out"
        return f"{'+'.join(parts)} ({self.activation}{out}, {self.input_mode})"

    def to_dict(self) -> dict:
        return {
            "hidden": list(self.hidden),
            "activation": self.activation,
            "output_activation": self.output_activation,
            "input_bn": self.input_bn,
            "hidden_bn": self.hidden_bn,
            "input_mode": self.input_mode,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ArchSpec:
        return cls(**{**d, "hidden": tuple(d["hidden"])})


@dataclass(frozen=True)
class ParamCounts:
    trainable: int
    non_trainable: int

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable


@dataclass
class BNState:
    """One BatchNormalization layer's parameters; arrays of shape (units,)."""

    gamma: np.ndarray
    beta: np.ndarray
    moving_mean: np.ndarray
    moving_var: np.ndarray

    @property
    def moving_std(self) -> np.ndarray:
        """sqrt(moving variance), as the study reports it (epsilon not included)."""
        return np.sqrt(self.moving_var)

    @classmethod
    def fresh(cls, units: int) -> BNState:
        return cls(np.ones(units), np.zeros(units), np.zeros(units), np.ones(units))

    def copy(self) -> BNState:
        return BNState(*(a.copy() for a in (self.gamma, self.beta, self.moving_mean, self.moving_var)))


@dataclass
class Weights:
    """All parameters of one model. kernels[i] is (in, out) as in Keras; the last is the output."""

    kernels: list[np.ndarray]
    biases: list[np.ndarray]
    input_bn: BNState | None = None
    hidden_bn: list[BNState] = field(default_factory=list)

    def copy(self) -> Weights:
        return Weights(
            [k.copy() for k in self.kernels],
            [b.copy() for b in self.biases],
            self.input_bn.copy() if self.input_bn is not None else None,
            [bn.copy() for bn in self.hidden_bn],
        )


def init_weights(spec: ArchSpec, n_inputs: int, rng: np.random.Generator) -> Weights:
    """Keras initial weights: Glorot-uniform kernels, zero biases, gamma 1, beta 0."""
    widths = [n_inputs, *spec.hidden, 1]
    kernels, biases = [], []
    for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        kernels.append(rng.uniform(-limit, limit, size=(fan_in, fan_out)))
        biases.append(np.zeros(fan_out))
    return Weights(
        kernels,
        biases,
        BNState.fresh(n_inputs) if spec.input_bn else None,
        [BNState.fresh(h) for h in spec.hidden] if spec.hidden_bn else [],
    )


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), each step in one buffer: the same arithmetic as the expression, without
    its three temporaries (on 100,000-row blocks the allocations cost as much as the exp)."""
    out = np.negative(z)
    np.exp(out, out=out)
    out += 1.0
    return np.divide(1.0, out, out=out)


_NP_ACT = {
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0.0),
    "linear": lambda z: z,
}


def bn_inference(bn: BNState, x: np.ndarray) -> np.ndarray:
    return (x - bn.moving_mean) / np.sqrt(bn.moving_var + BN_EPSILON) * bn.gamma + bn.beta


def activate(name: str, z: np.ndarray) -> np.ndarray:
    """An activation ("sigmoid", "tanh", "relu", "linear") in numpy."""
    return _NP_ACT[name](z)


def activation_slope(name: str, z: np.ndarray, out: np.ndarray) -> np.ndarray | float:
    """d activate(name, z) / dz, from its input z and its output out (the backward pass)."""
    if name not in _NP_ACT:
        raise KeyError(name)
    if name == "sigmoid":
        return out * (1.0 - out)
    if name == "tanh":
        return 1.0 - out * out
    if name == "relu":
        return (z > 0).astype(np.float64)
    return 1.0


def bn_scale_shift(bn: BNState) -> tuple[np.ndarray, np.ndarray]:
    """bn_inference as one affine map per unit, x * scale + shift (equal up to rounding)."""
    scale = bn.gamma / np.sqrt(bn.moving_var + BN_EPSILON)
    return scale, bn.beta - bn.moving_mean * scale


@dataclass
class Trace:
    """Intermediate values of an inference pass, for the BN-stage figures."""

    network_input: np.ndarray  # what enters the network (raw or z-scored)
    input_bn_out: np.ndarray | None
    hidden_pre_bn: list[np.ndarray]  # Dense outputs of each hidden layer, before its BN
    hidden_bn_out: list[np.ndarray | None]  # BN outputs (pre-activation), None without BN
    output: np.ndarray

    def dense_input(self) -> np.ndarray:
        """What the first Dense layer received: the input BN's output, or the network input."""
        return self.network_input if self.input_bn_out is None else self.input_bn_out

    def pre_activation(self, layer: int) -> np.ndarray:
        """Hidden layer `layer`'s pre-activation: its BN output, or its Dense output without BN."""
        z = self.hidden_bn_out[layer]
        return self.hidden_pre_bn[layer] if z is None else z


def _dense(weights: Weights, layer: int, h: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Hidden layer `layer` on its input h: (Dense output, BN output or None)."""
    z = h @ weights.kernels[layer] + weights.biases[layer]
    return z, bn_inference(weights.hidden_bn[layer], z) if weights.hidden_bn else None


def _output(spec: ArchSpec, weights: Weights, h: np.ndarray) -> np.ndarray:
    return _NP_ACT[spec.output_activation](h @ weights.kernels[-1] + weights.biases[-1])[:, 0]


def forward(
    spec: ArchSpec,
    weights: Weights,
    x: np.ndarray,
    *,
    clamp: dict[int, dict[int, float | np.ndarray]] | None = None,
) -> Trace:
    """Inference (moving statistics) on network inputs x (n, p), float64.

    clamp maps hidden layer index -> {unit: value}: that unit's pre-activation (the BN output where
    there is one) is held at value, which is how a hidden node is set to its mean (beta). value is
    a number, or an array of one value per row of x (e.g. the node's own values, shuffled).
    """
    x = np.asarray(x, dtype=np.float64)
    h = x
    input_bn_out = None
    if weights.input_bn is not None:
        h = input_bn_out = bn_inference(weights.input_bn, h)
    pre_bn, bn_out = [], []
    for i in range(len(weights.kernels) - 1):
        z, zb = _dense(weights, i, h)
        pre_bn.append(z)
        bn_out.append(zb)
        z = z if zb is None else zb
        if clamp and i in clamp:
            z = z.copy()
            for unit, value in clamp[i].items():
                z[:, unit] = value
        h = _NP_ACT[spec.activation](z)
    return Trace(x, input_bn_out, pre_bn, bn_out, _output(spec, weights, h))


def dense_output(spec: ArchSpec, weights: Weights, x: np.ndarray, layer: int) -> np.ndarray:
    """Hidden layer `layer`'s Dense output (before its BN) on network inputs x: forward's
    Trace.hidden_pre_bn[layer] bit for bit, without the layers after it."""
    h = np.asarray(x, dtype=np.float64)
    if weights.input_bn is not None:
        h = bn_inference(weights.input_bn, h)
    for i in range(layer):
        z, zb = _dense(weights, i, h)
        h = _NP_ACT[spec.activation](z if zb is None else zb)
    return h @ weights.kernels[layer] + weights.biases[layer]


def forward_from(spec: ArchSpec, weights: Weights, h: np.ndarray, layer: int) -> np.ndarray:
    """The network's output, inference resumed at hidden layer `layer`'s Dense with input h (the
    previous layer's activation; for layer 0 Trace.dense_input(); for layer = depth, straight to
    the output). forward's own arithmetic: resumed from a trace's values it gives the trace's
    output bit for bit, so an analysis that changes one layer need not recompute those before."""
    for i in range(layer, len(weights.kernels) - 1):
        z, zb = _dense(weights, i, h)
        h = _NP_ACT[spec.activation](z if zb is None else zb)
    return _output(spec, weights, h)


def predict(spec: ArchSpec, weights: Weights, x: np.ndarray) -> np.ndarray:
    return forward(spec, weights, x).output
