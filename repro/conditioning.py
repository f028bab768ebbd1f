"""Conditioning networks: from a layer's activation to PixelCNN features.

An inversion model p(x | f_l(x)) needs the activation f_l(x) where the
PixelCNN can use it. A convolutional activation keeps its spatial layout, so
`SpatialConditioner` decodes it into a feature map at every resolution of the
PixelCNN's U-net, and each gated residual layer adds its own 1x1 projection
of the map at its resolution, per pixel. `GlobalConditioner` is TFP's stock
scheme for comparison: the activation is flattened and each gated layer adds
a dense projection of it, the same at every pixel.

Both normalise the activation per channel with statistics of the training
set, since the scale of raw activations differs by orders of magnitude
between layers (pixels, ReLU maps, logits).
"""

import keras
import numpy as np
import tensorflow as tf


class Standardize(keras.layers.Layer):
  """(x - mean) / std over the last axis, with fixed, saved statistics.

  A channel of zero variance (a dead unit, a constant input) maps to zero.
  """

  def __init__(self, mean, variance, **kwargs):
    super().__init__(**kwargs)
    mean = np.asarray(mean, np.float32)
    std = np.sqrt(np.asarray(variance, np.float32))
    scale = np.where(std > 1e-6, 1.0 / np.maximum(std, 1e-6), 0.0)
    self.mean = self.add_weight(
        shape=mean.shape, initializer="zeros", trainable=False, name="mean"
    )
    self.scale = self.add_weight(
        shape=mean.shape, initializer="zeros", trainable=False, name="scale"
    )
    self.mean.assign(mean)
    self.scale.assign(scale.astype(np.float32))

  def call(self, x):
    return (x - self.mean) * self.scale


def activation_statistics(activations):
  """Per-channel mean and variance over all but the last axis.

  Args:
    activations: `[num_examples, ..., channels]` array.

  Returns:
    `(mean, variance)`, each of shape `[channels]`.
  """
  activations = np.asarray(activations)
  channels = activations.shape[-1]
  total = np.zeros(channels)
  squares = np.zeros(channels)
  # In float64, a few hundred examples at a time: a float64 copy of a
  # whole convolutional activation would take gigabytes.
  for start in range(0, activations.shape[0], 256):
    chunk = activations[start : start + 256].reshape(-1, channels)
    chunk = chunk.astype(np.float64)
    total += chunk.sum(axis=0)
    squares += np.square(chunk).sum(axis=0)
  count = activations.size // channels
  mean = total / count
  return mean, np.maximum(squares / count - mean**2, 0.0)


def check_activation_shape(activation_shape, image_shape):
  """Raises ValueError unless the shape is `[d]` or `[h, w, c]` that fits.

  Args:
    activation_shape: shape of one activation, without the batch axis.
    image_shape: `[height, width, channels]` of the images.
  """
  shape = tuple(activation_shape)
  if len(shape) == 1:
    return
  if len(shape) != 3:
    raise ValueError(
        f"Activation shape {shape} is not supported: accepted are a vector "
        "[d] or a feature map [height, width, channels]."
    )
  if shape[0] > image_shape[0] or shape[1] > image_shape[1]:
    raise ValueError(
        f"Activation map {shape[0]}x{shape[1]} is larger than the image "
        f"{image_shape[0]}x{image_shape[1]}; accepted are maps at most as "
        "large as the image."
    )


class ResidualBlock(keras.layers.Layer):
  """x + conv(relu(conv(relu(x)))), with 3x3 'same' convolutions."""

  def __init__(self, filters, **kwargs):
    super().__init__(**kwargs)
    self.conv_a = keras.layers.Conv2D(filters, 3, padding="same")
    self.conv_b = keras.layers.Conv2D(filters, 3, padding="same")

  def call(self, x):
    return x + self.conv_b(tf.nn.relu(self.conv_a(tf.nn.relu(x))))


class SpatialConditioner(keras.Model):
  """Decodes an activation into feature maps at every PixelCNN resolution.

  A vector `[d]` is first mapped by a dense layer to a map at the coarsest
  resolution of the PixelCNN. A map `[h, w, c]` is processed at its own
  resolution, resized bilinearly to the image's and processed again (once
  only, if the two resolutions are the same), and then reduced by stride-2
  convolutions to each coarser resolution. A map at the image's resolution
  also reaches the finest features through a linear 1x1 convolution.

  Called on `[batch, *activation_shape]`, it returns a list of `num_stages`
  tensors; entry k is `[batch, height / 2**k, width / 2**k, filters]`.
  """

  def __init__(
      self,
      activation_shape,
      image_shape,
      num_stages,
      mean,
      variance,
      filters=32,
      num_blocks=1,
      **kwargs,
  ):
    super().__init__(**kwargs)
    check_activation_shape(activation_shape, image_shape)
    self.activation_shape = tuple(activation_shape)
    self.image_size = tuple(image_shape[:2])
    self.normalize = Standardize(mean, variance)
    factor = 2 ** (num_stages - 1)
    coarsest = (image_shape[0] // factor, image_shape[1] // factor)

    if len(self.activation_shape) == 1:
      self.to_map = keras.Sequential(
          [
              keras.layers.Dense(coarsest[0] * coarsest[1] * filters),
              keras.layers.Reshape((*coarsest, filters)),
          ]
      )
      self.native_size = coarsest
    else:
      self.to_map = keras.layers.Conv2D(filters, 3, padding="same")
      self.native_size = self.activation_shape[:2]

    # A map at the image's own resolution also takes a linear path, a 1x1
    # convolution added to the finest features: what it says about a pixel
    # then reaches that pixel's layers without a nonlinearity. (Added to a
    # coarser map, resized, it blurs and was measured to hurt.)
    self.linear = None
    if len(self.activation_shape) == 3 and self.native_size == self.image_size:
      self.linear = keras.layers.Conv2D(filters, 1)
    self.native_blocks = [ResidualBlock(filters) for _ in range(num_blocks)]
    self.full_blocks = []
    if self.native_size != self.image_size:
      self.full_blocks = [ResidualBlock(filters) for _ in range(num_blocks)]
    self.reductions = [
        keras.layers.Conv2D(filters, 3, strides=2, padding="same")
        for _ in range(num_stages - 1)
    ]

  def call(self, activation, training=None):
    normalized = self.normalize(activation)
    x = self.to_map(normalized)
    for block in self.native_blocks:
      x = block(x)
    if self.native_size != self.image_size:
      # Resizing returns float32; keep the layer's compute precision.
      x = tf.cast(
          tf.image.resize(x, self.image_size, method="bilinear"), x.dtype
      )
    for block in self.full_blocks:
      x = block(x)
    if self.linear is not None:
      x = x + self.linear(normalized)
    features = [x]
    for reduce in self.reductions:
      features.append(reduce(tf.nn.relu(features[-1])))
    return features


class GlobalConditioner(keras.Model):
  """TFP's scheme: the normalised activation, flattened, for every stage.

  Each gated residual layer projects the vector with its own dense layer and
  adds the result at every pixel alike.
  """

  def __init__(self, activation_shape, num_stages, mean, variance, **kwargs):
    super().__init__(**kwargs)
    self.activation_shape = tuple(activation_shape)
    self.num_stages = num_stages
    self.normalize = Standardize(mean, variance)
    self.flatten = keras.layers.Flatten()

  def call(self, activation, training=None):
    return [self.flatten(self.normalize(activation))] * self.num_stages
