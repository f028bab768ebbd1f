"""The MSE decoder: it learns, it is deterministic, it is cached, it checks."""

import dataclasses

import numpy as np
import pytest

from repro import data as data_lib
from repro import decoder
from repro import pipeline
from repro import store as store_lib


def blobs(count, seed=0):
  """8-bit 8x8 images of a bright square at a random place."""
  rng = np.random.default_rng(seed)
  images = np.zeros((count, 8, 8, 1), np.uint8)
  for image, (row, column) in zip(images, rng.integers(0, 5, (count, 2))):
    image[row : row + 3, column : column + 3] = 200
  return images + rng.integers(0, 30, images.shape).astype(np.uint8)


def dataset():
  train, test = blobs(256, seed=0), blobs(32, seed=1)
  return data_lib.Dataset(
      "blobs", train, np.zeros(256, np.int64), test, np.zeros(32, np.int64), 2
  )


CONFIG = decoder.DecoderConfig(
    filters=8, blocks=1, steps=150, batch_size=32, learning_rate=0.005
)


def test_the_identity_is_learnt_far_below_the_mean_image(tmp_path):
  data = dataset()
  trained = pipeline.mse_decoder(
      store_lib.ArtifactStore(str(tmp_path)),
      data,
      pipeline.control_condition("input", data),
      CONFIG,
      master_seed=0,
  )
  record = trained.record
  assert not record["reused"]
  # A square that moves has a flat mean image: predicting it is far off.
  assert record["mean_image_mse"] > 0.05
  assert record["test_mse"] < 0.2 * record["mean_image_mse"]
  assert record["test_psnr"] == pytest.approx(
      10 * np.log10(1 / record["test_mse"])
  )


def test_reconstructions_are_deterministic_and_the_decoder_is_reused(
    tmp_path,
):
  data = dataset()
  store = store_lib.ArtifactStore(str(tmp_path))
  condition = pipeline.control_condition("input", data)
  config = dataclasses.replace(CONFIG, steps=3)
  first = pipeline.mse_decoder(store, data, condition, config, 0)
  images = pipeline.reconstructions(first, data, [0, 3, 5])
  assert images.dtype == np.uint8 and images.shape == (3, 8, 8, 1)
  np.testing.assert_array_equal(
      pipeline.reconstructions(first, data, [0, 3, 5]), images
  )

  others = decoder.to_uint8(
      decoder.reconstruct(first.model, data.test_images[:2].astype(np.float32))
  )

  second = pipeline.mse_decoder(store, data, condition, config, 0)
  assert second.record["reused"] and not first.record["reused"]
  assert second.directory == first.directory
  assert second.record["test_mse"] == first.record["test_mse"]
  # Stored reconstructions need no network.
  np.testing.assert_array_equal(
      pipeline.reconstructions(second, data, [0, 3, 5]), images
  )
  assert not second.restored
  # New ones: the restored weights give what the trained ones gave.
  np.testing.assert_array_equal(
      pipeline.reconstructions(second, data, [0, 1]), others
  )
  assert second.restored

  # Another configuration is another artifact.
  other = pipeline.mse_decoder(
      store, data, condition, dataclasses.replace(config, filters=4), 0
  )
  assert not other.record["reused"] and other.directory != first.directory


def test_a_shard_trains_only_its_own_decoders(tmp_path):
  data = dataset()
  store = store_lib.ArtifactStore(str(tmp_path))
  config = dataclasses.replace(CONFIG, steps=1)
  condition = pipeline.control_condition("label", data)
  results = [
      pipeline.mse_decoder(
          store, data, condition, config, 0, pipeline.Shard(index, 2)
      )
      for index in range(2)
  ]
  assert sum(result is not None for result in results) == 1


@pytest.mark.parametrize(
    "field, value, accepted",
    [
        ("filters", 0, "an integer >= 1"),
        ("blocks", 1.5, "an integer >= 1"),
        ("steps", True, "an integer >= 1"),
        ("batch_size", -4, "an integer >= 1"),
        ("learning_rate", 0.0, "a finite number > 0"),
        ("learning_rate", float("nan"), "a finite number > 0"),
        ("learning_rate", "fast", "a finite number > 0"),
    ],
)
def test_a_bad_setting_is_refused_naming_it(field, value, accepted):
  with pytest.raises(ValueError) as error:
    decoder.DecoderConfig(**{field: value})
  assert f"DecoderConfig.{field}={value!r}" in str(error.value)
  assert accepted in str(error.value)


def test_a_batch_larger_than_the_data_is_refused_before_training(tmp_path):
  data = dataset()
  with pytest.raises(ValueError, match="batch_size=512 exceeds the 256"):
    pipeline.mse_decoder(
        store_lib.ArtifactStore(str(tmp_path)),
        data,
        pipeline.control_condition("input", data),
        dataclasses.replace(CONFIG, batch_size=512),
        0,
    )
  assert not list(tmp_path.glob("decoder/*/record.json"))


@pytest.mark.parametrize("shape", [(5,), (4, 4, 3), (8, 8, 2)])
def test_any_activation_shape_decodes_to_the_image(shape):
  channels = shape[-1]
  model = decoder.build_decoder(
      CONFIG, shape, (8, 8, 1), (np.zeros(channels), np.ones(channels)), 0.2
  )
  output = decoder.reconstruct(
      model, np.random.default_rng(0).normal(size=(3, *shape))
  )
  assert output.shape == (3, 8, 8, 1)
  assert np.all((output > 0) & (output < 1))
