"""A small digits workload built once per test session into a temporary cache.

Tiny models run fastest on one thread (and this machine is shared), so every test in this
folder runs with ``torch.set_num_threads(1)``, restored afterwards.
"""

import pytest
import torch

SMALL = {"hidden": 24, "depth": 2, "base_epochs": 4, "expert_epochs": 4}


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def small():
    """Model-size options of the small workload (to build matching modules in tests)."""
    return dict(SMALL)


@pytest.fixture(scope="session")
def digits_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("bbopt-cache")


@pytest.fixture(scope="session")
def digits(digits_cache):
    from bbopt.merge.workloads import digits_workload

    return digits_workload(0, cache_dir=digits_cache, **SMALL)


#: a tiny GPT-2-style workload: base + tweets / BBC experts as HF folders (seconds to build)
TINY_GPT2 = {"n_train": 48, "n_fitness": 6, "n_test": 6, "base_steps": 4, "expert_steps": 4,
             "model_config": {"n_embd": 16, "n_layer": 2, "n_head": 2, "n_positions": 64}}


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory):
    """Sizes of the tiny GPT-2 workload and its cache (build with ``gpt2_workload(0, **tiny_gpt2)``)."""
    return {**TINY_GPT2, "cache_dir": str(tmp_path_factory.mktemp("gpt2-cache"))}


@pytest.fixture(scope="session")
def gpt2_folders(tiny_gpt2):
    from bbopt.merge.gpt2 import gpt2_workload

    return gpt2_workload(0, **tiny_gpt2)


@pytest.fixture
def forced_masks(monkeypatch):
    """mergekit's DARE draws the mask bbopt draws for the same expert and tensor: fill the
    returned dict with ``base``, ``experts`` (state dicts) and ``seed`` (the DARE seed)."""
    sparsify = pytest.importorskip("mergekit.sparsify")
    from bbopt.merge import operators as ops

    state = {}

    def bernoulli(tensor, density, rescale_norm=None):
        if density >= 1:
            return tensor
        base, experts, seed = state["base"], state["experts"], state["seed"]
        (k, name), = [(k, n) for k, e in enumerate(experts) for n in e
                      if e[n].shape == tensor.shape and torch.equal(e[n] - base[n], tensor)]
        u = ops.dare_uniforms(seed, k, name, tensor.numel()).reshape(tensor.shape)
        mask = ops.dare_mask(u, density).to(tensor.dtype)
        return sparsify.rescaled_masked_tensor(tensor, mask, rescale_norm)

    monkeypatch.setattr(sparsify, "bernoulli", bernoulli)
    return state
