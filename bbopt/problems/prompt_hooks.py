"""Prompts added inside a frozen transformer through hooks, with no forked model code.

BBT (Sun et al., ICML 2022) adds a prompt ``p: (n, H)`` to the input embeddings of n
placeholder slots; BBTv2 (Sun et al., EMNLP 2022) adds one prompt per layer to the hidden
states at the slot positions before that layer runs. Blocks here: block 0 is the output
of the word-embedding module (a forward hook: the prompt enters before the position
embeddings and LayerNorm, exactly like BBT's ``inputs_embeds``); block l ≥ 1 is the input
of transformer layer l (a forward pre-hook). A model with L layers has L blocks.

Rows are grouped candidate-major: a prompt ``(G, n, H)`` is added to ``R = G·m`` rows,
group g to rows ``[g·m, (g+1)·m)``; ``G = 1`` broadcasts one prompt to every row.
Shared prefix: when blocks ``< S`` hold the same prompt for all C candidates of a batch,
the model runs the E example rows once up to layer S, whose pre-hook repeats the hidden
states (and every per-row tensor argument, such as the attention mask) C times.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

if TYPE_CHECKING:
    from transformers import PreTrainedModel

#: where transformers keeps the list of blocks, relative to ``model.base_model``
LAYER_PATHS = ("encoder.layer", "h", "layers", "transformer.layer", "encoder.layers", "decoder.layers", "block")


def find_layers(model: nn.Module) -> nn.ModuleList:
    """The transformer's layer list (BERT/RoBERTa ``encoder.layer``, GPT-2 ``h``, Llama ``layers``, ...)."""
    base = getattr(model, "base_model", model)
    for path in LAYER_PATHS:
        obj: Any = base
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, nn.ModuleList) and len(obj) > 0:
            return obj
    raise ValueError(f"cannot find the transformer layers of {type(model).__name__}; "
                     f"known layouts (under base_model): {', '.join(LAYER_PATHS)}")


def add_at(hidden: torch.Tensor, prompt: torch.Tensor, start: int) -> torch.Tensor:
    """``hidden: (R, T, H)`` plus ``prompt: (G, n, H)`` at positions ``[start, start+n)``; ``R = G·m``.

    Returns a new tensor (autograd-safe); every other position is copied unchanged.
    """
    rows, width, size = hidden.shape
    groups, n, _ = prompt.shape
    if rows % groups:
        raise ValueError(f"{rows} rows cannot be split into {groups} prompt groups")
    h = hidden.reshape(groups, rows // groups, width, size)
    mid = h[:, :, start:start + n] + prompt[:, None].to(h.dtype)
    return torch.cat([h[:, :, :start], mid, h[:, :, start + n:]], dim=2).reshape(rows, width, size)


@dataclass
class InjectionPlan:
    """What one forward adds. ``prompts``: block -> ``(G, n, H)``; ``expand_at``/``copies``/``base_rows``:
    the shared prefix (rows go from ``base_rows`` to ``copies·base_rows`` at layer ``expand_at``)."""

    prompts: dict[int, torch.Tensor] = field(default_factory=dict)
    expand_at: int | None = None
    copies: int = 1
    base_rows: int = 0


class PromptInjector:
    """Registers the hooks of one plan for the duration of a ``with`` block."""

    def __init__(self, model: nn.Module, start: int, n_prompt: int):
        self.model = model
        self.layers = find_layers(model)
        # a transformers model (find_layers needs one too); nn.Module's stubs do not know the method
        self.embeddings = cast("PreTrainedModel", model).get_input_embeddings()
        self.start = int(start)
        self.n_prompt = int(n_prompt)

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @contextmanager
    def inject(self, plan: InjectionPlan) -> Iterator[None]:
        bad = [b for b in plan.prompts if not 0 <= b < self.n_layers]
        if bad:
            raise ValueError(f"prompt blocks {bad} outside 0..{self.n_layers - 1}")
        if plan.expand_at is not None and not 1 <= plan.expand_at < self.n_layers:
            raise ValueError(f"expand_at must be a layer in 1..{self.n_layers - 1}, got {plan.expand_at}")
        handles = []
        if 0 in plan.prompts:
            handles.append(self.embeddings.register_forward_hook(self._embedding_hook(plan.prompts[0])))
        for layer_index, layer in enumerate(self.layers):
            expands = plan.expand_at is not None and layer_index >= plan.expand_at and plan.copies > 1
            if layer_index >= 1 and (layer_index in plan.prompts or expands):
                hook = self._layer_hook(plan, layer_index, expands)
                handles.append(layer.register_forward_pre_hook(hook, with_kwargs=True))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _embedding_hook(self, prompt: torch.Tensor) -> Any:
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
            return add_at(output, prompt, self.start)

        return hook

    def _layer_hook(self, plan: InjectionPlan, layer_index: int, expands: bool) -> Any:
        def hook(module: nn.Module, args_in: tuple, kwargs_in: dict) -> tuple[tuple, dict]:
            args, kwargs = list(args_in), dict(kwargs_in)
            in_kwargs = not args
            hidden = kwargs.pop("hidden_states") if in_kwargs else args.pop(0)
            if expands:
                if hidden.shape[0] == plan.base_rows:
                    hidden = hidden.repeat(plan.copies, 1, 1)
                args = [_repeat_rows(a, plan) for a in args]
                kwargs = {k: _repeat_rows(v, plan) for k, v in kwargs.items()}
            if layer_index in plan.prompts:
                hidden = add_at(hidden, plan.prompts[layer_index], self.start)
            if in_kwargs:
                kwargs["hidden_states"] = hidden
            else:
                args.insert(0, hidden)
            return tuple(args), kwargs

        return hook


def _repeat_rows(value: Any, plan: InjectionPlan) -> Any:
    """Per-row tensor arguments (attention masks) follow the hidden states from E to C·E rows."""
    if (isinstance(value, torch.Tensor) and value.dim() >= 2 and plan.base_rows > 1
            and value.shape[0] == plan.base_rows):
        return value.repeat(plan.copies, *([1] * (value.dim() - 1)))
    return value
