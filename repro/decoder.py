"""A deterministic reconstruction baseline: a decoder trained with MSE.

Dosovitskiy and Brox (2016) inverted a network's layers by training a
decoder from the activation f_l(x) back to the image with a squared-error
loss. The minimiser of the expected squared error is the conditional mean
E[x | f_l(x)], an average over every image that the layer cannot tell
apart, so where the layer has discarded information the reconstruction is
blurred. The PixelCNN inversion models draw from p(x | f_l(x)) instead,
and their samples stay sharp; the two are drawn side by side.

The decoder is `conditioning.SpatialConditioner` (the network that feeds
the inversion models, so it accepts any `[d]` or `[h, w, c]` activation,
standardised with training-set statistics) at the image's resolution,
followed by a 1x1 convolution to the image channels and a sigmoid. Pixels
are scaled to [0, 1]; the sigmoid keeps every prediction in that range,
where the conditional mean of [0, 1] pixels always lies.
"""

import dataclasses
import math
import os

import gin
import keras
import numpy as np
import tensorflow as tf
from absl import logging

from repro import conditioning as conditioning_lib
from repro import training


@gin.configurable
@dataclasses.dataclass(frozen=True)
class DecoderConfig:
  """Sizes and training of the MSE decoders.

  Attributes:
    filters: channels of the decoder's feature maps.
    blocks: residual blocks at the activation's resolution and again at
      the image's (as `PixelCNNConfig.conditioner_blocks`).
    steps: Adam steps.
    batch_size: images per step.
    learning_rate: Adam's step size, constant.
  """

  filters: int = 32
  blocks: int = 1
  steps: int = 500
  batch_size: int = 32
  learning_rate: float = 1e-3

  def __post_init__(self):
    for name in ("filters", "blocks", "steps", "batch_size"):
      value = getattr(self, name)
      if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(
            f"DecoderConfig.{name}={value!r}; accepted: an integer >= 1."
        )
    rate = self.learning_rate
    if (
        not isinstance(rate, (int, float))
        or isinstance(rate, bool)
        or not math.isfinite(rate)
        or rate <= 0
    ):
      raise ValueError(
          f"DecoderConfig.learning_rate={rate!r}; accepted: a finite number "
          "> 0."
      )

  def check_dataset(self, num_train):
    """Raises ValueError if a batch is larger than the training set."""
    if self.batch_size > num_train:
      raise ValueError(
          f"DecoderConfig.batch_size={self.batch_size} exceeds the "
          f"{num_train} training images; accepted: at most {num_train}."
      )


class Decoder(keras.Model):
  """Maps an activation to an image with pixels in [0, 1].

  Called on `[batch, *activation_shape]`, it returns float32
  `[batch, height, width, channels]` in (0, 1).
  """

  def __init__(
      self, config, activation_shape, image_shape, mean, variance, pixel_mean
  ):
    """Builds the decoder.

    Args:
      config: a `DecoderConfig`.
      activation_shape: shape of one activation, without the batch axis.
      image_shape: `[height, width, channels]` of the images.
      mean: `[channels]` training-set mean of the activation.
      variance: `[channels]` training-set variance of the activation.
      pixel_mean: the mean training pixel in [0, 1]; the output starts there,
        so that the first steps are not spent finding the background.
    """
    super().__init__()
    # One stage: the conditioner's map is at the image's resolution, and
    # no coarser maps are made.
    self.features = conditioning_lib.SpatialConditioner(
        activation_shape,
        image_shape,
        1,
        mean,
        variance,
        filters=config.filters,
        num_blocks=config.blocks,
    )
    start = float(np.clip(pixel_mean, 1e-3, 1 - 1e-3))
    self.to_pixels = keras.layers.Conv2D(
        image_shape[-1],
        1,
        bias_initializer=keras.initializers.Constant(
            math.log(start / (1 - start))
        ),
    )

  def call(self, activation, training=None):
    x = self.features(activation)[0]
    return tf.sigmoid(self.to_pixels(tf.nn.relu(x)))


def build_decoder(config, activation_shape, image_shape, statistics, pixel):
  """A `Decoder`, with its variables created.

  Args:
    config: a `DecoderConfig`.
    activation_shape: shape of one activation, without the batch axis.
    image_shape: `[height, width, channels]`.
    statistics: `(mean, variance)` of the activation, each `[channels]`.
    pixel: the mean training pixel in [0, 1].
  """
  decoder = Decoder(config, activation_shape, image_shape, *statistics, pixel)
  decoder(np.zeros((1, *activation_shape), np.float32))
  return decoder


def _checkpoint(decoder):
  return tf.train.Checkpoint(network=training._variables(decoder))


def save(decoder, directory):
  """Writes the decoder's weights as a `tf.train` checkpoint."""
  return _checkpoint(decoder).write(os.path.join(directory, "decoder"))


def restore(decoder, directory):
  """Loads the weights that `save` wrote into `directory`."""
  path = os.path.join(directory, "decoder")
  if not tf.io.gfile.exists(f"{path}.index"):
    raise FileNotFoundError(f"No decoder checkpoint under {directory}.")
  _checkpoint(decoder).read(path).assert_existing_objects_matched()


def to_unit(images):
  """8-bit images as float32 in [0, 1]."""
  return np.asarray(images, np.float32) / 255.0


def fit(decoder, images, conditions, config, seed, label=""):
  """Trains `decoder` with the mean squared error on [0, 1] pixels.

  Args:
    decoder: a `Decoder`.
    images: `[n, height, width, channels]` 8-bit images.
    conditions: `[n, *activation_shape]` float32 activations of `images`.
    config: a `DecoderConfig`.
    seed: determines the minibatches.
    label: a name shown in progress output.

  Returns:
    Dict with the mean squared error of the last step.
  """
  config.check_dataset(images.shape[0])
  optimizer = keras.optimizers.Adam(config.learning_rate)
  variables = decoder.trainable_variables

  @tf.function(reduce_retracing=True)
  def step(x, c):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.square(decoder(c, training=True) - x))
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  progress = keras.utils.Progbar(
      config.steps, stateful_metrics=["mse"], unit_name="step", interval=1.0
  )
  loss = float("nan")
  for current in range(config.steps):
    index = training.batch_indices(
        images.shape[0], config.batch_size, current, seed
    )
    loss = float(step(to_unit(images[index]), conditions[index]))
    if not math.isfinite(loss):
      raise training.NonFiniteLossError(
          f"{label}: the decoder's loss is {loss} at step {current}."
      )
    progress.update(current + 1, [("mse", loss)])
  logging.info("%s: final training MSE %.5f.", label, loss)
  return {"final_train_mse": loss}


def reconstruct(decoder, conditions, batch_size=250):
  """The decoder's output for each condition, in [0, 1].

  Args:
    decoder: a `Decoder`.
    conditions: `[n, *activation_shape]` float32.
    batch_size: conditions per forward pass.

  Returns:
    float32 `[n, height, width, channels]`.
  """
  outputs = [
      decoder(conditions[start : start + batch_size], training=False).numpy()
      for start in range(0, conditions.shape[0], batch_size)
  ]
  return np.concatenate(outputs)


def to_uint8(reconstructions):
  """[0, 1] reconstructions as 8-bit images, rounded."""
  return np.round(np.clip(reconstructions, 0.0, 1.0) * 255).astype(np.uint8)


def errors(decoder, images, conditions, train_images):
  """Test errors of the decoder and of the mean image, per pixel.

  Args:
    decoder: a trained `Decoder`.
    images: `[n, height, width, channels]` 8-bit test images.
    conditions: their activations.
    train_images: the 8-bit training images, for the mean image.

  Returns:
    Dict: `test_mse` (the decoder's mean squared error per pixel, in [0, 1]
    units, over the test images), `test_psnr` (10 log10(1 / test_mse), in
    dB) and `mean_image_mse` (the error of predicting the training mean
    image for every test image: the error of a decoder that ignores the
    activation).
  """
  target = to_unit(images)
  mse = float(np.mean(np.square(reconstruct(decoder, conditions) - target)))
  mean_image = to_unit(train_images).mean(axis=0)
  return {
      "test_mse": mse,
      "test_psnr": float(10 * math.log10(1.0 / max(mse, 1e-12))),
      "mean_image_mse": float(np.mean(np.square(mean_image - target))),
  }
