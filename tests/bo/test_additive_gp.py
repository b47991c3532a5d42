"""The additive GP against dense references: posteriors, components, scikit-learn, Thompson draws."""

import tracemalloc

import numpy as np
import pytest

from bbopt.strategies.bo.additive_gp import AdditiveGP, standardize, transform_targets
from bbopt.strategies.bo.decomposition import Decomposition
from bbopt.strategies.bo.kernels import Hyper
from bbopt.strategies.bo.likelihood import neg_log_likelihood


def dense_kernel(hyper, cliques, A, B):
    """k(a, b) = Σ_g (Σ_{i∈g} v_i) exp(−½ Σ_{i∈g} (a_i − b_i)²/ℓ_i²), one entry at a time."""
    ls, var = np.exp(hyper.log_ls), np.exp(hyper.log_var)
    out = np.zeros((len(A), len(B)))
    for p, a in enumerate(A):
        for q, b in enumerate(B):
            for g in cliques:
                g = list(g)
                out[p, q] += var[g].sum() * np.exp(-0.5 * np.sum((a[g] - b[g]) ** 2 / ls[g] ** 2))
    return out


def problem(seed=0, n=15, d=5):
    rng = np.random.default_rng(seed)
    X = rng.random((n, d))
    y = np.sin(5 * X[:, 0]) + X[:, 1] * X[:, 2] + 0.1 * rng.standard_normal(n)
    hyper = Hyper(rng.normal(np.log(0.4), 0.3, d), rng.normal(-1.0, 0.3, d), np.log(0.05))
    dec = Decomposition.from_edges(d, np.array([[1, 2], [0, 4]]))
    return X, standardize(y)[0], dec, hyper, rng


def test_posterior_matches_dense_formula():
    X, y, dec, hyper, rng = problem(2)
    Xs = rng.random((7, X.shape[1]))
    gp = AdditiveGP(X, y, dec, hyper)
    K = dense_kernel(hyper, dec.cliques, X, X) + hyper.noise * np.eye(len(X))
    Ks = dense_kernel(hyper, dec.cliques, Xs, X)
    mean_ref = Ks @ np.linalg.solve(K, y)
    cov_ref = dense_kernel(hyper, dec.cliques, Xs, Xs) - Ks @ np.linalg.solve(K, Ks.T)
    mean, cov = gp.predict(Xs, full_cov=True)
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(cov, cov_ref, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(gp.predict(Xs)[1], np.diag(cov_ref), rtol=1e-8, atol=1e-10)


def test_component_posteriors_sum_to_full_mean_and_match_dense():
    X, y, dec, hyper, rng = problem(3)
    Xs = rng.random((9, X.shape[1]))
    gp = AdditiveGP(X, y, dec, hyper)
    K = dense_kernel(hyper, dec.cliques, X, X) + hyper.noise * np.eye(len(X))
    total = np.zeros(len(Xs))
    for clique in dec.cliques:
        mean_g, var_g = gp.component(clique, Xs[:, list(clique)])
        kg = dense_kernel(hyper, [clique], Xs, X)
        np.testing.assert_allclose(mean_g, kg @ np.linalg.solve(K, y), rtol=1e-9, atol=1e-10)
        var_ref = np.diag(dense_kernel(hyper, [clique], Xs, Xs) - kg @ np.linalg.solve(K, kg.T))
        np.testing.assert_allclose(var_g, var_ref, rtol=1e-8, atol=1e-10)
        total += mean_g
    np.testing.assert_allclose(total, gp.predict(Xs)[0], rtol=1e-10, atol=1e-12)


def test_single_clique_matches_sklearn():
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    X, y, _, hyper, rng = problem(4)
    d = X.shape[1]
    dec = Decomposition.full(d)
    kernel = ConstantKernel(np.exp(hyper.log_var).sum()) * RBF(np.exp(hyper.log_ls)) + WhiteKernel(hyper.noise)
    ref = GaussianProcessRegressor(kernel, optimizer=None, normalize_y=False).fit(X, y)
    Xs = rng.random((6, d))
    mean_ref, std_ref = ref.predict(Xs, return_std=True)
    mean, var = AdditiveGP(X, y, dec, hyper).predict(Xs)
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(var + hyper.noise, std_ref**2, rtol=1e-7)  # sklearn includes the white noise
    nll, _ = neg_log_likelihood(hyper, dec.cliques, X, y)
    assert -nll == pytest.approx(ref.log_marginal_likelihood_value_, rel=1e-9)


def test_jitter_keeps_a_singular_kernel_usable():
    rng = np.random.default_rng(6)
    X = np.repeat(rng.random((4, 3)), 3, axis=0)  # every point three times
    dec = Decomposition.from_edges(3, np.array([[0, 1]]))
    gp = AdditiveGP(X, rng.standard_normal(len(X)), dec, Hyper.initial(3, noise=1e-12))
    assert np.isfinite(gp.alpha).all()


def test_pathwise_draws_have_the_exact_posterior_mean_and_covariance():
    """Over draws (each with its own Fourier features) the pathwise samples are unbiased for the
    posterior: their mean and covariance at 4 points match the dense formulas within 5 standard
    errors of the Monte Carlo estimate."""
    X, y, dec, hyper, rng = problem(7)
    gp = AdditiveGP(X, y, dec, hyper)
    Xs = np.vstack([X[:1], rng.random((3, X.shape[1]))])  # one observed point, three new ones
    n = 2500
    draws = gp.sample_paths(Xs, n, np.random.default_rng(0), n_features=64)
    assert draws.shape == (n, 4)
    mean, cov = gp.predict(Xs, full_cov=True)
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(draws.mean(0) - mean) < 5 * sd / np.sqrt(n))
    centred = draws - mean
    products = centred[:, :, None] * centred[:, None, :]  # (n, 4, 4): unbiased for cov since the mean is known
    se = products.std(0) / np.sqrt(n)
    assert np.all(np.abs(products.mean(0) - cov) < 5 * se + 1e-12)


def test_pathwise_draws_cost_memory_linear_in_the_candidates():
    """20,000 candidates in 3-D: a joint covariance would need 3.2 GB; the draws stay small."""
    rng = np.random.default_rng(8)
    X = rng.random((30, 3))
    gp = AdditiveGP(X, standardize(np.sin(5 * X).sum(1))[0], Decomposition.full(3), Hyper.initial(3))
    cands = rng.random((20_000, 3))
    tracemalloc.start()
    draws = gp.sample_paths(cands, 2, np.random.default_rng(1), n_features=256)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert draws.shape == (2, 20_000) and np.isfinite(draws).all()
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def test_power_transform_keeps_the_order_and_spreads_the_low_losses():
    """One huge loss squeezes the rest together once standardised; the Yeo–Johnson warp
    keeps the ranking and gives the small losses back most of the unit spread."""
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 1e6])
    plain, warped = transform_targets(y), transform_targets(y, "power")
    assert np.array_equal(np.argsort(warped), np.argsort(y))
    assert warped.mean() == pytest.approx(0.0, abs=1e-9) and warped.std() == pytest.approx(1.0)
    assert np.ptp(plain[:5]) < 1e-4 and np.ptp(warped[:5]) > 0.1
    np.testing.assert_allclose(transform_targets(y, "standardize"), standardize(y)[0])
    assert np.all(transform_targets(np.ones(4), "power") == 0.0)
