"""Compiled training loop for a stack of small BN networks (numba, float64, no fastmath).

Why hand-written: the networks are tiny (tens of parameters), so the cost of training is the 800
sequential SGD steps per model, not FLOPs. Any per-step framework overhead (torch ~1.5 ms per
step) dominates; one compiled function that runs the whole loop for every model of a stack is
~100x faster. torch (`bnapp.engine.reference.train_reference`) stays the reference: a test checks that
both agree to 1e-5 after full training, for every activation and BN placement.

Layout. Every model of a stack is one row of a flat float64 parameter matrix P (M, size), padded
to a common maximum width W (>= number of inputs and every hidden width):
  kernels  5 blocks of W*W (hidden layers 0..3, then the output layer at block `depth`), (in, out)
  biases   5 blocks of W
  hidden BN 4 layers x (gamma, beta, moving_mean, moving_var) x W
  input BN (gamma, beta, moving_mean, moving_var) x W
Each model's architecture is one row of an int matrix cfg (M, CFG_COLS); each model trains on its
own data set d with its own BN statistics. A data set is an index view, not a copy: split s's
training, validation and test rows into the one data matrix x, and the shift and scale its input
mode applies (`SplitRows`). Each epoch's mini-batch order is drawn inside the loop from the split's
seed (`draw_order`), so memory stays O(rows) whatever the number of epochs.

Speed at scale. With a million rows the data (40 MB) is far from the cache, and each row's
first read is a cache miss the short batch cannot hide: the epoch's order therefore holds the
training rows themselves (no second random read through the split's row list) and the next
batch's rows and targets are prefetched while this one trains: bit-identical, and 1.45x faster
on the 1M-row benchmark (401 s -> 277 s for 10 folds x 200 epochs on 2 cores).

The module imports only numpy and numba (and numba's llvmlite), so worker processes of the grid
start quickly.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
from llvmlite import ir
from numba import njit
from numba.core import cgutils, types
from numba.extending import intrinsic

MAX_DEPTH = 4
# bnapp.engine.model's constants, copied rather than imported: numba's on-disk cache is keyed on this
# file alone, so a value imported from another module could be served stale after a change there
BN_MOMENTUM = 0.99
BN_EPSILON = 1e-3
# the BN moving-statistics update (decay, Keras 2 form) unless told otherwise: Keras 3's (see
# bnapp.engine.model.BN_DECAYS)
KERAS3_BN_UPDATE = (1.0 - BN_MOMENTUM, False)

ACT_CODES = {"linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3}

# cfg columns
C_DEPTH, C_ACT, C_OUT_ACT, C_INPUT_BN, C_HIDDEN_BN, C_DATA = range(6)
C_WIDTHS = 6  # 4 columns of hidden widths follow
CFG_COLS = C_WIDTHS + MAX_DEPTH

# integer state columns: training continues across calls (epoch chunks)
S_ACTIVE, S_EPOCHS_RUN, S_BEST_EPOCH, S_WAIT, S_DIVERGED_EPOCH = range(5)
STATE_COLS = 5


@intrinsic
def _prefetch(typingctx, arr, index):
    """Hint the CPU to fetch arr[index] (a tuple of ints) into the cache: LLVM's prefetch (read,
    keep in all levels), which numba does not expose."""
    sig = types.void(arr, index)

    def codegen(context, builder, signature, args):
        ary_type, index_type = signature.args
        ary = context.make_array(ary_type)(context, builder, args[0])
        indices = [context.cast(builder, i, t, types.intp) for i, t in
                   zip(cgutils.unpack_tuple(builder, args[1]), index_type, strict=True)]
        ptr = cgutils.get_item_pointer(context, builder, ary_type, ary, indices)
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn_type = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fn_type, "llvm.prefetch.p0i8")
        # (address, read, locality 3: keep in every cache level, data cache)
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True)
def _mix(z):
    """splitmix64's output function, a bijection of uint64 (Steele, Lea & Flood, OOPSLA 2014)."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def draw_order(seed, epoch, order):
    """Fill order (n,) with the epoch's permutation of 0..n-1 for the seed (Fisher-Yates).

    Hand-written because numpy's Generator cannot be called from compiled code, and drawing the
    orders outside it costs either memory (all epochs at once: the old O(epochs x rows)) or time
    (numpy shuffles 900k rows in ~47 ms, 94 s of a 1M-row 10-fold run). Each epoch has its own
    splitmix64 stream, so any epoch can be drawn alone and training chunks resume anywhere."""
    for i in range(order.shape[0]):
        order[i] = i
    _shuffle(seed, epoch, order)


@njit(cache=True)
def _shuffle(seed, epoch, order):
    """Fisher-Yates on order in place, with the epoch's splitmix64 stream (draw_order's swaps)."""
    n = order.shape[0]
    state = _mix(np.uint64(seed) ^ _mix(np.uint64(epoch) + _GOLDEN))
    for j in range(n - 1, 0, -1):
        state += _GOLDEN
        u = (_mix(state) >> np.uint64(11)) * (1.0 / 9007199254740992.0)  # uniform [0, 1), 53 bits
        k = int(u * (j + 1))
        swap = order[j]
        order[j] = order[k]
        order[k] = swap


def epoch_orders(n_rows: int, epochs: int, seed) -> Iterator[np.ndarray]:
    """The training rows' order in each epoch (Keras shuffles every epoch), one epoch at a time:
    what the kernel draws, for the torch reference."""
    for epoch in range(epochs):
        order = np.empty(n_rows, dtype=np.int32)
        draw_order(np.uint64(seed), epoch, order)
        yield order


def layout(width: int) -> dict[str, int]:
    """Offsets of the parameter blocks in a row of P for padded width W."""
    bias, hidden_bn, input_bn = _offsets.py_func(width)  # no compiled call needed here
    return {"kernel": 0, "bias": bias, "hidden_bn": hidden_bn, "input_bn": input_bn,
            "size": input_bn + 4 * width}


@njit(cache=True)
def _offsets(w):
    bias = (MAX_DEPTH + 1) * w * w
    hidden_bn = bias + (MAX_DEPTH + 1) * w
    input_bn = hidden_bn + MAX_DEPTH * 4 * w
    return bias, hidden_bn, input_bn


@njit(cache=True)
def _width_of(size):
    """Padded width W of a row of P: size = 5 w^2 + 25 w (inverse of layout())."""
    w = 1
    while 5 * w * w + 25 * w < size:
        w += 1
    return w


@njit(cache=True)
def _copy(src, dst):
    """dst[:] = src, as a loop: numba's slice assignment costs ~1 s of compile time."""
    for i in range(src.shape[0]):
        dst[i] = src[i]


@njit(cache=True)
def _activate(code, z):
    if code == 1:
        return z if z > 0.0 else 0.0
    if code == 2:
        return 1.0 / (1.0 + math.exp(-z))
    if code == 3:
        return math.tanh(z)
    return z


@njit(cache=True)
def _activation_slope(code, a):
    """d act / d z expressed through the activation's output a."""
    if code == 1:
        return 1.0 if a > 0.0 else 0.0
    if code == 2:
        return a * (1.0 - a)
    if code == 3:
        return 1.0 - a * a
    return 1.0


@njit(cache=True)
def _moving_average(old, batch, decay, keras2):
    """A BN moving statistic after a training step (see bnapp.engine.model.BN_DECAYS)."""
    if keras2:
        return old - (old - batch) * decay
    # Keras 3's old * momentum + (1 - momentum) * batch: 1 - decay is the momentum exactly, as
    # decay = 1 - momentum is exact for 0.5 <= momentum <= 1 (Sterbenz)
    return old * (1.0 - decay) + decay * batch


@njit(cache=True)
def _bn_train_forward(x, n_rows, units, prm, off, w, xhat, inv_std, decay, keras2):
    """Batch-statistics BN in place on x[:n_rows, :units]; updates the moving statistics with
    decay (1 - momentum) in Keras 3's form, or in Keras 2's when keras2."""
    for j in range(units):
        mean = 0.0
        for b in range(n_rows):
            mean += x[b, j]
        mean /= n_rows
        var = 0.0
        for b in range(n_rows):
            dev = x[b, j] - mean
            var += dev * dev
        var /= n_rows  # biased, as Keras uses for the moving variance too
        inv = 1.0 / math.sqrt(var + BN_EPSILON)
        inv_std[j] = inv
        gamma = prm[off + j]
        beta = prm[off + w + j]
        for b in range(n_rows):
            xh = (x[b, j] - mean) * inv
            xhat[b, j] = xh
            x[b, j] = xh * gamma + beta
        prm[off + 2 * w + j] = _moving_average(prm[off + 2 * w + j], mean, decay, keras2)
        prm[off + 3 * w + j] = _moving_average(prm[off + 3 * w + j], var, decay, keras2)


@njit(cache=True)
def _bn_backward_step(grad, n_rows, units, prm, off, w, xhat, inv_std, lr):
    """grad (d loss / d BN output) -> d loss / d BN input, in place; SGD step on gamma, beta."""
    for j in range(units):
        s = 0.0
        sx = 0.0
        for b in range(n_rows):
            s += grad[b, j]
            sx += grad[b, j] * xhat[b, j]
        scale = prm[off + j] * inv_std[j] / n_rows
        for b in range(n_rows):
            grad[b, j] = scale * (n_rows * grad[b, j] - s - xhat[b, j] * sx)
        prm[off + j] -= lr * sx
        prm[off + w + j] -= lr * s


@njit(cache=True)
def _predict_rows(prm, cfg_row, w, x, rows, n_rows, shift, scale, out, h_in, h_out):
    """Inference (moving statistics) of one model on (x[rows[:n_rows]] - shift) / scale; h_in,
    h_out are (w,) scratch."""
    depth = cfg_row[C_DEPTH]
    act = cfg_row[C_ACT]
    bias, hidden_bn, input_bn = _offsets(w)
    p = x.shape[1]
    for r in range(n_rows):
        for i in range(p):
            v = (x[rows[r], i] - shift[i]) / scale[i]
            if cfg_row[C_INPUT_BN]:
                v = ((v - prm[input_bn + 2 * w + i]) / math.sqrt(prm[input_bn + 3 * w + i] + BN_EPSILON)
                     * prm[input_bn + i] + prm[input_bn + w + i])
            h_in[i] = v
        n_in = p
        for layer in range(depth):
            n_out = cfg_row[C_WIDTHS + layer]
            k_off = layer * w * w
            bn_off = hidden_bn + layer * 4 * w
            for j in range(n_out):
                z = prm[bias + layer * w + j]
                for i in range(n_in):
                    z += h_in[i] * prm[k_off + i * w + j]
                if cfg_row[C_HIDDEN_BN]:
                    z = ((z - prm[bn_off + 2 * w + j]) / math.sqrt(prm[bn_off + 3 * w + j] + BN_EPSILON)
                         * prm[bn_off + j] + prm[bn_off + w + j])
                h_out[j] = _activate(act, z)
            for j in range(n_out):
                h_in[j] = h_out[j]
            n_in = n_out
        o = prm[bias + depth * w]
        for i in range(n_in):
            o += h_in[i] * prm[depth * w * w + i * w]
        out[r] = _activate(cfg_row[C_OUT_ACT], o)


@njit(cache=True)
def _mse(prm, cfg_row, w, x, y, rows, n_rows, shift, scale, pred, h_in, h_out):
    _predict_rows(prm, cfg_row, w, x, rows, n_rows, shift, scale, pred, h_in, h_out)
    total = 0.0
    for r in range(n_rows):
        err = pred[r] - y[rows[r]]
        total += err * err
    return total / n_rows


@njit(cache=True)
def _train_model(m, P, P_best, cfg, state, best_val, x, y, split_of, shift, scale, train,
                 n_train, order_seed, val, n_val, epoch_start, epoch_stop, batch_size, lr,
                 bn_decay, bn_keras2, patience, loss, val_loss, input_gamma):
    """Epochs [epoch_start, epoch_stop) of plain SGD for model m of the stack."""
    if state[m, S_ACTIVE] == 0:
        return
    c = cfg[m]
    depth = c[C_DEPTH]
    act = c[C_ACT]
    out_act = c[C_OUT_ACT]
    in_bn = c[C_INPUT_BN] != 0
    hid_bn = c[C_HIDDEN_BN] != 0
    d = c[C_DATA]
    s = split_of[d]
    sh = shift[d]
    sc = scale[d]
    rows = train[s]
    prm = P[m]
    w = _width_of(P.shape[1])
    bias, hidden_bn, input_bn = _offsets(w)
    p = x.shape[1]
    n = n_train[s]
    nv = n_val[s]
    total_epochs = loss.shape[1]

    acts = np.empty((depth + 1, batch_size, w))  # acts[0]: Dense input; acts[l+1]: hidden l output
    xhat = np.empty((depth + 1, batch_size, w))  # normalized values of each BN layer
    inv_std = np.empty((depth + 1, w))
    grads = np.empty((2, batch_size, w))
    out_grad = np.empty(batch_size)
    pred = np.empty(max(nv, 1))
    h_in = np.empty(w)
    h_out = np.empty(w)
    order = np.empty(n, dtype=np.int32)
    batch_rows = np.empty(batch_size, dtype=np.int64)

    for e in range(epoch_start, epoch_stop):
        # draw_order's permutation of the split's training rows (see the module docstring)
        for i in range(n):
            order[i] = rows[i]
        _shuffle(order_seed[s], e, order)
        total = 0.0
        for start in range(0, n, batch_size):
            nb = min(batch_size, n - start)
            for b in range(start + batch_size, min(start + 2 * batch_size, n)):
                _prefetch(x, (order[b], 0))
                _prefetch(y, (order[b],))
            # ---- forward, batch statistics
            for b in range(nb):
                row = order[start + b]
                batch_rows[b] = row
                for i in range(p):
                    acts[0, b, i] = (x[row, i] - sh[i]) / sc[i]
            if in_bn:
                _bn_train_forward(acts[0], nb, p, prm, input_bn, w, xhat[0], inv_std[0], bn_decay,
                                  bn_keras2)
            n_in = p
            for layer in range(depth):
                n_out = c[C_WIDTHS + layer]
                k_off = layer * w * w
                b_off = bias + layer * w
                a_in = acts[layer]
                a_out = acts[layer + 1]
                for b in range(nb):
                    for j in range(n_out):
                        z = prm[b_off + j]
                        for i in range(n_in):
                            z += a_in[b, i] * prm[k_off + i * w + j]
                        a_out[b, j] = z
                if hid_bn:
                    _bn_train_forward(a_out, nb, n_out, prm, hidden_bn + layer * 4 * w, w,
                                      xhat[layer + 1], inv_std[layer + 1], bn_decay, bn_keras2)
                for b in range(nb):
                    for j in range(n_out):
                        a_out[b, j] = _activate(act, a_out[b, j])
                n_in = n_out
            # ---- output and MSE
            k_off = depth * w * w
            b_off = bias + depth * w
            a_last = acts[depth]
            batch_loss = 0.0
            for b in range(nb):
                o = prm[b_off]
                for i in range(n_in):
                    o += a_last[b, i] * prm[k_off + i * w]
                y_hat = _activate(out_act, o)
                err = y_hat - y[batch_rows[b]]
                batch_loss += err * err
                g = 2.0 * err / nb
                if out_act == 1 and o <= 0.0:
                    g = 0.0
                out_grad[b] = g
            total += batch_loss  # = batch mean loss * batch size (Keras' weighted epoch mean)
            # ---- backward + SGD, each layer's gradients from its pre-update weights
            cur = 0
            for b in range(nb):
                for i in range(n_in):
                    grads[cur, b, i] = out_grad[b] * prm[k_off + i * w]
            for i in range(n_in):
                g = 0.0
                for b in range(nb):
                    g += a_last[b, i] * out_grad[b]
                prm[k_off + i * w] -= lr * g
            g = 0.0
            for b in range(nb):
                g += out_grad[b]
            prm[b_off] -= lr * g
            for layer in range(depth - 1, -1, -1):
                n_out = c[C_WIDTHS + layer]
                n_in = c[C_WIDTHS + layer - 1] if layer > 0 else p
                k_off = layer * w * w
                b_off = bias + layer * w
                grad = grads[cur]
                a_out = acts[layer + 1]
                a_in = acts[layer]
                for b in range(nb):
                    for j in range(n_out):
                        grad[b, j] *= _activation_slope(act, a_out[b, j])
                if hid_bn:
                    _bn_backward_step(grad, nb, n_out, prm, hidden_bn + layer * 4 * w, w,
                                      xhat[layer + 1], inv_std[layer + 1], lr)
                if layer > 0 or in_bn:
                    prev = grads[1 - cur]
                    for b in range(nb):
                        for i in range(n_in):
                            g = 0.0
                            for j in range(n_out):
                                g += grad[b, j] * prm[k_off + i * w + j]
                            prev[b, i] = g
                for i in range(n_in):
                    for j in range(n_out):
                        g = 0.0
                        for b in range(nb):
                            g += a_in[b, i] * grad[b, j]
                        prm[k_off + i * w + j] -= lr * g
                for j in range(n_out):
                    g = 0.0
                    for b in range(nb):
                        g += grad[b, j]
                    prm[b_off + j] -= lr * g
                cur = 1 - cur
            if in_bn:
                _bn_backward_step(grads[cur], nb, p, prm, input_bn, w, xhat[0], inv_std[0], lr)

        # ---- end of epoch: curves, divergence, early stopping
        epoch_loss = total / n
        loss[m, e] = epoch_loss
        if in_bn:
            for i in range(p):
                input_gamma[m, e, i] = prm[input_bn + i]
        state[m, S_EPOCHS_RUN] = e + 1
        if not math.isfinite(epoch_loss):
            state[m, S_DIVERGED_EPOCH] = e
            state[m, S_ACTIVE] = 0
            return
        if nv > 0:
            v = _mse(prm, c, w, x, y, val[s], nv, sh, sc, pred, h_in, h_out)
            val_loss[m, e] = v
            if patience > 0:
                if state[m, S_BEST_EPOCH] < 0 or v < best_val[m]:
                    best_val[m] = v
                    state[m, S_BEST_EPOCH] = e
                    state[m, S_WAIT] = 0
                    _copy(prm, P_best[m])
                else:
                    state[m, S_WAIT] += 1
                if state[m, S_WAIT] >= patience or e == total_epochs - 1:
                    _copy(P_best[m], prm)  # restore the best epoch's weights and BN statistics
                    state[m, S_ACTIVE] = 0
                    return


@njit(cache=True, nogil=True)
def train_models(first, step, P, P_best, cfg, state, best_val, x, y, split_of, shift, scale,
                 train, n_train, order_seed, val, n_val, epoch_start, epoch_stop, batch_size, lr,
                 bn_decay, bn_keras2, patience, loss, val_loss, input_gamma):
    """Train models first, first + step, ... of the stack. Releases the GIL, so threads given
    interleaved model sets run in parallel (cheaper to compile than numba's parallel=True, and
    safe to call from several threads at once)."""
    for m in range(first, P.shape[0], step):
        _train_model(m, P, P_best, cfg, state, best_val, x, y, split_of, shift, scale, train,
                     n_train, order_seed, val, n_val, epoch_start, epoch_stop, batch_size, lr,
                     bn_decay, bn_keras2, patience, loss, val_loss, input_gamma)


@njit(cache=True)
def evaluate(P, cfg, x, y, split_of, shift, scale, rows, n_rows, mse):
    """Inference MSE of every model on its split's rows rows[s, :n_rows[s]] of x."""
    w = _width_of(P.shape[1])
    for m in range(P.shape[0]):
        d = cfg[m, C_DATA]
        s = split_of[d]
        pred = np.empty(max(n_rows[s], 1))
        mse[m] = _mse(P[m], cfg[m], w, x, y, rows[s], n_rows[s], shift[d], scale[d], pred,
                      np.empty(w), np.empty(w))


# --------------------------------------------------------------------------------------------
# numpy-side containers (no torch import, so grid workers can use them directly)


@dataclass
class SplitRows:
    """What models train on, as index views into one copy of the data x (N, p), y (N,).

    Per split s: its training, validation and test rows (S, longest) int32, padded, with their
    counts (S,), and the seed of its mini-batch orders. Per data set d (a split in one input
    mode): split_of[d], and the shift and scale (D, p) its inputs get (0 and 1 for raw inputs)."""

    x: np.ndarray
    y: np.ndarray
    split_of: np.ndarray
    shift: np.ndarray
    scale: np.ndarray
    train: np.ndarray
    n_train: np.ndarray
    val: np.ndarray
    n_val: np.ndarray
    test: np.ndarray
    n_test: np.ndarray
    order_seed: np.ndarray  # (S,) uint64

    def without_data(self) -> SplitRows:
        """The index part alone (x and y None): a task's small argument, x and y going apart
        (a Dask cluster receives them once per worker, not with every task)."""
        return replace(self, x=None, y=None)

    def with_data(self, x: np.ndarray, y: np.ndarray) -> SplitRows:
        return replace(self, x=x, y=y)

    def of_split(self, s: int) -> SplitRows:
        """Split s's rows alone (for the task training its models; other splits' data sets
        are pointed at it but never used by them)."""
        one = slice(s, s + 1)
        return replace(self, split_of=np.zeros_like(self.split_of), train=self.train[one],
                       n_train=self.n_train[one], val=self.val[one], n_val=self.n_val[one],
                       test=self.test[one], n_test=self.n_test[one],
                       order_seed=self.order_seed[one])


class Stack:
    """Models trained together: parameter rows P, architecture rows cfg, and training state."""

    def __init__(self, P: np.ndarray, cfg: np.ndarray, epochs: int, n_inputs: int):
        m = len(P)
        self.P = np.array(P, dtype=np.float64, order="C")  # a copy: training works in place
        self.cfg = np.ascontiguousarray(cfg, dtype=np.int64)
        self.P_best = self.P.copy()
        self.state = np.zeros((m, STATE_COLS), dtype=np.int64)
        self.state[:, S_ACTIVE] = 1
        self.state[:, S_BEST_EPOCH] = -1
        self.state[:, S_DIVERGED_EPOCH] = -1
        self.best_val = np.full(m, np.inf)
        self.loss = np.full((m, epochs), np.nan)
        self.val_loss = np.full((m, epochs), np.nan)
        self.input_gamma = np.full((m, epochs, n_inputs), np.nan)

    def train(self, data: SplitRows, epoch_start: int, epoch_stop: int, *, batch_size: int,
              lr: float, patience: int = 0, threads: int = 1,
              bn_update: tuple[float, bool] = KERAS3_BN_UPDATE) -> None:
        """Epochs [epoch_start, epoch_stop) for every model, over `threads` threads; bn_update is
        the BN moving statistics' (decay, Keras 2 form)."""
        decay, keras2 = bn_update
        args = (self.P, self.P_best, self.cfg, self.state, self.best_val, data.x, data.y,
                data.split_of, data.shift, data.scale, data.train, data.n_train, data.order_seed,
                data.val, data.n_val, epoch_start, epoch_stop, batch_size, lr, decay, keras2,
                patience,
                self.loss, self.val_loss, self.input_gamma)
        threads = max(1, min(threads, len(self.P)))
        if threads == 1:
            train_models(0, 1, *args)
            return
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda first: train_models(first, threads, *args), range(threads)))

    def adopt(self, models: np.ndarray, part: Stack) -> None:
        """Take over part's trained models, which are this stack's `models`."""
        for name in ("P", "P_best", "state", "best_val", "loss", "val_loss", "input_gamma"):
            getattr(self, name)[models] = getattr(part, name)

    def test_mse(self, data: SplitRows) -> np.ndarray:
        out = np.empty(len(self.P))
        evaluate(self.P, self.cfg, data.x, data.y, data.split_of, data.shift, data.scale,
                 data.test, data.n_test, out)
        return out


def trained_stack(P, cfg, x, y, sets: SplitRows, *, epochs: int, batch_size: int, lr: float,
                  patience: int = 0,
                  bn_update: tuple[float, bool] = KERAS3_BN_UPDATE) -> Stack:
    """Train a stack serially on sets' rows of x, y. A task of a run fanned out (x and y apart
    from the rest of the data sets: see SplitRows.without_data)."""
    stack = Stack(P, cfg, epochs, x.shape[1])
    stack.train(sets.with_data(x, y), 0, epochs, batch_size=batch_size, lr=lr, patience=patience,
                bn_update=bn_update)
    return stack


def score_stack(P, cfg, x, y, sets: SplitRows, *, epochs: int, batch_size: int, lr: float,
                patience: int = 0,
                  bn_update: tuple[float, bool] = KERAS3_BN_UPDATE) -> tuple[np.ndarray, np.ndarray]:
    """Train a stack serially; (test MSE, diverged epoch or -1) per model. A grid worker's task
    (x and y apart, as for trained_stack)."""
    data = sets.with_data(x, y)
    stack = Stack(P, cfg, epochs, data.x.shape[1])
    stack.train(data, 0, epochs, batch_size=batch_size, lr=lr, patience=patience,
                bn_update=bn_update)
    diverged = stack.state[:, S_DIVERGED_EPOCH].copy()
    mse = stack.test_mse(data)
    mse[diverged >= 0] = np.nan
    return mse, diverged
