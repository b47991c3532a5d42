"""Per-feature Lasso penalties tuned on validation loss: a real high-dimensional black box.

In the style of LassoBench (Šehić et al., AutoML 2022), which RDUCB uses (its DNA task):
a weighted Lasso ``min_w (1/2n)‖y − Xw‖² + Σ_j λ_j |w_j|`` is fitted on a training split of
a scikit-learn data set and the loss is the validation mean squared error divided by the
validation variance of y (0 = perfect, 1 = predicting the mean). The search variables are
``log10 λ_j``, one per feature, so D = the number of features (65 for ``diabetes`` with
degree-2 polynomial features). The weighted problem is solved exactly by rescaling: with
X̃_j = X_j / λ_j, a plain Lasso with α = 1 gives w̃ and w_j = w̃_j / λ_j.
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
    """Validation loss of a Lasso with one penalty per feature (``x = log10 λ``, shape ``(D,)``).

    - ``dataset``: ``"diabetes"`` (442 × 10, regression) or ``"breast_cancer"`` (569 × 30,
      0/1 labels regressed); ``degree``: 1 (raw features) or 2 (plus all products and squares).
    - ``lower``, ``upper``: bounds of log10 λ (−4, 1): from nearly unpenalised to dropped
      (features and target are standardised, so λ ≳ 1 removes a feature).
    - ``val_fraction``, ``test_fraction``: split sizes; ``split_seed`` fixes the split.
    """

    def __init__(self, dataset: str = "diabetes", degree: int = 2, lower: float = -4.0, upper: float = 1.0,
                 val_fraction: float = 0.25, test_fraction: float = 0.25, split_seed: int = 0,
                 max_iter: int = 5000, tol: float = 1e-4):
        if dataset not in DATASETS:
            raise ValueError(f"lasso: dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
        if degree not in (1, 2):
            raise ValueError(f"lasso: degree must be 1 or 2, got {degree!r}")
        if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 0.9):
            raise ValueError("lasso: val_fraction and test_fraction must be in (0, 1) and sum below 0.9, "
                             f"got {val_fraction} and {test_fraction}")
        self.dataset, self.degree, self.split_seed = dataset, degree, int(split_seed)
        self.max_iter, self.tol = int(max_iter), float(tol)
        X, y = _load(dataset)
        if degree == 2:
            from sklearn.preprocessing import PolynomialFeatures

            X = PolynomialFeatures(2, include_bias=False).fit_transform(X)
        order = np.random.default_rng(self.split_seed).permutation(len(y))
        n_val, n_test = int(round(val_fraction * len(y))), int(round(test_fraction * len(y)))
        parts = np.split(order, [len(y) - n_val - n_test, len(y) - n_test])
        mean, std = X[parts[0]].mean(0), X[parts[0]].std(0)
        std[std == 0] = 1.0
        y_mean, y_std = y[parts[0]].mean(), y[parts[0]].std()
        # standardised on the training split, so λ is on the scale of feature–target correlations
        self._splits = [((X[p] - mean) / std, (y[p] - y_mean) / y_std) for p in parts]  # train, val, test
        self.space = Box(lower, upper, dim=X.shape[1])
        self.dim = self.space.dim

    def _fit(self, log_lambda: np.ndarray) -> np.ndarray:
        """Weights ``(D,)`` of the Lasso with penalties 10**log_lambda on the training split."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import Lasso

        lam = 10.0 ** np.asarray(log_lambda, dtype=float)
        X, y = self._splits[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = Lasso(alpha=1.0, fit_intercept=True, max_iter=self.max_iter, tol=self.tol)
            model.fit(X / lam, y)
        self._intercept = float(model.intercept_)
        return model.coef_ / lam

    def _loss(self, log_lambda: np.ndarray, split: int) -> float:
        w = self._fit(log_lambda)
        X, y = self._splits[split]
        residual = y - X @ w - self._intercept
        return float(np.mean(residual**2) / np.var(y))

    def evaluate(self, batch: Batch | Any) -> np.ndarray:
        x = self.space.validate(candidates_of(batch))
        return check_losses([self._loss(row, 1) for row in x], len(x), "lasso")

    def test_loss(self, x: np.ndarray) -> float:
        """Held-out test loss of the penalties ``x: (D,)`` (for reporting; never optimised)."""
        return self._loss(self.space.validate(x)[0], 2)

    def describe(self) -> dict:
        return {**super().describe(), "dataset": self.dataset, "degree": self.degree, "dim": self.dim,
                "split_seed": self.split_seed}
