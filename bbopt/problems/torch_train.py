"""TorchProblem: train or fine-tune a torch model through the ask/tell loop, forward passes only.

``TorchProblem(model, loss, data)``: ``loss(model, batch)`` returns a scalar tensor or per-example
losses ``(B,)`` (any function of the model's outputs: cross-entropy, or non-differentiable error
rate / F1); ``data`` is a re-iterable of batches cycled by step. ``.space`` is the
:class:`~bbopt.params.ModelParams` the estimators share. One candidate is one forward of one
mini-batch (the budget unit, FE), and a candidate carries its step, so its loss is a pure
function of (parameters, step): the batch of step t is ``data[t % len(data)]`` (or the t-th batch
of a cycled stream).

Weight perturbations are evaluated either in place (apply, forward, undo: memory stays at
inference level; the last direction of a step stays applied until the estimator's update undoes
it in its own noise pass, see :mod:`bbopt.inplace`) or batched (K stacked copies through one vmapped forward; feature reuse for
``nn.Sequential``). ``mode="auto"`` batches steps of ≥ 4 candidates on models of at most
``batch_params`` selected parameters whose loss vmaps, else goes in place. Tangents use ``torch.func.jvp`` (``jvp="func"``,
falling back by itself where it fails) or ``torch.autograd.forward_ad`` (``jvp="forward_ad"``:
about 2× faster per call on small CPU models here). The problem puts the model in eval mode
(dropout off) and runs it under ``torch.no_grad``; the estimators train it in place (the model
you pass is the model trained). The trained model is ``problem.model``; :meth:`save` writes it as safetensors,
and at the end of a CLI run :meth:`finalize` saves it with the ``metrics`` on the ``eval_sets``.

Training curves: in a run directory the loop writes :meth:`round_metrics` to ``metrics.jsonl``
after every step: the step's training loss (the mean mini-batch loss of its candidates — for
MeZO's pair (L(θ+εz) + L(θ−εz))/2 = L(θ) + O(ε²) — or L(θ) itself for tangents), and every
``dev_every`` evaluations the ``metrics`` on every eval set but ``test`` (kept for the end).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bbopt.batch import Batch, candidates_of
from bbopt.options import integer
from bbopt.params import DEFAULT_CHUNK, ModelParams, Selector
from bbopt.perturbations import NoisyCopy, Spec, Tangent
from bbopt.problem import Problem
from bbopt.problems.torch_batched import SequentialReuse, batched_values, reduce_loss
from bbopt.problems.torch_data import BatchCycle, n_rows, to_device
from bbopt.problems.torch_folded import FoldedSequential
from bbopt.problems.torch_probes import JVP, noisy_values

MODES = ("auto", "inplace", "batched")


class TorchProblem(Problem):
    """A torch model, a loss and mini-batches as a problem over :class:`ModelParams`.

    NoisyCopy candidates carry their estimate back on the candidate object, so a resumed run
    re-evaluates the steps after its checkpoint instead of reusing recorded losses (evaluation is
    deterministic, so the result is the same).
    """

    evaluate_has_side_effects = True

    def __init__(self, model: torch.nn.Module, loss: Callable[[Any, Any], torch.Tensor], data: Any, *,
                 select: Selector = None, exclude: Selector = None, mask: dict | None = None,
                 space: ModelParams | None = None, device: str = "cpu", mode: str = "auto",
                 batch_params: int = 1_000_000, max_copies: int | None = None, feature_reuse: bool = True,
                 jvp: str = "func", optimum: float | None = None, chunk_size: int = DEFAULT_CHUNK, exact: bool = False,
                 eval_sets: dict[str, Any] | None = None, metrics: dict[str, Callable] | None = None,
                 dev_every: int = 1000, name: str | None = None):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"TorchProblem: model must be a torch.nn.Module, got {type(model).__name__}")
        if not callable(loss):
            raise TypeError("TorchProblem: loss must be callable as loss(model, batch)")
        if mode not in MODES:
            raise ValueError(f"TorchProblem: mode must be one of {MODES}, got {mode!r}")
        if jvp not in ("func", "forward_ad"):
            raise ValueError(f"TorchProblem: jvp must be 'func' (torch.func.jvp) or 'forward_ad', got {jvp!r}")
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.loss = loss
        self.data = data
        self._batches = BatchCycle(data)
        if space is None:
            space = ModelParams(self.model, select, exclude=exclude, mask=mask, chunk_size=chunk_size, exact=exact)
        elif space.module is not self.model:
            raise ValueError("TorchProblem: space must be a ModelParams over this model")
        self.space = space
        self.mode = mode
        self.batch_params = int(batch_params)
        self.max_copies = max_copies
        self.optimum = optimum
        self.name = name or type(model).__name__
        self.eval_sets = dict(eval_sets or {})
        self.metrics = dict(metrics or {})
        self.dev_every = integer(dev_every, "dev_every", "TorchProblem", minimum=0)
        self._step_losses: list[float] = []
        sequential = self.model if isinstance(self.model, torch.nn.Sequential) else None
        self._reuse = SequentialReuse(sequential, space) if feature_reuse and sequential is not None else None
        self._folded = None if sequential is None else FoldedSequential(sequential)
        self._vmap_ok: bool | None = None
        self._jvp = JVP(space, loss)
        self._jvp.use_forward_ad = jvp == "forward_ad"
        self._cached: tuple[int, Any] | None = None

    # ---------------------------------------------------------------- data
    def batch(self, step: int) -> Any:
        """The mini-batch of ``step``, on the problem's device."""
        if self._cached is None or self._cached[0] != step:
            self._cached = (step, to_device(self._batches(step), self.device))
        return self._cached[1]

    # ------------------------------------------------------------ evaluate
    @torch.no_grad()
    def evaluate(self, batch: Batch | Any) -> np.ndarray:
        """One loss per candidate: its perturbed model's mean loss on its step's mini-batch."""
        specs = self.space.validate(candidates_of(batch))
        out = np.empty(len(specs))
        groups: dict[tuple, list[int]] = {}
        for k, spec in enumerate(specs):
            family = "tangent" if isinstance(spec, Tangent) else "noisy" if isinstance(spec, NoisyCopy) else "value"
            groups.setdefault((spec.step, family), []).append(k)
        for (step, family), idx in groups.items():
            part, data = [specs[k] for k in idx], self.batch(step)
            if family != "value":
                self.space.restore()  # jvp and noisy copies read θ itself
            if family == "tangent":
                with torch.enable_grad():
                    out[idx] = self._jvp.values(part, data)
                self._step_losses.append(self._jvp.last_value)
            else:
                out[idx] = (noisy_values(self.space, self.loss, data, part) if family == "noisy"
                            else self._values(part, data, step))
                self._step_losses.extend(out[idx].tolist())
        return out

    def _values(self, specs: list[Spec], data: Any, step: int) -> list[float]:
        if self._use_batched(len(specs)):
            try:
                key = (step, self.space.version)
                return batched_values(self.space, self.loss, data, specs, self._copies(), self._reuse, key,
                                      self._folded)
            except Exception as err:
                if self.mode == "batched":
                    raise
                self._vmap_ok = False
                warnings.warn(f"TorchProblem: batched evaluation failed ({type(err).__name__}: {err}); "
                              f"evaluating in place from now on", RuntimeWarning, stacklevel=3)
        return self._inplace(specs, data)

    def _use_batched(self, k: int) -> bool:
        if self.mode == "batched":
            return True
        return self.mode == "auto" and k >= 4 and self._vmap_ok is not False and self.space.n_params <= self.batch_params

    def _copies(self) -> int:
        """Copies per vmapped call: ``max_copies``, else ~128 MB of stacked parameters."""
        if self.max_copies is not None:
            return max(1, int(self.max_copies))
        return max(1, (32 << 20) // max(1, self.space.n_params))

    def _inplace(self, specs: list[Spec], data: Any) -> list[float]:
        values = []
        done = False
        try:
            for spec in specs:
                self.space.move_to(spec)
                values.append(float(reduce_loss(self.loss(self.model, data))))
            done = True
        finally:  # a step's update undoes the last direction in its own noise pass
            self.space.restore(defer=done)
        return values

    # ------------------------------------------------------------ results
    @torch.no_grad()
    def mean_loss(self, data: Any, loss: Callable | None = None) -> float:
        """Mean of ``loss`` (default: the training loss) over every example of ``data`` (a list of batches)."""
        loss = loss or self.loss
        self.space.restore()
        total = count = 0.0
        for raw in data:
            b = to_device(raw, self.device)
            out = loss(self.model, b)
            rows = n_rows(b)
            value = float(reduce_loss(out))
            total += value * rows
            count += rows
        if count == 0:
            raise ValueError("mean_loss: data has no batches")
        return total / count

    def scores(self, exclude: tuple[str, ...] = ()) -> dict[str, float]:
        """``{"<set>/<metric>": mean}`` of every metric (per-example values) on every eval set
        not named in ``exclude``."""
        return {f"{name}/{metric}": self.mean_loss(data, fn)
                for name, data in self.eval_sets.items() if name not in exclude
                for metric, fn in self.metrics.items()}

    def round_metrics(self, info: Any) -> dict | None:
        """A ``metrics.jsonl`` line after each step (see the module docstring)."""
        losses = np.asarray(self._step_losses, dtype=float)
        self._step_losses = []
        losses = losses[np.isfinite(losses)]
        out = {"train_loss": float(losses.mean())} if losses.size else {}
        before = info.n_evals - len(info.batch)
        if self.dev_every and info.n_evals // self.dev_every > before // self.dev_every:
            out.update(self.scores(exclude=("test",)))
        return out or None

    def finalize(self, result: Any, run_dir: str | Path) -> dict:
        """End of a run (``bbopt solve``): save ``model.safetensors`` and ``scores.json`` in the run dir."""
        from bbopt.serialize import write_json_atomic

        run_dir = Path(run_dir)
        scores = self.scores()
        write_json_atomic(run_dir / "scores.json", scores)
        return {"model": self.save(run_dir / "model.safetensors"), "scores": scores}

    def save(self, path: str | Path, selected_only: bool = False) -> Path:
        """Write the model (or only the selected tensors) as safetensors; returns the path."""
        from safetensors.torch import save_file

        self.space.restore()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        named = zip(self.space.names, self.space.tensors) if selected_only else self.model.state_dict().items()
        # copies: the selected tensors are views of one buffer, and safetensors refuses shared storage
        save_file({n: t.detach().cpu().clone().contiguous() for n, t in named}, str(path))
        return path

    def load(self, path: str | Path) -> None:
        """Load weights written by :meth:`save` (whole model or selected tensors)."""
        from safetensors.torch import load_file

        self.space.restore()
        state = load_file(str(path), device=str(self.device))
        missing = [k for k in state if k not in dict(self.model.named_parameters()) and k not in self.model.state_dict()]
        if missing:
            raise ValueError(f"TorchProblem.load: {path} has tensors this model lacks: {missing[:5]}")
        self.model.load_state_dict(state, strict=False)
        self.space.version += 1

    def describe(self) -> dict:
        return {"problem": self.name, "space": self.space.describe(), "optimum": self.optimum,
                "device": str(self.device), "mode": self.mode}


def resolve_device(device: str | torch.device) -> torch.device:
    """``cpu``, ``cuda`` (``cuda:N``) or ``auto`` (CUDA when available)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"TorchProblem: device must be 'cpu', 'cuda' or 'auto', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("TorchProblem: device='cuda' but CUDA is not available; use 'cpu' or 'auto'")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"TorchProblem: device must be 'cpu', 'cuda' or 'auto', got {device!r}")
    return dev
