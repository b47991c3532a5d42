"""RBF-ARD kernels on cliques of variables, the building block of the additive GP.

A clique ``g`` (a tuple of variable indices) has the kernel
``k_g(x, x') = σ_g² · exp(−½ Σ_{i∈g} (x_i − x'_i)² / ℓ_i²)``. Hyper-parameters live **per
variable** — a length-scale ℓ_i and a variance share v_i — and a clique's signal variance
is the sum of its variables' shares, σ_g² = Σ_{i∈g} v_i. So when the decomposition is
redrawn the hyper-parameters carry over, and Σ_i v_i stays the model's total signal
variance whatever the graph (RDUCB keeps them across iterations the same way).

The n×n sums over cliques are built a few rows at a time for all cliques of one size at
once, so the work stays in cache (the likelihood fit is dominated by these passes).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

#: elements of one (cliques, rows, n) block: ~256 KiB of float64, cache-sized
_BLOCK_ELEMENTS = 1 << 15


@dataclass(frozen=True)
class Hyper:
    """Log hyper-parameters: ``log_ls (d,)``, ``log_var (d,)``, ``log_noise`` (a scalar)."""

    log_ls: np.ndarray
    log_var: np.ndarray
    log_noise: float

    @classmethod
    def initial(cls, dim: int, lengthscale: float = 0.25, noise: float = 1e-3) -> Hyper:
        """Length-scales in unit-cube coordinates; variances sum to 1 (standardised outputs)."""
        return cls(np.full(dim, np.log(lengthscale)), np.full(dim, -np.log(dim)), float(np.log(noise)))

    def clique_variance(self, clique: tuple[int, ...]) -> float:
        return float(np.exp(self.log_var[list(clique)]).sum())

    @property
    def noise(self) -> float:
        return float(np.exp(self.log_noise))

    def with_noise(self, noise: float) -> Hyper:
        return replace(self, log_noise=float(np.log(noise)))


def correlation(A: np.ndarray, B: np.ndarray, inv_ls: np.ndarray) -> np.ndarray:
    """exp(−½ Σ_i (a_i − b_i)²/ℓ_i²) ``(m, n)`` for ``A: (m, k)``, ``B: (n, k)``, ``inv_ls: (k,)``."""
    A, B = A * inv_ls, B * inv_ls
    out = A @ B.T
    out *= 2.0
    out -= np.einsum("ij,ij->i", A, A)[:, None]
    out -= np.einsum("ij,ij->i", B, B)[None, :]
    np.minimum(out, 0.0, out=out)
    out *= 0.5
    return np.exp(out, out=out)


def clique_cross(hyper: Hyper, clique: tuple[int, ...], Z: np.ndarray, X: np.ndarray) -> np.ndarray:
    """k_g(Z, X) ``(m, n)``; ``Z: (m, |g|)`` holds the clique's coordinates only, ``X: (n, d)``."""
    idx = list(clique)
    return hyper.clique_variance(clique) * correlation(Z, X[:, idx], np.exp(-hyper.log_ls[idx]))


def _groups(hyper: Hyper, cliques: tuple, X: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Cliques grouped by size: ``(idx (C, k), S (C, k, n), log σ_g² (C,))``, S = x/(ℓ√2)."""
    out = []
    for k in sorted({len(c) for c in cliques}):
        idx = np.array([c for c in cliques if len(c) == k], dtype=np.int64)
        S = np.transpose(X[:, idx] * np.exp(-hyper.log_ls[idx]) / np.sqrt(2.0), (1, 2, 0))
        out.append((idx, np.ascontiguousarray(S), np.log(np.exp(hyper.log_var[idx]).sum(1))))
    return out


def _blocks(n_cliques: int, n: int):
    """Row blocks of the upper triangle: ``(rows, cols)`` with ``cols = rows.start … n − 1``."""
    step = max(1, _BLOCK_ELEMENTS // max(1, n_cliques * n))
    return ((slice(s, min(s + step, n)), slice(s, n)) for s in range(0, n, step))


def _block_kernel(S: np.ndarray, log_sig2: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
    """σ_g² exp(−Σ_t (s_kt − s_lt)²) for every clique of a group on ``rows × cols``: ``(C, b, c)``."""
    k = S.shape[1]
    if k <= 2:  # explicit differences: exact and cheaper than the expansion for 1–2 variables
        E = np.subtract(S[:, 0, rows, None], S[:, 0, None, cols])
        np.square(E, out=E)
        if k == 2:
            diff = np.subtract(S[:, 1, rows, None], S[:, 1, None, cols])
            E += np.square(diff, out=diff)
    else:
        sq = np.einsum("ckn,ckn->cn", S, S)
        E = np.matmul(S[:, :, rows].transpose(0, 2, 1), S[:, :, cols])
        E *= -2.0
        E += sq[:, rows, None]
        E += sq[:, None, cols]
        np.maximum(E, 0.0, out=E)
    np.subtract(log_sig2[:, None, None], E, out=E)
    return np.exp(E, out=E)


def gram(hyper: Hyper, cliques: tuple, X: np.ndarray, keep: list | None = None) -> np.ndarray:
    """Σ_g k_g(X, X) ``(n, n)`` (no noise); the upper triangle is computed and mirrored.

    ``keep``: a list that receives every per-clique block, for :func:`gram_gradient` to reuse
    (memory ≈ n²/2 floats per clique: the likelihood fit keeps n small for this reason).
    """
    n = len(X)
    K = np.zeros((n, n))
    for _, S, log_sig2 in _groups(hyper, cliques, X):
        for rows, cols in _blocks(len(S), n):
            E = _block_kernel(S, log_sig2, rows, cols)
            K[rows, cols] += E.sum(0)
            if keep is not None:
                keep.append(E)
    return np.triu(K) + np.triu(K, 1).T


def gram_gradient(hyper: Hyper, cliques: tuple, X: np.ndarray, W: np.ndarray,
                  kept: list) -> tuple[np.ndarray, np.ndarray]:
    """½ tr(W ∂K/∂θ) for θ = log ℓ ``(d,)`` and log v ``(d,)``; ``W: (n, n)`` symmetric.

    With E_g = k_g(X, X) and s = x/(ℓ√2): ∂E_g/∂log ℓ_i = 2 E_g ⊙ (s_ki − s_li)², and
    ∂E_g/∂log v_i = (v_i/σ_g²) E_g. The squared differences are expanded so one batched
    product A·[s, s², 1] with A = W ⊙ E_g gives all of a clique's sums. Only the upper
    triangle is visited: pairs right of a block's diagonal square count twice. ``kept``: the
    blocks :func:`gram` kept for the same arguments (they are overwritten).
    """
    blocks = iter(kept)
    n, d = X.shape
    g_ls, g_var = np.zeros(d), np.zeros(d)
    var = np.exp(hyper.log_var)
    for idx, S, log_sig2 in _groups(hyper, cliques, X):
        k = idx.shape[1]
        St = S.transpose(0, 2, 1)  # (C, n, k)
        M = np.concatenate([St, St * St, np.ones((len(S), n, 1))], axis=2)  # (C, n, 2k+1)
        total = np.zeros((len(S), k))
        mass = np.zeros(len(S))
        for rows, cols in _blocks(len(S), n):
            weight = 2.0 * W[rows, cols]
            weight[:, : rows.stop - rows.start] *= 0.5  # the diagonal square holds both orders
            A = next(blocks)
            A *= weight
            B = np.matmul(A, M[:, cols])  # (C, b, 2k+1)
            s = St[:, rows]
            r = B[:, :, -1:]
            total += (s * s * r - 2.0 * s * B[:, :, :k] + B[:, :, k:2 * k]).sum(1)
            mass += r[:, :, 0].sum(1)
        np.add.at(g_ls, idx, total)  # ½ · 2 Σ A (Δs)²
        np.add.at(g_var, idx, 0.5 * var[idx] / np.exp(log_sig2)[:, None] * mass[:, None])
    return g_ls, g_var
