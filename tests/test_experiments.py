"""The control checks, the depth flags and the choice of sample images."""

import math

import numpy as np
import pytest

from repro import experiments


def row(layer, mean, low, high):
  return {"layer": layer, "mi": {"mean": mean, "low": low, "high": high}}


def test_a_rise_beyond_both_intervals_is_flagged():
  rows = experiments.flag_rises_with_depth(
      [
          row("conv1", 500, 490, 510),
          row("pool1", 300, 290, 310),
          row("conv2", 320, 305, 335),  # overlaps pool1: allowed
          row("pool2", 400, 390, 410),  # above pool1 and conv2: flagged
      ]
  )
  assert [r["rises_with_depth"] for r in rows] == [False, False, False, True]
  assert rows[3]["rises_above"] == ["pool1", "conv2"]


class FakeModel:

  def __init__(self, nll):
    self.test_nll = np.asarray(nll, np.float64)


@pytest.mark.parametrize(
    "layer, mi, held",
    [
        ("input", (900, 890, 910), True),
        ("input", (700, 690, 710), False),
        ("constant", (0.5, -1.0, 2.0), True),
        ("constant", (5.0, 3.0, 7.0), False),
        ("label", (3.0, 2.0, 4.0), True),
        ("label", (5.0, 4.0, 6.0), False),
    ],
)
def test_controls_state_and_check_their_expectation(layer, mi, held):
  unconditional = FakeModel(np.full(50, 1000.0) + np.arange(50) % 3)
  checked = experiments.control_row(
      row(layer, *mi), unconditional, 10, 100, 0, input_fraction=0.8
  )
  assert checked["kind"] == "control"
  assert checked["check"]["held"] is held
  if layer == "label":
    assert f"{math.log2(10):.2f}" in checked["check"]["expectation"]


def test_sample_images_cover_the_classes_first():
  labels = np.array([3, 3, 1, 0, 1, 2, 0])
  assert experiments.sample_indices(labels, 3) == [3, 2, 5]
  chosen = experiments.sample_indices(labels, 6)
  assert len(set(chosen)) == 6
  assert chosen[:4] == [3, 2, 5, 0]
