"""scikit-learn's ``load_digits`` (1,797 8×8 images, ships with scikit-learn) split for training:
the one home of the splits the ZO workloads and the merge workloads use."""

from __future__ import annotations

from typing import NamedTuple

import torch

Pair = tuple[torch.Tensor, torch.Tensor]  # X (n, 64) float32, y (n,) int64
SCALINGS = ("unit", "standard")


class DigitsSplits(NamedTuple):
    train: Pair
    val: Pair
    test: Pair


def digits_splits(seed: int = 0, *, train: int | float = 1100, val: int | float = 247, val_seed: int | None = None,
                  scaling: str = "unit") -> DigitsSplits:
    """Stratified train / validation / test splits of ``load_digits``.

    ``train`` images (a count, or a fraction of all 1,797) are drawn first with ``seed``; ``val``
    (a count, or a fraction of the rest) from the rest with ``val_seed`` (default ``seed``); the
    remainder is the test split. ``scaling``: ``"unit"`` divides pixels by 16 (to [0, 1]);
    ``"standard"`` standardises each pixel by the training split's mean and std (+1e-3).
    The split depends only on these arguments.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if scaling not in SCALINGS:
        raise ValueError(f"digits_splits: scaling must be one of {SCALINGS}, got {scaling!r}")
    x, y = load_digits(return_X_y=True)
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, train_size=train, stratify=y, random_state=seed)
    x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, train_size=val, stratify=y_rest,
                                                    random_state=seed if val_seed is None else val_seed)
    if scaling == "unit":
        shift, scale = 0.0, 16.0
    else:
        shift, scale = x_train.mean(0), x_train.std(0) + 1e-3

    def pair(a, b) -> Pair:
        return torch.tensor((a - shift) / scale, dtype=torch.float32), torch.tensor(b, dtype=torch.int64)

    return DigitsSplits(pair(x_train, y_train), pair(x_val, y_val), pair(x_test, y_test))
