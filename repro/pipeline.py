"""Trained classifiers and inversion models, fetched from the store or made.

The experiments ask this module for artifacts by specification; it trains
what the store does not hold yet (resuming an unfinished one), and returns
the model with its record. Every record says whether it was trained in this
call or found in the store, so a run can report what it reused.
"""

import dataclasses
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from repro import classifiers
from repro import conditioning as conditioning_lib
from repro import inversion
from repro import store as store_lib
from repro import training

# Settings that change how fast a model trains but not what it learns; they
# are left out of artifact keys so that changing them reuses the artifact.
_NON_SEMANTIC_TRAIN_FIELDS = ("checkpoint_every", "jit_compile", "eval_batch_size")


def dataset_spec(dataset):
  """What identifies a dataset's contents, for artifact keys."""
  return {
      "name": dataset.name,
      "num_train": int(dataset.train_images.shape[0]),
      "num_test": int(dataset.test_images.shape[0]),
      "image_shape": list(dataset.image_shape),
      "train_fingerprint": store_lib.fingerprint(
          [int(v) for v in dataset.train_labels[:64]]
          + [int(dataset.train_images.sum())]
      ),
  }


def train_spec(config):
  spec = dataclasses.asdict(config)
  for name in _NON_SEMANTIC_TRAIN_FIELDS:
    spec.pop(name)
  return spec


@dataclasses.dataclass
class TrainedClassifier:
  model: keras.Model
  spec: dict
  record: dict
  directory: str


def classifier(store, config, dataset, seed):
  """The trained classifier for `config`, from the store or trained now.

  Args:
    store: an `ArtifactStore`.
    config: a `ClassifierConfig`.
    dataset: the `Dataset` it is trained on.
    seed: its seed.

  Returns:
    A `TrainedClassifier`.
  """
  spec = {
      "dataset": dataset_spec(dataset),
      "classifier": dataclasses.asdict(config),
      "seed": seed,
  }
  directory = store.directory("classifier", spec)
  path = os.path.join(directory, "model.keras")
  record = store.record(directory)
  if record is not None:
    model = keras.models.load_model(path)
    logging.info("Classifier found in %s.", directory)
    return TrainedClassifier(model, spec, dict(record, reused=True), directory)

  keras.utils.set_random_seed(seed)
  model = classifiers.build_classifier(
      config, dataset.image_shape, dataset.num_classes
  )
  started = time.time()
  metrics = classifiers.train_classifier(model, config, dataset)
  temporary = os.path.join(directory, "model.tmp.keras")
  model.save(temporary)
  tf.io.gfile.rename(temporary, path, overwrite=True)
  record = dict(metrics, seconds=time.time() - started, spec=spec)
  store.finish(directory, record)
  return TrainedClassifier(model, spec, dict(record, reused=False), directory)


@dataclasses.dataclass
class Condition:
  """What an inversion model is conditioned on.

  Attributes:
    name: the row's name, e.g. a layer name or 'input'.
    conditioning: 'none', 'spatial' or 'global'.
    train: `[n_train, ...]` float32 activations, or None.
    test: `[n_test, ...]` float32 activations, or None.
    source: JSON-serialisable description of where the activations come
      from (which classifier and layer), part of the artifact key.
  """

  name: str
  conditioning: str
  train: np.ndarray = None
  test: np.ndarray = None
  source: dict = None

  @property
  def shape(self):
    return None if self.train is None else tuple(self.train.shape[1:])


def unconditional():
  return Condition("unconditional", "none", source={"kind": "none"})


def layer_condition(trained, dataset, layer, conditioning):
  """Activations of one layer of a trained classifier, on both splits."""
  source = (
      {"kind": "input"}
      if layer == "input"
      else {
          "kind": "layer",
          "classifier": store_lib.fingerprint(trained.spec),
          "layer": layer,
      }
  )
  return Condition(
      layer,
      conditioning,
      train=classifiers.activations(trained.model, layer, dataset.train_images),
      test=classifiers.activations(trained.model, layer, dataset.test_images),
      source=source,
  )


@dataclasses.dataclass
class TrainedInversion:
  model: inversion.InversionModel
  condition: Condition
  record: dict
  directory: str
  test_nll: np.ndarray


def inversion_model(
    store, dataset, condition, pixelcnn_config, train_config, master_seed
):
  """The trained inversion model for `condition`, with its test NLLs.

  Args:
    store: an `ArtifactStore`.
    dataset: the `Dataset`; images are modelled, test images scored.
    condition: a `Condition`.
    pixelcnn_config: a `PixelCNNConfig`.
    train_config: a `TrainConfig`.
    master_seed: the experiment's seed; the model's own seed derives from it
      and from what the model is conditioned on.

  Returns:
    A `TrainedInversion`; `test_nll` is `[n_test]` bits per image.
  """
  seed = store_lib.derive_seed(
      master_seed, "inversion", condition.source, condition.conditioning
  )
  spec = {
      "dataset": dataset_spec(dataset),
      "condition": condition.source,
      "conditioning": condition.conditioning,
      "pixelcnn": dataclasses.asdict(pixelcnn_config),
      "train": train_spec(train_config),
      "seed": seed,
  }
  directory = store.directory("inversion", spec)
  label = f"{condition.name} ({condition.conditioning})"

  statistics = None
  if condition.train is not None:
    statistics = conditioning_lib.activation_statistics(condition.train)
  keras.utils.set_random_seed(seed)
  model = inversion.build_inversion_model(
      pixelcnn_config,
      dataset.image_shape,
      condition.conditioning,
      condition.shape,
      statistics,
  )

  record = store.record(directory)
  nll_path = os.path.join(directory, "test_nll.npy")
  if record is not None:
    training.restore(model, directory)
    with tf.io.gfile.GFile(nll_path, "rb") as f:
      test_nll = np.load(f)
    logging.info("%s: found in %s.", label, directory)
    return TrainedInversion(
        model, condition, dict(record, reused=True), directory, test_nll
    )

  logging.info("%s: training in %s.", label, directory)
  started = time.time()
  train_images = dataset.train_images.astype(np.float32)
  result = training.train(
      model,
      train_images,
      condition.train,
      train_config,
      directory,
      seed,
      label=label,
  )
  trained_seconds = time.time() - started
  test_nll = training.negative_log_likelihoods(
      model,
      dataset.test_images.astype(np.float32),
      condition.test,
      train_config.eval_batch_size,
  )
  if not np.all(np.isfinite(test_nll)):
    raise FloatingPointError(
        f"{label}: test log-likelihoods contain NaN or infinity."
    )
  with tf.io.gfile.GFile(nll_path, "wb") as f:
    np.save(f, test_nll)
  dims = float(np.prod(dataset.image_shape))
  record = dict(
      result,
      spec=spec,
      test_bits_per_dim=float(test_nll.mean() / dims),
      train_seconds=trained_seconds,
      evaluation_seconds=time.time() - started - trained_seconds,
      num_parameters=int(
          sum(np.prod(v.shape) for v in model.network.trainable_variables)
      ),
  )
  store.finish(directory, record)
  return TrainedInversion(
      model, condition, dict(record, reused=False), directory, test_nll
  )


def samples(trained, indices, num_samples, seed):
  """Samples given chosen test images, cached beside the model.

  Args:
    trained: a `TrainedInversion`.
    indices: positions of k test images whose condition is sampled from;
      an unconditional model draws k * num_samples images alike.
    num_samples: samples per test image.
    seed: sampling seed.

  Returns:
    uint8 `[k, num_samples, height, width, channels]`.
  """
  indices = [int(i) for i in indices]
  k = len(indices)
  key = store_lib.fingerprint(
      {"indices": indices, "num_samples": num_samples, "seed": seed}
  )
  path = os.path.join(trained.directory, f"samples-{key}.npy")
  if tf.io.gfile.exists(path):
    with tf.io.gfile.GFile(path, "rb") as f:
      return np.load(f)

  started = time.time()
  kwargs = {}
  if trained.condition.test is not None:
    conditions = trained.condition.test[indices]
    kwargs["conditional_input"] = tf.constant(
        np.repeat(conditions, num_samples, axis=0)
    )
  draw = tf.function(
      lambda: trained.model.sample(
          k * num_samples, seed=tf.constant([seed, 0]), **kwargs
      )
  )
  images = draw().numpy().astype(np.uint8)
  images = images.reshape(k, num_samples, *images.shape[1:])
  logging.info(
      "%s: %d samples in %.1f s.",
      trained.condition.name,
      k * num_samples,
      time.time() - started,
  )
  temporary = f"{path}.tmp"
  with tf.io.gfile.GFile(temporary, "wb") as f:
    np.save(f, images)
  tf.io.gfile.rename(temporary, path, overwrite=True)
  return images
