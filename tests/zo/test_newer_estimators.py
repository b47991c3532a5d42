"""FZOO, HiZOO, LOZO(-M), SubZero together: they train where random search does not, resume bit
for bit, and pass the conformance suite."""

import pytest
import torch

from bbopt import minimize
from bbopt.testing import OptimizerConformance

from .toys import flat, random_search, regression, tiny_mlp

#: (name, options) at an lr that suits the tiny digits MLP
SETTINGS = [("fzoo", {"lr": 1e-4, "q": 8}), ("hizoo", {"lr": 0.05, "hessian_smooth": 1e-4}),
            ("lozo", {"lr": 0.03, "subspace_every": 5}),
            ("lozo", {"lr": 0.03, "rule": "momentum", "momentum": 0.5, "subspace_every": 5}),
            ("subzero", {"lr": 0.03, "subspace_every": 1})]


def train_loss(p):
    return p.mean_loss([p.batch(t) for t in range(8)])


@pytest.fixture(scope="module")
def random_search_loss():
    """(1+1) random search's training loss after 600 FE at its best scale (0.01 / 0.1 end higher)."""
    p = tiny_mlp()
    random_search(p, 600, scale=0.03)
    return train_loss(p)


@pytest.mark.parametrize("name,options", SETTINGS, ids=str)
def test_trains_a_small_mlp_where_random_search_does_not(name, options, random_search_loss):
    p = tiny_mlp()
    start = train_loss(p)
    minimize(p, name, 600, seed=0, options=options, progress=False)
    end = train_loss(p)
    assert random_search_loss > 0.75 * start  # random search: 2.44 -> 1.91
    assert end < 0.85 * start and end < random_search_loss - 0.05


@pytest.mark.parametrize("name,options", [("fzoo", {"lr": 1e-4, "q": 4}), ("hizoo", {"lr": 0.01}),
                                          ("lozo", {"lr": 0.01, "rule": "momentum", "subspace_every": 3}),
                                          ("subzero", {"lr": 0.01, "subspace_every": 3})], ids=str)
def test_resume_from_a_run_directory_is_bit_identical(tmp_path, name, options):
    full = regression()
    minimize(full, name, 60, seed=2, options=options, progress=False, run_dir=tmp_path / "a")
    half = regression()
    minimize(half, name, 30, seed=2, options=options, progress=False, run_dir=tmp_path / "b")
    resumed = regression()
    minimize(resumed, name, 60, seed=2, options=options, progress=False, run_dir=tmp_path / "b", resume=True)
    assert torch.equal(flat(full.space), flat(resumed.space))


class TestFZOOConformance(OptimizerConformance):
    name = "fzoo"
    options = {"lr": 3e-4, "q": 4, "schedule": "cosine", "budget": 3000}  # normalised steps settle with a decaying lr
    converge_budget = 3000

    def make_problem(self):
        return regression()


class TestHiZOOConformance(TestFZOOConformance):
    name = "hizoo"
    options = {"lr": 0.02, "hessian_smooth": 1e-4}


class TestLOZOConformance(TestFZOOConformance):
    name = "lozo"
    options = {"lr": 0.01, "subspace_every": 5}


class TestLOZOMomentumConformance(TestFZOOConformance):
    name = "lozo"
    options = {"lr": 0.01, "rule": "momentum", "subspace_every": 5}
    converge_budget = None  # trains: test_trains_a_small_mlp_where_random_search_does_not


class TestSubZeroConformance(TestFZOOConformance):
    name = "subzero"
    options = {"lr": 0.01, "subspace_every": 5}
