import json

import numpy as np
import pytest

import bbopt.problems as problems
from bbopt import Box, minimize
from bbopt.evaluation import EvaluationError

from objectives import flaky

SPACE = Box(-5, 5, dim=3)


def sphere(x):
    return float(np.sum(np.asarray(x) ** 2))


def strip_time(records):
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


def test_budget_is_spent_exactly_and_history_is_complete():
    result = minimize(sphere, "cma", 101, space=SPACE, seed=0)
    assert result.n_evals == 101 and len(result.history) == 101
    assert [r["eval"] for r in result.history] == list(range(101))
    assert result.fun == min(result.history.losses())
    assert result.stop_reason == "budget"


def test_same_seed_same_history_other_seed_differs():
    a = minimize(sphere, "cma", 60, space=SPACE, seed=4)
    b = minimize(sphere, "cma", 60, space=SPACE, seed=4)
    c = minimize(sphere, "cma", 60, space=SPACE, seed=5)
    assert strip_time(a.history) == strip_time(b.history)
    assert strip_time(a.history) != strip_time(c.history)


def test_target_time_limit_and_callback_stop_the_run():
    hit = minimize(problems.get("sphere", dim=2), "cma", 5000, seed=0, target_gap=1e-6)
    assert hit.stop_reason == "target" and hit.fun <= 1e-6 and hit.n_evals < 5000
    timed = minimize(sphere, "random", 10**9, space=SPACE, seed=0, time_limit=0.3)
    assert timed.stop_reason == "time_limit"
    rounds = []
    called = minimize(sphere, "random", 1000, space=SPACE, seed=0,
                      callbacks=[lambda info: rounds.append(info.n_evals) or info.round == 2])
    assert called.stop_reason == "callback" and rounds == [10, 20, 30]


def test_on_error_raise_stops_with_the_reason():
    with pytest.raises(EvaluationError, match="simulator diverged"):
        minimize(flaky, "random", 200, space=SPACE, seed=0)


def test_on_error_record_keeps_going_and_logs_each_failure():
    result = minimize(flaky, "random", 300, space=SPACE, seed=0, on_error="record", on_nan="fail")
    statuses = [r["status"] for r in result.history]
    errors = [r for r in result.history if r["status"] == "error"]
    assert result.n_evals == 300 and result.n_failed == len(errors) > 0
    assert any("simulator diverged" in r["error"] for r in errors)
    assert any("non-finite" in r["error"] for r in errors)
    assert all(r["loss"] is None for r in errors) and statuses.count("ok") == 300 - len(errors)
    assert np.isfinite(result.fun) and result.x[0] <= 3.0


def test_on_nan_worst_records_nan_and_never_picks_it():
    nan_at_start = iter([float("nan")] * 5)
    result = minimize(lambda x: next(nan_at_start, sphere(x)), "cma", 80, space=SPACE, seed=1)
    assert [r["status"] for r in result.history][:5] == ["nan"] * 5
    assert np.isfinite(result.fun)


def test_joblib_workers_give_the_same_history_as_in_process():
    serial = minimize(sphere, "cma", 40, space=SPACE, seed=2)
    parallel = minimize(sphere, "cma", 40, space=SPACE, seed=2, n_jobs=2)
    assert strip_time(serial.history) == strip_time(parallel.history)


def test_run_directory_streams_history_and_writes_best_and_result(tmp_path):
    result = minimize(sphere, "cma", 50, space=SPACE, seed=0, run_dir=tmp_path / "run")
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"history.jsonl", "best.json", "checkpoint.safetensors", "result.json", "run.json"} <= names
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    assert best["loss"] == result.fun and result.history.losses().size == 50
    with pytest.raises(FileExistsError, match="not empty"):
        minimize(sphere, "cma", 50, space=SPACE, seed=0, run_dir=tmp_path / "run")


class Interrupt(Exception):
    pass


def test_resume_after_a_crash_reuses_recorded_evaluations_and_matches(tmp_path):
    calls = {"n": 0}

    def counted(x):
        calls["n"] += 1
        return sphere(x)

    full = minimize(counted, "cma", 120, space=SPACE, seed=3)
    run = tmp_path / "run"
    saved = tmp_path / "early-checkpoint"

    def crash(info):
        if info.n_evals >= 30 and not saved.exists():  # keep an early checkpoint aside
            (run / "checkpoint.safetensors").replace(saved)
        if info.n_evals >= 70:
            raise Interrupt

    calls["n"] = 0
    with pytest.raises(Interrupt):
        minimize(counted, "cma", 120, space=SPACE, seed=3, run_dir=run, checkpoint_every=0.0, callbacks=[crash])
    # as after a SIGKILL: the checkpoint is older than the history (~25 vs ~70 evaluations)
    saved.replace(run / "checkpoint.safetensors")
    assert calls["n"] < 80
    resumed = minimize(counted, "cma", 120, space=SPACE, seed=3, run_dir=run, resume=True)
    assert strip_time(resumed.history) == strip_time(full.history)
    assert resumed.fun == full.fun
    assert calls["n"] == 120  # evaluations after the old checkpoint came from the history


def test_plain_callable_needs_a_space_and_optimizer_objects_refuse_seed():
    with pytest.raises(ValueError, match="needs space="):
        minimize(sphere, "cma", 10)
    from bbopt import make_optimizer

    opt = make_optimizer("random", SPACE, seed=0)
    with pytest.raises(ValueError, match="own seed"):
        minimize(sphere, opt, 10, space=SPACE, seed=1)
    with pytest.raises(ValueError, match="budget must be a positive integer"):
        minimize(sphere, "random", 0, space=SPACE)


def test_a_problem_start_point_is_used_unless_the_options_give_one():
    problem = problems.get("sphere", dim=3)
    problem.x0 = [1.0, 2.0, 3.0]
    tight = {"restarts": 0, "sigma0": 1e-9}
    started = minimize(problem, "cma", 7, seed=0, options=tight)
    np.testing.assert_allclose(started.history[0]["x"], [1.0, 2.0, 3.0], atol=1e-6)
    own = minimize(problem, "cma", 7, seed=0, options={**tight, "x0": [0.0, 0.0, 0.0]})
    np.testing.assert_allclose(own.history[0]["x"], [0.0, 0.0, 0.0], atol=1e-6)


def test_a_contextual_bandit_takes_the_problems_context_range_unless_given():
    problem = problems.get("sor-poisson", m=6)
    result = minimize(problem, "tsallis-inf-cb", 20, seed=0, progress=False)
    assert result.n_evals == 20
    with pytest.raises(ValueError, match="context_range needs finite low < high"):
        minimize(problems.get("sor-poisson", m=6), "tsallis-inf-cb", 20, seed=0,
                 options={"context_range": [1.0, 0.0]}, progress=False)


def test_round_size_sets_the_candidates_per_round():
    result = minimize(sphere, "cma", 30, space=SPACE, seed=0, round_size=4)
    rounds = [r["round"] for r in result.history]
    assert [rounds.count(k) for k in range(max(rounds) + 1)] == [4] * 7 + [2]
    with pytest.raises(ValueError, match="round_size"):
        minimize(sphere, "cma", 30, space=SPACE, seed=0, round_size=0)
