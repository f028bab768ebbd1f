"""The supervised networks whose layers are inverted.

Classifiers are Keras 3 models that take 8-bit images `[batch, height, width,
channels]` (values 0..255 as floats) and return logits. Every layer that can
be probed has a name; `input` names the image itself.
"""

import dataclasses

import gin
import keras
import numpy as np

ARCHITECTURES = ("digits_cnn", "cifar_resnet")
DOWNSAMPLING = ("max_pool", "avg_pool", "strided_conv")


@gin.configurable
@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
  """A classifier and how it is trained.

  Attributes:
    architecture: 'digits_cnn' (two convolution and pooling stages, a hidden
      dense layer, logits) or 'cifar_resnet' (a CIFAR-10 ResNet of He et al.
      2016, 6n + 2 layers).
    downsampling: how the resolution is halved: 'max_pool', 'avg_pool' or
      'strided_conv' (a 3x3 convolution of stride 2). In 'cifar_resnet' it
      applies at the first block of stages 2 and 3, where He et al. use a
      stride-2 convolution.
    width: filters of the first convolution; later stages double it.
    hidden_units: units of the dense layer `fc` ('digits_cnn' only).
    resnet_blocks: residual blocks per stage, n ('cifar_resnet' only).
    epochs: passes over the training set.
    batch_size: images per step.
    learning_rate: Adam's step size.
  """

  architecture: str = "digits_cnn"
  downsampling: str = "max_pool"
  width: int = 32
  hidden_units: int = 128
  resnet_blocks: int = 3
  epochs: int = 5
  batch_size: int = 64
  learning_rate: float = 1e-3

  def __post_init__(self):
    if self.architecture not in ARCHITECTURES:
      raise ValueError(
          f"ClassifierConfig.architecture={self.architecture!r}; accepted: "
          f"{ARCHITECTURES}."
      )
    if self.downsampling not in DOWNSAMPLING:
      raise ValueError(
          f"ClassifierConfig.downsampling={self.downsampling!r}; accepted: "
          f"{DOWNSAMPLING}."
      )
    for name in ("width", "hidden_units", "resnet_blocks", "batch_size"):
      _check_positive_int(f"ClassifierConfig.{name}", getattr(self, name))
    _check_positive_int("ClassifierConfig.epochs", self.epochs, minimum=0)
    if not (
        isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0
    ):
      raise ValueError(
          f"ClassifierConfig.learning_rate={self.learning_rate!r}; accepted: "
          "a number > 0."
      )


def _check_positive_int(name, value, minimum=1):
  if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
    raise ValueError(f"{name}={value!r}; accepted: an integer >= {minimum}.")


def _downsample(kind, filters, name):
  if kind == "max_pool":
    return keras.layers.MaxPooling2D(2, name=name)
  if kind == "avg_pool":
    return keras.layers.AveragePooling2D(2, name=name)
  return keras.layers.Conv2D(
      filters, 3, strides=2, padding="same", activation="relu", name=name
  )


def _digits_cnn(config, image_shape, num_classes):
  images = keras.Input(image_shape, name="input")
  x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(images)
  x = keras.layers.Conv2D(
      config.width, 3, padding="same", activation="relu", name="conv1"
  )(x)
  x = _downsample(config.downsampling, config.width, "pool1")(x)
  x = keras.layers.Conv2D(
      2 * config.width, 3, padding="same", activation="relu", name="conv2"
  )(x)
  x = _downsample(config.downsampling, 2 * config.width, "pool2")(x)
  x = keras.layers.Flatten(name="flatten")(x)
  x = keras.layers.Dense(config.hidden_units, activation="relu", name="fc")(x)
  logits = keras.layers.Dense(num_classes, name="logits")(x)
  return keras.Model(images, logits, name="digits_cnn")


def _cifar_resnet(config, image_shape, num_classes):
  """ResNet-(6n + 2) for 32x32 images, with probe points between stages."""
  images = keras.Input(image_shape, name="input")
  x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(images)
  x = keras.layers.Conv2D(config.width, 3, padding="same", name="stem_conv")(x)
  x = keras.layers.BatchNormalization(name="stem_bn")(x)
  x = keras.layers.Activation("relu", name="conv1")(x)
  for stage in range(3):
    filters = config.width * 2**stage
    for block in range(config.resnet_blocks):
      halve = stage > 0 and block == 0
      prefix = f"stage{stage + 1}_block{block + 1}"
      strides = 1
      if halve and config.downsampling == "strided_conv":
        strides = 2
      elif halve:
        x = _downsample(config.downsampling, filters, prefix + "_pool")(x)
      y = keras.layers.Conv2D(
          filters, 3, strides=strides, padding="same", name=prefix + "_conv1"
      )(x)
      y = keras.layers.BatchNormalization(name=prefix + "_bn1")(y)
      y = keras.layers.Activation("relu", name=prefix + "_relu1")(y)
      y = keras.layers.Conv2D(
          filters, 3, padding="same", name=prefix + "_conv2"
      )(y)
      y = keras.layers.BatchNormalization(name=prefix + "_bn2")(y)
      if strides > 1 or x.shape[-1] != filters:
        x = keras.layers.Conv2D(
            filters, 1, strides=strides, name=prefix + "_shortcut"
        )(x)
      x = keras.layers.Add(name=prefix + "_add")([x, y])
      last = block == config.resnet_blocks - 1
      name = f"stage{stage + 1}" if last else prefix + "_out"
      x = keras.layers.Activation("relu", name=name)(x)
  x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
  logits = keras.layers.Dense(num_classes, name="logits")(x)
  return keras.Model(images, logits, name="cifar_resnet")


def build_classifier(config, image_shape, num_classes):
  """Builds an untrained, compiled classifier.

  Args:
    config: a `ClassifierConfig`.
    image_shape: `(height, width, channels)`.
    num_classes: number of classes.

  Returns:
    A compiled `keras.Model` mapping `[batch, *image_shape]` images with
    values in [0, 255] to logits `[batch, num_classes]`.
  """
  builder = {"digits_cnn": _digits_cnn, "cifar_resnet": _cifar_resnet}
  model = builder[config.architecture](config, tuple(image_shape), num_classes)
  model.compile(
      optimizer=keras.optimizers.Adam(config.learning_rate),
      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      metrics=["accuracy"],
  )
  return model


def layer_names(model):
  """Names that `probe` accepts, input first, in depth order."""
  return [layer.name for layer in model.layers]


def probe(model, names):
  """A frozen model returning the named layers' activations.

  Args:
    model: a classifier from `build_classifier`.
    names: layer names; 'input' is the image itself.

  Returns:
    A `keras.Model` with one output per name, in the order given.

  Raises:
    ValueError: if a name is not a layer of the model; the message lists
      the names that are.
  """
  available = layer_names(model)
  missing = [name for name in names if name not in available]
  if missing:
    raise ValueError(
        f"Layer(s) {missing} not found in classifier {model.name!r}; its "
        f"layers are: {available}."
    )
  outputs = [model.get_layer(name).output for name in names]
  probed = keras.Model(model.inputs, outputs, name=f"{model.name}_probe")
  probed.trainable = False
  return probed


def activations(model, name, images, batch_size=250):
  """The activation of one layer for every image, in inference mode.

  Args:
    model: a classifier.
    name: a layer name, as `layer_names` lists.
    images: `[n, height, width, channels]` 8-bit images.
    batch_size: images per forward pass.

  Returns:
    float32 array `[n, *layer_shape]`.
  """
  probed = probe(model, [name])
  return np.asarray(
      probed.predict(
          np.asarray(images, np.float32), batch_size=batch_size, verbose=0
      ),
      np.float32,
  )


def fit_one_epoch(model, config, dataset):
  """One pass of Adam over the shuffled training split."""
  model.fit(
      dataset.train_images.astype(np.float32),
      dataset.train_labels,
      batch_size=config.batch_size,
      epochs=1,
      shuffle=True,
      verbose=0,
  )


def evaluate_classifier(model, dataset):
  """Loss and accuracy on both splits."""
  result = {}
  for split in ("train", "test"):
    images = getattr(dataset, f"{split}_images").astype(np.float32)
    labels = getattr(dataset, f"{split}_labels")
    loss, accuracy = model.evaluate(images, labels, batch_size=500, verbose=0)
    result[f"{split}_loss"] = float(loss)
    result[f"{split}_accuracy"] = float(accuracy)
  return result
