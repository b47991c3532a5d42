"""The shared load_digits splits (ZO and merge workloads)."""

import pytest
import torch

from bbopt.problems.digits import digits_splits


def test_digits_splits_are_stratified_and_fixed():
    a, b = digits_splits(0), digits_splits(0)
    assert [len(part[1]) for part in a] == [1100, 247, 450]
    assert torch.equal(a.test[0], b.test[0])
    counts = torch.bincount(a.test[1], minlength=10)
    assert counts.min() >= 43 and counts.max() <= 47
    assert float(a.train[0].min()) >= 0.0 and float(a.train[0].max()) <= 1.0
    assert not torch.equal(digits_splits(1).test[0], a.test[0])


def test_standardised_fractions_split_as_the_merge_workload_uses_them():
    train, val, test = digits_splits(4, train=0.6, val=0.5, val_seed=5, scaling="standard")
    assert [len(train[1]), len(val[1]), len(test[1])] == [1078, 359, 360]
    assert train[0].mean(0).abs().max() < 1e-4  # standardised by the training split's own statistics
    assert float(train[0].std(0).max()) == pytest.approx(1.0, abs=0.01)


def test_an_unknown_scaling_is_refused():
    with pytest.raises(ValueError, match="scaling"):
        digits_splits(scaling="minmax")
