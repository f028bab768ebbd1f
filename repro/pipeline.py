"""Trained classifiers and inversion models, fetched from the store or made.

The experiments ask this module for artifacts by specification; it trains
what the store does not hold yet (resuming an unfinished one), and returns
the model with its record. Every record says whether it was trained in this
call or found in the store, so a run can report what it reused.

What is computed from a trained artifact is kept too: samples and
reconstructions beside their model, and the binning and kernel estimates as
artifacts of their own. A found model's network is built only when
something it must compute is missing, so a rerun of a finished experiment
reads files and draws figures.
"""

import dataclasses
import hashlib
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from repro import classifiers
from repro import conditioning as conditioning_lib
from repro import decoder as decoder_lib
from repro import estimators
from repro import inversion
from repro import store as store_lib
from repro import training

# Settings that change how fast a model trains but not what it learns; they
# are left out of artifact keys so that changing them reuses the artifact.
_NON_SEMANTIC_TRAIN_FIELDS = (
    "checkpoint_every",
    "jit_compile",
    "eval_batch_size",
    "strategy",
)


@dataclasses.dataclass(frozen=True)
class Shard:
  """This process's share of an experiment split over several machines.

  Every artifact belongs to one shard, chosen by its key. A shard trains
  its own artifacts, skips the inversion models of other shards, and waits
  for the classifiers of other shards, which its own models need. All the
  shards share one artifact store.

  Attributes:
    index: this shard, in [0, count).
    count: the number of shards.
    wait_seconds: how long to wait for another shard's classifier.
  """

  index: int
  count: int
  wait_seconds: float = 7200.0

  def owns(self, directory):
    key = os.path.basename(directory.rstrip("/"))
    return int(key, 16) % self.count == self.index


def _wait_for_records(store, directories, shard):
  """Waits until another shard has finished the artifacts in `directories`."""
  deadline = time.time() + shard.wait_seconds
  while not all(store.record(d) is not None for d in directories):
    if time.time() > deadline:
      raise TimeoutError(
          f"Shard {shard.index}/{shard.count}: waited {shard.wait_seconds} s "
          f"for classifiers {directories} from another shard; is every shard "
          "running with the same cache_dir?"
      )
    time.sleep(10.0)


def dataset_spec(dataset):
  """What identifies a dataset's contents, for artifact keys."""
  return {
      "name": dataset.name,
      "num_train": int(dataset.train_images.shape[0]),
      "num_test": int(dataset.test_images.shape[0]),
      "image_shape": list(dataset.image_shape),
      "train_fingerprint": _split_fingerprint(
          dataset.train_images, dataset.train_labels
      ),
  }


def _split_fingerprint(images, labels):
  """A hash of a split's first labels and of the sum of its pixels."""
  return store_lib.fingerprint(
      [int(v) for v in labels[:64]] + [int(images.sum())]
  )


def _split_sha256(images, labels):
  """The SHA-256 of every image and label of a split, in order."""
  digest = hashlib.sha256()
  for array in (images, labels):
    array = np.ascontiguousarray(array)
    digest.update(f"{array.dtype}{array.shape}".encode())
    digest.update(array.tobytes())
  return digest.hexdigest()


def pixelcnn_spec(config):
  """The inversion model's sizes, for artifact keys.

  The precision enters the key only when it is not the default float32, so
  that artifacts trained before the precision was selectable keep their
  keys.
  """
  spec = dataclasses.asdict(config)
  if spec["precision"] == "float32":
    spec.pop("precision")
  return spec


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


def _classifier_spec(config, dataset, seed, epoch):
  return {
      "dataset": dataset_spec(dataset),
      "classifier": dataclasses.asdict(
          dataclasses.replace(config, epochs=epoch)
      ),
      "seed": seed,
      "procedure": "one fit call per epoch",
  }


def _found_classifier(spec, record, directory):
  return TrainedClassifier(
      keras.models.load_model(
          os.path.join(directory, "model.keras"), compile=False
      ),
      spec,
      dict(record, reused=True),
      directory,
  )


def classifier_checkpoints(store, config, dataset, seed, epochs, shard=None):
  """The classifier of `config` after each of `epochs`, trained or found.

  Training runs epoch by epoch, so the model after epoch e is the same
  whichever other epochs are kept, and experiments share it. If any of the
  checkpoints is missing, training restarts from initialisation and writes
  the missing ones (a classifier trains in seconds to minutes); the
  checkpoints that were already there are kept as they are.

  Args:
    store: an `ArtifactStore`.
    config: a `ClassifierConfig`; its `epochs` is ignored.
    dataset: the `Dataset` it is trained on.
    seed: its seed.
    epochs: sorted distinct epochs to keep; 0 is the initialisation.
    shard: a `Shard`, or None when one process runs everything.

  Returns:
    A list of `TrainedClassifier`, one per epoch; each record holds the
    train and test accuracy at that epoch.
  """
  epochs = [int(e) for e in epochs]
  if epochs != sorted(set(epochs)) or epochs[0] < 0:
    raise ValueError(
        f"Classifier checkpoint epochs {epochs}; accepted: distinct "
        "integers >= 0 in increasing order."
    )
  specs = [_classifier_spec(config, dataset, seed, e) for e in epochs]
  directories = [store.directory("classifier", spec) for spec in specs]
  records = [store.record(d) for d in directories]
  if shard is not None and not shard.owns(directories[0]):
    _wait_for_records(store, directories, shard)
    records = [store.record(d) for d in directories]
  if all(record is not None for record in records):
    logging.info("Classifier checkpoints %s found in the store.", epochs)
    return [
        _found_classifier(spec, record, d)
        for spec, record, d in zip(specs, records, directories)
    ]

  keras.utils.set_random_seed(seed)
  model = classifiers.build_classifier(
      config, dataset.image_shape, dataset.num_classes
  )
  started = time.time()
  result = []
  for epoch in range(epochs[-1] + 1):
    if epoch > 0:
      classifiers.fit_one_epoch(model, config, dataset)
    if epoch not in epochs:
      continue
    index = epochs.index(epoch)
    if records[index] is not None:
      # Finished before: other artifacts were computed from that very
      # checkpoint, so it is kept rather than saved anew (on a GPU the
      # retrained weights need not be the same).
      result.append(
          _found_classifier(specs[index], records[index], directories[index])
      )
      continue
    metrics = classifiers.evaluate_classifier(model, dataset)
    logging.info(
        "Classifier %s at epoch %d: train accuracy %.4f, test accuracy %.4f.",
        model.name,
        epoch,
        metrics["train_accuracy"],
        metrics["test_accuracy"],
    )
    path = os.path.join(directories[index], "model.keras")
    temporary = os.path.join(directories[index], "model.tmp.keras")
    model.save(temporary)
    tf.io.gfile.rename(temporary, path, overwrite=True)
    record = dict(metrics, seconds=time.time() - started, spec=specs[index])
    store.finish(directories[index], record)
    result.append(
        TrainedClassifier(
            keras.models.load_model(path, compile=False),
            specs[index],
            dict(record, reused=False),
            directories[index],
        )
    )
  return result


def classifier(store, config, dataset, seed, shard=None):
  """The classifier of `config` after `config.epochs` epochs."""
  return classifier_checkpoints(
      store, config, dataset, seed, [config.epochs], shard
  )[0]


@dataclasses.dataclass
class Condition:
  """What an inversion model is conditioned on.

  Attributes:
    name: the row's name, e.g. a layer name, 'input' or 'label'.
    conditioning: 'none', 'spatial' or 'global'.
    source: JSON-serialisable description of where the condition comes
      from (which classifier and layer, or which control), part of the
      artifact key.
    shape: shape of one condition without the batch axis, or None.
    compute: maps `(images, labels)` of a split to float32 conditions
      `[n, *shape]`; None when unconditional. Called only when needed, so
      that a model found in the store costs no activations.
  """

  name: str
  conditioning: str
  source: dict
  shape: tuple = None
  compute: object = None

  def on(self, images, labels):
    return None if self.compute is None else self.compute(images, labels)


def unconditional():
  return Condition("unconditional", "none", {"kind": "none"})


def layer_condition(trained, layer, conditioning="spatial"):
  """The activation of one layer of a trained classifier."""
  if layer == "input":
    source = {"kind": "input"}
  else:
    source = {
        "kind": "layer",
        "classifier": store_lib.fingerprint(trained.spec),
        "layer": layer,
    }
  shape = tuple(trained.model.get_layer(layer).output.shape[1:])
  return Condition(
      layer,
      conditioning,
      source,
      shape,
      lambda images, _: classifiers.activations(trained.model, layer, images),
  )


CONTROLS = ("input", "constant", "label")


def control_condition(kind, dataset, conditioning="spatial"):
  """A condition whose true MI with the image is known.

  Args:
    kind: 'input' (the image itself: I = H(x)), 'constant' (a constant:
      I = 0) or 'label' (the true class: I <= log2(num_classes)).
    dataset: the `Dataset`.
    conditioning: how the model is conditioned.

  Returns:
    A `Condition`.
  """
  num_classes = dataset.num_classes
  if kind == "input":
    return Condition(
        "input",
        conditioning,
        {"kind": "input"},
        dataset.image_shape,
        lambda images, _: np.asarray(images, np.float32),
    )
  if kind == "constant":
    return Condition(
        "constant",
        conditioning,
        {"kind": "constant"},
        (1,),
        lambda images, _: np.zeros((len(images), 1), np.float32),
    )
  if kind == "label":
    return Condition(
        "label",
        conditioning,
        {"kind": "label", "num_classes": num_classes},
        (num_classes,),
        lambda _, labels: np.eye(num_classes, dtype=np.float32)[labels],
    )
  raise ValueError(f"Control {kind!r}; accepted: {CONTROLS}.")


# What each other estimator computes, for the keys of its estimates: a
# change of method is a new key, never a stale estimate read back.
_ESTIMATE_METHODS = {
    estimators.BINNING: "entropy of equal-width bins over each layer's "
    "min..max on the test activations",
    estimators.KDE: "pairwise-distance upper bound of Kolchinsky and Tracey "
    "(2017) with Gaussian noise",
}


def other_estimates(store, dataset, condition, others, shard=None):
  """The binning and kernel density estimates of a condition, stored.

  Each estimate on the test activations is an artifact of its own, keyed
  by the data (the test split included), the condition, the estimator and
  its setting, so that a run that finds them all computes no activations,
  and a changed setting recomputes only its own estimates.

  Args:
    store: an `ArtifactStore`.
    dataset: the `Dataset`; the estimates see its test split.
    condition: a `Condition` with a shape.
    others: an `estimators.OtherEstimators`.
    shard: a `Shard`, or None when one process runs everything.

  Returns:
    `(bits, computed)`: one estimate in bits per entry of
    `others.measures()`, in its order, None for an estimate of another
    shard; and how many of them this call computed.
  """
  activations = None
  bits = []
  computed = 0
  for estimator, parameter, value in others.measures():
    spec = {
        "dataset": dataset_spec(dataset),
        "test_sha256": _split_sha256(dataset.test_images, dataset.test_labels),
        "condition": condition.source,
        "split": "test",
        "estimator": estimator,
        "method": _ESTIMATE_METHODS[estimator],
        "parameter": {parameter: value},
    }
    directory = store.directory("estimate", spec)
    if shard is not None and not shard.owns(directory):
      bits.append(None)
      continue
    record = store.record(directory)
    if record is None:
      if activations is None:
        activations = condition.on(dataset.test_images, dataset.test_labels)
      started = time.time()
      estimate = others.estimate((estimator, parameter, value), activations)
      record = {
          "bits": estimate,
          "seconds": time.time() - started,
          "spec": spec,
      }
      store.finish(directory, record)
      computed += 1
      logging.info(
          "%s (%s %s) of %s: %.2f bits in %.1f s.",
          estimator,
          parameter,
          value,
          condition.name,
          estimate,
          record["seconds"],
      )
    bits.append(float(record["bits"]))
  return bits, computed


def _placeholder_statistics(condition):
  """Normalisation statistics for a network whose own will be restored.

  A network's statistics are part of its checkpoint, so a found one is
  built with these and gets its own when its weights are restored.

  Returns:
    `(zeros, ones)` per channel of the condition, or None without one.
  """
  if condition.shape is None:
    return None
  channels = condition.shape[-1]
  return (np.zeros(channels), np.ones(channels))


class _Stored:
  """A trained artifact's network: given, or built when first read.

  A network found in the store is built and its weights restored only when
  `model` is first read, so a run that finds every number, sample and
  reconstruction it needs in the store builds no network at all.

  Attributes:
    model: the network; reading it may build and restore it.
    restored: whether this object has built and restored a found network.
  """

  def __init__(self, model, load=None):
    """Takes the network, or None and `load`, which builds it when needed."""
    self._model = model
    self._load = load
    self.restored = False

  @property
  def model(self):
    if self._model is None and self._load is not None:
      self._model = self._load()
      self._load = None
      self.restored = True
    return self._model


class TrainedInversion(_Stored):
  """A trained inversion model, its test NLLs and where it is stored.

  Attributes:
    condition: the `Condition` it is conditioned on.
    record: the artifact's record, with `reused` set.
    directory: the artifact's directory, or None for another shard's.
    test_nll: `[n_test]` bits per image.
    model: the `inversion.InversionModel`, or None for another shard's.
  """

  def __init__(self, model, condition, record, directory, test_nll, load=None):
    super().__init__(model, load)
    self.condition = condition
    self.record = record
    self.directory = directory
    self.test_nll = test_nll


def inversion_model(
    store,
    dataset,
    condition,
    pixelcnn_config,
    train_config,
    master_seed,
    shard=None,
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
    shard: a `Shard`, or None when one process runs everything.

  Returns:
    A `TrainedInversion`; `test_nll` is `[n_test]` bits per image. None if
    the model belongs to another shard.
  """
  seed = store_lib.derive_seed(
      master_seed, "inversion", condition.source, condition.conditioning
  )
  spec = {
      "dataset": dataset_spec(dataset),
      "condition": condition.source,
      "conditioning": condition.conditioning,
      "pixelcnn": pixelcnn_spec(pixelcnn_config),
      "train": train_spec(train_config),
      "seed": seed,
  }
  directory = store.directory("inversion", spec)
  label = f"{condition.name} ({condition.conditioning})"
  if shard is not None and not shard.owns(directory):
    logging.info("%s: left to another shard.", label)
    return None
  record = store.record(directory)
  strategy = training.distribution_strategy(train_config.strategy)

  def build(statistics):
    keras.utils.set_random_seed(seed)
    with strategy.scope():
      return inversion.build_inversion_model(
          pixelcnn_config,
          dataset.image_shape,
          condition.conditioning,
          condition.shape,
          statistics,
      )

  nll_path = os.path.join(directory, "test_nll.npy")
  if record is not None:

    def restored():
      model = build(_placeholder_statistics(condition))
      training.restore(model, directory)
      return model

    with tf.io.gfile.GFile(nll_path, "rb") as f:
      test_nll = np.load(f)
    logging.info("%s: found in %s.", label, directory)
    return TrainedInversion(
        None,
        condition,
        dict(record, reused=True),
        directory,
        test_nll,
        load=restored,
    )

  train_conditions = condition.on(dataset.train_images, dataset.train_labels)
  statistics = None
  if train_conditions is not None:
    statistics = conditioning_lib.activation_statistics(train_conditions)
  model = build(statistics)
  logging.info("%s: training in %s.", label, directory)
  started = time.time()
  result = training.train(
      model,
      dataset.train_images.astype(np.float32),
      train_conditions,
      train_config,
      directory,
      seed,
      label=label,
  )
  del train_conditions
  trained_seconds = time.time() - started
  test_nll = training.negative_log_likelihoods(
      model,
      dataset.test_images.astype(np.float32),
      condition.on(dataset.test_images, dataset.test_labels),
      train_config.eval_batch_size,
  )
  if not np.all(np.isfinite(test_nll)):
    raise FloatingPointError(
        f"{label}: test log-likelihoods contain NaN or infinity."
    )
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
  # With several workers, one writes; the others computed the same model.
  if training.is_chief(strategy):
    with tf.io.gfile.GFile(nll_path, "wb") as f:
      np.save(f, test_nll)
    store.finish(directory, record)
  return TrainedInversion(
      model, condition, dict(record, reused=False), directory, test_nll
  )


def _cached_array(directory, prefix, spec, compute):
  """An array kept beside an artifact, computed once.

  Args:
    directory: the artifact's directory.
    prefix: what the array is, the start of its file name.
    spec: JSON-serialisable dict that determines the array.
    compute: makes the array when the file does not exist yet.

  Returns:
    The array, from `<directory>/<prefix>-<fingerprint of spec>.npy`.
  """
  path = os.path.join(directory, f"{prefix}-{store_lib.fingerprint(spec)}.npy")
  if tf.io.gfile.exists(path):
    with tf.io.gfile.GFile(path, "rb") as f:
      return np.load(f)
  array = compute()
  temporary = f"{path}.tmp-{os.getpid()}"
  with tf.io.gfile.GFile(temporary, "wb") as f:
    np.save(f, array)
  tf.io.gfile.rename(temporary, path, overwrite=True)
  return array


def samples(trained, dataset, indices, num_samples, seed):
  """Samples given chosen test images, cached beside the model.

  Args:
    trained: a `TrainedInversion`.
    dataset: the `Dataset` whose test images are meant.
    indices: positions of k test images whose condition is sampled from;
      an unconditional model draws k * num_samples images alike.
    num_samples: samples per test image.
    seed: sampling seed.

  Returns:
    uint8 `[k, num_samples, height, width, channels]`.
  """
  indices = [int(i) for i in indices]
  k = len(indices)

  def draw():
    started = time.time()
    kwargs = {}
    conditions = trained.condition.on(
        dataset.test_images[indices], dataset.test_labels[indices]
    )
    if conditions is not None:
      kwargs["conditional_input"] = tf.constant(
          np.repeat(conditions, num_samples, axis=0)
      )
    model = trained.model
    images = tf.function(
        lambda: model.sample(
            k * num_samples, seed=tf.constant([seed, 0]), **kwargs
        )
    )()
    images = images.numpy().astype(np.uint8)
    logging.info(
        "%s: %d samples in %.1f s.",
        trained.condition.name,
        k * num_samples,
        time.time() - started,
    )
    return images.reshape(k, num_samples, *images.shape[1:])

  return _cached_array(
      trained.directory,
      "samples",
      {"indices": indices, "num_samples": num_samples, "seed": seed},
      draw,
  )


class TrainedDecoder(_Stored):
  """A trained MSE decoder, its record and where it is stored.

  Attributes:
    condition: the `Condition` it decodes.
    record: the artifact's record, with `reused` set.
    directory: the artifact's directory.
    model: the `decoder.Decoder`.
  """

  def __init__(self, model, condition, record, directory, load=None):
    super().__init__(model, load)
    self.condition = condition
    self.record = record
    self.directory = directory


def mse_decoder(store, dataset, condition, config, master_seed, shard=None):
  """The MSE decoder of `condition`, trained or found, with its test error.

  Trained on the training images and activations that the inversion model
  of the same condition uses; its weights are a `tf.train` checkpoint in
  the artifact's directory. An interrupted decoder is trained again from
  the start (it takes seconds).

  Args:
    store: an `ArtifactStore`.
    dataset: the `Dataset`.
    condition: a `Condition` with a shape (not the unconditional one).
    config: a `DecoderConfig`.
    master_seed: the experiment's seed; the decoder's derives from it.
    shard: a `Shard`, or None when one process runs everything.

  Returns:
    A `TrainedDecoder`, whose record holds `test_mse` (per pixel, in [0, 1]
    units), `test_psnr` (dB) and `mean_image_mse`; None if the decoder
    belongs to another shard.
  """
  seed = store_lib.derive_seed(master_seed, "decoder", condition.source)
  spec = {
      "dataset": dataset_spec(dataset),
      "condition": condition.source,
      "decoder": dataclasses.asdict(config),
      "loss": "mean squared error on pixels / 255, sigmoid output",
      "seed": seed,
  }
  directory = store.directory("decoder", spec)
  label = f"MSE decoder for {condition.name}"
  if shard is not None and not shard.owns(directory):
    logging.info("%s: left to another shard.", label)
    return None
  record = store.record(directory)
  if record is not None:

    def restored():
      # The mean pixel, like the statistics, is restored with the weights.
      model = decoder_lib.build_decoder(
          config,
          condition.shape,
          dataset.image_shape,
          _placeholder_statistics(condition),
          0.5,
      )
      decoder_lib.restore(model, directory)
      return model

    logging.info("%s: found in %s.", label, directory)
    return TrainedDecoder(
        None, condition, dict(record, reused=True), directory, load=restored
    )

  logging.info("%s: training in %s.", label, directory)
  started = time.time()
  config.check_dataset(dataset.train_images.shape[0])
  train_conditions = condition.on(dataset.train_images, dataset.train_labels)
  keras.utils.set_random_seed(seed)
  model = decoder_lib.build_decoder(
      config,
      condition.shape,
      dataset.image_shape,
      conditioning_lib.activation_statistics(train_conditions),
      float(decoder_lib.to_unit(dataset.train_images).mean()),
  )
  result = decoder_lib.fit(
      model, dataset.train_images, train_conditions, config, seed, label
  )
  del train_conditions
  trained_seconds = time.time() - started
  measured = decoder_lib.errors(
      model,
      dataset.test_images,
      condition.on(dataset.test_images, dataset.test_labels),
      dataset.train_images,
  )
  logging.info(
      "%s: test MSE %.5f per pixel (mean image %.5f), PSNR %.2f dB.",
      label,
      measured["test_mse"],
      measured["mean_image_mse"],
      measured["test_psnr"],
  )
  decoder_lib.save(model, directory)
  record = dict(
      result,
      **measured,
      spec=spec,
      train_seconds=trained_seconds,
      num_parameters=int(
          sum(np.prod(v.shape) for v in model.trainable_variables)
      ),
  )
  store.finish(directory, record)
  return TrainedDecoder(model, condition, dict(record, reused=False), directory)


def reconstructions(trained, dataset, indices):
  """The decoder's reconstructions of chosen test images, cached beside it.

  Returns:
    uint8 `[k, height, width, channels]`, deterministic.
  """
  indices = [int(i) for i in indices]

  def reconstruct():
    conditions = trained.condition.on(
        dataset.test_images[indices], dataset.test_labels[indices]
    )
    return decoder_lib.to_uint8(
        decoder_lib.reconstruct(trained.model, np.asarray(conditions))
    )

  return _cached_array(
      trained.directory, "reconstructions", {"indices": indices}, reconstruct
  )
