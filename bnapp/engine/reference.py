"""The torch reference: the study's networks as plain torch.nn modules, one model at a time,
with Keras training semantics (see `bnapp.engine.model`).

Every faster trainer (`bnapp.engine.kernel`) is tested against `train_reference`, and the benchmark
times it as the plain loop. Only tests and benchmarks import this module: the app and the CLI
never need torch.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from bnapp.engine.model import BN_DECAYS, BN_EPSILON, BN_MOMENTUM, ArchSpec, BNState, Weights


class KerasBatchNorm1d(nn.Module):
    """BatchNormalization with Keras semantics.

    torch's nn.BatchNorm1d updates its running variance with the *unbiased* batch variance and
    refuses batches of one; Keras uses the biased variance and accepts any batch. The
    normalization itself is the same formula, which a test checks against nn.BatchNorm1d.
    bn_decay "keras2" updates the moving statistics as Keras 2 does (`BN_DECAYS`).
    """

    def __init__(self, units: int, dtype=torch.float64, bn_decay: str = "keras3"):
        super().__init__()
        self.keras2 = BN_DECAYS[bn_decay][1]
        self.gamma = nn.Parameter(torch.ones(units, dtype=dtype))
        self.beta = nn.Parameter(torch.zeros(units, dtype=dtype))
        self.register_buffer("moving_mean", torch.zeros(units, dtype=dtype))
        self.register_buffer("moving_var", torch.ones(units, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            mean = x.mean(0)
            var = x.var(0, unbiased=False)
            with torch.no_grad():
                for moving, batch in ((self.moving_mean, mean), (self.moving_var, var)):
                    if self.keras2:  # tf-keras: moving -= (moving - batch) * float32(1 - momentum)
                        moving.sub_((moving - batch) * torch.tensor(1 - BN_MOMENTUM,
                                                                   dtype=torch.float32))
                    else:
                        moving.mul_(BN_MOMENTUM).add_((1 - BN_MOMENTUM) * batch)
        else:
            mean, var = self.moving_mean, self.moving_var
        return (x - mean) / torch.sqrt(var + BN_EPSILON) * self.gamma + self.beta


_TORCH_ACT = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "linear": nn.Identity}


class ReferenceNet(nn.Module):
    """The ArchSpec as an nn.Sequential of torch.nn modules."""

    def __init__(self, spec: ArchSpec, n_inputs: int, dtype=torch.float64, bn_decay: str = "keras3"):
        super().__init__()
        self.spec = spec
        layers: list[nn.Module] = []
        if spec.input_bn:
            layers.append(KerasBatchNorm1d(n_inputs, dtype, bn_decay))
        width = n_inputs
        for h in spec.hidden:
            layers.append(nn.Linear(width, h, dtype=dtype))
            if spec.hidden_bn:
                layers.append(KerasBatchNorm1d(h, dtype, bn_decay))
            layers.append(_TORCH_ACT[spec.activation]())
            width = h
        layers.append(nn.Linear(width, 1, dtype=dtype))
        layers.append(_TORCH_ACT[spec.output_activation]())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[:, 0]

    def _parts(self):
        linears = [m for m in self.net if isinstance(m, nn.Linear)]
        bns = [m for m in self.net if isinstance(m, KerasBatchNorm1d)]
        input_bn = bns.pop(0) if self.spec.input_bn else None
        return linears, input_bn, bns

    def load_weights(self, w: Weights) -> ReferenceNet:
        linears, input_bn, hidden_bns = self._parts()
        with torch.no_grad():
            for lin, k, b in zip(linears, w.kernels, w.biases, strict=True):
                lin.weight.copy_(torch.as_tensor(k.T))
                lin.bias.copy_(torch.as_tensor(b))
            pairs = ([(input_bn, w.input_bn)] if input_bn is not None else []) + list(
                zip(hidden_bns, w.hidden_bn, strict=True)
            )
            for mod, st in pairs:
                mod.gamma.copy_(torch.as_tensor(st.gamma))
                mod.beta.copy_(torch.as_tensor(st.beta))
                mod.moving_mean.copy_(torch.as_tensor(st.moving_mean))
                mod.moving_var.copy_(torch.as_tensor(st.moving_var))
        return self

    def weights(self) -> Weights:
        linears, input_bn, hidden_bns = self._parts()

        def bn_state(m):
            return BNState(*(t.detach().cpu().numpy().astype(np.float64).copy()
                             for t in (m.gamma, m.beta, m.moving_mean, m.moving_var)))

        return Weights(
            [lin.weight.detach().cpu().numpy().T.astype(np.float64).copy() for lin in linears],
            [lin.bias.detach().cpu().numpy().astype(np.float64).copy() for lin in linears],
            bn_state(input_bn) if input_bn is not None else None,
            [bn_state(m) for m in hidden_bns],
        )

    def input_gamma(self) -> np.ndarray | None:
        _, input_bn, _ = self._parts()
        return None if input_bn is None else input_bn.gamma.detach().cpu().numpy().copy()


class KerasValidation:
    """What Keras does with validation data at the end of each epoch, for `train_reference`.

    Records the validation loss (inference mode, like `History.history["val_loss"]`) and, with a
    patience, acts as `EarlyStopping(monitor="val_loss", patience=patience,
    restore_best_weights=True)` (min_delta 0, no baseline) as tf-keras >= 2.16 and Keras 3 do: the
    best weights and BN statistics are restored when training ends, whether it stopped early or
    ran every epoch (older Keras restored them only when it stopped early).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, patience: int | None = None):
        self.x, self.y, self.patience = x, y, patience
        self.val_loss: list[float] = []
        self.best = np.inf
        self.best_epoch: int | None = None
        self.best_state: dict | None = None
        self.wait = 0

    def on_epoch_end(self, net: ReferenceNet, epoch: int) -> bool:
        """Record this epoch's validation loss; True when early stopping ends training."""
        net.eval()
        with torch.no_grad():
            pred = net(torch.as_tensor(np.asarray(self.x), dtype=next(net.parameters()).dtype))
        net.train()
        current = float(np.mean((pred.cpu().numpy().astype(np.float64) - self.y) ** 2))
        self.val_loss.append(current)
        if self.patience is None:
            return False
        # Keras' EarlyStopping.on_epoch_end, step by step
        if self.best_state is None:
            self.best_state, self.best_epoch = copy.deepcopy(net.state_dict()), epoch
        self.wait += 1
        if current < self.best:
            self.best, self.best_epoch = current, epoch
            self.best_state = copy.deepcopy(net.state_dict())
            self.wait = 0
            return False
        return self.wait >= self.patience and epoch > 0

    def on_train_end(self, net: ReferenceNet) -> None:
        if self.best_state is not None:
            net.load_state_dict(self.best_state)


def train_reference(
    spec: ArchSpec,
    initial: Weights,
    x: np.ndarray,
    y: np.ndarray,
    orders: np.ndarray,
    *,
    batch_size: int = 32,
    lr: float = 0.01,
    dtype=torch.float64,
    validation: KerasValidation | None = None,
    bn_decay: str = "keras3",
) -> tuple[Weights, np.ndarray]:
    """Train one model with torch.nn and plain SGD, mini-batches taken from `orders` (an iterable
    of each epoch's row order, e.g. kernel.epoch_orders).

    Returns the trained weights and the per-epoch mean training loss (Keras' reported loss: the
    mean over batches weighted by batch size, measured during the epoch in training mode), for
    the epochs run. `validation` (optional) records the validation loss after every epoch and may
    stop training early and restore the best epoch's weights. bn_decay: Keras 3's or Keras 2's
    BN moving-statistics update (`bnapp.engine.model.BN_DECAYS`).
    """
    net = ReferenceNet(spec, x.shape[1], dtype, bn_decay).load_weights(initial)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.0)
    loss_fn = nn.MSELoss()
    xt = torch.as_tensor(np.asarray(x), dtype=dtype)
    yt = torch.as_tensor(np.asarray(y), dtype=dtype)
    losses = []
    net.train()
    for epoch, order in enumerate(orders):
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = torch.as_tensor(order[start : start + batch_size], dtype=torch.int64)
            opt.zero_grad()
            loss = loss_fn(net(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / len(order))
        if validation is not None and validation.on_epoch_end(net, epoch):
            break
    if validation is not None:
        validation.on_train_end(net)
    return net.weights(), np.array(losses)
