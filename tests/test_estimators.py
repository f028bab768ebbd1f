"""The binning estimator and the kernel density bound, on known answers."""

import math

import numpy as np
import pytest

from repro import estimators
from repro import tables


def brute_force_kde(points, variance):
  """The bound straight from its formula, with every distance in a loop."""
  n = len(points)
  total = 0.0
  for i in range(n):
    kernel = 0.0
    for j in range(n):
      distance = float(np.sum((points[i] - points[j]) ** 2))
      kernel += math.exp(-distance / (2.0 * variance))
    total += math.log(kernel / n)
  return -total / n / math.log(2.0)


# Binning.


def test_binning_of_distinct_points_is_log2_n():
  points = np.arange(37, dtype=np.float32)[:, None]
  assert estimators.binned_information(points, 37) == pytest.approx(
      math.log2(37)
  )


def test_binning_of_equal_points_is_zero():
  points = np.full((20, 3, 3, 2), 1.5, np.float32)
  assert estimators.binned_information(points, 30) == 0.0


@pytest.mark.parametrize("groups", [2, 5, 8])
def test_binning_of_k_equal_groups_is_log2_k(groups):
  rng = np.random.default_rng(groups)
  # Groups far apart on one unit, each with 6 members; the other units are
  # constant, so every group is one symbol.
  centres = np.repeat(np.arange(groups) * 10.0, 6)[rng.permutation(groups * 6)]
  points = np.stack([centres, np.zeros_like(centres)], axis=1)
  assert estimators.binned_information(points, 30) == pytest.approx(
      math.log2(groups)
  )


def test_binning_counts_vectors_not_units():
  # Two units, each half 0 and half 1: one unit alone would give 1 bit; the
  # four combinations, equally often, give 2.
  points = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 5, np.float32)
  assert estimators.binned_information(points, 2) == pytest.approx(2.0)
  assert estimators.binned_information(points[:, :1], 2) == pytest.approx(1.0)


def test_bins_are_equal_width_over_min_to_max():
  values = np.array([[0.0], [0.24], [0.26], [0.74], [0.76], [1.0]])
  codes = estimators.bin_indices(values, 4)
  assert codes[:, 0].tolist() == [0, 0, 1, 2, 3, 3]
  # The range is the array's: shifting and scaling changes nothing.
  assert (estimators.bin_indices(values * 7 - 3, 4) == codes).all()


def test_fewer_bins_never_give_more_information():
  rng = np.random.default_rng(0)
  points = rng.normal(size=(200, 4))
  values = [estimators.binned_information(points, k) for k in (2, 4, 8)]
  # Bins of 8 refine bins of 4 and of 2 over the same range.
  assert values[0] <= values[1] <= values[2] <= math.log2(200) + 1e-12


# The kernel density bound.


def test_kde_of_identical_points_is_zero():
  points = np.full((30, 5), 3.0)
  assert estimators.kde_upper_bound(points, 0.1) == pytest.approx(0.0, abs=1e-9)


def test_kde_of_far_apart_points_approaches_log2_n():
  points = np.eye(50) * 100.0  # distances of 141, sigma of 0.32
  assert estimators.kde_upper_bound(points, 0.1) == pytest.approx(
      math.log2(50), abs=1e-9
  )


def test_kde_of_two_far_groups_is_one_bit():
  points = np.concatenate([np.zeros((10, 3)), np.full((10, 3), 50.0)])
  assert estimators.kde_upper_bound(points, 0.1) == pytest.approx(1.0)


@pytest.mark.parametrize("variance", [0.01, 0.1, 1.0, 10.0])
def test_kde_matches_brute_force_and_stays_within_0_and_log2_n(variance):
  rng = np.random.default_rng(1)
  points = rng.normal(size=(40, 3)) * 0.5
  value = estimators.kde_upper_bound(points, variance)
  assert value == pytest.approx(brute_force_kde(points, variance), rel=1e-10)
  assert 0.0 <= value <= math.log2(40) + 1e-12


def test_kde_falls_as_the_noise_grows():
  rng = np.random.default_rng(2)
  points = rng.normal(size=(60, 4))
  values = [estimators.kde_upper_bound(points, v) for v in (0.01, 0.1, 1, 10)]
  assert all(a > b for a, b in zip(values, values[1:]))


def test_kde_in_blocks_equals_kde_in_one_block():
  rng = np.random.default_rng(3)
  points = rng.normal(size=(103, 2, 3, 4)).astype(np.float32)
  whole = estimators.kde_upper_bound(points, 0.5, block_size=1000)
  for block_size in (1, 10, 64):
    assert estimators.kde_upper_bound(
        points, 0.5, block_size=block_size
    ) == pytest.approx(whole, rel=1e-12)


def test_kde_keeps_small_distances_between_large_activations():
  # Activations near 1e4 that differ by 1: float32 distances from norms
  # would lose them; the centred float64 computation does not.
  rng = np.random.default_rng(4)
  offsets = rng.normal(size=(20, 8))
  points = (1e4 + offsets).astype(np.float32)
  reference = brute_force_kde(points.astype(np.float64) - 1e4, 1.0)
  assert estimators.kde_upper_bound(points, 1.0) == pytest.approx(
      reference, rel=1e-6
  )


# Settings, controls and the table.


@pytest.mark.parametrize("count", [1, 0, -3, 2.5, True, "30"])
def test_a_bad_bin_count_is_an_error_naming_it(count):
  with pytest.raises(ValueError, match="integer >= 2") as error:
    estimators.OtherEstimators(bin_counts=(30, count))
  assert repr(count) in str(error.value)
  assert "bin_counts" in str(error.value)


def test_repeated_bin_counts_are_an_error():
  with pytest.raises(ValueError, match="distinct"):
    estimators.OtherEstimators(bin_counts=[30, 30])


@pytest.mark.parametrize("variance", [0, -0.1, float("inf"), float("nan")])
def test_a_bad_noise_variance_is_an_error_naming_it(variance):
  with pytest.raises(ValueError, match="finite number > 0") as error:
    estimators.OtherEstimators(kde_noise_variance=variance)
  assert repr(variance) in str(error.value)
  assert "kde_noise_variance" in str(error.value)


def test_controls_meet_their_expectations_on_real_shapes():
  rng = np.random.default_rng(5)
  n, classes = 64, 10
  images = rng.integers(0, 256, size=(n, 8, 8, 1)).astype(np.float32)
  labels = np.arange(n) % classes
  others = estimators.OtherEstimators(bin_counts=(2, 30))
  cases = {
      "input": images,
      "constant": np.zeros((n, 1), np.float32),
      "label": np.eye(classes, dtype=np.float32)[labels],
  }
  for name, activations in cases.items():
    rows = others.rows(name, "control", activations, classes)
    assert [r["estimator"] for r in rows] == ["binning"] * 2 + [
        "kde_upper_bound"
    ]
    for row in rows:
      assert row["check"]["held"], (name, row)
      assert 0.0 <= row["bits"] <= math.log2(n) + 1e-9
  # Identity at the ceiling, not at H(x) (here 8 bits a pixel, 512 bits).
  assert others.rows("input", "control", images)[1]["bits"] == pytest.approx(
      math.log2(n)
  )


def test_control_checks_can_fail():
  assert not estimators.control_check("constant", 0.5, 100)["held"]
  assert not estimators.control_check("label", 3.5, 100, 10)["held"]
  assert not estimators.control_check("input", 6.0, 100)["held"]
  assert estimators.control_check("input", math.log2(100), 100)["held"]


def test_table_puts_the_estimates_beside_the_pixelcnn_row():
  others = estimators.OtherEstimators(bin_counts=(2,), kde_noise_variance=0.5)
  activations = np.arange(16, dtype=np.float32)[:, None]
  results = {
      "unconditional": {"entropy": {"mean": 700.0}},
      "rows": [
          {
              "layer": "fc",
              "kind": "layer",
              "conditioning": "spatial",
              "shape": [1],
              "mi": {"mean": 42.0},
          }
      ],
      "estimators": dict(
          others.settings(16),
          rows=others.rows("fc", "layer", activations)
          + others.rows("constant", "control", np.zeros((16, 1)), 10),
      ),
  }
  rows = tables.estimator_table_rows(results)
  assert rows[0]["pixelcnn"] == 42.0
  assert rows[0]["binning_2"] == pytest.approx(1.0)
  assert rows[1]["check"] == "= 0: holds"
  markdown = tables.estimators_markdown(results)
  assert "log2 N = 4.00" in markdown
  assert "| fc | layer | 1 | 42.0 | 1.00 |" in markdown
  header = tables.estimators_csv(results).splitlines()[0]
  assert header == "layer,kind,shape,pixelcnn,binning_2,kde_0.5,check"
