"""Inverting a saved Keras classifier that this bundle did not train.

`invert` is the experiment behind `python -m repro.invert`. It loads the
model file, checks it against the data set that gin chooses, and then runs
the machinery of `repro.experiments` unchanged: the same `Study`, the same
unconditional model and controls (shared with the other experiments through
the artifact store when the data and PixelCNN settings are the same), the
same rows, tables and figures. Only the condition is new: the activation of
a named layer of the saved model, keyed by `model_fingerprint`, a hash of
the loaded model's weights and architecture. A model whose weights or
layers change trains new inversion models; the same model saved again
(which changes the file, since Keras writes the time of saving into it)
reuses them.
"""

import hashlib
import json
import time

import gin
import keras
import numpy as np
import tensorflow as tf
from absl import logging

from repro import classifiers
from repro import conditioning
from repro import experiments
from repro import pipeline

MODEL_EXTENSIONS = (".keras", ".h5")
# How uint8 images in [0, 255] are mapped to what the model was trained on:
# (multiplier, offset). The bundle's classifiers rescale inside the model,
# so they take 'raw' pixel values.
INPUT_SCALES = {
    "raw": (1.0, 0.0),
    "unit": (1.0 / 255.0, 0.0),
    "symmetric": (1.0 / 127.5, -1.0),
}
# Keys of the sample arrays besides the layers' names.
_RESERVED = ("originals", "unconditional")


def file_sha256(path):
  """The SHA-256 of a file's contents, as 64 hex digits."""
  digest = hashlib.sha256()
  with tf.io.gfile.GFile(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def _json_value(value):
  """NumPy values in a model config as plain JSON values."""
  if isinstance(value, (np.ndarray, np.generic)):
    return value.tolist()
  raise TypeError(
      f"{type(value).__name__} {value!r} in the model config is not "
      "JSON-serialisable"
  )


def model_fingerprint(model):
  """A SHA-256 of what determines a loaded model's activations.

  The hash covers two things, read from the loaded model rather than from
  its file, so that neither the file format nor the time Keras writes into
  a `.keras` archive on saving enters it:

  - the architecture: `model.get_config()`, written as JSON with sorted
    keys. It names every layer, its settings and, for a functional model,
    how the layers connect. The archive's `config.json` is not used: Keras
    writes into it the memory addresses of objects that layers share
    (`shared_object_id`), which differ from one save to the next, and the
    compile settings (the optimizer, the loss), which change no activation
    but differ between a model saved after `compile` and the same model
    loaded with `compile=False` and saved again.
  - the weights: every array of `model.weights` (trainable and not, e.g.
    batch-norm statistics; no optimizer or random-seed state), in that
    order, which Keras derives from the config. Each array's path (e.g.
    'conv/kernel'), shape and dtype enter with the config; its bytes, in
    the machine's byte order, follow.

  The same model loaded twice, saved again, or saved as `.h5` instead of
  `.keras`, gives the same fingerprint. Any change to a weight, a layer's
  settings or a name (of a layer or of the model) gives another one; so
  may another Keras version, if it adds settings to the config.

  Args:
    model: a `keras.Model`, e.g. from `load_classifier`.

  Returns:
    64 hex digits.

  Raises:
    ValueError: if the model has no config, or one that is not JSON.
  """
  try:
    config = model.get_config()
  except NotImplementedError as e:
    raise ValueError(
        f"Model {model.name!r} has no config ({e}); accepted: a functional "
        "or Sequential model, or a subclassed one that implements "
        "get_config."
    ) from e
  arrays = [keras.ops.convert_to_numpy(weight) for weight in model.weights]
  weights = [
      [
          getattr(weight, "path", weight.name),
          list(array.shape),
          array.dtype.name,
      ]
      for weight, array in zip(model.weights, arrays)
  ]
  try:
    header = json.dumps(
        {"config": config, "weights": weights},
        sort_keys=True,
        separators=(",", ":"),
        default=_json_value,
    ).encode()
  except (TypeError, ValueError) as e:
    raise ValueError(
        f"The config of model {model.name!r} cannot be written as JSON "
        f"({e}); accepted: a model whose get_config() holds JSON values, "
        "as every model Keras can save does."
    ) from e

  # The header fixes every array's size, so the bytes that follow it cannot
  # be read in two ways.
  digest = hashlib.sha256(len(header).to_bytes(8, "little"))
  digest.update(header)
  for array in arrays:
    digest.update(np.ascontiguousarray(array).tobytes())
  return digest.hexdigest()


def check_model_file(path):
  """Raises unless `path` is an existing .keras or .h5 file."""
  if not path:
    raise ValueError(
        "No model given; accepted: the path of a Keras model saved as "
        f"{' or '.join(MODEL_EXTENSIONS)} (--model=PATH)."
    )
  if not tf.io.gfile.exists(path) or tf.io.gfile.isdir(path):
    raise FileNotFoundError(
        f"Model file {path} does not exist; accepted: a Keras model saved as "
        f"{' or '.join(MODEL_EXTENSIONS)}."
    )
  if not path.lower().endswith(MODEL_EXTENSIONS):
    raise ValueError(
        f"Model file {path} is neither {' nor '.join(MODEL_EXTENSIONS)}; "
        "accepted: a Keras model saved with model.save('name.keras') (or the "
        "legacy .h5)."
    )


def load_classifier(path):
  """Loads a saved Keras model for inference.

  Args:
    path: a `.keras` or `.h5` file.

  Returns:
    The `keras.Model`, uncompiled.

  Raises:
    FileNotFoundError: if the file does not exist.
    ValueError: if it has another extension or Keras cannot load it.
  """
  check_model_file(path)
  try:
    model = keras.models.load_model(path, compile=False)
  except Exception as e:  # Keras raises many kinds for a bad file.
    raise ValueError(
        f"Model file {path} could not be loaded by keras.models.load_model "
        f"({type(e).__name__}: {e}); accepted: a Keras model saved as "
        f"{' or '.join(MODEL_EXTENSIONS)}, whose custom layers (if any) are "
        "registered with keras.saving.register_keras_serializable."
    ) from e
  try:
    inputs = model.inputs
  except AttributeError:
    inputs = None
  if not inputs or len(inputs) != 1:
    raise ValueError(
        f"Model {model.name!r} in {path} has "
        f"{len(inputs) if inputs else 'no symbolic'} inputs; accepted: a "
        "functional or Sequential model with one image input."
    )
  return model


def check_layers(model, layers):
  """Fails unless every name is a layer of `model` with one output tensor.

  Args:
    model: a `keras.Model` from `load_classifier`.
    layers: layer names.

  Raises:
    ValueError: naming the layer; for an unknown name the message lists the
      model's layers.
  """
  if not layers:
    raise ValueError("No layer given; accepted: one or more layer names.")
  duplicated = sorted({name for name in layers if list(layers).count(name) > 1})
  if duplicated:
    raise ValueError(f"Layer(s) {duplicated} named more than once.")
  reserved = [name for name in layers if name in _RESERVED]
  if reserved:
    raise ValueError(
        f"Layer name(s) {reserved} clash with the sample arrays "
        f"{list(_RESERVED)}; rename the layer to invert it."
    )
  available = classifiers.layer_names(model)
  missing = [name for name in layers if name not in available]
  if missing:
    raise ValueError(
        f"Layer(s) {missing} not found in model {model.name!r}; its layers "
        f"are: {available}."
    )
  calls = _calls_per_layer(model)
  for name in layers:
    # A layer called more than once has one output per call; Keras's
    # `layer.output` would silently give the first.
    if calls.get(name, 1) > 1:
      raise ValueError(
          f"Layer {name!r} has no single output tensor: it is called "
          f"{calls[name]} times in the model; accepted: a layer called once, "
          "with one output."
      )
    try:
      output = model.get_layer(name).output
    except (AttributeError, ValueError) as e:
      raise ValueError(
          f"Layer {name!r} has no single output tensor ({e}); accepted: a "
          "layer called once, with one output."
      ) from e
    if not isinstance(output, keras.KerasTensor):
      count = len(output) if isinstance(output, (list, tuple, dict)) else "?"
      raise ValueError(
          f"Layer {name!r} returns {count} tensors, not a single tensor; "
          "accepted: a layer with one output."
      )


def _calls_per_layer(model):
  """How often each layer is called in a functional model's graph.

  Read from the model's config, where a functional model lists one inbound
  node per call; a Sequential model calls each layer once and lists none.
  """
  try:
    entries = model.get_config().get("layers", [])
  except NotImplementedError:
    return {}
  return {
      entry["name"]: len(entry["inbound_nodes"])
      for entry in entries
      if isinstance(entry, dict) and "inbound_nodes" in entry
  }


def check_input_shape(model, image_shape):
  """Fails unless the model takes images of `image_shape`.

  Args:
    model: a `keras.Model` with one input.
    image_shape: `(height, width, channels)` of the data set.

  Raises:
    ValueError: naming both shapes.
  """
  expected = tuple(model.inputs[0].shape[1:])
  fits = len(expected) == 3 and all(
      wanted is None or wanted == actual
      for wanted, actual in zip(expected, image_shape)
  )
  if not fits:
    raise ValueError(
        f"Model {model.name!r} takes inputs of shape {expected} (without the "
        f"batch axis), but the data set's images are {tuple(image_shape)} "
        "([height, width, channels]); choose the data the model was trained "
        "on with load_dataset.name (and load_dataset.data_dir) in gin."
    )


def scale_images(images, input_scale):
  """uint8 images `[n, h, w, c]` as the float32 inputs the model expects."""
  multiplier, offset = INPUT_SCALES[input_scale]
  return np.asarray(images, np.float32) * multiplier + offset


def layer_condition(model, layer, fingerprint, input_scale, image):
  """The activation of `layer` of a saved model, as a `pipeline.Condition`.

  Args:
    model: the loaded `keras.Model`.
    layer: one of its layer names.
    fingerprint: `model_fingerprint(model)`; with the layer and the scaling
      it is the condition's part of the artifact key.
    input_scale: a key of `INPUT_SCALES`.
    image: one uint8 image `[h, w, c]`, to find the activation's shape
      when the model leaves some of it unknown.

  Returns:
    A `pipeline.Condition` named after the layer.
  """

  def compute(images, _):
    return classifiers.activations(
        model, layer, scale_images(images, input_scale)
    )

  shape = tuple(model.get_layer(layer).output.shape[1:])
  if None in shape:
    shape = compute(image[None], None).shape[1:]
  source = {
      "kind": "saved_model",
      "fingerprint": fingerprint,
      "layer": layer,
      "input_scale": input_scale,
  }
  return pipeline.Condition(layer, "spatial", source, tuple(shape), compute)


def classifier_accuracy(model, dataset, input_scale):
  """The model's test accuracy if its output is one score per class."""
  output_shape = tuple(model.outputs[0].shape[1:])
  if len(model.outputs) != 1 or output_shape != (dataset.num_classes,):
    return None
  scores = model.predict(
      scale_images(dataset.test_images, input_scale),
      batch_size=250,
      verbose=0,
  )
  return float(np.mean(np.argmax(scores, axis=-1) == dataset.test_labels))


@gin.configurable(
    denylist=["store", "seed", "shard", "model_file", "layers", "model"]
)
def invert(
    store,
    seed,
    shard=None,
    model_file=None,
    layers=(),
    model=None,
    input_scale="raw",
    controls=pipeline.CONTROLS,
    num_sample_images=6,
    samples_per_image=2,
    bootstrap_resamples=2000,
):
  """MI between the input and named layers of a saved classifier.

  Args:
    store: an `ArtifactStore` for trained models.
    seed: the master seed.
    shard: a `pipeline.Shard` to train only this shard's models.
    model_file: the saved model, `.keras` or `.h5`.
    layers: layer names, in depth order (the table flags a layer whose Î
      rises above a shallower one's).
    model: `model_file` as `load_classifier` loaded it, to spare loading it
      again; None loads it here.
    input_scale: how the uint8 images are fed to the model: 'raw' (values
      0..255, as the bundle's classifiers take them, which rescale inside),
      'unit' ([0, 1]) or 'symmetric' ([-1, 1]).
    controls: control rows, from 'input', 'constant' and 'label'.
    num_sample_images: test images shown in the sample figure.
    samples_per_image: samples per test image and layer.
    bootstrap_resamples: resamples for every interval.

  Returns:
    `(results, samples)`: the dict of every number and the sample arrays.
  """
  started = time.time()
  if input_scale not in INPUT_SCALES:
    raise ValueError(
        f"invert.input_scale={input_scale!r}; accepted: "
        f"{', '.join(INPUT_SCALES)}."
    )
  layers = list(layers)
  if model is None:
    model = load_classifier(model_file)
  check_layers(model, layers)
  study = experiments.Study(store, seed, 1 + len(controls) + len(layers), shard)
  dataset = study.dataset
  check_input_shape(model, dataset.image_shape)
  fingerprint = model_fingerprint(model)
  conditions = [
      layer_condition(
          model, layer, fingerprint, input_scale, dataset.test_images[0]
      )
      for layer in layers
  ]
  # Every shape is checked before the first model trains.
  for condition in conditions:
    try:
      conditioning.check_activation_shape(condition.shape, dataset.image_shape)
    except ValueError as e:
      raise ValueError(f"Layer {condition.name!r}: {e}") from e
  accuracy = classifier_accuracy(model, dataset, input_scale)
  # The file's hash is kept as a record of which file was read; the key is
  # the fingerprint, which saving the same model again does not change.
  file_hash = file_sha256(model_file)
  logging.info(
      "Inverting %s (fingerprint %s, file sha256 %s, test accuracy %s): "
      "layers %s.",
      model_file,
      fingerprint[:16],
      file_hash[:16],
      "n/a" if accuracy is None else f"{accuracy:.4f}",
      layers,
  )

  unconditional = study.unconditional()
  control_rows = study.controls(unconditional, controls, bootstrap_resamples)
  models, layer_rows = [], []
  for condition in conditions:
    trained = study.model(condition)
    models.append(trained)
    layer_rows.append(
        experiments.mi_row(
            trained, unconditional, study.dims, bootstrap_resamples, seed
        )
    )
  layer_rows = experiments.flag_rises_with_depth(layer_rows)

  indices = experiments.sample_indices(dataset.test_labels, num_sample_images)
  arrays = {"originals": dataset.test_images[indices]}
  for trained in models + [unconditional]:
    arrays[trained.condition.name] = study.samples(
        trained, indices, samples_per_image
    )

  results = {
      "experiment": "invert",
      "dataset": pipeline.dataset_spec(dataset),
      "dims": study.dims,
      "model": {
          "file": model_file,
          "file_sha256": file_hash,
          "fingerprint": fingerprint,
          "name": model.name,
          "input_scale": input_scale,
          "layers": layers,
      },
      "classifier": {"test_accuracy": accuracy},
      "unconditional": experiments.entropy_summary(
          unconditional, study.dims, bootstrap_resamples, seed
      ),
      "rows": control_rows + layer_rows,
      "samples": {
          "test_indices": [int(i) for i in indices],
          "columns": layers + ["unconditional"],
          "samples_per_image": samples_per_image,
      },
      "artifacts": study.artifacts([]),
      "seconds": time.time() - started,
  }
  return results, arrays
