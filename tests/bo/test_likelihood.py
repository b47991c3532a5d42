"""The hyper-parameter fit: likelihood and gradients against dense references, the no-prior
fit against scikit-learn's optimum, convergence under every prior, the priors themselves."""

import numpy as np
import pytest
from scipy.optimize import approx_fprime
from scipy.stats import multivariate_normal

from bbopt.strategies.bo.additive_gp import standardize
from bbopt.strategies.bo.decomposition import Decomposition
from bbopt.strategies.bo.kernels import Hyper
from bbopt.strategies.bo.likelihood import PRIORS, Bounds, fit_hyper, neg_log_likelihood

from .test_additive_gp import dense_kernel, problem


def theta_of(hyper, learn_noise=True):
    return np.concatenate([hyper.log_ls, hyper.log_var] + ([[hyper.log_noise]] if learn_noise else []))


def test_likelihood_matches_dense_gaussian():
    X, y, dec, hyper, _ = problem()
    K = dense_kernel(hyper, dec.cliques, X, X) + hyper.noise * np.eye(len(X))
    nll, _ = neg_log_likelihood(hyper, dec.cliques, X, y)
    assert nll == pytest.approx(-multivariate_normal(np.zeros(len(X)), K).logpdf(y), rel=1e-10)


@pytest.mark.parametrize("learn_noise", [True, False])
def test_gradient_matches_finite_differences(learn_noise):
    X, y, dec, hyper, _ = problem(1)
    d = X.shape[1]

    def f(t):
        h = Hyper(t[:d], t[d:2 * d], t[2 * d] if learn_noise else hyper.log_noise)
        return neg_log_likelihood(h, dec.cliques, X, y, learn_noise)[0]

    _, grad = neg_log_likelihood(hyper, dec.cliques, X, y, learn_noise)
    np.testing.assert_allclose(grad, approx_fprime(theta_of(hyper, learn_noise), f, 1e-6), rtol=1e-4, atol=1e-5)


def sklearn_data(seed):
    """50 points in 5-D: two relevant inputs, a weak linear one, two irrelevant, small noise."""
    rng = np.random.default_rng(seed)
    X = rng.random((50, 5))
    y = np.sin(6 * X[:, 0]) + 2 * (X[:, 1] - 0.5) ** 2 + 0.3 * X[:, 2] + 0.05 * rng.standard_normal(50)
    return X, standardize(y)[0]


@pytest.mark.parametrize("seed", [0, 1])
def test_no_prior_fit_reaches_scikit_learns_optimum(seed):
    """Type-II ML (no prior), one start from the default initial values as the strategies run it:
    the log marginal likelihood equals scikit-learn's optimum (9 starts of its own L-BFGS-B
    fit, same kernel and bounds) to 1e-6 nats, and the length-scales agree."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    X, y = sklearn_data(seed)
    b = Bounds()
    kernel = (ConstantKernel(1.0, (5 * b.variance[0], 5 * b.variance[1])) * RBF(np.full(5, 0.25), b.lengthscale)
              + WhiteKernel(1e-3, b.noise))
    with pytest.warns(Warning):  # sklearn: two irrelevant length-scales sit at the upper bound
        ref = GaussianProcessRegressor(kernel, normalize_y=False, n_restarts_optimizer=8, random_state=0).fit(X, y)
    fit = fit_hyper(Hyper.initial(5), Decomposition.full(5).cliques, X, y, None, np.random.default_rng(seed))
    assert fit.converged
    assert -fit.objective == pytest.approx(ref.log_marginal_likelihood_value_, abs=1e-6)
    np.testing.assert_allclose(np.exp(fit.hyper.log_ls), ref.kernel_.k1.k2.length_scale, rtol=1e-3)


@pytest.mark.parametrize("prior", [None, *PRIORS])
def test_every_fit_converges_to_a_stationary_point(prior):
    """On an additive 8-D problem with 60 points the fit stops by its convergence test, and the
    projected gradient of the objective there is ~0 (so more evaluations would not help)."""
    rng = np.random.default_rng(3)
    X = rng.random((60, 8))
    y = standardize(np.sin(5 * X[:, 0]) + (X[:, 1] - X[:, 2]) ** 2 + 0.5 * X[:, 3] + 0.02 * rng.standard_normal(60))[0]
    dec = Decomposition.from_edges(8, np.array([[1, 2], [4, 5]]))
    spec = None if prior is None else PRIORS[prior]
    fit = fit_hyper(Hyper.initial(8), dec.cliques, X, y, spec, np.random.default_rng(0))
    assert fit.converged
    theta = theta_of(fit.hyper)
    value, grad = neg_log_likelihood(fit.hyper, dec.cliques, X, y)
    if spec is not None:
        value, grad = value + spec.penalty(theta, dec.cliques, True)[0], grad + spec.penalty(theta, dec.cliques, True)[1]
    assert value == pytest.approx(fit.objective, rel=1e-12)
    b = Bounds()
    lo = np.log([b.lengthscale[0]] * 8 + [b.variance[0]] * 8 + [b.noise[0]])
    hi = np.log([b.lengthscale[1]] * 8 + [b.variance[1]] * 8 + [b.noise[1]])
    projected = np.where((theta <= lo + 1e-8) & (grad > 0) | (theta >= hi - 1e-8) & (grad < 0), 0.0, grad)
    assert np.abs(projected).max() < 1e-2 * max(1.0, abs(value)) ** 0.5


def test_warm_start_is_never_worse_and_a_second_fit_is_cheap():
    X, y = sklearn_data(4)
    cliques = Decomposition.full(5).cliques
    first = fit_hyper(Hyper.initial(5), cliques, X, y, PRIORS["tied"], np.random.default_rng(0))
    again = fit_hyper(first.hyper, cliques, X, y, PRIORS["tied"], np.random.default_rng(1))
    assert again.objective <= first.objective + 1e-9
    assert again.n_evals < first.n_evals


@pytest.mark.parametrize("name", list(PRIORS))
def test_prior_gradient_matches_finite_differences(name):
    theta = np.random.default_rng(8).normal(size=11)
    cliques = ((0, 1), (2,), (3,), (4,))
    prior = PRIORS[name]
    grad = prior.penalty(theta, cliques, True)[1]
    np.testing.assert_allclose(grad, approx_fprime(theta, lambda t: prior.penalty(t, cliques, True)[0], 1e-7),
                               rtol=1e-5, atol=1e-6)


def test_dimension_scaled_prior_is_hvarfners():
    """log ℓ ~ N(√2 + log √k, (√3)²) for a clique of k variables (Hvarfner et al., ICML 2024)."""
    prior = PRIORS["dimension-scaled"]
    cliques = ((0, 1, 2, 3), (4,))
    center = prior.center(cliques, 5, learn_noise=False)
    np.testing.assert_allclose(center[:5], np.sqrt(2) + np.log(np.sqrt([4, 4, 4, 4, 1])), rtol=1e-12)
    np.testing.assert_allclose(prior.scale(5, learn_noise=False)[:5], np.sqrt(3), rtol=1e-12)
    theta = np.concatenate([center[:5] + np.sqrt(3), center[5:]])  # one sd above the median everywhere
    assert prior.penalty(theta, cliques, False)[0] == pytest.approx(0.5 * 5)


@pytest.mark.parametrize("prior,ratio", [(None, 10.0), ("tied", 2.0), ("dimension-scaled", 10.0)])
def test_fit_finds_the_relevant_dimension(prior, ratio):
    """Only x0 matters: every fit gives it the largest variance share."""
    rng = np.random.default_rng(5)
    X = rng.random((40, 3))
    y, _, _ = standardize(np.sin(6 * X[:, 0]))
    dec = Decomposition.from_edges(3, np.zeros((0, 2)))
    h0 = Hyper.initial(3)
    fit = fit_hyper(h0, dec.cliques, X, y, None if prior is None else PRIORS[prior], np.random.default_rng(0))
    assert neg_log_likelihood(fit.hyper, dec.cliques, X, y)[0] < neg_log_likelihood(h0, dec.cliques, X, y)[0] - 10
    var = np.exp(fit.hyper.log_var)
    assert var[0] > ratio * max(var[1], var[2])


def test_duplicates_and_constant_outputs_are_safe():
    rng = np.random.default_rng(6)
    X = np.repeat(rng.random((4, 3)), 3, axis=0)  # every point three times
    z, mean, std = standardize(np.full(len(X), 3.0))
    assert std == 1.0 and mean == 3.0 and np.all(z == 0.0)
    dec = Decomposition.from_edges(3, np.array([[0, 1]]))
    fit = fit_hyper(Hyper.initial(3, noise=1e-6), dec.cliques, X, z, PRIORS["tied"], rng)
    assert np.isfinite(fit.objective) and np.isfinite(theta_of(fit.hyper)).all()
