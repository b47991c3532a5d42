"""The additive GP against dense references: likelihood, gradients, posteriors, safety."""

import numpy as np
import pytest
from scipy.optimize import approx_fprime
from scipy.stats import multivariate_normal

from bbopt.strategies.bo.additive_gp import AdditiveGP, standardize
from bbopt.strategies.bo.decomposition import Decomposition
from bbopt.strategies.bo.kernels import Hyper
from bbopt.strategies.bo.likelihood import Prior, fit_hyper, neg_log_likelihood


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


def test_likelihood_matches_dense_gaussian():
    X, y, dec, hyper, _ = problem()
    K = dense_kernel(hyper, dec.cliques, X, X) + hyper.noise * np.eye(len(X))
    nll, _ = neg_log_likelihood(hyper, dec.cliques, X, y)
    assert nll == pytest.approx(-multivariate_normal(np.zeros(len(X)), K).logpdf(y), rel=1e-10)


@pytest.mark.parametrize("learn_noise", [True, False])
def test_gradient_matches_finite_differences(learn_noise):
    X, y, dec, hyper, _ = problem(1)
    d = X.shape[1]
    theta = np.concatenate([hyper.log_ls, hyper.log_var] + ([[hyper.log_noise]] if learn_noise else []))

    def f(t):
        h = Hyper(t[:d], t[d:2 * d], t[2 * d] if learn_noise else hyper.log_noise)
        return neg_log_likelihood(h, dec.cliques, X, y, learn_noise)[0]

    _, grad = neg_log_likelihood(hyper, dec.cliques, X, y, learn_noise)
    np.testing.assert_allclose(grad, approx_fprime(theta, f, 1e-6), rtol=1e-4, atol=1e-5)


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


@pytest.mark.parametrize("prior,ratio", [(None, 10.0), (Prior(), 2.0)])
def test_fit_improves_likelihood_and_finds_relevant_dimension(prior, ratio):
    """Only x0 matters: ML gives it nearly all the variance; the tied MAP prior still ranks it first."""
    rng = np.random.default_rng(5)
    X = rng.random((40, 3))
    y, _, _ = standardize(np.sin(6 * X[:, 0]))
    dec = Decomposition.from_edges(3, np.zeros((0, 2)))
    h0 = Hyper.initial(3)
    h1 = fit_hyper(h0, dec.cliques, X, y, max_evals=200, prior=prior)
    assert neg_log_likelihood(h1, dec.cliques, X, y)[0] < neg_log_likelihood(h0, dec.cliques, X, y)[0] - 10
    var = np.exp(h1.log_var)
    assert var[0] > ratio * max(var[1], var[2])


def test_prior_gradient_matches_finite_differences():
    theta = np.random.default_rng(8).normal(size=11)
    cliques = ((0, 1), (2,), (3,), (4,))
    prior = Prior()
    grad = prior.penalty(theta, cliques, True)[1]
    np.testing.assert_allclose(grad, approx_fprime(theta, lambda t: prior.penalty(t, cliques, True)[0], 1e-7),
                               rtol=1e-5, atol=1e-6)


def test_duplicates_and_constant_outputs_are_safe():
    rng = np.random.default_rng(6)
    X = np.repeat(rng.random((4, 3)), 3, axis=0)  # every point three times
    z, mean, std = standardize(np.full(len(X), 3.0))
    assert std == 1.0 and mean == 3.0 and np.all(z == 0.0)
    dec = Decomposition.from_edges(3, np.array([[0, 1]]))
    hyper = fit_hyper(Hyper.initial(3, noise=1e-6), dec.cliques, X, z, max_evals=10)
    gp = AdditiveGP(X, z, dec, hyper)
    mean_s, var_s = gp.predict(rng.random((5, 3)))
    assert np.isfinite(mean_s).all() and np.isfinite(var_s).all() and (var_s > 0).all()
    gp = AdditiveGP(X, rng.standard_normal(len(X)), dec, Hyper.initial(3, noise=1e-12))  # needs jitter
    assert np.isfinite(gp.alpha).all()


def test_thompson_samples_interpolate_data():
    X, y, dec, hyper, rng = problem(7)
    gp = AdditiveGP(X, y, dec, hyper.with_noise(1e-6))
    draws = gp.sample(X[:4], 200, np.random.default_rng(0))
    assert draws.shape == (200, 4)
    np.testing.assert_allclose(draws.mean(0), gp.predict(X[:4])[0], atol=0.02)
