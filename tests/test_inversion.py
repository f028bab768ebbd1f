"""The inversion model is a normalised, autoregressive distribution.

Normalisation is checked exactly: for images small enough to enumerate, the
probabilities of every possible image sum to one. Causality is checked
through the Jacobian of the network's outputs with respect to its input.
"""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from repro import inversion
from repro import training

TINY = inversion.PixelCNNConfig(
    num_filters=4, num_logistic_mix=2, conditioner_filters=4
)


def all_images(shape, levels):
  """Every image of `shape` with pixels in 0..levels-1, `[levels**d, ...]`."""
  size = int(np.prod(shape))
  grid = itertools.product(range(levels), repeat=size)
  return np.array(list(grid), np.float32).reshape(-1, *shape)


def build(shape, conditioning, levels, activation_shape=None, seed=0):
  keras.utils.set_random_seed(seed)
  if conditioning == "none":
    return inversion.build_inversion_model(TINY, shape, high=levels - 1)
  channels = activation_shape[-1]
  statistics = (np.zeros(channels), np.ones(channels))
  return inversion.build_inversion_model(
      TINY, shape, conditioning, activation_shape, statistics, high=levels - 1
  )


def total_probability(model, shape, levels, condition=None):
  images = all_images(shape, levels)
  kwargs = {}
  if condition is not None:
    kwargs["conditional_input"] = np.repeat(condition, len(images), axis=0)
  log_prob = model.log_prob(images, **kwargs).numpy().astype(np.float64)
  return np.exp(log_prob).sum()


CASES = [
    # (image shape, grey levels, conditioning, activation shape)
    ((2, 2, 1), 4, "none", None),
    ((2, 2, 1), 4, "spatial", (2, 2, 3)),
    ((2, 2, 1), 4, "spatial", (1, 1, 2)),
    ((2, 2, 1), 4, "spatial", (5,)),
    ((2, 2, 1), 4, "global", (2, 2, 3)),
    ((2, 2, 3), 2, "none", None),
    ((2, 2, 3), 2, "spatial", (2, 2, 3)),
    ((2, 2, 3), 2, "global", (4,)),
]


@pytest.mark.parametrize("shape, levels, conditioning, activation", CASES)
def test_fresh_model_is_normalised(shape, levels, conditioning, activation):
  model = build(shape, conditioning, levels, activation)
  condition = None
  if activation is not None:
    condition = np.random.default_rng(1).normal(size=(1, *activation))
    condition = condition.astype(np.float32)
  assert total_probability(model, shape, levels, condition) == pytest.approx(
      1.0, abs=1e-4
  )


@pytest.mark.parametrize("shape, levels, conditioning, activation", CASES[::2])
def test_trained_model_is_normalised(
    shape, levels, conditioning, activation, tmp_path
):
  model = build(shape, conditioning, levels, activation)
  rng = np.random.default_rng(2)
  # Training data concentrated on few images, so that training moves the
  # model far from its initial, nearly uniform distribution.
  images = np.zeros((32, *shape), np.float32)
  images[::2] = levels - 1
  conditions = None
  if activation is not None:
    conditions = rng.normal(size=(32, *activation)).astype(np.float32)
  config = training.TrainConfig(
      steps=30, batch_size=8, learning_rate=0.03, checkpoint_every=30
  )
  before = model.log_prob(
      images[:2],
      **({} if conditions is None else {"conditional_input": conditions[:2]})
  ).numpy()
  training.train(model, images, conditions, config, str(tmp_path), seed=0)
  after = model.log_prob(
      images[:2],
      **({} if conditions is None else {"conditional_input": conditions[:2]})
  ).numpy()
  assert np.all(after > before + 0.5), "training did not move the model"

  condition = None if conditions is None else conditions[:1]
  assert total_probability(model, shape, levels, condition) == pytest.approx(
      1.0, abs=1e-4
  )


def dependence(model, image, condition=None):
  """Which input pixels each output pixel depends on.

  Returns:
    Booleans `[out_pixels, in_pixels]`, pixels in raster order: entry
    (i, j) says whether some output at pixel i has a non-zero derivative
    with respect to some channel of input pixel j.
  """
  height, width, _ = image.shape
  rng = np.random.default_rng(0)
  x = tf.constant(image[np.newaxis])
  with tf.GradientTape() as tape:
    tape.watch(x)
    inputs = x if condition is None else [x, condition[np.newaxis]]
    outputs = model.network(inputs, training=False)
    # A random combination of every output at a pixel, so that no
    # dependence cancels by accident.
    per_pixel = tf.add_n(
        [
            tf.reduce_sum(
                tf.reshape(out[0], [height, width, -1])
                * rng.normal(size=(1, 1, int(np.prod(out.shape[3:])))),
                axis=-1,
            )
            for out in outputs
        ]
    )
  jacobian = tape.jacobian(per_pixel, x).numpy()  # [h, w, 1, h, w, c]
  return np.abs(jacobian).sum(axis=(2, 5)).reshape(height * width, -1) > 0


@pytest.mark.parametrize(
    "shape, conditioning, activation, stages",
    [
        ((8, 8, 1), "none", None, 2),
        ((8, 8, 3), "spatial", (4, 4, 2), 2),
        ((8, 8, 1), "global", (3,), 3),
    ],
)
def test_fresh_network_is_causal(shape, conditioning, activation, stages):
  config = inversion.PixelCNNConfig(
      num_filters=4,
      num_resnet=1,
      num_stages=stages,
      num_logistic_mix=2,
      conditioner_filters=4,
  )
  keras.utils.set_random_seed(0)
  statistics = None
  if activation is not None:
    statistics = (np.zeros(activation[-1]), np.ones(activation[-1]))
  model = inversion.build_inversion_model(
      config, shape, conditioning, activation, statistics
  )
  image = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
  condition = None
  if activation is not None:
    condition = np.ones(activation, np.float32)
  depends = dependence(model, image, condition)
  pixels = shape[0] * shape[1]
  future = np.triu(np.ones((pixels, pixels), bool))  # input j >= output i
  assert not np.any(depends & future), "an output sees its own or a later pixel"
  # The network does use the past: the last pixel sees most earlier ones.
  assert depends[-1, :-1].mean() > 0.5


def test_image_sizes_must_divide_by_the_downsampling():
  config = inversion.PixelCNNConfig(num_stages=3)
  with pytest.raises(
      ValueError, match=r"divisible by 2\*\*\(num_stages - 1\) = 4"
  ):
    inversion.build_inversion_model(config, (30, 28, 1))


def test_conditioning_on_a_larger_map_than_the_image_is_refused():
  with pytest.raises(ValueError, match="larger than the image"):
    inversion.build_inversion_model(
        TINY, (4, 4, 1), "spatial", (8, 8, 1), (np.zeros(1), np.ones(1))
    )


def test_conditioning_on_a_sequence_is_refused():
  with pytest.raises(ValueError, match=r"\[d\] or a feature map"):
    inversion.build_inversion_model(
        TINY, (4, 4, 1), "spatial", (3, 5), (np.zeros(5), np.ones(5))
    )


def test_samples_are_reproducible_and_in_range():
  model = build((4, 4, 3), "spatial", 256, (2, 2, 1))
  condition = np.ones((3, 2, 2, 1), np.float32)
  first = model.sample(3, seed=(1, 2), conditional_input=condition).numpy()
  again = model.sample(3, seed=(1, 2), conditional_input=condition).numpy()
  other = model.sample(3, seed=(1, 3), conditional_input=condition).numpy()
  assert first.shape == (3, 4, 4, 3)
  np.testing.assert_array_equal(first, again)
  assert np.any(first != other)
  assert first.min() >= 0 and first.max() <= 255
  np.testing.assert_array_equal(first, np.round(first))


def test_sampler_draws_from_the_likelihood():
  """Sample frequencies of a 1x2 image with 3 levels match exp(log_prob)."""
  model = build((2, 2, 1), "none", 3)
  images = all_images((2, 2, 1), 3)
  probabilities = np.exp(model.log_prob(images).numpy().astype(np.float64))
  draws = tf.function(lambda: model.sample(20000, seed=(4, 5)))().numpy()
  codes = (draws.reshape(len(draws), -1) * 3 ** np.arange(4)[::-1]).sum(-1)
  frequencies = np.bincount(codes.astype(int), minlength=81) / len(draws)
  # Three standard errors of a binomial proportion, per image.
  tolerance = 3 * np.sqrt(probabilities * (1 - probabilities) / len(draws))
  assert np.all(np.abs(frequencies - probabilities) <= tolerance + 1e-3)


@pytest.mark.parametrize(
    "shape, stages, conditioning, activation",
    [
        ((8, 6, 1), 2, "none", None),
        ((8, 8, 3), 3, "spatial", (4, 4, 2)),
        ((4, 4, 1), 2, "global", (3,)),
        ((8, 8, 1), 2, "spatial", (6,)),
    ],
)
def test_fast_sampler_equals_the_reference(
    shape, stages, conditioning, activation
):
  """Band-by-band sampling draws the very images of full passes."""
  config = inversion.PixelCNNConfig(
      num_filters=6,
      num_stages=stages,
      num_logistic_mix=3,
      conditioner_filters=4,
  )
  keras.utils.set_random_seed(0)
  statistics = None
  kwargs = {}
  if activation is not None:
    statistics = (np.zeros(activation[-1]), np.ones(activation[-1]))
    kwargs["conditional_input"] = tf.random.stateless_normal(
        [3, *activation], seed=(0, 1)
    )
  model = inversion.build_inversion_model(
      config, shape, conditioning, activation, statistics
  )
  fast = tf.function(lambda: model.sample(3, seed=(7, 8), **kwargs))()
  slow = tf.function(lambda: model.sample_reference(3, seed=(7, 8), **kwargs))()
  np.testing.assert_array_equal(fast.numpy(), slow.numpy())
  # Not a degenerate image: the samples vary over pixels and images.
  assert len(np.unique(fast.numpy())) > 20
