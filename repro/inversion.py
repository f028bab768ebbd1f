"""The inversion model: TFP's PixelCNN distribution over this project's network.

`InversionModel` is a `tfp.distributions.PixelCNN`. It keeps TFP's
discretized logistic mixture likelihood (`log_prob`) unchanged and replaces
two things:

- the network, by `repro.pixelcnn.PixelCNNNetwork`, which is causal from the
  first call and conditions every gated layer per pixel;
- the sampler `_sample_n`. TFP's loop passes one seed to every draw of a
  pixel, so the mixture component and the channels of a colour pixel share
  their noise, and it feeds the next channel the continuous, unrounded value
  of the previous one, which is not what the likelihood scores. This one
  keeps TFP's raster-order loop but derives a separate stateless seed for
  every pixel and every draw, conditions each channel on the rounded value of
  the channels before it, and computes the conditioning features once.
"""

import dataclasses

import gin
import keras
import tensorflow as tf
import tensorflow_probability as tfp

from repro import conditioning as conditioning_lib
from repro import pixelcnn

tfd = tfp.distributions
tfb = tfp.bijectors

PRECISIONS = ("float32", "mixed_bfloat16")


@gin.configurable
@dataclasses.dataclass(frozen=True)
class PixelCNNConfig:
  """Sizes of the inversion model.

  Attributes:
    num_filters: channels of every PixelCNN layer.
    num_resnet: gated residual layers per stage of the down pass.
    num_stages: resolutions of the U-net; height and width must be divisible
      by 2**(num_stages - 1).
    num_logistic_mix: components of the discretized logistic mixture.
    dropout_rate: dropout inside the gated residual layers while training.
    activation: 'concat_elu' (PixelCNN++) or 'elu', which halves the
      inputs of every convolution.
    precision: 'float32', or 'mixed_bfloat16' to compute the network in
      bfloat16 with float32 weights (for GPUs and TPUs); the likelihood is
      always computed in float32.
    conditioner_filters: channels of the conditioning feature maps.
    conditioner_blocks: residual blocks of the conditioning network at the
      activation's resolution and again at the image's.
  """

  num_filters: int = 32
  num_resnet: int = 1
  num_stages: int = 2
  num_logistic_mix: int = 5
  dropout_rate: float = 0.0
  activation: str = "concat_elu"
  precision: str = "float32"
  conditioner_filters: int = 32
  conditioner_blocks: int = 1

  def __post_init__(self):
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if field.type is int and (
          not isinstance(value, int) or isinstance(value, bool) or value < 1
      ):
        raise ValueError(
            f"PixelCNNConfig.{field.name}={value!r}; accepted: an integer "
            ">= 1."
        )
    if not (
        isinstance(self.dropout_rate, (int, float))
        and 0.0 <= self.dropout_rate < 1.0
    ):
      raise ValueError(
          f"PixelCNNConfig.dropout_rate={self.dropout_rate!r}; accepted: a "
          "number in [0, 1)."
      )
    if self.precision not in PRECISIONS:
      raise ValueError(
          f"PixelCNNConfig.precision={self.precision!r}; accepted: "
          f"{PRECISIONS}."
      )
    if self.activation not in pixelcnn.ACTIVATIONS:
      raise ValueError(
          f"PixelCNNConfig.activation={self.activation!r}; accepted: "
          f"{pixelcnn.ACTIVATIONS}."
      )


def check_image_shape(image_shape, num_stages):
  """Raises ValueError unless the PixelCNN's down-sampling divides the image.

  Args:
    image_shape: `[height, width, channels]`.
    num_stages: resolutions of the PixelCNN's U-net.
  """
  if len(image_shape) != 3:
    raise ValueError(
        f"Image shape {tuple(image_shape)} must be [height, width, channels]."
    )
  factor = 2 ** (num_stages - 1)
  height, width, _ = image_shape
  if height % factor or width % factor:
    raise ValueError(
        f"Images of {height}x{width} cannot be modelled with num_stages="
        f"{num_stages}: height and width must be divisible by "
        f"2**(num_stages - 1) = {factor}. Choose PixelCNNConfig.num_stages "
        "accordingly."
    )


class InversionModel(tfd.PixelCNN):
  """p(x | condition) over 8-bit images, as a TFP `PixelCNN` distribution.

  Use it as the stock distribution: `log_prob(images, conditional_input=c)`
  with images `[batch, height, width, channels]` holding integers in
  [0, high] (as floats; 255 for 8-bit images), and
  `sample(n, seed=seed, conditional_input=c)`.
  """

  def __init__(
      self, network, conditional_shape=None, high=255, name="InversionModel"
  ):
    """Wraps a built-or-unbuilt `PixelCNNNetwork`.

    TFP's constructor always builds its own network, so this one initialises
    the `Distribution` base directly and sets the attributes that TFP's
    `_log_prob` reads.

    Args:
      network: a `repro.pixelcnn.PixelCNNNetwork`.
      conditional_shape: shape of one conditional input, without the batch
        axis, or None for an unconditional model.
      high: the largest pixel value; pixels are integers in [0, high].
      name: name of the distribution.
    """
    parameters = dict(locals())
    with tf.name_scope(name) as name:
      tfd.Distribution.__init__(
          self,
          dtype=tf.float32,
          reparameterization_type=tfd.NOT_REPARAMETERIZED,
          validate_args=False,
          allow_nan_stats=True,
          parameters=parameters,
          name=name,
      )
    self._high = tf.constant(float(high))
    self._low = tf.constant(0.0)
    self._num_logistic_mix = network.num_logistic_mix
    self._context_shapes = None
    self.network = network
    self.image_shape = tf.TensorShape(network.image_shape)
    self.conditional_shape = (
        None if conditional_shape is None else tf.TensorShape(conditional_shape)
    )

  @property
  def is_conditional(self):
    return self.conditional_shape is not None

  def _pixel_distributions(self, params, previous):
    """Per-channel quantized logistics for one pixel, given a component.

    Args:
      params: mixture parameters at one pixel with the mixture component
        already chosen: `locs` and `scales` of shape `[n, channels]`, and
        `coeffs` `[n, num_coeffs]` or None.
      previous: list of the channels already drawn, each `[n]`, as integers
        in [0, 255].

    Returns:
      The `QuantizedDistribution` of the next channel, batch shape `[n]`.
    """
    locs, scales, coeffs = params
    channel = len(previous)
    loc = locs[:, channel]
    # The likelihood shifts each channel's location by the earlier channels'
    # values in [-1, 1] units; the coefficients are stored in raster order:
    # (r -> g), (r -> b), (g -> b).
    offset = channel * (channel - 1) // 2
    for j, value in enumerate(previous):
      scaled = 2.0 * (value - self._low) / (self._high - self._low) - 1.0
      loc = loc + coeffs[:, offset + j] * scaled
    half_range = 0.5 * (self._high - self._low)
    return tfd.QuantizedDistribution(
        distribution=tfd.TransformedDistribution(
            distribution=tfd.Logistic(
                loc=self._low + half_range * (loc + 1.0),
                scale=half_range * scales[:, channel],
            ),
            bijector=tfb.Shift(-0.5),
        ),
        low=self._low,
        high=self._high,
    )

  def sample_pixel(self, params, row, col, seed):
    """Draws one pixel of every image from the network's parameters.

    Args:
      params: the network's outputs for the whole image, or for any window
        of rows that holds `row`.
      row: row of the pixel inside `params`.
      col: column of the pixel.
      seed: stateless seed, shape `[2]`, for this pixel alone.

    Returns:
      `[n, channels]` integers in [0, 255], as floats.
    """
    num_channels = self.image_shape[-1]
    logits = params[0][:, row, col]
    locs, scales = params[1][:, row, col], params[2][:, row, col]
    coeffs = params[3][:, row, col] if num_channels > 1 else None
    seeds = tfp.random.split_seed(seed, n=num_channels + 1)

    component = tfd.Categorical(logits=logits).sample(seed=seeds[0])
    pick = tf.one_hot(component, self._num_logistic_mix)[..., tf.newaxis]
    locs = tf.reduce_sum(locs * pick, axis=-2)
    scales = tf.reduce_sum(scales * pick, axis=-2)
    if coeffs is not None:
      coeffs = tf.reduce_sum(coeffs * pick, axis=-2)

    channels = []
    for c in range(num_channels):
      dist = self._pixel_distributions((locs, scales, coeffs), channels)
      channels.append(dist.sample(seed=seeds[c + 1]))
    return tf.stack(channels, axis=-1)

  def _prepare_conditional_input(self, n, conditional_input):
    """Conditioning features for n samples, or None when unconditional."""
    if not self.is_conditional:
      if conditional_input is not None:
        raise ValueError("An unconditional model got a conditional input.")
      return None
    if conditional_input is None:
      raise ValueError("A conditional model needs `conditional_input`.")
    conditional_input = tf.convert_to_tensor(conditional_input, tf.float32)
    expected = tuple(self.conditional_shape)
    if tuple(conditional_input.shape[1:]) != expected:
      raise ValueError(
          f"conditional_input has shape {tuple(conditional_input.shape)}; "
          f"expected [n, {', '.join(map(str, expected))}]."
      )
    if conditional_input.shape[0] not in (None, n):
      raise ValueError(
          f"conditional_input holds {conditional_input.shape[0]} conditions "
          f"for {n} samples; give one condition per sample."
      )
    return self.network.conditioning_features(conditional_input, False)

  def _scaled(self, images):
    """Pixel values in [low, high] mapped to the network's [-1, 1]."""
    return 2.0 * (images - self._low) / (self._high - self._low) - 1.0

  def _sample_n(self, n, seed=None, conditional_input=None, training=False):
    """Draws n images, evaluating the network on one band of rows per pixel.

    The output at a pixel depends only on pixels above it and to its left,
    so a band of `network.band_height` rows (the coarsest stage's factor)
    can be evaluated on its own, given the rows above it that each layer
    reads (`pixelcnn.Band`). Each pixel step then costs band_height / height
    of a full pass. The draws are those of `sample_reference`: same
    parameters, same seed per pixel.

    Args:
      n: number of images.
      seed: stateless seed of shape `[2]`, or an int, or None.
      conditional_input: `[n, *conditional_shape]`, one condition per
        image, or None for an unconditional model.
      training: unused; sampling never applies dropout.

    Returns:
      `[n, height, width, channels]` integers in [0, high], as floats.
    """
    del training
    features = self._prepare_conditional_input(n, conditional_input)
    seed = tfp.random.sanitize_seed(seed)
    height, width, channels = self.image_shape
    band_height = self.network.band_height
    pixels_per_band = band_height * width

    def band_features(start):
      if features is None:
        return None
      # tf.slice keeps the band's height static, as the layers need.
      return [
          f
          if f.shape.rank == 2
          else tf.slice(
              f, [0, start // 2**k, 0, 0], [-1, band_height // 2**k, -1, -1]
          )
          for k, f in enumerate(features)
      ]

    def evaluate(band_images, start, above):
      band = pixelcnn.Band(above)
      params = self.network.parameters(
          self._scaled(band_images), band_features(start), False, band
      )
      return params, band.below

    def band_body(start, images, above):
      # Pixel steps 0 .. pixels_per_band - 1 each draw one pixel; the last
      # evaluation sees the finished band and records the rows that the
      # next band reads above it.
      def pixel_body(index, band_images, _):
        params, below = evaluate(band_images, start, above)

        def draw():
          row, col = index // width, index % width
          pixel_seed = tf.random.experimental.stateless_fold_in(
              seed, start * width + index
          )
          pixel = self.sample_pixel(params, row, col, pixel_seed)
          updated = tf.tensor_scatter_nd_update(
              tf.transpose(band_images, [1, 2, 0, 3]),
              [[row, col]],
              pixel[tf.newaxis],
          )
          return tf.transpose(updated, [2, 0, 1, 3])

        band_images = tf.cond(
            index < pixels_per_band, draw, lambda: band_images
        )
        return index + 1, band_images, below

      _, band_images, below = tf.while_loop(
          lambda index, *_: index <= pixels_per_band,
          pixel_body,
          (tf.constant(0), tf.zeros([n, band_height, width, channels]), above),
          parallel_iterations=1,
      )
      images = tf.tensor_scatter_nd_update(
          tf.transpose(images, [1, 0, 2, 3]),
          tf.range(start, start + band_height)[:, tf.newaxis],
          tf.transpose(band_images, [1, 0, 2, 3]),
      )
      return start + band_height, tf.transpose(images, [1, 0, 2, 3]), below

    # Zeros above the first band, as the zero padding of the full image.
    above_first = {
        key: tf.zeros([n, *shape], dtype)
        for key, (shape, dtype) in self.band_context_specs().items()
    }
    _, images, _ = tf.while_loop(
        lambda start, *_: start < height,
        band_body,
        (tf.constant(0), tf.zeros([n, height, width, channels]), above_first),
        parallel_iterations=1,
    )
    return images

  def band_context_specs(self):
    """Shape without batch, and dtype, of each layer's rows above a band."""
    if self._context_shapes is None:
      # Found once by evaluating a band of one image eagerly, so that the
      # sampler's graph holds a single copy of the network.
      with tf.init_scope():
        band_height = self.network.band_height
        width, channels = self.image_shape[1:]
        features = None
        if self.is_conditional:
          features = self.network.conditioning_features(
              tf.zeros([1, *self.conditional_shape]), False
          )
          features = [
              f if f.shape.rank == 2 else f[:, : band_height // 2**k]
              for k, f in enumerate(features)
          ]
        band = pixelcnn.Band()
        self.network.parameters(
            tf.zeros([1, band_height, width, channels]), features, False, band
        )
        self._context_shapes = {
            key: (tuple(value.shape[1:]), value.dtype)
            for key, value in band.below.items()
        }
    return self._context_shapes

  def sample_reference(self, n, seed=None, conditional_input=None):
    """Draws n images in raster order, one full network pass per pixel.

    The slow path that `sample` must equal: the parameters of pixel (i, j)
    come from the network evaluated on the whole image, as in TFP's loop.

    Args:
      n: number of images.
      seed: stateless seed of shape `[2]`, or an int, or None.
      conditional_input: `[n, *conditional_shape]`, or None.

    Returns:
      `[n, height, width, channels]` integers in [0, high], as floats.
    """
    features = self._prepare_conditional_input(n, conditional_input)
    seed = tfp.random.sanitize_seed(seed)
    height, width, channels = self.image_shape

    def body(index, images):
      params = self.network.parameters(self._scaled(images), features, False)
      row, col = index // width, index % width
      pixel_seed = tf.random.experimental.stateless_fold_in(seed, index)
      pixel = self.sample_pixel(params, row, col, pixel_seed)
      images = tf.tensor_scatter_nd_update(
          tf.transpose(images, [1, 2, 0, 3]),
          [[row, col]],
          pixel[tf.newaxis],
      )
      return index + 1, tf.transpose(images, [2, 0, 1, 3])

    _, images = tf.while_loop(
        lambda index, _: index < height * width,
        body,
        (tf.constant(0), tf.zeros([n, height, width, channels])),
        parallel_iterations=1,
    )
    return images


def build_inversion_model(
    config,
    image_shape,
    conditioning="none",
    activation_shape=None,
    statistics=None,
    high=255,
):
  """Builds an inversion model and creates its variables.

  Args:
    config: a `PixelCNNConfig`.
    image_shape: `[height, width, channels]` of the images.
    conditioning: 'none', 'spatial' (per pixel) or 'global' (TFP's scheme).
    activation_shape: shape of one conditioning activation without the batch
      axis; required unless `conditioning='none'`.
    statistics: `(mean, variance)` per channel of the training activations,
      for the conditioner's normalisation; required with `activation_shape`.
    high: the largest pixel value.

  Returns:
    An `InversionModel` whose network has been called once.
  """
  check_image_shape(image_shape, config.num_stages)
  if conditioning not in pixelcnn.CONDITIONING_MODES:
    raise ValueError(
        f"conditioning={conditioning!r}; accepted: "
        f"{pixelcnn.CONDITIONING_MODES}."
    )
  if (conditioning == "none") != (activation_shape is None):
    raise ValueError(
        "activation_shape is needed exactly when conditioning is not 'none'; "
        f"got conditioning={conditioning!r}, activation_shape="
        f"{activation_shape!r}."
    )

  # Keras builds every layer under the policy current at construction.
  previous_policy = keras.config.dtype_policy()
  keras.config.set_dtype_policy(config.precision)
  try:
    conditioner = None
    if conditioning != "none":
      conditioning_lib.check_activation_shape(activation_shape, image_shape)
      mean, variance = statistics
      if conditioning == "spatial":
        conditioner = conditioning_lib.SpatialConditioner(
            activation_shape,
            image_shape,
            config.num_stages,
            mean,
            variance,
            filters=config.conditioner_filters,
            num_blocks=config.conditioner_blocks,
        )
      else:
        conditioner = conditioning_lib.GlobalConditioner(
            activation_shape, config.num_stages, mean, variance
        )

    network = pixelcnn.PixelCNNNetwork(
        image_shape,
        num_filters=config.num_filters,
        num_resnet=config.num_resnet,
        num_stages=config.num_stages,
        num_logistic_mix=config.num_logistic_mix,
        dropout_rate=config.dropout_rate,
        activation=config.activation,
        conditioning=conditioning,
        conditioner=conditioner,
    )
    image = tf.zeros([1, *image_shape])
    if conditioner is None:
      network(image)
    else:
      network([image, tf.zeros([1, *activation_shape])])
  finally:
    keras.config.set_dtype_policy(previous_policy)
  return InversionModel(
      network,
      None if conditioner is None else tuple(activation_shape),
      high=high,
  )
