"""Two other estimates of I(x; f_l(x)), computed beside the PixelCNN's.

Both work on the activations of the N test images alone, with no model
trained, and both are bounded by log2 N bits whatever the layer:

- **Binning** (Shwartz-Ziv and Tishby, 2017). Every activation is cut into
  `num_bins` equal-width bins and each image's vector of bin indices is one
  symbol. The network is deterministic, so H(T | X) = 0 and the estimate is
  the entropy of the empirical distribution of the symbols. N distinct
  symbols give log2 N, which any injective layer reaches once the bins are
  fine enough.
- **Kernel density upper bound** (Kolchinsky and Tracey, 2017, as used by
  Saxe et al., 2018). Gaussian noise of variance sigma^2 is added to the
  activation, T = h(X) + noise; the pairwise-distance bound on the entropy
  of the resulting mixture of N Gaussians, less the entropy of the noise,
  gives
      I(X; T) <= -(1/N) sum_i log[(1/N) sum_j exp(-|h_i - h_j|^2 / 2 sigma^2)].
  Points much further apart than sigma make it log2 N; identical points 0.

No maintained package computes either on a fixed noise variance or fixed
bin grid (the authors' own code is research notebooks), so both are written
here, in NumPy, in float64.
"""

import dataclasses
import math
import numbers

import gin
import numpy as np

BINNING = "binning"
KDE = "kde_upper_bound"

# Rows of the pairwise-distance matrix computed at a time: a block of
# distances is [block, N] float64, and the activations are cast to float64
# one block at a time, so a layer of any width fits in memory.
_BLOCK = 256


def _flatten(activations):
  """`[n, ...]` activations as a `[n, features]` array."""
  activations = np.asarray(activations)
  if activations.ndim < 1 or activations.shape[0] < 1:
    raise ValueError(
        f"Activations of shape {activations.shape}; accepted: [n, ...] with "
        "n >= 1."
    )
  flat = activations.reshape(activations.shape[0], -1)
  if not np.all(np.isfinite(flat)):
    raise ValueError("The activations contain NaN or infinity.")
  return flat


def _entropy_bits(counts):
  p = np.asarray(counts, np.float64) / np.sum(counts)
  # Adding 0.0 turns the -0.0 of a single symbol into 0.0.
  return float(-np.sum(p * np.log2(p))) + 0.0


def bin_indices(activations, num_bins):
  """Each activation's bin among `num_bins` equal-width bins.

  The bins span the smallest to the largest value of the whole array (over
  every image and every unit), so the grid adapts to a layer's scale; the
  largest value falls into the last bin.

  Args:
    activations: `[n, ...]` activations of n images.
    num_bins: bins, an integer >= 2.

  Returns:
    Integer array `[n, features]` with values in [0, num_bins).
  """
  check_bin_count(num_bins)
  flat = _flatten(activations).astype(np.float64)
  low, high = flat.min(), flat.max()
  dtype = np.min_scalar_type(num_bins - 1)
  if high == low:
    return np.zeros(flat.shape, dtype)
  scaled = np.floor((flat - low) / (high - low) * num_bins)
  return np.clip(scaled, 0, num_bins - 1).astype(dtype)


def binned_information(activations, num_bins):
  """The binning estimate of I(X; T): H of the binned activation vectors.

  Args:
    activations: `[n, ...]` activations of n images, one per image.
    num_bins: equal-width bins per activation, an integer >= 2.

  Returns:
    Bits per image, in [0, log2 n].
  """
  codes = bin_indices(activations, num_bins)
  _, counts = np.unique(codes, axis=0, return_counts=True)
  return _entropy_bits(counts)


def _log_sum_exp(logits):
  """log sum_j exp(logits[:, j]) for each row, without overflow."""
  peak = logits.max(axis=1, keepdims=True)
  return peak[:, 0] + np.log(np.exp(logits - peak).sum(axis=1))


def kde_upper_bound(activations, noise_variance, block_size=_BLOCK):
  """The pairwise-distance upper bound on I(X; h(X) + noise), in bits.

  Squared distances come from |a|^2 + |b|^2 - 2 a.b, in float64, after the
  mean activation is subtracted (distances do not change, and the norms,
  whose difference the formula takes, get smaller).

  Args:
    activations: `[n, ...]` activations of n images.
    noise_variance: sigma^2 of the added Gaussian noise, in the units of the
      activations squared; a number > 0.
    block_size: rows of the distance matrix computed at a time.

  Returns:
    Bits per image, in [0, log2 n].
  """
  check_noise_variance(noise_variance)
  flat = _flatten(activations)
  n = flat.shape[0]
  mean = flat.mean(axis=0, dtype=np.float64)
  starts = range(0, n, block_size)

  def block(start):
    return flat[start : start + block_size].astype(np.float64) - mean

  norms = np.concatenate(
      [np.einsum("ij,ij->i", b, b) for b in map(block, starts)]
  )
  total = 0.0
  for start in starts:
    rows = block(start)
    stop = start + rows.shape[0]
    distances = np.empty((rows.shape[0], n))
    for column in starts:
      columns = block(column)
      end = column + columns.shape[0]
      distances[:, column:end] = (
          norms[start:stop, None]
          + norms[None, column:end]
          - 2.0 * rows @ columns.T
      )
    # Rounding can leave tiny negatives, and a nonzero distance of a point
    # to itself; both are exactly zero.
    np.maximum(distances, 0.0, out=distances)
    own = np.arange(rows.shape[0])
    distances[own, start + own] = 0.0
    total += float(np.sum(_log_sum_exp(-distances / (2.0 * noise_variance))))
  nats = math.log(n) - total / n
  return nats / math.log(2.0)


def check_bin_count(value):
  if (
      not isinstance(value, numbers.Integral)
      or isinstance(value, bool)
      or value < 2
  ):
    raise ValueError(
        f"Bin count {value!r}; accepted: an integer >= 2 (equal-width bins "
        "per activation)."
    )


def check_noise_variance(value):
  if (
      not isinstance(value, numbers.Real)
      or isinstance(value, bool)
      or not math.isfinite(value)
      or value <= 0
  ):
    raise ValueError(
        f"KDE noise variance {value!r}; accepted: a finite number > 0."
    )


@gin.configurable
@dataclasses.dataclass(frozen=True)
class OtherEstimators:
  """Which other estimators run beside the PixelCNN, and their settings.

  Attributes:
    bin_counts: bins per activation for the binning estimator, each an
      integer >= 2; one estimate per count.
    kde_noise_variance: sigma^2 of the noise of the kernel density bound, a
      number > 0.
  """

  bin_counts: tuple = (2, 30)
  kde_noise_variance: float = 0.1

  def __post_init__(self):
    if isinstance(self.bin_counts, (str, bytes)) or not hasattr(
        self.bin_counts, "__iter__"
    ):
      raise ValueError(
          f"OtherEstimators.bin_counts={self.bin_counts!r}; accepted: a "
          "list of integers >= 2."
      )
    counts = tuple(self.bin_counts)
    for count in counts:
      try:
        check_bin_count(count)
      except ValueError as error:
        raise ValueError(f"OtherEstimators.bin_counts: {error}") from None
    if len(set(counts)) != len(counts):
      raise ValueError(
          f"OtherEstimators.bin_counts={list(counts)}; accepted: distinct "
          "integers >= 2."
      )
    try:
      check_noise_variance(self.kde_noise_variance)
    except ValueError as error:
      raise ValueError(f"OtherEstimators.kde_noise_variance: {error}") from None
    object.__setattr__(self, "bin_counts", counts)

  def settings(self, num_test):
    """What the results file says about these estimates."""
    return {
        "bin_counts": list(self.bin_counts),
        "bin_range": "min..max of the layer over the test activations",
        "kde_noise_variance": float(self.kde_noise_variance),
        "num_test": int(num_test),
        "ceiling_bits": math.log2(num_test),
    }

  def measures(self):
    """`(estimator, parameter, value)` of every estimate, in row order."""
    measures = [(BINNING, "bins", count) for count in self.bin_counts]
    measures.append((KDE, "noise_variance", float(self.kde_noise_variance)))
    return measures

  @staticmethod
  def estimate(measure, activations):
    """The estimate of one of `measures()` on `[n, ...]` activations, bits."""
    estimator, _, value = measure
    if estimator == BINNING:
      return binned_information(activations, value)
    if estimator == KDE:
      return kde_upper_bound(activations, value)
    raise ValueError(
        f"Estimator {estimator!r}; accepted: {BINNING!r}, {KDE!r}."
    )

  def rows(self, layer, kind, activations, num_classes=None, **extra):
    """One row per estimate for one layer or control.

    Args:
      layer: the row's name, a layer or a control.
      kind: 'layer' or 'control'.
      activations: `[n, ...]` activations of the n test images.
      num_classes: classes of the data set, for the label control.
      **extra: more fields for every row (e.g. group, epoch).

    Returns:
      A list of dicts with `layer`, `kind`, `estimator`, `parameter`,
      `parameter_value`, `bits` and, for controls, `check`.
    """
    bits = [self.estimate(m, activations) for m in self.measures()]
    return self.rows_of(
        layer, kind, bits, int(np.shape(activations)[0]), num_classes, **extra
    )

  def rows_of(self, layer, kind, bits, num_test, num_classes=None, **extra):
    """The rows of `rows`, from estimates already made.

    Args:
      layer: the row's name, a layer or a control.
      kind: 'layer' or 'control'.
      bits: one estimate per entry of `measures()`, in its order.
      num_test: how many test images the estimates saw.
      num_classes: classes of the data set, for the label control.
      **extra: more fields for every row.

    Returns:
      The rows, as `rows` makes them.
    """
    measures = self.measures()
    if len(bits) != len(measures):
      raise ValueError(
          f"{len(bits)} estimates for {layer!r}; accepted: one per measure "
          f"{measures}."
      )
    rows = []
    for (estimator, parameter, value), estimate in zip(measures, bits):
      row = dict(
          extra,
          layer=layer,
          kind=kind,
          estimator=estimator,
          parameter=parameter,
          parameter_value=value,
          bits=estimate,
          check=None,
      )
      if kind == "control":
        row["check"] = control_check(layer, estimate, num_test, num_classes)
      rows.append(row)
    return rows


def control_check(control, bits, num_test, num_classes=None):
  """What an estimate of a control should be, and whether it is.

  Both estimators are bounded by log2 N for N test images, so the identity
  control is expected at that ceiling (when the images are distinct), not
  at H(x); a constant gives 0; a one-hot label at most log2(classes).

  Args:
    control: 'input', 'constant' or 'label'.
    bits: the estimate.
    num_test: N, the test images.
    num_classes: classes, for 'label'.

  Returns:
    Dict with `expectation` (words) and `held` (bool).
  """
  ceiling = math.log2(num_test)
  if control == "input":
    expectation = (
        f">= 99% of log2 N = {ceiling:.2f}: the ceiling for N distinct "
        "images, not H(x)"
    )
    held = bits >= 0.99 * ceiling
  elif control == "constant":
    expectation = "= 0"
    held = abs(bits) <= 1e-9
  elif control == "label":
    bound = math.log2(num_classes)
    expectation = f"<= log2({num_classes}) = {bound:.2f}"
    held = bits <= bound + 1e-9
  else:
    raise ValueError(
        f"Control {control!r}; accepted: 'input', 'constant', 'label'."
    )
  return {"expectation": expectation, "held": bool(held)}
