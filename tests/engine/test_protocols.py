"""Grouped protocols: no group is ever split between training, validation and test rows."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bnapp.engine.model import ArchSpec
from bnapp.engine.protocols import (
    GROUP_KFOLD,
    LEAVE_ONE_GROUP_OUT,
    Protocol,
    group_hash,
    grouped,
)
from bnapp.engine.train import make_splits, train_run
from bnapp.intake.data import STUDY_INPUTS, load_dataset


def _labels(draw_codes: list[int], kind_text: bool) -> np.ndarray:
    codes = np.asarray(draw_codes)
    if kind_text:
        return np.array([f"p{c:03d}" for c in codes], dtype=object)
    return codes.astype(float)


def _assert_groups_whole(splits, labels) -> None:
    labels = np.asarray([str(v) for v in labels])
    n = len(labels)
    tested = np.concatenate([s.test for s in splits])
    assert np.array_equal(np.sort(tested), np.arange(n))  # every row tested exactly once
    for s in splits:
        parts = [set(labels[s.train]), set(labels[s.val]), set(labels[s.test])]
        assert not parts[2] & (parts[0] | parts[1]), "a test group also in training/validation"
        assert len(s.train) + len(s.val) + len(s.test) == n
        assert set(labels[s.test]) and all(
            np.all(np.isin(np.flatnonzero(labels == g), s.test)) for g in parts[2])


@settings(max_examples=60)
@given(codes=st.lists(st.integers(0, 30), min_size=12, max_size=120), text=st.booleans(),
       folds=st.integers(2, 8), val=st.sampled_from([0.0, 0.2, 0.3]), seed=st.integers(0, 999))
def test_group_kfold_never_splits_a_group(codes, text, folds, val, seed):
    labels = _labels(codes, text)
    n_groups = len(set(codes))
    base = Protocol(folds=folds, seed=seed, val_fraction=val)
    if n_groups < 2:
        with pytest.raises(ValueError, match="at least 2 groups"):
            grouped(base, GROUP_KFOLD, "pid", labels)
        return
    if folds > n_groups:
        with pytest.raises(ValueError, match=f"has {n_groups} groups, too few for {folds}"):
            grouped(base, GROUP_KFOLD, "pid", labels)
        return
    protocol = grouped(base, GROUP_KFOLD, "pid", labels)
    try:
        splits = make_splits(protocol, len(labels), labels)
    except ValueError as exc:  # only when a fold's training set is left under 2 rows
        assert "fewer than 2 training rows" in str(exc)
        return
    assert len(splits) == folds
    _assert_groups_whole(splits, labels)
    # validation rows are whole groups whenever the training set has more than one group
    labels_text = np.asarray([str(v) for v in labels])
    for s in splits:
        if len(set(labels_text[s.train]) | set(labels_text[s.val])) > 1:
            assert not set(labels_text[s.train]) & set(labels_text[s.val])
    # balanced: the largest fold exceeds the smallest by at most the largest group (greedy bound)
    sizes = [len(s.test) for s in splits]
    largest_group = np.bincount(np.unique(labels_text, return_inverse=True)[1]).max()
    assert max(sizes) - min(sizes) <= largest_group


@settings(max_examples=40)
@given(codes=st.lists(st.integers(0, 6), min_size=8, max_size=60), seed=st.integers(0, 999))
def test_leave_one_group_out_tests_each_group_alone(codes, seed):
    labels = np.asarray(codes)
    if len(set(codes)) < 2:
        with pytest.raises(ValueError, match="at least 2 groups"):
            grouped(Protocol(seed=seed), LEAVE_ONE_GROUP_OUT, "unit", labels)
        return
    grouped_protocol = grouped(Protocol(seed=seed), LEAVE_ONE_GROUP_OUT, "unit", labels)
    try:
        splits = make_splits(grouped_protocol, len(labels), labels)
    except ValueError as exc:
        assert "fewer than 2 training rows" in str(exc)
        return
    assert grouped_protocol.folds == len(set(codes)) == len(splits)
    assert [set(labels[s.test]) for s in splits] == [{g} for g in sorted(set(codes))]
    _assert_groups_whole(splits, labels)


def test_group_kfold_is_seeded_and_varies_with_the_seed():
    labels = np.repeat(np.arange(20), 3)
    a, b, c = (make_splits(grouped(Protocol(folds=5, seed=s), GROUP_KFOLD, "pid", labels),
                           len(labels), labels) for s in (1, 1, 2))
    assert all(np.array_equal(x.test, y.test) for x, y in zip(a, b, strict=True))
    assert any(not np.array_equal(x.test, z.test) for x, z in zip(a, c, strict=True))


def test_grouped_protocol_needs_its_labels_and_keeps_ungrouped_dicts_unchanged():
    labels = np.repeat([0, 1, 2], 5)
    protocol = grouped(Protocol(folds=3), GROUP_KFOLD, "centro", labels)
    with pytest.raises(ValueError, match="groups by 'centro'"):
        make_splits(protocol, 15)  # no labels
    with pytest.raises(ValueError, match="groups by 'centro'"):
        make_splits(protocol, 15, labels[::-1])  # other labels than the protocol was made with
    with pytest.raises(ValueError, match="needs grouping column"):
        Protocol(kind=GROUP_KFOLD)
    with pytest.raises(ValueError, match="takes no grouping column"):
        Protocol(group_by="centro", group_hash="x")
    assert Protocol.from_dict(protocol.to_dict()) == protocol
    assert protocol.to_dict()["group_hash"] == group_hash(labels)
    assert set(Protocol().to_dict()) == {f.name for f in dataclasses.fields(Protocol)} - {
        "group_by", "group_hash", "bn_decay"}


@pytest.mark.slow
def test_leave_one_centre_out_runs_on_the_study_file(urea_csv):
    ds = load_dataset(urea_csv)
    assert "centro" in ds.extra_columns  # the unit column is kept as an extra column
    centres = ds.frame["centro"].to_numpy()
    protocol = grouped(Protocol(epochs=5, seed=0, val_fraction=0.2), LEAVE_ONE_GROUP_OUT,
                       "centro", centres)
    run = train_run(ds.X(STUDY_INPUTS), ds.y(), ArchSpec.study_e2e(), protocol,
                    features=STUDY_INPUTS, groups=centres)
    assert len(run.folds) == 2 == len(np.unique(centres))
    for fold in run.folds:
        test_units = set(centres[fold.test_rows])
        assert len(test_units) == 1
        assert not test_units & set(centres[np.concatenate([fold.train_rows, fold.val_rows])])
        assert np.isfinite(fold.test_predictions).all()
    assert run.label.endswith("leave-one-centro-out, 5 epochs")
