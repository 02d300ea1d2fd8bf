"""Grouped cross-validation: folds that never split a group (a patient, a dialysis unit).

Hand-written because scikit-learn (GroupKFold, LeaveOneGroupOut) is not a dependency and these
two splitters are a few lines each; adding sklearn for them alone would pull a large package into
every install. The engine sees group labels as an array aligned with the rows, never the file.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

GROUP_KFOLD = "group-kfold"
LEAVE_ONE_GROUP_OUT = "leave-one-group-out"
GROUPED_KINDS = (GROUP_KFOLD, LEAVE_ONE_GROUP_OUT)


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
