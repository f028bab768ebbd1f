"""The mutual information estimate and its uncertainty.

For a layer l, I(x; f_l(x)) = H(x) - H(x | f_l(x)). Both entropies are
replaced by the test cross-entropies of a trained model: the unconditional
PixelCNN for H(x) and the inversion model p(x | f_l(x)) for H(x | f_l(x)).
Each cross-entropy is an upper bound on its entropy, so their difference is
an estimate, not a bound: it is too high when the unconditional model is the
worse fit, and too low when the conditional one is.

The interval is a paired bootstrap over test images: both negative
log-likelihoods of one image are resampled together, so the large variation
of -log p(x) from image to image, shared by both models, cancels.
"""

import numpy as np


def bootstrap_mean(values, num_resamples=2000, confidence=0.95, seed=0):
  """Mean of `values` with a percentile bootstrap interval.

  Args:
    values: `[n]` per-image numbers (for MI: paired differences).
    num_resamples: bootstrap resamples.
    confidence: coverage of the interval.
    seed: seed of the resampling.

  Returns:
    Dict with `mean`, `low`, `high` and `std_error` (the bootstrap standard
    deviation of the mean).
  """
  values = np.asarray(values, np.float64)
  if values.ndim != 1 or values.size < 2:
    raise ValueError(
        f"Need a vector of at least 2 values, got shape {values.shape}."
    )
  if not np.all(np.isfinite(values)):
    raise ValueError("The values to bootstrap contain NaN or infinity.")
  rng = np.random.default_rng(seed)
  index = rng.integers(0, values.size, size=(num_resamples, values.size))
  means = values[index].mean(axis=1)
  tail = 100.0 * (1.0 - confidence) / 2.0
  low, high = np.percentile(means, [tail, 100.0 - tail])
  return {
      "mean": float(values.mean()),
      "low": float(low),
      "high": float(high),
      "std_error": float(means.std(ddof=1)),
  }


def mutual_information(
    unconditional_nll,
    conditional_nll,
    num_resamples=2000,
    confidence=0.95,
    seed=0,
):
  """Î = mean over test images of NLL_uncond(x) - NLL_cond(x | f(x)).

  Args:
    unconditional_nll: `[n]` bits per image under the unconditional model.
    conditional_nll: `[n]` bits per image under the inversion model, for the
      same images in the same order.
    num_resamples: bootstrap resamples.
    confidence: coverage of the interval.
    seed: seed of the resampling.

  Returns:
    The `bootstrap_mean` dict of the paired differences, in bits per image.
  """
  unconditional_nll = np.asarray(unconditional_nll, np.float64)
  conditional_nll = np.asarray(conditional_nll, np.float64)
  if unconditional_nll.shape != conditional_nll.shape:
    raise ValueError(
        "Paired estimates need the same test images: got shapes "
        f"{unconditional_nll.shape} and {conditional_nll.shape}."
    )
  return bootstrap_mean(
      unconditional_nll - conditional_nll, num_resamples, confidence, seed
  )
