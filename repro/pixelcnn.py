"""The PixelCNN++ network, causal by construction, with per-pixel conditioning.

TFP's `PixelCNN` distribution supplies the discretized logistic mixture
likelihood and the sampler; this module supplies the network that the
distribution calls for the mixture parameters. It follows the architecture of
Salimans et al. (2017): a vertical stack `u` that sees the rows above a pixel
and a horizontal stack `ul` that also sees the pixels to its left, gated
residual layers, and a U-net of `num_stages` resolutions.

Two choices differ from TFP's own network:

- Causality comes from shifted convolutions (pad above and to the left, then
  a 'valid' convolution), as in the original PixelCNN++ code, instead of
  masks applied as Keras kernel constraints. A freshly built network is
  therefore already autoregressive; TFP's masks only take effect after the
  first optimizer step.
- Every gated residual layer adds a projection of a conditioning feature map
  *per pixel*, taken at the layer's resolution. TFP flattens the conditional
  input and adds one bias per channel, the same at every pixel; that scheme is
  kept here as `conditioning='global'` for comparison.
"""

import keras
import tensorflow as tf

CONDITIONING_MODES = ("none", "global", "spatial")
ACTIVATIONS = ("concat_elu", "elu")


def concat_elu(x):
  """ELU of `[x, -x]`: keeps both signs, doubles the channels."""
  return tf.nn.elu(tf.concat([x, -x], axis=-1))


def _activation(name):
  return concat_elu if name == "concat_elu" else tf.nn.elu


def down_shift(x, band=None, key="down_shift"):
  """Moves `[batch, height, width, channels]` one row down.

  The row shifted in on top is zero, or, when evaluating a band of rows,
  the last row above the band (see `Band`).
  """
  if band is None:
    x = tf.pad(x, [[0, 0], [1, 0], [0, 0], [0, 0]])
  else:
    x = band.extend(key, x, 1)
  return x[:, :-1]


def right_shift(x):
  """Moves `[batch, height, width, channels]` one column right."""
  return tf.pad(x, [[0, 0], [0, 0], [1, 0], [0, 0]])[:, :, :-1]


class Band:
  """The rows above a band that the causal layers read, and record.

  The fast sampler evaluates the network on one band of rows at a time,
  whose height is the factor 2**(num_stages - 1) of the coarsest stage. A
  layer whose output row i reads input rows i - k .. i needs, at the top of
  the band, the k rows of its input just above the band: `above` holds
  them, keyed by layer, as recorded while evaluating the previous band.
  With `above=None` they are zeros, exactly the zero padding that the full
  image gets on top, which is right for the first band.

  Attributes:
    above: dict from key to `[batch, k, width, channels]`, or None.
    below: dict filled during evaluation with each layer's last k input
      rows, the `above` of the next band.
  """

  def __init__(self, above=None):
    self.above = above
    self.below = {}

  def extend(self, key, x, rows):
    """`x` with `rows` rows of context stacked on top; records its last."""
    if key in self.below:
      raise ValueError(f"Layer key {key!r} recorded twice in one band.")
    self.below[key] = x[:, -rows:]
    if self.above is None:
      top = tf.zeros_like(self.below[key])
    else:
      top = self.above[key]
    return tf.concat([top, x], axis=1)


class DownShiftedConv2D(keras.layers.Layer):
  """Convolution whose output at row i sees input rows i - kh + 1 to i.

  The kernel is centred horizontally, so with `kernel_size=(2, 3)` the output
  at (i, j) sees rows i - 1 and i, columns j - 1 to j + 1.
  """

  def __init__(self, filters, kernel_size=(2, 3), strides=1, **kwargs):
    super().__init__(**kwargs)
    self.kernel_size = tuple(kernel_size)
    self.conv = keras.layers.Conv2D(
        filters, self.kernel_size, strides=strides, padding="valid"
    )

  def call(self, x, band=None):
    kh, kw = self.kernel_size
    top = kh - 1
    if band is not None and top:
      x, top = band.extend(self.name, x, top), 0
    x = tf.pad(x, [[0, 0], [top, 0], [(kw - 1) // 2, (kw - 1) // 2], [0, 0]])
    return self.conv(x)


class DownRightShiftedConv2D(keras.layers.Layer):
  """Convolution whose output at (i, j) sees rows <= i and columns <= j."""

  def __init__(self, filters, kernel_size=(2, 2), strides=1, **kwargs):
    super().__init__(**kwargs)
    self.kernel_size = tuple(kernel_size)
    self.conv = keras.layers.Conv2D(
        filters, self.kernel_size, strides=strides, padding="valid"
    )

  def call(self, x, band=None):
    kh, kw = self.kernel_size
    top = kh - 1
    if band is not None and top:
      x, top = band.extend(self.name, x, top), 0
    x = tf.pad(x, [[0, 0], [top, 0], [kw - 1, 0], [0, 0]])
    return self.conv(x)


class DownShiftedConv2DTranspose(keras.layers.Layer):
  """Stride-2 transposed convolution that doubles height and width.

  Output row 2i + k (k < kh) receives input row i only, so nothing below a
  row leaks upwards; the kernel is centred horizontally.
  """

  def __init__(self, filters, kernel_size=(2, 3), **kwargs):
    super().__init__(**kwargs)
    self.kernel_size = tuple(kernel_size)
    self.conv = keras.layers.Conv2DTranspose(
        filters, self.kernel_size, strides=2, padding="valid"
    )

  def call(self, x):
    height, width = x.shape[1], x.shape[2]
    left = (self.kernel_size[1] - 1) // 2
    return self.conv(x)[:, : 2 * height, left : left + 2 * width]


class DownRightShiftedConv2DTranspose(keras.layers.Layer):
  """Stride-2 transposed convolution that sees only rows and columns <=."""

  def __init__(self, filters, kernel_size=(2, 2), **kwargs):
    super().__init__(**kwargs)
    self.conv = keras.layers.Conv2DTranspose(
        filters, kernel_size, strides=2, padding="valid"
    )

  def call(self, x):
    height, width = x.shape[1], x.shape[2]
    return self.conv(x)[:, : 2 * height, : 2 * width]


class GatedResidual(keras.layers.Layer):
  """The gated residual layer of PixelCNN++, with optional conditioning.

  out = x + a * sigmoid(b), where [a, b] = conv(dropout(concat_elu(
  conv(concat_elu(x)) + nin(concat_elu(aux))))) + projection(condition).

  The condition is either a feature map `[batch, height, width, c]` at the
  layer's resolution, projected by a 1x1 convolution (a different value at
  every pixel), or a vector `[batch, d]`, projected by a dense layer and
  broadcast over the image as TFP does.
  """

  def __init__(
      self,
      conv_class,
      filters,
      dropout_rate,
      conditioning,
      has_aux,
      activation="concat_elu",
      **kwargs,
  ):
    super().__init__(**kwargs)
    self.activation = _activation(activation)
    self.conv_in = conv_class(filters)
    self.aux_projection = keras.layers.Dense(filters) if has_aux else None
    self.dropout = keras.layers.Dropout(dropout_rate)
    self.conv_out = conv_class(2 * filters)
    self.conditioning = conditioning
    if conditioning == "spatial":
      self.condition_projection = keras.layers.Conv2D(2 * filters, 1)
    elif conditioning == "global":
      self.condition_projection = keras.layers.Dense(
          2 * filters, kernel_initializer="random_normal"
      )

  def call(self, x, aux=None, condition=None, training=None, band=None):
    c = self.conv_in(self.activation(x), band=band)
    if self.aux_projection is not None:
      c = c + self.aux_projection(self.activation(aux))
    c = self.dropout(self.activation(c), training=training)
    c = self.conv_out(c, band=band)
    if self.conditioning == "spatial":
      c = c + self.condition_projection(condition)
    elif self.conditioning == "global":
      c = c + self.condition_projection(condition)[:, tf.newaxis, tf.newaxis]
    a, b = tf.split(c, 2, axis=-1)
    return x + a * tf.sigmoid(b)


class PixelCNNNetwork(keras.Model):
  """Maps images to the parameters of a discretized logistic mixture.

  Called as TFP's `PixelCNN` distribution calls its network: with `inputs` an
  image batch `[batch, height, width, channels]` scaled to [-1, 1], or a pair
  `[image, conditional_input]`. The conditional input is turned into one
  feature map per resolution by `conditioner` (see `repro.conditioning`).

  Returns, as TFP's distribution expects:
    component_logits: `[batch, height, width, num_mix]`.
    locs: `[batch, height, width, num_mix, channels]`, in [-1, 1] units.
    scales: `[batch, height, width, num_mix, channels]`, positive.
    coeffs: `[batch, height, width, num_mix, channels * (channels - 1) / 2]`,
      the linear dependence between the channels of one pixel, returned only
      when `channels > 1`.
  """

  def __init__(
      self,
      image_shape,
      num_filters=32,
      num_resnet=1,
      num_stages=2,
      num_logistic_mix=5,
      dropout_rate=0.0,
      activation="concat_elu",
      conditioning="none",
      conditioner=None,
      **kwargs,
  ):
    super().__init__(**kwargs)
    if activation not in ACTIVATIONS:
      raise ValueError(f"activation={activation!r}; accepted: {ACTIVATIONS}.")
    if conditioning not in CONDITIONING_MODES:
      raise ValueError(
          f"conditioning={conditioning!r}; accepted: {CONDITIONING_MODES}."
      )
    if (conditioning == "none") != (conditioner is None):
      raise ValueError(
          "A conditioner is needed exactly when conditioning is not 'none';"
          f" got conditioning={conditioning!r}, conditioner={conditioner!r}."
      )
    height, width, channels = image_shape
    factor = 2 ** (num_stages - 1)
    if height % factor or width % factor:
      raise ValueError(
          f"Image height and width {height}x{width} must be divisible by "
          f"2**(num_stages - 1) = {factor} for num_stages={num_stages}."
      )
    self.image_shape = tuple(image_shape)
    self.band_height = factor
    self.num_stages = num_stages
    self.num_resnet = num_resnet
    self.num_logistic_mix = num_logistic_mix
    self.conditioning = conditioning
    self.conditioner = conditioner

    f = num_filters
    self.u_init = DownShiftedConv2D(f, (2, 3))
    self.ul_init_up = DownShiftedConv2D(f, (1, 3))
    self.ul_init_left = DownRightShiftedConv2D(f, (2, 1))

    def gated(conv_class, has_aux=True):
      return GatedResidual(
          conv_class, f, dropout_rate, conditioning, has_aux, activation
      )

    # Down pass: `num_resnet` layers per stage, then a stride-2 convolution.
    self.down_u, self.down_ul = [], []
    self.downsample_u, self.downsample_ul = [], []
    for stage in range(num_stages):
      self.down_u.append(
          [gated(DownShiftedConv2D, False) for _ in range(num_resnet)]
      )
      self.down_ul.append(
          [gated(DownRightShiftedConv2D) for _ in range(num_resnet)]
      )
      if stage < num_stages - 1:
        self.downsample_u.append(DownShiftedConv2D(f, (2, 3), strides=2))
        self.downsample_ul.append(DownRightShiftedConv2D(f, (2, 2), strides=2))

    # Up pass: one more layer per stage after the first, to consume the
    # skip connection from the stride-2 output of the down pass.
    self.up_u, self.up_ul = [], []
    self.upsample_u, self.upsample_ul = [], []
    for stage in range(num_stages):
      depth = num_resnet + (0 if stage == 0 else 1)
      self.up_u.append([gated(DownShiftedConv2D) for _ in range(depth)])
      self.up_ul.append([gated(DownRightShiftedConv2D) for _ in range(depth)])
      if stage < num_stages - 1:
        self.upsample_u.append(DownShiftedConv2DTranspose(f))
        self.upsample_ul.append(DownRightShiftedConv2DTranspose(f))

    num_coeffs = channels * (channels - 1) // 2
    self._splits = [1, channels, channels, num_coeffs]
    num_outputs = num_logistic_mix * sum(self._splits)
    self.output_layer = keras.layers.Dense(num_outputs)
    self.condition_output = None
    if conditioning == "spatial":
      self.condition_output = keras.layers.Conv2D(num_outputs, 1)

  def conditioning_features(self, conditional_input, training=None):
    """Conditioning features per resolution, finest first, or None."""
    if self.conditioner is None:
      return None
    return self.conditioner(conditional_input, training=training)

  def call(self, inputs, training=None):
    if self.conditioning == "none":
      if isinstance(inputs, (list, tuple)):
        raise ValueError(
            "This network is unconditional but was given a conditional input."
        )
      return self.parameters(inputs, None, training=training)
    image, conditional_input = inputs
    features = self.conditioning_features(conditional_input, training)
    return self.parameters(image, features, training=training)

  def parameters(self, image, features, training=None, band=None):
    """Mixture parameters for `image`, given precomputed features.

    Args:
      image: `[batch, height, width, channels]`, in [-1, 1]; with `band`,
        only the rows of one band.
      features: list of `num_stages` conditioning tensors, finest first, as
        `conditioning_features` returns (cut to the band's rows with
        `band`), or None when unconditional.
      training: whether dropout is active.
      band: a `Band` to evaluate one band of rows, or None for the image.

    Returns:
      The list of mixture parameters described in the class docstring, for
      the rows of `image`.
    """

    def gated(layer, x, stage, aux=None):
      condition = None if features is None else features[stage]
      return layer(
          x, aux=aux, condition=condition, training=training, band=band
      )

    # A channel of ones marks the image area, so that the zero padding of
    # the shifted convolutions is told apart from black pixels.
    x = tf.concat([image, tf.ones_like(image[..., :1])], axis=-1)
    u_list = [down_shift(self.u_init(x, band=band), band, "u_init/shift")]
    ul_list = [
        down_shift(self.ul_init_up(x, band=band), band, "ul_init_up/shift")
        + right_shift(self.ul_init_left(x, band=band))
    ]

    for stage in range(self.num_stages):
      for layer_u, layer_ul in zip(self.down_u[stage], self.down_ul[stage]):
        u_list.append(gated(layer_u, u_list[-1], stage))
        ul_list.append(gated(layer_ul, ul_list[-1], stage, aux=u_list[-1]))
      if stage < self.num_stages - 1:
        u_list.append(self.downsample_u[stage](u_list[-1], band=band))
        ul_list.append(self.downsample_ul[stage](ul_list[-1], band=band))

    u, ul = u_list.pop(), ul_list.pop()
    for index in range(self.num_stages):
      stage = self.num_stages - 1 - index
      for layer_u, layer_ul in zip(self.up_u[index], self.up_ul[index]):
        u = gated(layer_u, u, stage, aux=u_list.pop())
        ul = gated(
            layer_ul, ul, stage, aux=tf.concat([u, ul_list.pop()], axis=-1)
        )
      if index < self.num_stages - 1:
        u = self.upsample_u[index](u)
        ul = self.upsample_ul[index](ul)

    params = self.output_layer(tf.nn.elu(ul))
    if self.condition_output is not None:
      params = params + self.condition_output(features[0])
    # The likelihood is computed in float32 whatever the network's precision.
    params = tf.cast(params, tf.float32)
    params = tf.reshape(
        params,
        [
            -1,
            image.shape[1],
            image.shape[2],
            self.num_logistic_mix,
            sum(self._splits),
        ],
    )
    logits, locs, scales, coeffs = tf.split(params, self._splits, axis=-1)
    logits = tf.squeeze(logits, axis=-1)
    # TFP's floor on the scale, which keeps the likelihood finite.
    scales = tf.nn.softplus(scales) + tf.exp(-7.0)
    if self.image_shape[-1] == 1:
      return [logits, locs, scales]
    return [logits, locs, scales, tf.tanh(coeffs)]
