"""Genome specs: layout, dimensions, decoding, transforms, bounds and presets."""

import numpy as np
import pytest

from bbopt.merge.genome import Gene, GenomeSpec, layer_slots, preset

BERT = (["embeddings.word_embeddings.weight", "embeddings.LayerNorm.weight"]
        + [f"encoder.layer.{i}.{part}" for i in range(4)
           for part in ("attention.self.query.weight", "intermediate.dense.weight", "output.dense.bias")]
        + ["pooler.dense.weight", "head.weight"])
MLP = ["inp.weight", "inp.bias", "hidden.0.weight", "hidden.0.bias", "hidden.1.weight", "hidden.1.bias",
       "head.weight", "head.bias"]


def test_layer_slots_number_layers_and_give_parts_their_own_slot():
    slots, slot_of, numbered = layer_slots(BERT)
    assert slots == ["embeddings", "encoder.layer.0", "encoder.layer.1", "encoder.layer.2", "encoder.layer.3",
                     "pooler", "head"]
    assert numbered == [False, True, True, True, True, False, False]
    assert slot_of[:5] == [0, 0, 1, 1, 1]
    slots, _, _ = layer_slots(BERT, groups={"top": r"^(pooler|head)\."})
    assert slots[-1] == "top" and len(slots) == 6


def test_per_layer_decode_puts_each_gene_on_its_slot_and_model():
    g = preset("per_layer").bind(MLP, 3)
    assert g.dim == 4 * 3 and np.all(g.space.lower == 0) and np.all(g.space.upper == 1.5)
    x = np.arange(12) / 10.0
    r = g.decode(x)
    table = x.reshape(4, 3)  # (slot, model)
    for j, name in enumerate(MLP):
        assert np.allclose(r.weight[j], table[g.slot_of[j]]), name
    assert r.method == "task_arithmetic" and r.lam == 1.0


def test_describe_round_trips_the_vector_and_the_table():
    g = preset("sakana").bind(MLP, 2)
    rng = np.random.default_rng(0)
    x = g.space.sample(rng, 1)[0]
    d = g.describe(x, ["a", "b"])
    assert np.array_equal(np.array(d["x"]), x)
    assert d["models"] == ["a", "b"] and d["params"]["weight"]["axes"] == ["layer", "model"]
    # identity transform, no smoothing: the table is the genome itself
    w = np.array(d["params"]["weight"]["values"])
    assert np.allclose(w.reshape(-1), x[:8], atol=1e-6)
    assert np.allclose(g.decode(np.array(d["x"])).density, g.decode(x).density)


def test_decoded_values_respect_bounds_and_transforms():
    rng = np.random.default_rng(1)
    specs = {
        "clamp": GenomeSpec("task_arithmetic", [Gene("weight", ("model",), -1, 2, "clamp", out=(0, 1))]),
        "abs": GenomeSpec("task_arithmetic", [Gene("weight", ("model",), -1, 1, "abs")]),
        "sigmoid": GenomeSpec("task_arithmetic", [Gene("weight", ("layer", "model"), -6, 6, "sigmoid",
                                                       out=(0.2, 0.8))]),
        "softmax": GenomeSpec("linear", [Gene("weight", ("layer", "model"), -3, 3, "softmax")]),
    }
    for kind, spec in specs.items():
        g = spec.bind(MLP, 3)
        for x in g.space.sample(rng, 50):
            w = g.decode(x).weight
            if kind == "clamp":
                assert w.min() >= 0 and w.max() <= 1
            elif kind == "abs":
                assert np.allclose(w[0], np.abs(x))
            elif kind == "sigmoid":
                assert w.min() >= 0.2 and w.max() <= 0.8
            else:
                assert np.allclose(w.sum(1), 1.0)


def test_smooth_curve_cuts_dimension_and_is_linear_in_depth():
    g = preset("per_layer", smooth=2).bind(BERT, 2)
    assert g.dim == (3 + 2) * 2  # embeddings, pooler, head + 2 knots, per model
    x = np.zeros(g.dim)
    x.reshape(5, 2)[1] = [0.0, 1.0]  # knot 0 (genes in slot order: embeddings, knots, pooler, head)
    x.reshape(5, 2)[2] = [1.5, 1.0]  # knot 1
    vals = g.values(x)["weight"][:, :, 0]
    layers = [g.slots.index(f"encoder.layer.{i}") for i in range(4)]
    assert np.allclose(vals[layers, 0], [0.0, 0.5, 1.0, 1.5])
    assert np.allclose(vals[layers, 1], 1.0)


def test_granularity_and_filters():
    spec = GenomeSpec("task_arithmetic", [Gene("weight", ("layer", "filter"), 0, 1)], layer_granularity=2,
                      filters=("attention",))
    g = spec.bind(BERT, 2)
    assert g.dim == (3 + 2) * 2
    x = np.arange(g.dim) / 10.0
    r = g.decode(x)
    name0, name1 = "encoder.layer.0.attention.self.query.weight", "encoder.layer.1.attention.self.query.weight"
    other = "encoder.layer.1.intermediate.dense.weight"
    i0, i1, io = BERT.index(name0), BERT.index(name1), BERT.index(other)
    assert np.allclose(r.weight[i0], r.weight[i1])  # layers 0 and 1 share a group
    assert not np.allclose(r.weight[i1], r.weight[io])  # attention vs the rest
    assert np.allclose(r.weight[i0, 0], r.weight[i0, 1])  # no model axis: same for both experts


def test_global_genes_fixed_values_and_lambda():
    g = preset("ties").bind(MLP, 3)
    assert g.dim == 2
    r = g.decode(np.array([0.3, 1.4]))
    assert np.allclose(r.density, 0.3) and np.allclose(r.weight, 1.0) and r.lam == pytest.approx(1.4)
    spec = GenomeSpec("ties", [Gene("weight", ("model",), 0, 1)], fixed={"density": 0.2, "lambda": 0.7})
    r = spec.bind(MLP, 3).decode(np.array([0.1, 0.2, 0.3]))
    assert np.allclose(r.density, 0.2) and r.lam == pytest.approx(0.7)


def test_from_dict_presets_and_full_specs():
    a = GenomeSpec.from_dict({"preset": "per_layer", "smooth": 3, "layer_granularity": 1})
    assert a.genes[0].smooth == 3
    b = GenomeSpec.from_dict({"method": "ties", "genes": [{"name": "weight", "axes": ["model"], "upper": 2}],
                              "trim": "global"})
    assert b.genes[0].axes == ("model",) and b.trim == "global"
    assert GenomeSpec.from_dict("slerp").method == "slerp"


def test_bad_specs_name_the_field():
    with pytest.raises(ValueError, match="preset"):
        preset("nope")
    with pytest.raises(ValueError, match="axes"):
        Gene("weight", ("depth",))
    with pytest.raises(ValueError, match="softmax"):
        Gene("weight", ("layer",), transform="softmax")
    with pytest.raises(ValueError, match="lambda"):
        Gene("lambda", ("model",))
    with pytest.raises(ValueError, match="unknown keys"):
        GenomeSpec.from_dict({"method": "ties", "genes": [], "bogus": 1})
    with pytest.raises(ValueError, match="slerp"):
        preset("slerp").bind(MLP, 3)
    with pytest.raises(ValueError, match="genes"):
        preset("per_layer").bind(MLP, 3).decode(np.zeros(5))
