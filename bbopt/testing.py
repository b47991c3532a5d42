"""The optimizer conformance suite: the contract every bbopt strategy keeps.

Use :class:`OptimizerConformance` in a test module (third parties may run it on their own
strategies)::

    class TestMyStrategy(OptimizerConformance):
        name = "my_module:MyStrategy"          # or a registered name
        options = {"popsize": 8}
        def make_problem(self):                 # the space and problem; default a 4-D sphere
            return bbopt.problems.get("sphere", dim=4)
        converge_budget, converge_target = 2000, 1e-6

Checks: ``ask`` shapes and bounds; NaN/inf never the best and tolerated; same seed ⇒
same history; another seed ⇒ a different one; ``state_dict`` saved to a file and loaded
⇒ identical continuation; subsets told out of order are accepted; convergence on the
problem's target within a declared budget.

**Every registered strategy declares itself.** ``tests/test_conformance.py`` walks
``OPTIMIZERS`` and fails for a registered name that no ``Test*`` subclass of
:class:`OptimizerConformance` declares (it finds them with :func:`find_declarations` in
every ``test_*.py`` under ``tests/`` that mentions ``Conformance``: the class or a family's
own subclass of it, e.g. ``BanditConformance``). A new
strategy adds one class beside its tests, with its ``name``, the ``options`` and
``make_problem`` (hence the space) the checks run with, and a convergence claim: either
``converge_budget`` / ``converge_target`` (checked here), or, where this suite's problem
cannot show convergence fairly (e.g. a bandit whose regret needs its own test), a reference
to the test that does, with the reason::

    converge_elsewhere = "tests/bandit/test_exp3_igw.py::test_exp3_regret — regret vs the best arm"

The reference must name an existing test function (checked).
"""

from __future__ import annotations

import importlib
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bbopt.batch import Batch
from bbopt.optimizer import make_optimizer
from bbopt.serialize import load_tree, save_tree
from bbopt.spaces import Box


def drive(optimizer: Any, problem: Any, rounds: int, start_round: int = 0) -> list[tuple[Any, np.ndarray]]:
    """Run ``rounds`` ask → evaluate → tell rounds; return (candidates, losses) per round."""
    trace = []
    for r in range(start_round, start_round + rounds):
        context = problem.context(r) if hasattr(problem, "context") else None
        batch = optimizer.ask(None, context)
        batch.round = r
        losses = np.asarray(problem.evaluate(batch), dtype=float)
        optimizer.tell(batch, losses)
        trace.append((_snapshot(batch.x), losses))
    return trace


def _snapshot(x: Any) -> Any:
    return np.array(x, copy=True) if isinstance(x, np.ndarray) else repr(list(x))


def same_trace(a: list, b: list) -> bool:
    if len(a) != len(b):
        return False
    for (xa, la), (xb, lb) in zip(a, b):
        if isinstance(xa, np.ndarray) != isinstance(xb, np.ndarray):
            return False
        same_x = np.array_equal(xa, xb) if isinstance(xa, np.ndarray) else xa == xb
        if not (same_x and np.array_equal(la, lb, equal_nan=True)):
            return False
    return True


class OptimizerConformance:
    """Pytest base class: set ``name`` (and ``options``, ``make_problem``) in a subclass."""

    name: ClassVar[str] = ""
    options: ClassVar[dict] = {}
    rounds: ClassVar[int] = 6
    converge_budget: ClassVar[int | None] = None  # None: no convergence check
    converge_target: ClassVar[float] = 1e-3  # gap to the problem's optimum
    converge_seeds: ClassVar[tuple[int, ...]] = (0,)
    #: "tests/<file>.py::<test> — reason": where convergence is tested instead (see the module docstring)
    converge_elsewhere: ClassVar[str] = ""

    def make_problem(self) -> Any:
        from bbopt.problems import get

        return get("sphere", dim=4)

    def make(self, problem: Any, seed: int) -> Any:
        return make_optimizer(self.name, problem.space, seed=seed, **self.options)

    # ---------------------------------------------------------------- checks
    def test_ask_shapes_and_bounds(self) -> None:
        problem = self.make_problem()
        opt = self.make(problem, 0)
        batch = opt.ask(None, problem.context(0)) if hasattr(problem, "context") else opt.ask()
        assert isinstance(batch, Batch) and len(batch) >= 1
        assert len(set(batch.ids.tolist())) == len(batch)
        problem.space.validate(batch.x)
        if isinstance(problem.space, Box):
            assert np.asarray(batch.x).shape == (len(batch), problem.space.dim)
            if not problem.space.soft:
                assert problem.space.contains(np.asarray(batch.x)).all(), "ask left the box"
            assert np.isfinite(np.asarray(batch.x)).all()

    def test_nonfinite_losses_never_best(self) -> None:
        problem = self.make_problem()
        opt = self.make(problem, 0)
        poisoned = (np.nan, np.inf, -np.inf)
        for r in range(self.rounds):
            context = problem.context(r) if hasattr(problem, "context") else None
            batch = opt.ask(None, context)
            batch.round = r
            losses = np.asarray(problem.evaluate(batch), dtype=float).copy()
            if r % 2 == 0:  # odd rounds stay clean, so some finite loss exists
                losses[0] = poisoned[(r // 2) % len(poisoned)]
            opt.tell(batch, losses)
        _, best_loss = opt.best
        assert np.isfinite(best_loss), "a non-finite loss became the best"
        drive(opt, problem, 2, start_round=self.rounds)  # still works afterwards

    def test_same_seed_same_history(self) -> None:
        a = drive(self.make(self.make_problem(), 7), self.make_problem(), self.rounds)
        b = drive(self.make(self.make_problem(), 7), self.make_problem(), self.rounds)
        assert same_trace(a, b), "the same seed gave a different history"

    def test_other_seed_other_history(self) -> None:
        a = drive(self.make(self.make_problem(), 7), self.make_problem(), self.rounds)
        b = drive(self.make(self.make_problem(), 8), self.make_problem(), self.rounds)
        assert not same_trace(a, b), "two seeds gave the same history"

    def test_checkpoint_resume_identical(self) -> None:
        problem = self.make_problem()
        opt = self.make(problem, 3)
        drive(opt, problem, self.rounds)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "state.safetensors"
            save_tree(path, opt.state_dict())
            state = load_tree(path)
        resumed_problem = self.make_problem()
        resumed = self.make(resumed_problem, 12345)
        resumed.load_state_dict(state)
        if hasattr(problem, "state_dict"):
            resumed_problem.load_state_dict(problem.state_dict())
        cont_a = drive(opt, problem, self.rounds, start_round=self.rounds)
        cont_b = drive(resumed, resumed_problem, self.rounds, start_round=self.rounds)
        assert same_trace(cont_a, cont_b), "resume from a checkpoint did not continue identically"
        assert opt.best[1] == resumed.best[1]

    def test_partial_out_of_order_tell(self) -> None:
        problem = self.make_problem()
        opt = self.make(problem, 0)
        for r in range(self.rounds):
            context = problem.context(r) if hasattr(problem, "context") else None
            batch = opt.ask(None, context)
            batch.round = r
            losses = np.asarray(problem.evaluate(batch), dtype=float)
            for k in reversed(range(len(batch))):
                opt.tell(batch.subset([k]), losses[k:k + 1])
        assert opt.n_pending == 0
        assert np.isfinite(opt.best[1])

    def test_converges_within_budget(self) -> None:
        import pytest

        from bbopt.loop import minimize

        if self.converge_budget is None:
            pytest.skip(f"convergence tested elsewhere: {self.converge_elsewhere}" if self.converge_elsewhere
                        else f"{type(self).__name__} declares no convergence budget (another declaration of "
                             f"{self.name!r} must)")

        for seed in self.converge_seeds:
            problem = self.make_problem()
            target = problem.optimum + self.converge_target
            result = minimize(problem, self.name, self.converge_budget, seed=seed, options=dict(self.options),
                              target=target, progress=False)
            assert result.fun <= target, (
                f"{self.name} reached {result.fun:.3g} > target {target:.3g} in {self.converge_budget} evaluations"
            )


def find_declarations(root: Path) -> dict[str, list[type]]:
    """Registered name -> the ``Test*`` subclasses of :class:`OptimizerConformance` that test modules
    under ``root`` define (modules are imported under the names pytest's default import mode
    gives them, so a module pytest has already collected is not imported twice)."""
    found: dict[str, list[type]] = {}
    for path in sorted(Path(root).rglob("test_*.py")):
        if "Conformance" not in path.read_text(encoding="utf-8"):
            continue
        module = _import_test_module(path)
        for attr, obj in vars(module).items():
            if (attr.startswith("Test") and isinstance(obj, type) and issubclass(obj, OptimizerConformance)
                    and obj.name):
                found.setdefault(obj.name, [])
                if obj not in found[obj.name]:
                    found[obj.name].append(obj)
    return found


def check_reference(reference: str, root: Path) -> str | None:
    """Why ``converge_elsewhere`` (``"path.py::test_name — reason"``) does not name an existing
    test function under ``root`` (the repository), or None when it does."""
    match = re.match(r"^(\S+\.py)::(?:\w+::)?(test_\w+)\s+\S.*\S", reference)
    if match is None:
        return f"{reference!r} is not 'tests/<file>.py::test_<name> — <reason>'"
    path = Path(root) / match.group(1)
    if not path.is_file():
        return f"{match.group(1)} does not exist"
    if not re.search(rf"^\s*def {match.group(2)}\(", path.read_text(encoding="utf-8"), re.MULTILINE):
        return f"{match.group(1)} has no test {match.group(2)}"
    return None


def _import_test_module(path: Path) -> Any:
    """Import ``path`` as pytest's default ("prepend") mode does: packages up to the first
    directory without ``__init__.py``, which goes on ``sys.path``."""
    path = path.resolve()
    parts = [path.stem]
    base = path.parent
    while (base / "__init__.py").exists():
        parts.insert(0, base.name)
        base = base.parent
    if str(base) not in sys.path:
        sys.path.insert(0, str(base))
    return importlib.import_module(".".join(parts))
