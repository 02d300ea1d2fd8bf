"""How rows become folds: the Protocol of a run, and grouped cross-validation (folds that never
split a group: a patient, a dialysis centre).

Hand-written because scikit-learn (GroupKFold, LeaveOneGroupOut) is not a dependency and these
two splitters are a few lines each; adding sklearn for them alone would pull a large package into
every install. The engine sees group labels as an array aligned with the rows, never the file.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass

import numpy as np

from bnapp.engine.model import BN_DECAYS

GROUP_KFOLD = "group-kfold"
LEAVE_ONE_GROUP_OUT = "leave-one-group-out"
GROUPED_KINDS = (GROUP_KFOLD, LEAVE_ONE_GROUP_OUT)
PROTOCOL_KINDS = ("kfold", "repeated", "study", *GROUPED_KINDS)


@dataclass(frozen=True)
class Protocol:
    """How rows are split into folds and how each fold's model is trained.

    kind: "kfold" (folds-fold CV, shuffled with the seed), "repeated" (repeats x k-fold) or
    "study" (folds random 80/20 train/test splits, as the published code). val_fraction > 0 holds
    out that share of each training set (rounded up, as sklearn's train_test_split) for the
    validation curve and optional early stopping (patience epochs without improvement; the best
    epoch's weights are kept).
    "group-kfold" / "leave-one-group-out" (bnapp.engine.protocols) keep each group's rows in one
    test set; group_by names the grouping column and group_hash fingerprints its labels, so the
    protocol (and the cache key made from it) tells one grouping from another.
    bn_decay: how BN moving statistics are updated, as Keras 3 ("keras3") or as Keras 2
    ("keras2": the decay rounded to float32; see docs/keras.md).
    """

    kind: str = "kfold"
    folds: int = 10
    repeats: int = 1
    epochs: int = 200
    batch_size: int = 32
    lr: float = 0.01
    seed: int = 0
    val_fraction: float = 0.0
    patience: int | None = None
    group_by: str | None = None
    group_hash: str | None = None
    bn_decay: str = "keras3"

    def __post_init__(self):
        if self.bn_decay not in BN_DECAYS:
            raise ValueError(f"bn_decay must be one of {tuple(BN_DECAYS)}, "
                             f"not {self.bn_decay!r}")
        if self.kind not in PROTOCOL_KINDS:
            raise ValueError(f"protocol kind must be one of {PROTOCOL_KINDS}, not {self.kind!r}")
        is_grouped = self.kind in GROUPED_KINDS
        if is_grouped != (self.group_by is not None and self.group_hash is not None):
            raise ValueError(f"a {self.kind} protocol {'needs' if is_grouped else 'takes no'} "
                             "grouping column (group_by and group_hash)")
        if self.folds < (1 if self.kind == "study" else 2):
            raise ValueError(f"folds must be at least 2 for k-fold (1 for study), not {self.folds}")
        if self.repeats < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError("repeats, epochs and batch_size must be at least 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"learning rate must be a positive number, not {self.lr}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), not {self.val_fraction}")
        if self.patience is not None:
            if self.patience < 1:
                raise ValueError(f"patience must be at least 1 epoch, not {self.patience}")
            if self.val_fraction == 0.0:
                raise ValueError("early stopping needs validation rows: set val_fraction > 0")

    @classmethod
    def study(cls, seed: int = 0) -> Protocol:
        """The published protocol: 10 random 80/20 splits, each with an inner 80/20 validation."""
        return cls(kind="study", folds=10, val_fraction=0.2, seed=seed)

    @property
    def n_models(self) -> int:
        return self.folds * (self.repeats if self.kind == "repeated" else 1)

    def to_dict(self) -> dict:
        # settings at their default are left out, so a protocol's dict (and so its cache key) is
        # what it was before the setting existed
        return {k: v for k, v in asdict(self).items() if not (k in _ADDED and v == _ADDED[k])}

    @classmethod
    def from_dict(cls, d: dict) -> Protocol:
        return cls(**d)


_ADDED = {"group_by": None, "group_hash": None, "bn_decay": "keras3"}


def group_codes(groups, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct labels as text, each row's index into them); labels compare as text so
    numbers, strings and mixtures all work."""
    labels = np.asarray([str(v) for v in np.asarray(groups, dtype=object).tolist()])
    if labels.shape != (n_rows,):
        raise ValueError(f"{labels.size} group labels for {n_rows} rows: give one label per row")
    return np.unique(labels, return_inverse=True)


def group_hash(groups) -> str:
    """sha256 of the labels in row order: a cache key part telling one grouping from another."""
    labels = [str(v) for v in np.asarray(groups, dtype=object).tolist()]
    return hashlib.sha256("\0".join(labels).encode("utf-8", "surrogatepass")).hexdigest()


def grouped(protocol, kind: str, column: str, groups):
    """protocol as a grouped protocol over these labels (dataclasses.replace keeps its type);
    leave-one-group-out gets one fold per group."""
    from dataclasses import replace

    if kind not in GROUPED_KINDS:
        raise ValueError(f"grouped protocol kind must be one of {GROUPED_KINDS}, not {kind!r}")
    names, _ = group_codes(groups, len(groups))
    if len(names) < 2:
        raise ValueError(f"{column!r} has {len(names)} distinct value(s): grouped validation "
                         "needs at least 2 groups")
    folds = len(names) if kind == LEAVE_ONE_GROUP_OUT else protocol.folds
    if folds > len(names):
        raise ValueError(_too_few_groups(column, len(names), folds))
    return replace(protocol, kind=kind, folds=folds, repeats=1, group_by=column,
                   group_hash=group_hash(groups))


def group_folds(kind: str, folds: int, codes: np.ndarray, rng: np.random.Generator,
                column: str = "group") -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, test rows) per fold; every group's rows are all in one test set.

    group-kfold: groups in random order (seeded), then largest first, each to the fold with the
    fewest rows so far (GroupKFold's balancing; the shuffle makes ties and equal sizes vary with
    the seed). leave-one-group-out: fold k tests group k (in sorted label order).
    """
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    if n_groups < 2:
        raise ValueError(f"{column!r} has {n_groups} distinct value(s): grouped validation needs "
                         "at least 2 groups")
    if kind == LEAVE_ONE_GROUP_OUT:
        fold_of_group = np.arange(n_groups)
        folds = n_groups
    else:
        if folds > n_groups:
            raise ValueError(_too_few_groups(column, n_groups, folds))
        sizes = np.bincount(codes, minlength=n_groups)
        order = rng.permutation(n_groups)
        order = order[np.argsort(-sizes[order], kind="stable")]
        fold_rows = np.zeros(folds, dtype=np.int64)
        fold_of_group = np.empty(n_groups, dtype=np.int64)
        for g in order:
            k = int(np.argmin(fold_rows))
            fold_of_group[g] = k
            fold_rows[k] += sizes[g]
    row_fold = fold_of_group[codes]
    rows = np.arange(len(codes))
    return [(rows[row_fold != k], rows[row_fold == k]) for k in range(folds)]


def group_holdout(train: np.ndarray, codes: np.ndarray, fraction: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(kept, validation) rows of a training set: whole training groups, in random order, until
    at least ceil(fraction * n) rows are held out, so no group straddles training and
    validation. With a single training group (leave-one-unit-out on two units) there is no
    group to hold out: validation rows are then drawn from that group, as an ungrouped protocol
    does (they never come from the test group either way)."""
    n_out = math.ceil(fraction * len(train))
    present = np.unique(codes[train])
    if len(present) < 2:
        perm = train[rng.permutation(len(train))]
        return perm[n_out:], perm[:n_out]
    held: list[int] = []
    count = 0
    for g in rng.permutation(present)[:-1]:  # never every group: something must be trained on
        if count >= n_out:
            break
        held.append(int(g))
        count += int(np.sum(codes[train] == g))
    out = np.isin(codes[train], held)
    return train[~out], train[out]


def _too_few_groups(column: str, n_groups: int, folds: int) -> str:
    return (f"{column!r} has {n_groups} groups, too few for {folds} grouped folds: use at most "
            f"{n_groups} folds, or leave-one-group-out")
