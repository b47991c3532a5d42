import subprocess
import sys

import numpy as np
import pytest

from bbopt import Box, make_optimizer
from bbopt.optimizer import OPTIMIZERS


def test_ask_gives_fresh_ids_and_tell_accepts_any_subset_in_any_order():
    opt = make_optimizer("random", Box(0, 1, dim=2), seed=0, popsize=5)
    batch = opt.ask()
    assert batch.ids.tolist() == [0, 1, 2, 3, 4]
    second = opt.ask(3)
    assert second.ids.tolist() == [5, 6, 7]
    opt.tell(second.subset([2, 0]), [3.0, 1.0])
    opt.tell(batch.subset([4, 1, 0, 3, 2]), [5.0, 0.5, 2.0, 4.0, 6.0])
    opt.tell(second.subset([1]), [0.1])
    assert opt.n_pending == 0 and opt.n_told == 8
    x, loss = opt.best
    assert loss == 0.1 and np.array_equal(x, second[1])


def test_tell_rejects_unknown_repeated_and_mismatched():
    opt = make_optimizer("random", Box(0, 1, dim=2), seed=0)
    batch = opt.ask(2)
    with pytest.raises(ValueError, match="expected 2 losses"):
        opt.tell(batch, [1.0])
    opt.tell(batch, [1.0, 2.0])
    with pytest.raises(ValueError, match="already told"):
        opt.tell(batch, [1.0, 2.0])
    with pytest.raises(TypeError, match="Batch"):
        opt.tell(np.zeros((2, 2)), [1.0, 2.0])


def test_nonfinite_losses_become_a_penalty_worse_than_everything_seen():
    opt = make_optimizer("random", Box(0, 1, dim=2), seed=0)
    batch = opt.ask(3)
    assert opt._finite(np.array([np.nan])) > 1e29  # nothing seen yet
    opt.tell(batch, [1.0, np.nan, 5.0])
    penalty = opt._finite(np.array([np.inf]))[0]
    assert penalty > 5.0
    assert opt.best[1] == 1.0


def test_registry_errors_name_the_nearest_valid_choice():
    with pytest.raises(ValueError, match="did you mean 'cma'"):
        make_optimizer("cmaes", Box(0, 1, dim=2))
    with pytest.raises(ValueError, match="did you mean 'sigma0'"):
        make_optimizer("cma", Box(0, 1, dim=2), sigma=0.3)
    with pytest.raises(TypeError, match="works on Box"):
        from bbopt import Choice

        make_optimizer("cma", Choice([1, 2]))
    assert {"random", "cma", "nevergrad"} <= set(OPTIMIZERS)


def test_user_strategy_loads_by_module_path():
    opt = make_optimizer("bbopt.strategies.random:RandomSearch", Box(0, 1, dim=2), seed=1)
    assert len(opt.ask(4)) == 4


def test_cma_never_touches_the_global_numpy_rng():
    box = Box(-5, 5, dim=4)
    runs = []
    for disturb in (False, True):
        np.random.seed(123)
        opt = make_optimizer("cma", box, seed=3)
        for _ in range(5):
            if disturb:
                np.random.rand(7)  # user code drawing from the global RNG between asks
            batch = opt.ask()
            opt.tell(batch, np.sum(np.asarray(batch) ** 2, axis=1))
        runs.append(opt.ask().x)
    np.testing.assert_array_equal(runs[0], runs[1])


def test_cma_ipop_restarts_grow_the_population():
    opt = make_optimizer("cma", Box(-5, 5, dim=2), seed=0, restarts=2, cma_options={"tolfun": 1e-3})
    sizes = []
    while opt.n_restarts < 2:
        batch = opt.ask()
        sizes.append(len(batch))
        opt.tell(batch, np.sum(np.asarray(batch) ** 2, axis=1))
    assert max(sizes) >= 2 * min(sizes)


def test_nevergrad_rejects_unknown_optimizer_names():
    with pytest.raises(ValueError, match="unknown nevergrad optimizer"):
        make_optimizer("nevergrad", Box(0, 1, dim=2), optimizer="NoSuchOpt")


def test_a_nevergrad_planner_without_a_budget_says_so():
    opt = make_optimizer("nevergrad", Box(-1, 1, dim=2), seed=0, optimizer="NGOpt")
    with pytest.raises(ValueError, match="needs budget"):
        opt.ask()
    opt.close()  # looking for its threads must not build the (unbuildable) inner optimizer


EXITS_WITH_A_CANDIDATE_OUT = """
from bbopt import Box, make_optimizer
opt = make_optimizer("nevergrad", Box(-1, 1, dim=3), seed=0, optimizer={name!r}, budget=50)
for _ in range(3):
    batch = opt.ask()
    opt.tell(batch, [float((x ** 2).sum()) for x in batch.x])
opt.ask()  # left out: nevergrad's scipy-driving thread now waits for it
print("done")
"""


@pytest.mark.parametrize("name", ["Cobyla", "NGOpt"])
def test_a_process_leaving_nevergrad_threads_waiting_still_exits(name):
    proc = subprocess.run([sys.executable, "-c", EXITS_WITH_A_CANDIDATE_OUT.format(name=name)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "done", proc.stderr[-2000:]


def test_a_soft_box_scales_the_search_but_lets_cma_step_outside():
    # the optimum (4.9, ...) sits near the edge: a hard box clips there, a soft one need not
    def loss(X):
        return np.sum((np.asarray(X) - 6.0) ** 2, axis=1)

    hard = make_optimizer("cma", Box(-5, 5, dim=2), seed=0)
    soft = make_optimizer("cma", Box(-5, 5, dim=2, soft=True), seed=0)
    outside = {"hard": 0, "soft": 0}
    for name, opt in (("hard", hard), ("soft", soft)):
        for _ in range(40):
            batch = opt.ask()
            outside[name] += int((np.abs(np.asarray(batch)) > 5).any())
            opt.tell(batch, loss(batch))
    assert outside["hard"] == 0 and outside["soft"] > 0
    assert soft.best[1] < 1e-6 < hard.best[1]


def test_import_bbopt_stays_light_and_exports_the_public_names():
    code = ("import sys, bbopt; assert 'torch' not in sys.modules, 'import bbopt imported torch'; "
            "from bbopt import ConfigError, OptionError, EvaluationError, Box, minimize; "
            "assert issubclass(OptionError, ValueError) and issubclass(ConfigError, ValueError); "
            "assert 'torch' not in sys.modules; from bbopt import ModelParams; assert 'torch' in sys.modules; "
            "assert set(bbopt.__all__) <= set(dir(bbopt)); "
            "import bbopt.problems as p; assert set(p.__all__) <= set(dir(p)); assert 'TorchProblem' in dir(p); "
            "ns = {}; exec('from bbopt.problems import *', ns); assert 'PromptTuningProblem' in ns")
    subprocess.run([sys.executable, "-c", code], check=True)
