"""Hooks add exactly the prompt, at the slot positions, in the right block, and nothing else."""

import pytest
import torch

from bbopt.problems.prompt_hooks import InjectionPlan, PromptInjector, add_at, find_layers

from .tiny import build

START, N = 1, 3


def inputs(seed=0, rows=4, width=9):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 2000, (rows, width), generator=gen)
    mask = torch.ones(rows, width, dtype=torch.long)
    mask[0, 6:] = 0  # one padded row
    return ids, mask


def capture(model, plan, ids, mask):
    """Word-embedding output and every layer's input hidden states under ``plan``."""
    injector = PromptInjector(model, START, N)
    seen = {}
    with torch.no_grad(), injector.inject(plan):  # capture hooks run after the injector's
        hooks = [injector.embeddings.register_forward_hook(lambda m, a, out: seen.__setitem__("emb", out))]
        for i, layer in enumerate(injector.layers):
            hooks.append(layer.register_forward_pre_hook(
                lambda m, a, kw, i=i: seen.__setitem__(i, (a[0] if a else kw["hidden_states"]).clone()),
                with_kwargs=True))
        base = getattr(model, "base_model", model)
        extra = {"use_cache": False} if "GPT2" in type(model).__name__ else {}
        out = base(input_ids=ids, attention_mask=mask, **extra)
        for h in hooks:
            h.remove()
    return seen, out.last_hidden_state


@pytest.mark.parametrize("kind", ["bert", "roberta-mlm", "gpt2"])
def test_zero_prompts_leave_the_output_unchanged(kind):
    model = build(kind)
    ids, mask = inputs()
    _, plain = capture(model, InjectionPlan(), ids, mask)
    zeros = {b: torch.zeros(1, N, 32) for b in range(3)}
    _, hooked = capture(model, InjectionPlan(zeros), ids, mask)
    assert torch.equal(plain, hooked)


@pytest.mark.parametrize("kind", ["bert", "roberta-mlm", "gpt2"])
@pytest.mark.parametrize("block", [0, 1, 2])
def test_a_prompt_lands_only_at_its_block_and_slots(kind, block):
    model = build(kind)
    ids, mask = inputs()
    prompt = torch.randn(1, N, 32, generator=torch.Generator().manual_seed(block))
    base_seen, base_out = capture(model, InjectionPlan(), ids, mask)
    seen, out = capture(model, InjectionPlan({block: prompt}), ids, mask)
    key = "emb" if block == 0 else block
    delta = seen[key] - base_seen[key]
    assert torch.allclose(delta[:, START:START + N], prompt.expand(4, N, 32), atol=1e-6)
    delta[:, START:START + N] = 0
    assert torch.count_nonzero(delta) == 0  # nothing else moved at that block
    for earlier in range(1 if block == 0 else block):  # layers before the block see no change
        if block > 0:
            assert torch.equal(seen[earlier], base_seen[earlier])
    assert not torch.allclose(out, base_out)  # and the prompt does reach the output


def test_hooks_are_removed_after_the_block():
    model = build("bert")
    ids, mask = inputs()
    _, plain = capture(model, InjectionPlan(), ids, mask)
    capture(model, InjectionPlan({0: torch.ones(1, N, 32), 2: torch.ones(1, N, 32)}), ids, mask)
    _, again = capture(model, InjectionPlan(), ids, mask)
    assert torch.equal(plain, again)


def test_grouped_prompts_go_to_their_own_rows():
    hidden = torch.zeros(6, 5, 2)
    prompt = torch.arange(3 * 2 * 2, dtype=torch.float32).view(3, 2, 2)
    out = add_at(hidden, prompt, 1)
    for g in range(3):
        assert torch.equal(out[2 * g:2 * g + 2, 1:3], prompt[g].expand(2, 2, 2))
    assert torch.count_nonzero(out[:, [0, 3, 4]]) == 0
    with pytest.raises(ValueError, match="prompt groups"):
        add_at(torch.zeros(5, 5, 2), prompt, 1)


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_shared_prefix_expansion_matches_repeated_rows(kind):
    model = build(kind)
    ids, mask = inputs(rows=3)
    p0 = torch.randn(1, N, 32)
    p2 = torch.randn(4, N, 32)  # 4 candidates differ from layer 2 on
    full, _ = None, None
    _, full = capture(model, InjectionPlan({0: p0, 2: p2}), ids.repeat(4, 1), mask.repeat(4, 1))
    _, shared = capture(model, InjectionPlan({0: p0, 2: p2}, expand_at=2, copies=4, base_rows=3), ids, mask)
    assert shared.shape == full.shape
    assert torch.allclose(shared, full, atol=1e-5)


def test_bad_plans_and_models_are_refused():
    model = build("bert")
    injector = PromptInjector(model, START, N)
    with pytest.raises(ValueError, match="outside"), injector.inject(InjectionPlan({5: torch.zeros(1, N, 32)})):
        pass
    with pytest.raises(ValueError, match="expand_at"), injector.inject(InjectionPlan(expand_at=0, copies=2)):
        pass
    with pytest.raises(ValueError, match="cannot find the transformer layers"):
        find_layers(torch.nn.Linear(2, 2))
