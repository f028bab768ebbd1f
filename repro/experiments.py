"""The paper's experiments, each a gin-configurable function.

An experiment takes its output directory, an artifact store and a master
seed, trains or reuses what it needs through `repro.pipeline`, and writes
its numbers to `results.json` (plus tables) and its samples to
`samples.npz`. Figures are drawn afterwards from those files alone.
"""

import time

import gin
import numpy as np
from absl import logging

from repro import classifiers
from repro import data
from repro import estimate
from repro import inversion
from repro import pipeline
from repro import tables
from repro import training

DIGITS_LAYERS = ("input", "conv1", "pool1", "conv2", "pool2", "fc", "logits")


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


def _mi_row(trained, unconditional_nll, dims, resamples, seed):
  mi = estimate.mutual_information(
      unconditional_nll, trained.test_nll, resamples, seed=seed
  )
  return {
      "layer": trained.condition.name,
      "conditioning": trained.condition.conditioning,
      "shape": list(trained.condition.shape),
      "bits_per_dim": float(trained.test_nll.mean() / dims),
      "nll_bits": float(trained.test_nll.mean()),
      "mi": mi,
      "reused": trained.record["reused"],
      "train_seconds": trained.record["train_seconds"],
      "final_train_bits_per_dim": trained.record["final_train_bits_per_dim"],
  }


@gin.configurable(denylist=["output_dir", "store", "seed"])
def mi_per_layer(
    output_dir,
    store,
    seed,
    layers=DIGITS_LAYERS,
    global_conditioning_layers=("input",),
    num_sample_images=8,
    samples_per_image=1,
    bootstrap_resamples=2000,
):
  """MI between the input and each probed layer of one classifier.

  Trains the classifier, an unconditional PixelCNN for H(x), and one
  inversion model per layer (conditioned per pixel), plus TFP's global
  conditioning for `global_conditioning_layers` as the comparison.

  Args:
    output_dir: where results are written.
    store: an `ArtifactStore` for trained models.
    seed: the master seed.
    layers: layer names in depth order; 'input' is the image itself.
    global_conditioning_layers: layers also inverted with TFP's stock
      global conditioning.
    num_sample_images: test images shown in the sample figure.
    samples_per_image: samples per test image and layer.
    bootstrap_resamples: resamples for every interval.

  Returns:
    The results dict that is also written to `results.json`.
  """
  started = time.time()
  dataset = data.load_dataset()
  pixelcnn_config = inversion.PixelCNNConfig()
  train_config = training.TrainConfig()
  inversion.check_image_shape(dataset.image_shape, pixelcnn_config.num_stages)
  classifier_config = classifiers.ClassifierConfig()

  trained_classifier = pipeline.classifier(
      store, classifier_config, dataset, seed
  )
  classifiers.probe(trained_classifier.model, list(layers))
  unknown = sorted(set(global_conditioning_layers) - set(layers))
  if unknown:
    raise ValueError(
        f"global_conditioning_layers {unknown} are not among the probed "
        f"layers {list(layers)}."
    )

  jobs = [(layer, "spatial") for layer in layers]
  jobs += [(layer, "global") for layer in global_conditioning_layers]
  total = len(jobs) + 1
  dims = float(np.prod(dataset.image_shape))

  logging.info("[1/%d] unconditional model", total)
  unconditional = pipeline.inversion_model(
      store,
      dataset,
      pipeline.unconditional(),
      pixelcnn_config,
      train_config,
      seed,
  )
  trained = []
  for number, (layer, conditioning) in enumerate(jobs, start=2):
    logging.info("[%d/%d] %s (%s)", number, total, layer, conditioning)
    condition = pipeline.layer_condition(
        trained_classifier, dataset, layer, conditioning
    )
    trained.append(
        pipeline.inversion_model(
            store, dataset, condition, pixelcnn_config, train_config, seed
        )
    )

  indices = sample_indices(dataset.test_labels, num_sample_images)
  sample_arrays = {"originals": dataset.test_images[indices]}
  sample_seed = seed
  for model in trained:
    if model.condition.conditioning == "spatial":
      sample_arrays[model.condition.name] = pipeline.samples(
          model, indices, samples_per_image, sample_seed
      )
  sample_arrays["unconditional"] = pipeline.samples(
      unconditional, indices, samples_per_image, sample_seed
  )

  entropy = estimate.bootstrap_mean(
      unconditional.test_nll, bootstrap_resamples, seed=seed
  )
  rows = [
      _mi_row(model, unconditional.test_nll, dims, bootstrap_resamples, seed)
      for model in trained
  ]
  every_model = [unconditional] + trained
  results = {
      "experiment": "mi_per_layer",
      "dataset": pipeline.dataset_spec(dataset),
      "dims": dims,
      "classifier": {
          "config": trained_classifier.spec["classifier"],
          "train_accuracy": trained_classifier.record["train_accuracy"],
          "test_accuracy": trained_classifier.record["test_accuracy"],
          "reused": trained_classifier.record["reused"],
      },
      "unconditional": {
          "bits_per_dim": float(unconditional.test_nll.mean() / dims),
          "entropy": entropy,
          "reused": unconditional.record["reused"],
          "train_seconds": unconditional.record["train_seconds"],
      },
      "rows": rows,
      "samples": {
          "file": "samples.npz",
          "test_indices": [int(i) for i in indices],
          "layers": [
              m.condition.name
              for m in trained
              if m.condition.conditioning == "spatial"
          ],
          "samples_per_image": samples_per_image,
          "seed": sample_seed,
      },
      "artifacts": {
          "trained": sum(not m.record["reused"] for m in every_model)
          + (not trained_classifier.record["reused"]),
          "reused": sum(m.record["reused"] for m in every_model)
          + trained_classifier.record["reused"],
      },
      "seconds": time.time() - started,
  }
  tables.write_results(output_dir, results, sample_arrays)
  return results
