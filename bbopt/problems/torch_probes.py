"""Forward-only probes a torch problem evaluates besides plain losses.

Tangent (forward gradient, Baydin et al. 2022): one ``torch.func.jvp`` of the loss along z gives
(L, ∇L·z); the candidate θ ± h·z is worth the first-order value L ± h·∇L·z, so an estimator reads
∇L·z back from the pair with no truncation error. Tangents are full tensors (+P memory). Where
``jvp`` fails on a model, ``torch.autograd.forward_ad`` dual tensors compute the same thing.

Noisy copies (likelihood ratio, "One Forward is Enough", ICLR 2024): the batch is replicated K
times and N(0, σ²) noise ε is added to the outputs of the chosen Linear / Conv layers through
forward hooks. With per-example losses L_{k,i} and w = L − b (b: a baseline independent of copy
k's own noise, :func:`score_weights`, so the estimate stays unbiased), a layer y = Wx + c gets
    ∂W ≈ Σ_{k,i,t} w_{k,i} ε_{k,i,t} x_{k,i,t}ᵀ / σ²,   ∂c ≈ Σ w ε / σ²   (÷ K·B rows by the estimator)
(for a convolution the product is a correlation). No chain rule: the loss may be any function
of the outputs (accuracy, F1). The sums ride back on the first copy's ``out``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
import torch.autograd.forward_ad as fwAD
from torch.nn.grad import conv1d_weight, conv2d_weight

from bbopt.noise import mix
from bbopt.params import ModelParams
from bbopt.perturbations import NoisyCopy, Tangent
from bbopt.problems.torch_batched import FunctionalModel, math_attention, reduce_loss
from bbopt.problems.torch_data import n_rows, repeat_batch


class JVP:
    """Directional derivatives of the loss; remembers when ``torch.func.jvp`` failed on this model."""

    def __init__(self, space: ModelParams, loss: Callable):
        self.space, self.loss = space, loss
        self.use_forward_ad = False
        self.last_value = float("nan")  # L(θ) of the last call: the step's training loss

    def __call__(self, data: Any, tangents: Sequence[torch.Tensor]) -> tuple[float, float]:
        """``(L(θ), ∇L·v)`` for tangents ``v`` shaped like the selected tensors."""
        names, module = self.space.names, self.space.module

        def f(*params: torch.Tensor) -> torch.Tensor:
            return reduce_loss(self.loss(FunctionalModel(module, dict(zip(names, params))), data))

        primals = tuple(p.detach() for p in self.space.tensors)
        with math_attention():  # fused attention kernels have no forward-mode derivative
            if not self.use_forward_ad:
                try:
                    # stubs give (out, jvp) | (out, jvp, aux); without has_aux it is the pair
                    value, dd = cast("tuple[torch.Tensor, torch.Tensor]", torch.func.jvp(f, primals, tuple(tangents)))
                    return float(value), float(dd)
                except Exception:  # e.g. functorch level errors on some HF models (pytorch #104933)
                    self.use_forward_ad = True
            with fwAD.dual_level():
                out = f(*(fwAD.make_dual(p, t) for p, t in zip(primals, tangents)))
                value, dd = fwAD.unpack_dual(out)
        return float(value), float(0.0 if dd is None else dd)

    def values(self, specs: Sequence[Tangent], data: Any) -> list[float]:
        """First-order values L + h·∇L·z of tangent candidates; one jvp per (seed, noise)."""
        cache: dict[tuple[int, str], tuple[float, float]] = {}
        out = []
        for spec in specs:
            key = (spec.seed, spec.noise)
            if key not in cache:
                cache[key] = self(data, self.space.direction_tensors(spec.seed, spec.noise))
            value, dd = cache[key]
            self.last_value = value
            out.append(value + spec.h * dd)
        return out


def noisy_values(space: ModelParams, loss: Callable, data: Any, specs: Sequence[NoisyCopy]) -> list[float]:
    """Per-copy mean losses of noisy replicated forwards; attaches the score sums to each group."""
    groups: dict[tuple, list[int]] = {}
    for k, spec in enumerate(specs):
        groups.setdefault(spec.key(), []).append(k)
    out: dict[int, float] = {}
    for idx in groups.values():
        group = [specs[k] for k in idx]
        per_copy, sums = _noisy_group(space, loss, data, group)
        group[0].out = {"sums": sums, "rows": len(group) * n_rows(data), "copies": len(group)}
        out.update(zip(idx, per_copy))
    return [out[k] for k in range(len(specs))]


def _noisy_group(space: ModelParams, loss: Callable, data: Any,
                 group: list[NoisyCopy]) -> tuple[list[float], dict[int, torch.Tensor]]:
    first = group[0]
    layers = space.noise_layers()
    if first.layer >= len(layers):
        raise ValueError(f"likelihood-ratio: layer {first.layer} out of range; the space has {len(layers)} "
                         f"noise layers (Linear/Conv with selected parameters)")
    chosen = list(enumerate(layers)) if first.layer < 0 else [(first.layer, layers[first.layer])]
    rows, copies = n_rows(data), len(group)
    records: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    gen = torch.Generator(device=space.device)

    def hook_for(li: int) -> Callable:
        def hook(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
            if li in records:
                raise ValueError(f"likelihood-ratio: layer {layers[li][0]!r} ran twice in one forward (the loss "
                                 f"calls the model more than once); the estimator needs one call per batch")
            eps = _layer_noise(gen, group, li, output, rows)
            records[li] = (inputs[0], eps)
            return output + eps
        return hook

    handles = [mod.register_forward_hook(hook_for(li)) for li, (_, mod, _, _) in chosen]
    try:
        per_example = loss(space.module, repeat_batch(data, copies))
    finally:
        for h in handles:
            h.remove()
    if not isinstance(per_example, torch.Tensor) or per_example.shape != (copies * rows,):
        shape = tuple(per_example.shape) if isinstance(per_example, torch.Tensor) else type(per_example).__name__
        raise ValueError(f"likelihood-ratio needs per-example losses: loss(model, batch) must return shape "
                         f"({copies * rows},) for {copies} copies of {rows} rows, got {shape}")
    losses = per_example.detach().float().view(copies, rows)
    sums: dict[int, torch.Tensor] = {}
    for li, (_, mod, wi, bi) in chosen:
        x, eps = records[li]
        _layer_sums(mod, x, eps, score_weights(losses, first).reshape(-1), first.sigma, wi, bi, sums)
    return losses.mean(1).tolist(), sums


def score_weights(losses: torch.Tensor, spec: NoisyCopy) -> torch.Tensor:
    """w ``(copies, B)`` multiplying each copy's noise: the loss minus a baseline independent of that
    copy's noise, so E[w·ε] is unchanged (the estimate stays unbiased; see ``likelihood-ratio``).

    Antithetic pairs (copies 2j, 2j+1 = ±ε): w = ±(L₊ − L₋)/2, the pair's own mean as baseline.
    Independent copies with ``baseline``: w = L − mean of the example's other copies (leave-one-out).
    """
    if spec.antithetic:
        half = (losses[0::2] - losses[1::2]) / 2
        return torch.stack([half, -half], 1).reshape(losses.shape)
    if spec.baseline and losses.shape[0] > 1:
        copies = losses.shape[0]
        return (losses - losses.mean(0)) * (copies / (copies - 1))
    return losses


def _layer_noise(gen: torch.Generator, group: list[NoisyCopy], li: int, output: torch.Tensor,
                 rows: int) -> torch.Tensor:
    """ε for each copy of the group, ``(copies·rows, ...)``; antithetic copies 2j+1 = −(copy 2j)."""
    parts = []
    for spec in group:
        base, sign = (spec.copy // 2, -1.0 if spec.copy % 2 else 1.0) if spec.antithetic else (spec.copy, 1.0)
        gen.manual_seed(mix(spec.seed, li, base))
        shape = (rows, *output.shape[1:])
        parts.append(torch.randn(shape, generator=gen, device=output.device).mul_(sign * spec.sigma))
    return torch.cat(parts).to(output.dtype)


def _layer_sums(mod: torch.nn.Module, x: torch.Tensor, eps: torch.Tensor, w: torch.Tensor, sigma: float,
                wi: int | None, bi: int | None, sums: dict[int, torch.Tensor]) -> None:
    """Score-function sums for one layer's weight and bias (not yet divided by the row count)."""
    weighted = (eps.float() * w.view(-1, *([1] * (eps.dim() - 1)))) / sigma ** 2
    x = x.detach().float()
    if isinstance(mod, (torch.nn.Conv1d, torch.nn.Conv2d)):
        conv_weight = conv1d_weight if isinstance(mod, torch.nn.Conv1d) else conv2d_weight
        if wi is not None:
            sums[wi] = conv_weight(x, mod.weight.shape, weighted, mod.stride, mod.padding, mod.dilation, mod.groups)
        if bi is not None:
            sums[bi] = weighted.transpose(0, 1).reshape(weighted.shape[1], -1).sum(1)
        return
    flat_eps = weighted.reshape(-1, weighted.shape[-1])
    flat_x = x.reshape(-1, x.shape[-1])
    if wi is not None:  # Linear: (out, in); HF Conv1D stores (in, out)
        sums[wi] = flat_x.T @ flat_eps if type(mod).__name__ == "Conv1D" else flat_eps.T @ flat_x
    if bi is not None:
        sums[bi] = flat_eps.sum(0)
