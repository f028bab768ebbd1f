"""The paper's experiments, each a gin-configurable function.

An experiment takes its output directory, an artifact store and a master
seed, trains or reuses what it needs through `repro.pipeline`, and returns
its results (every number, as a JSON-serialisable dict) and its sample
arrays. `repro.main` writes them to files; the figures are drawn from those
files alone.

Every MI table carries control rows computed by the same code as the layer
rows: the image itself (Î should approach H(x)), a constant (Î should be
zero within its interval) and the true label (Î should not exceed
log2(classes) beyond its interval).

Beside the PixelCNN estimate, `mi_per_layer` and `mi_training_dynamics`
compute two estimators of the information-bottleneck literature on the same
test activations (`repro.estimators`), for the layers and the controls.

With `reconstructions=True`, the experiments with sample grids also train
one MSE decoder per shown layer (`repro.decoder`, the approach of Dosovitskiy
and Brox 2016) and store its deterministic reconstruction of each shown test
image beside that layer's samples.
"""

import dataclasses
import math
import time

import gin
import numpy as np
from absl import logging

from repro import classifiers
from repro import data
from repro import decoder as decoder_lib
from repro import estimate
from repro import estimators
from repro import inversion
from repro import pipeline
from repro import training

DIGITS_LAYERS = ("conv1", "pool1", "conv2", "pool2", "fc", "logits")


def sample_indices(labels, count):
  """The first test image of each class in class order, then the next ones.

  Args:
    labels: `[n]` test labels.
    count: how many images to pick, at most n.

  Returns:
    List of `count` distinct indices covering as many classes as possible.
  """
  firsts = {}
  for index, label in enumerate(labels):
    firsts.setdefault(int(label), index)
  chosen = [firsts[label] for label in sorted(firsts)][:count]
  others = [i for i in range(len(labels)) if i not in chosen]
  return chosen + others[: count - len(chosen)]


class Study:
  """What every MI experiment shares: data, configs, store and progress.

  Attributes:
    dataset: the `Dataset`.
    pixelcnn_config: the inversion models' sizes.
    train_config: how they are trained.
    classifier_config: the classifier, as gin configures it.
    store: the `ArtifactStore`.
    seed: the master seed.
    total: how many inversion models the experiment needs, for progress.
    shard: a `pipeline.Shard`, or None when this process runs everything.
    decoder_config: the MSE decoders' `DecoderConfig`, or None when the
      experiment trains none (`reconstructions=False`).
    decoders: the `TrainedDecoder`s this process trained or found.
  """

  def __init__(
      self, store, seed, total_models, shard=None, reconstructions=False
  ):
    self.dataset = data.load_dataset()
    self.pixelcnn_config = inversion.PixelCNNConfig()
    self.train_config = training.TrainConfig()
    self.classifier_config = classifiers.ClassifierConfig()
    inversion.check_image_shape(
        self.dataset.image_shape, self.pixelcnn_config.num_stages
    )
    # Built here, so that a bad decoder setting stops the run before any
    # training.
    self.decoder_config = None
    if reconstructions:
      self.decoder_config = decoder_lib.DecoderConfig()
      self.decoder_config.check_dataset(len(self.dataset.train_labels))
    self.decoders = []
    self.store = store
    self.seed = seed
    self.total = total_models
    self.shard = shard
    self.skipped = 0
    self.done = 0
    self.dims = float(np.prod(self.dataset.image_shape))
    self.models = []
    self.estimates = {"computed": 0, "found": 0}

  def check_layers(self, layers, config=None):
    """Fails before any training if a layer name is not in the classifier."""
    model = classifiers.build_classifier(
        config or self.classifier_config,
        self.dataset.image_shape,
        self.dataset.num_classes,
    )
    classifiers.probe(model, list(layers))

  def model(self, condition):
    """The trained inversion model for `condition`, counted in progress."""
    self.done += 1
    logging.info(
        "[model %d/%d] %s (%s)",
        self.done,
        self.total,
        condition.name,
        condition.conditioning,
    )
    trained = pipeline.inversion_model(
        self.store,
        self.dataset,
        condition,
        self.pixelcnn_config,
        self.train_config,
        self.seed,
        self.shard,
    )
    if trained is None:
      # Another shard's model: a stand-in, so that the experiment goes on
      # to the models of this shard. Its numbers are never written.
      self.skipped += 1
      trained = pipeline.TrainedInversion(
          None,
          condition,
          {
              "reused": False,
              "train_seconds": 0.0,
              "final_train_bits_per_dim": 0.0,
          },
          None,
          np.zeros(len(self.dataset.test_labels)) + self.skipped,
      )
    else:
      self.models.append(trained)
    return trained

  def classifier(self, config=None):
    return pipeline.classifier(
        self.store,
        config or self.classifier_config,
        self.dataset,
        self.seed,
        self.shard,
    )

  def classifier_checkpoints(self, epochs):
    return pipeline.classifier_checkpoints(
        self.store,
        self.classifier_config,
        self.dataset,
        self.seed,
        epochs,
        self.shard,
    )

  def unconditional(self):
    return self.model(pipeline.unconditional())

  def controls(self, unconditional, kinds, resamples):
    """Rows for the control conditions, each with its expectation checked."""
    rows = []
    for kind in kinds:
      trained = self.model(
          pipeline.control_condition(kind, self.dataset, "spatial")
      )
      rows.append(
          control_row(
              mi_row(trained, unconditional, self.dims, resamples, self.seed),
              unconditional,
              self.dataset.num_classes,
              resamples,
              self.seed,
          )
      )
    return rows

  def samples(self, trained, indices, samples_per_image):
    if trained.directory is None:
      # Another shard's model.
      shape = (len(indices), samples_per_image, *self.dataset.image_shape)
      return np.zeros(shape, np.uint8)
    return pipeline.samples(
        trained, self.dataset, indices, samples_per_image, self.seed
    )

  def reconstructions(self, columns, indices, arrays, **extra):
    """Trains or finds the MSE decoders of columns; adds reconstructions.

    Args:
      columns: `(key, pipeline.Condition)` pairs; `key` is the column's
        key of the sample arrays.
      indices: the shown test images.
      arrays: the sample arrays; each decoder's reconstructions, uint8
        `[k, height, width, channels]`, are added under `<key>__mse`.
      **extra: more fields for every row (group).

    Returns:
      `(rows, keys)`: one row per decoder with its test errors, and the
      map from a column's key to its reconstructions' key.
    """
    rows, keys = [], {}
    for key, condition in columns:
      logging.info("[decoder %d/%d] %s", len(keys) + 1, len(columns), key)
      trained = pipeline.mse_decoder(
          self.store,
          self.dataset,
          condition,
          self.decoder_config,
          self.seed,
          self.shard,
      )
      keys[key] = f"{key}__mse"
      if trained is None:
        # Another shard's decoder: blank images, never written.
        self.skipped += 1
        arrays[keys[key]] = np.zeros(
            (len(indices), *self.dataset.image_shape), np.uint8
        )
        continue
      self.decoders.append(trained)
      arrays[keys[key]] = pipeline.reconstructions(
          trained, self.dataset, indices
      )
      record = trained.record
      rows.append(
          dict(
              extra,
              layer=condition.name,
              shape=list(condition.shape),
              test_mse=record["test_mse"],
              test_psnr=record["test_psnr"],
              mean_image_mse=record["mean_image_mse"],
              final_train_mse=record["final_train_mse"],
              reused=record["reused"],
              train_seconds=record["train_seconds"],
          )
      )
    return rows, keys

  def reconstruction_results(self, rows, keys):
    """The `results['reconstructions']` entry; None without decoders."""
    if self.decoder_config is None:
      return None
    return {
        "method": "deterministic decoder, mean squared error on pixels in "
        "[0, 1] (Dosovitskiy and Brox 2016)",
        "config": dataclasses.asdict(self.decoder_config),
        "rows": rows,
        "keys": keys,
    }

  def artifacts(self, classifiers_used):
    """How many artifacts this run trained and how many it found.

    `restored` counts the found inversion models and decoders whose
    networks this run built and restored, to draw samples or
    reconstructions that the store did not hold yet; `estimates` counts
    the other estimators' estimates it computed and found.
    """
    records = [m.record for m in self.models]
    records += [d.record for d in self.decoders]
    records += [c.record for c in classifiers_used]
    return {
        "trained": sum(not r["reused"] for r in records),
        "reused": sum(bool(r["reused"]) for r in records),
        "restored": sum(a.restored for a in self.models + self.decoders),
        "skipped": self.skipped,
        "estimates": dict(self.estimates),
    }


def mi_row(trained, unconditional, dims, resamples, seed):
  """One table row: a model's test NLL and its MI estimate."""
  mi = estimate.mutual_information(
      unconditional.test_nll, trained.test_nll, resamples, seed=seed
  )
  return {
      "layer": trained.condition.name,
      "kind": "layer",
      "conditioning": trained.condition.conditioning,
      "shape": list(trained.condition.shape),
      "bits_per_dim": float(trained.test_nll.mean() / dims),
      "nll_bits": float(trained.test_nll.mean()),
      "mi": mi,
      "check": None,
      "reused": trained.record["reused"],
      "train_seconds": trained.record["train_seconds"],
      "final_train_bits_per_dim": trained.record["final_train_bits_per_dim"],
  }


@gin.configurable(
    denylist=["row", "unconditional", "num_classes", "resamples", "seed"]
)
def control_row(
    row, unconditional, num_classes, resamples, seed, input_fraction=0.8
):
  """Marks a row as a control and checks what its MI should be.

  Args:
    row: a row from `mi_row` for the 'input', 'constant' or 'label' control.
    unconditional: the unconditional `TrainedInversion` (for H(x)).
    num_classes: classes of the data set.
    resamples: bootstrap resamples.
    seed: bootstrap seed.
    input_fraction: the identity control holds if Î(x; x) is at least this
      fraction of the estimated H(x).

  Returns:
    The row with `kind='control'` and `check` set to the expectation, in
    words, and whether it held.
  """
  mi = row["mi"]
  if row["layer"] == "input":
    entropy = estimate.bootstrap_mean(
        unconditional.test_nll, resamples, seed=seed
    )
    expectation = f"Î >= {input_fraction:.0%} of Ĥ(x)"
    held = mi["mean"] >= input_fraction * entropy["mean"]
  elif row["layer"] == "constant":
    expectation = "0 within the interval"
    held = mi["low"] <= 0.0 <= mi["high"]
  else:
    bound = math.log2(num_classes)
    expectation = f"Î <= log2({num_classes}) = {bound:.2f} within the interval"
    held = mi["low"] <= bound
  return dict(
      row,
      kind="control",
      check={"expectation": expectation, "held": bool(held)},
  )


def flag_rises_with_depth(rows):
  """Flags layer rows whose Î exceeds a shallower layer's beyond intervals.

  For a feed-forward chain the data processing inequality says that MI
  cannot grow with depth; a row is flagged when its interval lies wholly
  above the interval of some shallower layer.

  Args:
    rows: layer rows in depth order, each with an `mi` dict.

  Returns:
    The rows, each with `rises_with_depth` (bool) and `rises_above` (the
    shallower layers it exceeds).
  """
  result = []
  for index, row in enumerate(rows):
    above = [
        earlier["layer"]
        for earlier in rows[:index]
        if row["mi"]["low"] > earlier["mi"]["high"]
    ]
    result.append(dict(row, rises_with_depth=bool(above), rises_above=above))
  return result


def entropy_summary(unconditional, dims, resamples, seed):
  return {
      "bits_per_dim": float(unconditional.test_nll.mean() / dims),
      "entropy": estimate.bootstrap_mean(
          unconditional.test_nll, resamples, seed=seed
      ),
      "reused": unconditional.record["reused"],
      "train_seconds": unconditional.record["train_seconds"],
  }


def classifier_summary(trained):
  return {
      "config": trained.spec["classifier"],
      "train_accuracy": trained.record["train_accuracy"],
      "test_accuracy": trained.record["test_accuracy"],
      "reused": trained.record["reused"],
  }


def _layer_rows(study, trained_classifier, layers, unconditional, resamples):
  rows, models = [], {}
  for layer in layers:
    trained = study.model(pipeline.layer_condition(trained_classifier, layer))
    models[layer] = trained
    rows.append(
        mi_row(trained, unconditional, study.dims, resamples, study.seed)
    )
  return flag_rises_with_depth(rows), models


def _estimator_rows(study, others, conditions, **extra):
  """The other estimators' rows for conditions, on the test activations.

  The estimates are artifacts of the store, like the models.

  Args:
    study: the `Study`.
    others: an `estimators.OtherEstimators`.
    conditions: `(kind, pipeline.Condition)` pairs, kind 'layer' or
      'control'.
    **extra: more fields for every row (group, epoch).

  Returns:
    A list of rows, as `OtherEstimators.rows` makes them.
  """
  rows = []
  for kind, condition in conditions:
    bits, computed = pipeline.other_estimates(
        study.store, study.dataset, condition, others, study.shard
    )
    study.estimates["computed"] += computed
    study.estimates["found"] += sum(b is not None for b in bits) - computed
    # A shard writes no results: it only computes the estimates it owns.
    if study.shard is None:
      rows += others.rows_of(
          condition.name,
          kind,
          bits,
          len(study.dataset.test_labels),
          study.dataset.num_classes,
          **extra,
      )
  return rows


def _control_conditions(study, controls):
  return [
      ("control", pipeline.control_condition(name, study.dataset))
      for name in controls
  ]


@gin.configurable(denylist=["store", "seed", "shard"])
def mi_per_layer(
    store,
    seed,
    shard=None,
    layers=DIGITS_LAYERS,
    controls=pipeline.CONTROLS,
    global_conditioning_layers=("input",),
    num_sample_images=8,
    samples_per_image=1,
    bootstrap_resamples=2000,
    reconstructions=False,
):
  """MI between the input and each probed layer of one classifier.

  Trains the classifier, an unconditional PixelCNN for H(x), the controls,
  and one inversion model per layer (conditioned per pixel), plus TFP's
  global conditioning for `global_conditioning_layers` as the comparison.
  Beside them, `results['estimators']` holds the binning and kernel density
  estimates (`estimators.OtherEstimators`) of the controls and layers, on
  the same test activations.

  Args:
    store: an `ArtifactStore` for trained models.
    seed: the master seed.
    shard: a `pipeline.Shard` to train only this shard's models.
    layers: probed layer names in depth order.
    controls: control rows, from 'input', 'constant' and 'label'.
    global_conditioning_layers: layers or controls also inverted with TFP's
      stock global conditioning.
    num_sample_images: test images shown in the sample figure.
    samples_per_image: samples per test image and layer.
    bootstrap_resamples: resamples for every interval.
    reconstructions: whether an MSE decoder is trained for every layer shown
      in the sample figure (the input control and the layers), its
      reconstructions drawn beside the samples and its test error added to
      the table.

  Returns:
    `(results, samples)`: the dict of every number and the sample arrays.
  """
  started = time.time()
  # Built first, so that a bad setting stops the run before any training.
  others = estimators.OtherEstimators()
  total = 1 + len(controls) + len(layers) + len(global_conditioning_layers)
  study = Study(store, seed, total, shard, reconstructions)
  study.check_layers(layers)
  unknown = sorted(
      set(global_conditioning_layers) - set(layers) - set(controls)
  )
  if unknown:
    raise ValueError(
        f"global_conditioning_layers {unknown} are not among the probed "
        f"layers {list(layers)} or controls {list(controls)}."
    )

  trained_classifier = study.classifier()
  unconditional = study.unconditional()
  control_rows = study.controls(unconditional, controls, bootstrap_resamples)
  layer_rows, models = _layer_rows(
      study, trained_classifier, layers, unconditional, bootstrap_resamples
  )
  global_rows = []
  for name in global_conditioning_layers:
    if name in controls:
      condition = pipeline.control_condition(name, study.dataset, "global")
    else:
      condition = pipeline.layer_condition(trained_classifier, name, "global")
    global_rows.append(
        mi_row(
            study.model(condition),
            unconditional,
            study.dims,
            bootstrap_resamples,
            seed,
        )
    )

  indices = sample_indices(study.dataset.test_labels, num_sample_images)
  arrays = {"originals": study.dataset.test_images[indices]}
  shown = [m for m in study.models if m.condition.name == "input"][:1]
  shown += [models[layer] for layer in layers]
  for trained in shown + [unconditional]:
    arrays[trained.condition.name] = study.samples(
        trained, indices, samples_per_image
    )
  decoder_rows, decoder_keys = [], {}
  if reconstructions:
    # From the conditions, not from `shown`: a shard without the input
    # control's inversion model still trains its decoder if it owns it.
    columns = [
        (layer, pipeline.layer_condition(trained_classifier, layer))
        for layer in layers
    ]
    if "input" in controls:
      columns.insert(
          0, ("input", pipeline.control_condition("input", study.dataset))
      )
    decoder_rows, decoder_keys = study.reconstructions(columns, indices, arrays)

  estimator_rows = _estimator_rows(
      study,
      others,
      _control_conditions(study, controls)
      + [
          ("layer", pipeline.layer_condition(trained_classifier, layer))
          for layer in layers
      ],
  )

  results = {
      "experiment": "mi_per_layer",
      "dataset": pipeline.dataset_spec(study.dataset),
      "dims": study.dims,
      "classifier": classifier_summary(trained_classifier),
      "unconditional": entropy_summary(
          unconditional, study.dims, bootstrap_resamples, seed
      ),
      "rows": control_rows + layer_rows + global_rows,
      "estimators": dict(
          others.settings(len(study.dataset.test_labels)),
          rows=estimator_rows,
      ),
      "samples": {
          "test_indices": [int(i) for i in indices],
          "columns": [m.condition.name for m in shown] + ["unconditional"],
          "samples_per_image": samples_per_image,
      },
      "reconstructions": study.reconstruction_results(
          decoder_rows, decoder_keys
      ),
      "artifacts": study.artifacts([trained_classifier]),
      "seconds": time.time() - started,
  }
  return results, arrays


@gin.configurable(denylist=["store", "seed", "shard"])
def inversion_samples(
    store,
    seed,
    shard=None,
    layers=DIGITS_LAYERS,
    num_sample_images=6,
    samples_per_image=4,
    reconstructions=False,
):
  """A grid of samples: per test image, several per layer in depth order.

  Uses the same models as `mi_per_layer` (from the store when that ran
  first), so the grid shows what the MI table measures.

  Args:
    store: an `ArtifactStore`.
    seed: the master seed.
    shard: a `pipeline.Shard` to train only this shard's models.
    layers: layer names in depth order.
    num_sample_images: test images, one row each.
    samples_per_image: samples per test image and layer.
    reconstructions: whether an MSE decoder is trained for the input and
      every layer, its reconstruction drawn beside the layer's samples.

  Returns:
    `(results, samples)`.
  """
  started = time.time()
  study = Study(store, seed, 2 + len(layers), shard, reconstructions)
  study.check_layers(layers)
  trained_classifier = study.classifier()
  indices = sample_indices(study.dataset.test_labels, num_sample_images)
  arrays = {"originals": study.dataset.test_images[indices]}
  conditions = [pipeline.control_condition("input", study.dataset)]
  conditions += [
      pipeline.layer_condition(trained_classifier, layer) for layer in layers
  ]
  for condition in conditions + [pipeline.unconditional()]:
    trained = study.model(condition)
    arrays[condition.name] = study.samples(trained, indices, samples_per_image)
  decoder_rows, decoder_keys = [], {}
  if reconstructions:
    decoder_rows, decoder_keys = study.reconstructions(
        [(c.name, c) for c in conditions], indices, arrays
    )
  results = {
      "experiment": "inversion_samples",
      "dataset": pipeline.dataset_spec(study.dataset),
      "classifier": classifier_summary(trained_classifier),
      "samples": {
          "test_indices": [int(i) for i in indices],
          "test_labels": [int(study.dataset.test_labels[i]) for i in indices],
          "columns": [c.name for c in conditions] + ["unconditional"],
          "samples_per_image": samples_per_image,
      },
      "reconstructions": study.reconstruction_results(
          decoder_rows, decoder_keys
      ),
      "rows": [],
      "artifacts": study.artifacts([trained_classifier]),
      "seconds": time.time() - started,
  }
  return results, arrays


@gin.configurable(denylist=["store", "seed", "shard"])
def architectures(
    store,
    seed,
    shard=None,
    downsampling=("max_pool", "avg_pool", "strided_conv"),
    layers=DIGITS_LAYERS,
    controls=pipeline.CONTROLS,
    num_sample_images=6,
    samples_per_image=1,
    bootstrap_resamples=2000,
    reconstructions=False,
):
  """The same trunk with different down-sampling, the same probed depths.

  Args:
    store: an `ArtifactStore`.
    seed: the master seed.
    shard: a `pipeline.Shard` to train only this shard's models.
    downsampling: the variants of `ClassifierConfig.downsampling` compared.
    layers: probed layer names in depth order, the same for every variant.
    controls: control rows (shared by the variants: they do not depend on
      the classifier).
    num_sample_images: test images in each variant's sample grid.
    samples_per_image: samples per test image and layer.
    bootstrap_resamples: resamples for every interval.
    reconstructions: whether an MSE decoder is trained for every variant
      and layer, its reconstruction drawn beside the layer's samples.

  Returns:
    `(results, samples)`; sample arrays are keyed "<variant>__<layer>",
    reconstructions "<variant>__<layer>__mse".
  """
  started = time.time()
  total = 1 + len(controls) + len(downsampling) * len(layers)
  study = Study(store, seed, total, shard, reconstructions)
  configs = {
      kind: _with_downsampling(study.classifier_config, kind)
      for kind in downsampling
  }
  for config in configs.values():
    study.check_layers(layers, config)

  unconditional = study.unconditional()
  rows = study.controls(unconditional, controls, bootstrap_resamples)
  for row in rows:
    row["group"] = "controls"
  indices = sample_indices(study.dataset.test_labels, num_sample_images)
  arrays = {"originals": study.dataset.test_images[indices]}
  variants = {}
  trained_classifiers = []
  decoder_rows, decoder_keys = [], {}
  for kind, config in configs.items():
    trained_classifier = study.classifier(config)
    trained_classifiers.append(trained_classifier)
    layer_rows, models = _layer_rows(
        study, trained_classifier, layers, unconditional, bootstrap_resamples
    )
    rows += [dict(row, group=kind) for row in layer_rows]
    variants[kind] = classifier_summary(trained_classifier)
    for layer in layers:
      arrays[f"{kind}__{layer}"] = study.samples(
          models[layer], indices, samples_per_image
      )
    if reconstructions:
      variant_rows, keys = study.reconstructions(
          [(f"{kind}__{layer}", models[layer].condition) for layer in layers],
          indices,
          arrays,
          group=kind,
      )
      decoder_rows += variant_rows
      decoder_keys.update(keys)

  results = {
      "experiment": "architectures",
      "dataset": pipeline.dataset_spec(study.dataset),
      "dims": study.dims,
      "variants": variants,
      "unconditional": entropy_summary(
          unconditional, study.dims, bootstrap_resamples, seed
      ),
      "rows": rows,
      "samples": {
          "test_indices": [int(i) for i in indices],
          "columns": list(layers),
          "groups": list(downsampling),
          "samples_per_image": samples_per_image,
      },
      "reconstructions": study.reconstruction_results(
          decoder_rows, decoder_keys
      ),
      "artifacts": study.artifacts(trained_classifiers),
      "seconds": time.time() - started,
  }
  return results, arrays


def _with_downsampling(config, kind):
  return dataclasses.replace(config, downsampling=kind)


@gin.configurable(denylist=["store", "seed", "shard"])
def mi_training_dynamics(
    store,
    seed,
    shard=None,
    epochs=(0, 1, 3, 10, 30),
    layers=("pool1", "pool2", "fc"),
    controls=pipeline.CONTROLS,
    num_sample_images=6,
    samples_per_image=1,
    bootstrap_resamples=2000,
):
  """MI per layer at checkpoints of one classifier over its training.

  As in `mi_per_layer`, `results['estimators']` holds the binning and
  kernel density estimates of the controls and of each (checkpoint, layer).

  Args:
    store: an `ArtifactStore`.
    seed: the master seed.
    shard: a `pipeline.Shard` to train only this shard's models.
    epochs: the classifier's checkpoints, in epochs; 0 is initialisation.
    layers: probed layer names in depth order.
    controls: control rows (the same at every checkpoint).
    num_sample_images: test images sampled at each checkpoint for the
      deepest probed layer.
    samples_per_image: samples per test image and checkpoint.
    bootstrap_resamples: resamples for every interval.

  Returns:
    `(results, samples)`; sample arrays are keyed 'epoch_<e>'.
  """
  started = time.time()
  # Built first, so that a bad setting stops the run before any training.
  others = estimators.OtherEstimators()
  epochs = [int(e) for e in epochs]
  total = 1 + len(controls) + len(epochs) * len(layers)
  study = Study(store, seed, total, shard)
  study.check_layers(layers)
  checkpoints = study.classifier_checkpoints(epochs)
  unconditional = study.unconditional()
  rows = study.controls(unconditional, controls, bootstrap_resamples)
  for row in rows:
    row["group"] = "controls"
  indices = sample_indices(study.dataset.test_labels, num_sample_images)
  arrays = {"originals": study.dataset.test_images[indices]}
  estimator_rows = _estimator_rows(
      study, others, _control_conditions(study, controls), group="controls"
  )
  for epoch, checkpoint in zip(epochs, checkpoints):
    layer_rows, models = _layer_rows(
        study, checkpoint, layers, unconditional, bootstrap_resamples
    )
    rows += [
        dict(row, group=f"epoch {epoch}", epoch=epoch) for row in layer_rows
    ]
    arrays[f"epoch_{epoch}"] = study.samples(
        models[layers[-1]], indices, samples_per_image
    )
    estimator_rows += _estimator_rows(
        study,
        others,
        [
            ("layer", pipeline.layer_condition(checkpoint, layer))
            for layer in layers
        ],
        group=f"epoch {epoch}",
        epoch=epoch,
    )

  results = {
      "experiment": "mi_training_dynamics",
      "dataset": pipeline.dataset_spec(study.dataset),
      "dims": study.dims,
      "epochs": epochs,
      "layers": list(layers),
      "accuracy": [
          {
              "epoch": epoch,
              "train_accuracy": c.record["train_accuracy"],
              "test_accuracy": c.record["test_accuracy"],
          }
          for epoch, c in zip(epochs, checkpoints)
      ],
      "unconditional": entropy_summary(
          unconditional, study.dims, bootstrap_resamples, seed
      ),
      "rows": rows,
      "estimators": dict(
          others.settings(len(study.dataset.test_labels)),
          rows=estimator_rows,
      ),
      "samples": {
          "test_indices": [int(i) for i in indices],
          "columns": [f"epoch_{e}" for e in epochs],
          "layer": layers[-1],
          "samples_per_image": samples_per_image,
      },
      "artifacts": study.artifacts(checkpoints),
      "seconds": time.time() - started,
  }
  return results, arrays
