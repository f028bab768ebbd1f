"""The MI estimate and its paired bootstrap interval."""

import numpy as np
import pytest

from repro import estimate


def test_estimate_is_the_mean_paired_difference():
  rng = np.random.default_rng(0)
  unconditional = rng.normal(1000.0, 50.0, size=500)
  conditional = unconditional - 30.0 + rng.normal(0.0, 1.0, size=500)
  result = estimate.mutual_information(unconditional, conditional, seed=1)
  assert result["mean"] == pytest.approx(np.mean(unconditional - conditional))
  assert result["low"] < 30.0 < result["high"]


def test_pairing_removes_the_variation_shared_by_both_models():
  rng = np.random.default_rng(0)
  unconditional = rng.normal(1000.0, 50.0, size=500)
  conditional = unconditional - 30.0 + rng.normal(0.0, 1.0, size=500)
  paired = estimate.mutual_information(unconditional, conditional, seed=1)
  width = paired["high"] - paired["low"]
  # Unpaired, the interval would be as wide as the spread of -log p(x):
  # about 2 * 1.96 * 50 * sqrt(2 / 500) = 12 bits. Paired, it is ~0.2.
  assert width < 0.5


@pytest.mark.parametrize("confidence", [0.5, 0.9, 0.95])
def test_interval_covers_the_true_mean_at_its_rate(confidence):
  rng = np.random.default_rng(3)
  covered = 0
  trials = 200
  for trial in range(trials):
    values = rng.exponential(2.0, size=200)
    result = estimate.bootstrap_mean(
        values, num_resamples=500, confidence=confidence, seed=trial
    )
    covered += result["low"] <= 2.0 <= result["high"]
  # Within four binomial standard errors of the nominal coverage.
  error = 4 * np.sqrt(confidence * (1 - confidence) / trials)
  assert abs(covered / trials - confidence) < error + 0.02


def test_mismatched_test_sets_are_refused():
  with pytest.raises(ValueError, match="same test images"):
    estimate.mutual_information(np.zeros(10), np.zeros(9))


def test_non_finite_values_are_refused():
  with pytest.raises(ValueError, match="NaN or infinity"):
    estimate.bootstrap_mean(np.array([1.0, np.nan, 2.0]))


def test_a_single_value_is_refused():
  with pytest.raises(ValueError, match="at least 2 values"):
    estimate.bootstrap_mean(np.array([1.0]))
