"""Per-feature Lasso penalties tuned on cross-validation loss: a real high-dimensional black box.

In the style of LassoBench (Šehić et al., AutoML 2022), which RDUCB uses (its DNA task):
a weighted Lasso ``min_w (1/2n)‖y − Xw‖² + Σ_j λ_j |w_j|`` is fitted on a scikit-learn data
set and the loss is its K-fold cross-validation error: the mean over folds of the held-out
mean squared error divided by the held-out variance of y (0 = perfect, 1 = predicting the
mean). A test split never seen by the objective measures what the tuning generalises to.
The search variables are ``log10 λ_j``, one per feature, so D = the number of features (65
for ``diabetes`` with degree-2 polynomial features). The weighted problem is solved exactly
by rescaling: with X̃_j = X_j / λ_j, a plain Lasso with α = 1 gives w̃ and w_j = w̃_j / λ_j.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from bbopt.batch import Batch, candidates_of
from bbopt.problem import Problem, check_losses
from bbopt.spaces import Box

DATASETS = ("diabetes", "breast_cancer")


def _load(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn import datasets
    except ImportError:
        raise ImportError("the lasso problem needs scikit-learn: pip install 'bbopt[sklearn]'") from None
    loader = {"diabetes": datasets.load_diabetes, "breast_cancer": datasets.load_breast_cancer}[dataset]
    X, y = loader(return_X_y=True)
    return np.asarray(X, dtype=float), np.asarray(y, dtype=float)


class WeightedLasso(Problem):
    """K-fold CV loss of a Lasso with one penalty per feature (``x = log10 λ``, shape ``(D,)``).

    - ``dataset``: ``"diabetes"`` (442 × 10, regression) or ``"breast_cancer"`` (569 × 30,
      0/1 labels regressed); ``degree``: 1 (raw features) or 2 (plus all products and squares).
    - ``lower``, ``upper``: bounds of log10 λ (−4, 1): from nearly unpenalised to dropped
      (features and target are standardised, so λ ≳ 1 removes a feature).
    - ``folds``: K of the cross-validation (5); ``test_fraction``: the held-out test split
      (0.25); ``split_seed`` fixes the shuffling.
    """

    def __init__(self, dataset: str = "diabetes", degree: int = 2, lower: float = -4.0, upper: float = 1.0,
                 folds: int = 5, test_fraction: float = 0.25, split_seed: int = 0,
                 max_iter: int = 5000, tol: float = 1e-4):
        if dataset not in DATASETS:
            raise ValueError(f"lasso: dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
        if degree not in (1, 2):
            raise ValueError(f"lasso: degree must be 1 or 2, got {degree!r}")
        if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= 20:
            raise ValueError(f"lasso: folds must be an integer in 2..20, got {folds!r}")
        if not 0 < test_fraction < 0.8:
            raise ValueError(f"lasso: test_fraction must be in (0, 0.8), got {test_fraction!r}")
        self.dataset, self.degree, self.folds, self.split_seed = dataset, degree, folds, int(split_seed)
        self.max_iter, self.tol = int(max_iter), float(tol)
        X, y = _load(dataset)
        if degree == 2:
            from sklearn.preprocessing import PolynomialFeatures

            X = PolynomialFeatures(2, include_bias=False).fit_transform(X)
        order = np.random.default_rng(self.split_seed).permutation(len(y))
        dev, test = np.split(order, [len(y) - int(round(test_fraction * len(y)))])
        mean, std = X[dev].mean(0), X[dev].std(0)
        std[std == 0] = 1.0
        # standardised on the development part, so λ is on the scale of feature–target correlations
        self._dev = ((X[dev] - mean) / std, (y[dev] - y[dev].mean()) / y[dev].std())
        self._test = ((X[test] - mean) / std, (y[test] - y[dev].mean()) / y[dev].std())
        self._fold = np.arange(len(dev)) % folds  # dev is already shuffled
        self.space = Box(lower, upper, dim=X.shape[1])
        self.dim = self.space.dim

    def fit(self, log_lambda: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        """Weights ``(D,)`` and intercept of the Lasso with penalties 10**log_lambda on ``X, y``."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import Lasso

        lam = 10.0 ** np.asarray(log_lambda, dtype=float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = Lasso(alpha=1.0, fit_intercept=True, max_iter=self.max_iter, tol=self.tol).fit(X / lam, y)
        return model.coef_ / lam, float(model.intercept_)

    @staticmethod
    def _score(w: np.ndarray, b: float, X: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean((y - X @ w - b) ** 2) / np.var(y))

    def cv_loss(self, log_lambda: np.ndarray) -> float:
        """Mean held-out loss over the K folds of the development part."""
        X, y = self._dev
        losses = []
        for k in range(self.folds):
            held = self._fold == k
            w, b = self.fit(log_lambda, X[~held], y[~held])
            losses.append(self._score(w, b, X[held], y[held]))
        return float(np.mean(losses))

    def evaluate(self, batch: Batch | Any) -> np.ndarray:
        x = self.space.validate(candidates_of(batch))
        return check_losses([self.cv_loss(row) for row in x], len(x), "lasso")

    def test_loss(self, x: np.ndarray) -> float:
        """Loss on the held-out test split of the penalties ``x: (D,)``, refitted on the whole
        development part (for reporting; the objective never sees the test split)."""
        w, b = self.fit(self.space.validate(x)[0], *self._dev)
        return self._score(w, b, *self._test)

    def describe(self) -> dict:
        return {**super().describe(), "dataset": self.dataset, "degree": self.degree, "dim": self.dim,
                "folds": self.folds, "split_seed": self.split_seed}
