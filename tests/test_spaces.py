import numpy as np
import pytest

from bbopt import Box, Choice


def test_box_broadcasts_scalar_bounds_and_maps_to_unit_cube():
    box = Box(-5, 5, dim=3)
    assert box.dim == 3 and box.bounded
    x = np.array([[-5.0, 0.0, 5.0]])
    np.testing.assert_allclose(box.to_unit(x), [[0.0, 0.5, 1.0]])
    np.testing.assert_allclose(box.from_unit(box.to_unit(x)), x)


def test_box_per_dimension_bounds_and_sampling_stay_inside():
    box = Box([0, -1], [1, 1])
    sample = box.sample(np.random.default_rng(0), 500)
    assert sample.shape == (500, 2) and box.contains(sample).all()


@pytest.mark.parametrize(
    "lower, upper, dim, message",
    [
        (1, 0, 3, "lower must be < upper"),
        ([0, 0], [1, 1, 1], None, "lower has 2 entries but upper has 3"),
        (0, 1, 0, "dim must be an integer in"),
        (np.nan, 1, 2, "must not be NaN"),
        ([[0, 1]], [[1, 2]], None, "1-D"),
    ],
)
def test_box_rejects_bad_bounds_with_a_clear_message(lower, upper, dim, message):
    with pytest.raises(ValueError, match=message):
        Box(lower, upper, dim=dim)


def test_box_validate_rejects_wrong_dimension():
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        Box(0, 1, dim=3).validate(np.zeros((2, 4)))


def test_unbounded_box_has_no_unit_view():
    box = Box(-np.inf, np.inf, dim=2)
    with pytest.raises(ValueError, match="finite bounds"):
        box.to_unit(np.zeros(2))


def test_choice_grid_linspace_and_validation():
    grid = Choice.grid({"a": [1, 2], "b": ["x", "y", "z"]})
    assert grid.n_arms == 6 and grid.values[0] == {"a": 1, "b": "x"}
    arms = Choice.linspace(1.0, 1.95, 20)
    assert arms.n_arms == 20 and arms.values[-1] == pytest.approx(1.95)
    with pytest.raises(ValueError, match="out of range"):
        arms.validate([20])
    with pytest.raises(ValueError, match="integer arm indices"):
        arms.validate([0.5])
    with pytest.raises(ValueError, match="at least one"):
        Choice([])


def test_box_blocks_partition_the_coordinates():
    box = Box(-1, 1, dim=5, blocks=[[0, 2], [2, 5]])
    assert box.blocks == ((0, 2), (2, 5)) and box.describe()["blocks"] == [[0, 2], [2, 5]]
    assert Box(0, 1, dim=2).blocks is None and "blocks" not in Box(0, 1, dim=2).describe()
    for bad in ([[0, 2], [1, 5]], [[0, 2]], [[0, 2], [2, 5, 6]], [[0, 0], [0, 5]]):
        with pytest.raises(ValueError, match="Box: "):
            Box(-1, 1, dim=5, blocks=bad)
