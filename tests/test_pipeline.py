"""What a run finds in the store costs no network and no recomputation."""

import dataclasses

import numpy as np

from repro import classifiers
from repro import data as data_lib
from repro import estimators
from repro import inversion
from repro import pipeline
from repro import store as store_lib
from repro import training


def dataset():
  """32 train and 16 test images of 4x4 noise, in two classes."""
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (48, 4, 4, 1)).astype(np.uint8)
  labels = np.arange(48, dtype=np.int64) % 2
  return data_lib.Dataset(
      "noise", images[:32], labels[:32], images[32:], labels[32:], 2
  )


PIXELCNN = inversion.PixelCNNConfig(
    num_filters=4, num_logistic_mix=2, conditioner_filters=4
)
TRAIN = training.TrainConfig(steps=2, batch_size=8, checkpoint_every=2)


def test_a_found_model_is_built_only_for_samples_the_store_lacks(tmp_path):
  data = dataset()
  store = store_lib.ArtifactStore(str(tmp_path))
  condition = pipeline.control_condition("label", data)
  first = pipeline.inversion_model(store, data, condition, PIXELCNN, TRAIN, 0)
  drawn = pipeline.samples(first, data, [0, 1], 2, seed=3)
  assert drawn.shape == (2, 2, 4, 4, 1) and drawn.dtype == np.uint8
  # Drawn by the trained network, then dropped from the store.
  other = pipeline.samples(first, data, [2], 2, seed=4)
  (dropped,) = [
      path
      for path in tmp_path.glob("inversion/*/samples-*.npy")
      if np.array_equal(np.load(path), other)
  ]
  dropped.unlink()

  second = pipeline.inversion_model(store, data, condition, PIXELCNN, TRAIN, 0)
  assert second.record["reused"] and not second.restored
  np.testing.assert_array_equal(second.test_nll, first.test_nll)
  np.testing.assert_array_equal(
      pipeline.samples(second, data, [0, 1], 2, seed=3), drawn
  )
  assert not second.restored

  # Samples the store lacks: the network is restored from its checkpoint
  # and draws what the trained one drew.
  np.testing.assert_array_equal(
      pipeline.samples(second, data, [2], 2, seed=4), other
  )
  assert second.restored


class CountingCondition:
  """A condition that counts how often its activations are computed."""

  def __init__(self, data):
    self.calls = 0
    self.wrapped = pipeline.control_condition("input", data)
    self.name = "input"
    self.source = self.wrapped.source

  def on(self, images, labels):
    self.calls += 1
    return self.wrapped.on(images, labels)


def test_other_estimates_are_stored_and_recomputed_only_when_new(tmp_path):
  data = dataset()
  store = store_lib.ArtifactStore(str(tmp_path))
  condition = CountingCondition(data)
  others = estimators.OtherEstimators(bin_counts=(2,), kde_noise_variance=0.1)
  first, computed = pipeline.other_estimates(store, data, condition, others)
  assert condition.calls == 1 and computed == 2
  expected = [
      others.estimate(m, data.test_images.astype(np.float32))
      for m in others.measures()
  ]
  assert first == expected

  assert pipeline.other_estimates(store, data, condition, others) == (first, 0)
  assert condition.calls == 1

  # A new bin count is one new estimate; the others come from the store.
  more = estimators.OtherEstimators(bin_counts=(2, 30), kde_noise_variance=0.1)
  bits, computed = pipeline.other_estimates(store, data, condition, more)
  assert condition.calls == 2 and computed == 1
  assert bits[0] == first[0] and bits[2] == first[1]
  assert len(list(tmp_path.glob("estimate/*/record.json"))) == 3

  # Other test images are other estimates.
  changed = dataclasses.replace(data, test_images=data.test_images[::-1])
  assert pipeline.other_estimates(store, changed, condition, others)[1] == 2

  # A shard computes only the estimates it owns.
  shards = [
      pipeline.other_estimates(
          store_lib.ArtifactStore(str(tmp_path / "sharded")),
          data,
          condition,
          more,
          pipeline.Shard(index, 2),
      )
      for index in range(2)
  ]
  assert sum(computed for _, computed in shards) == 3
  for (a, _), (b, _) in [shards, shards[::-1]]:
    assert all((x is None) != (y is None) for x, y in zip(a, b))


def test_a_finished_classifier_checkpoint_is_kept_when_others_are_added(
    tmp_path,
):
  data = dataset()
  data = dataclasses.replace(
      data,
      train_images=np.tile(data.train_images, (1, 2, 2, 1)),
      test_images=np.tile(data.test_images, (1, 2, 2, 1)),
  )
  store = store_lib.ArtifactStore(str(tmp_path))
  config = classifiers.ClassifierConfig(width=2, hidden_units=4, batch_size=8)
  (first,) = pipeline.classifier_checkpoints(store, config, data, 0, [2])
  path = tmp_path / "classifier" / first.directory.split("/")[-1]
  saved = (path / "model.keras").read_bytes()
  record = (path / store_lib.RECORD).read_text()

  initial, again = pipeline.classifier_checkpoints(
      store, config, data, 0, [0, 2]
  )
  assert not initial.record["reused"] and again.record["reused"]
  assert again.directory == first.directory
  assert (path / "model.keras").read_bytes() == saved
  assert (path / store_lib.RECORD).read_text() == record
