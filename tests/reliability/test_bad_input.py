"""Bad input, generated: every malformed config, space or option value gets a clear answer.

Properties: the CLI exits 0 (the input was valid after all) or 2 with one line naming the
field — never a traceback, never exit 1 for bad input, never a run directory left behind.
"""

import contextlib
import io
import resource
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from bbopt import Box, make_optimizer
from bbopt.cli import main


@pytest.fixture(autouse=True, scope="module")
def bounded_memory():
    """Generated inputs must never take the machine down: past 12 GB an allocation fails."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (12 * 2**30, hard))
    yield
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# time_limit: a mutation may make the budget astronomically large yet valid
BASE = {"problem": {"name": "sphere", "dim": 3}, "optimizer": {"name": "cma", "sigma0": 0.3}, "budget": 12, "seed": 0,
        "time_limit": 5}
WEIRD = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.text(max_size=4),
                                                                                     st.integers(), max_size=2),
    st.sampled_from(["../../etc", "/tmp/x", "cma", "sphere", "nan", "1e309", "raise", "record", "worst"]),
)
PATHS = ["budget", "seed", "target", "target_gap", "time_limit", "n_jobs", "on_error", "on_nan", "eval_timeout",
         "checkpoint_every", "progress", "record_x", "round_size", "problem", "problem.name", "problem.dim",
         "problem.lower", "optimizer", "optimizer.name", "optimizer.sigma0", "optimizer.popsize",
         "optimizer.restarts", "optimizer.diagonal", "optimizer.x0", "optimizer.bounds_handling",
         "optimizer.cma_options", "optimizer.batch_size", "batch_size", "no_such_key", "problem.no_such_option",
         "optimizer.no_such_option"]


def run_cli(config, tmp):
    path = Path(tmp) / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    out = Path(tmp) / "run"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["solve", str(path), "--out", str(out)])
    return code, err.getvalue().strip(), out


def mutate(config, path, value):
    config = yaml.safe_load(yaml.safe_dump(config))
    node = config
    *parents, leaf = path.split(".")
    for key in parents:
        if not isinstance(node.get(key), dict):
            node[key] = {"name": node[key]} if isinstance(node.get(key), str) else {}
        node = node[key]
    node[leaf] = value
    return config


def check_single_bad_field(path, value):
    # a valid but huge dimension is not bad input, just a big job (a billion-D Box is refused)
    assume(not (path in ("problem.dim", "optimizer.popsize", "round_size")
                and isinstance(value, int) and not isinstance(value, bool) and 10_000 < value <= 10**8))
    config = mutate(BASE, path, value)
    try:
        yaml.safe_dump(config)
    except yaml.YAMLError:
        return
    with tempfile.TemporaryDirectory() as tmp:
        code, err, out = run_cli(config, tmp)
        assert "Traceback" not in err
        if code == 0:
            assert (out / "result.json").exists()
        elif code == 1:  # a valid but tiny eval_timeout may time out a worker on a loaded machine
            assert path == "eval_timeout" and "timed out after" in err, err
        else:
            assert code == 2, err
            assert err.startswith("bbopt: error: ") and len(err.splitlines()) == 1
            assert names_the_field(err.removeprefix("bbopt: error: "), path), (path, err)
            assert not out.exists()


def names_the_field(message, path):
    """The error's field is the mutated one, a key inside it (a mapping's missing ``name``), or the
    section above it with the mutated key named in the message (a problem's own check)."""
    field = message.split(": ")[0]
    leaf = path.rsplit(".", 1)[-1]
    return field == path or field.startswith(path + ".") or (path.startswith(field + ".") and leaf in message)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), value=WEIRD)
@example(path="problem.lower", value="nan")  # numpy reads the string as NaN: the message must say "lower"
@example(path="optimizer.popsize", value=1)
@example(path="batch_size", value=4)  # the run key's old name: points at round_size
def test_any_single_bad_field_exits_2_naming_it_or_runs(path, value):
    check_single_bad_field(path, value)


@pytest.mark.slow
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), value=WEIRD)
def test_many_bad_fields(path, value):
    check_single_bad_field(path, value)


@settings(max_examples=150, deadline=None)
@given(lower=st.one_of(st.floats(allow_nan=True), st.lists(st.floats(allow_nan=True), max_size=4)),
       upper=st.one_of(st.floats(allow_nan=True), st.lists(st.floats(allow_nan=True), max_size=4)),
       dim=st.one_of(st.none(), st.integers(-2, 5)))
def test_box_either_builds_a_valid_space_or_raises_value_error(lower, upper, dim):
    try:
        box = Box(lower, upper, dim=dim)
    except ValueError as err:
        assert str(err).startswith("Box: ")
        return
    assert box.dim >= 1 and (box.lower < box.upper).all()


OPTIONS = {
    "cma": ["sigma0", "x0", "popsize", "restarts", "popsize_factor", "diagonal", "bounds_handling", "cma_options"],
    "random": ["popsize", "x0"],
    "nevergrad": ["optimizer", "budget", "popsize", "x0"],
    "block": ["blocks", "n_blocks", "inner", "inner_options", "generations_per_visit", "budget", "x0"],
}


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(OPTIONS)), data=st.data())
def test_option_values_build_or_raise_naming_the_option(name, data):
    option = data.draw(st.sampled_from(OPTIONS[name]))
    value = data.draw(WEIRD)
    base = {"n_blocks": 3} if name == "block" and option not in ("blocks", "n_blocks") else {}
    try:
        opt = make_optimizer(name, Box(-1, 1, dim=3), seed=0, **base, **{option: value})
    except (ValueError, TypeError) as err:
        assert option in str(err), err
        return
    batch = opt.ask()
    assert np.isfinite(np.asarray(batch)).all()


@pytest.mark.parametrize("text", ["", "budget: [", "!!python/object/apply:os.system ['true']", "a: b: c",
                                  "\x00\x01", "problem: sphere\noptimizer: cma\nbudget: 5\nbudget: 6",
                                  b"\xff\xfe\x00garbage"])
def test_malformed_files_exit_2(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["solve", str(path), "--out", str(tmp_path / "run")])
    assert code == 2 and "Traceback" not in err.getvalue()
    assert not (tmp_path / "run").exists()
