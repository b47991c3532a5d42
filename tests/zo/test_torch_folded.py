"""K parameter copies of an nn.Sequential folded into one K·B-row forward: same losses as vmap and
as in place; anything it cannot fold falls back to vmap."""

import numpy as np
import pytest
import torch

from bbopt.params import stacked_copies
from bbopt.perturbations import Direction
from bbopt.problems import get
from bbopt.problems.torch_batched import vmap_losses
from bbopt.problems.torch_folded import FoldedSequential, Unfoldable

from .toys import tiny_mlp


def directions(q: int = 6):
    return [Direction(0, 100 + j, sign * 1e-2) for j in range(q) for sign in (1, -1)]


@pytest.mark.parametrize("name", ["zo-digits-mlp", "zo-digits-cnn"])
def test_folded_losses_equal_vmap_and_in_place(name):
    batched, inplace = get(name, seed=0, mode="batched"), get(name, seed=0, mode="inplace")
    specs = directions()
    stacked = stacked_copies(batched.space, specs)
    data = batched.batch(0)
    folded = FoldedSequential(batched.model).losses(stacked, batched.loss, data)
    vmapped = vmap_losses(batched.model, batched.loss, data, stacked)
    torch.testing.assert_close(folded, vmapped, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(batched.evaluate(specs), inplace.evaluate(specs), rtol=1e-5)
    assert batched._folded is not None and batched._folded.enabled  # the folded path did the work


def test_what_cannot_fold_falls_back_to_vmap():
    p = tiny_mlp(mode="batched", single_batch=True)
    specs = directions(3)
    stacked = stacked_copies(p.space, specs)
    expected = vmap_losses(p.model, p.loss, p.batch(0), stacked)
    for loss in (lambda m, b: p.loss(m, b).mean(),                      # a scalar: rows cannot be split
                 lambda m, b: p.loss(m, b) + 0 * m(b[0]).sum(1)):      # the model called twice
        with pytest.raises(Unfoldable):
            FoldedSequential(p.model).losses(stacked, loss, p.batch(0))
    p.loss = lambda m, b: torch.nn.functional.cross_entropy(m(b[0]), b[1])  # scalar: the problem falls back
    np.testing.assert_allclose(p.evaluate(specs), expected.numpy(), rtol=1e-5)
    assert p._folded is not None and not p._folded.enabled
