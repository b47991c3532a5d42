"""Racing (multi-step selection) as a pure function."""

import numpy as np
import pytest

from bbopt.merge.fitness import check_racing, race


def test_race_multi_stage_counts_and_rank_preserving_losses():
    true = np.array([5.0, 1.0, 4.0, 2.0, 3.0, 0.5, 6.0, 7.0])
    calls = []

    def evaluate(i, fraction):
        calls.append((i, fraction))
        return true[i] + (0.3 if fraction < 1 else 0.0) * (-1) ** i  # subsets are noisy

    losses = race(evaluate, 8, [(0.25, 4), (0.5, 2)])
    assert [f for _, f in calls].count(0.25) == 8 and [f for _, f in calls].count(0.5) == 4
    assert [f for _, f in calls].count(1.0) == 2
    full = [i for i, f in calls if f == 1.0]
    assert np.allclose(losses[full], true[full])
    assert np.argmin(losses) in full  # the batch's best was scored on all the data
    order = np.argsort(losses)
    assert set(order[:2]) == set(full)
    stage2 = [i for i, f in calls if f == 0.5 and i not in full]
    assert set(order[2:4]) == set(stage2)  # then the stage-2 dropouts, then the rest


def test_no_racing_scores_everything_once():
    losses = race(lambda i, f: float(i) if f == 1.0 else np.nan, 3, None)
    assert losses.tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("bad", [[[1.0, 2]], [[0.5, 0]], [[0.5, 2], [0.3, 1]], [[0.2, 1], [0.4, 3]], "fast"])
def test_check_racing_rejects_bad_plans(bad):
    with pytest.raises(ValueError, match="racing"):
        check_racing(bad)


def test_check_racing_accepts_pairs():
    assert check_racing([[0.25, 8], [0.5, 2]]) == [(0.25, 8), (0.5, 2)]
    assert check_racing(None) is None


def test_task_without_drops_examples_seen_elsewhere():
    import torch

    from bbopt.merge.fitness import Task

    x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    t = Task("t", {"x": x}, torch.tensor([0, 1, 2]))
    seen = Task("t", {"x": x[1:2]}, torch.tensor([1])).fingerprints()
    kept = t.without(seen)
    assert kept.labels.tolist() == [0, 2] and torch.equal(kept.inputs["x"], x[[0, 2]])
