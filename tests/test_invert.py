"""Inverting a saved model: the real command line, and each refusal.

The end-to-end runs invert a tiny saved classifier of 8x8 images read from
a directory of PNG files, at smoke scale, into temporary directories; the
checks that refuse bad input are called directly, since they need no
training.
"""

import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from repro import data
from repro import invert as invert_cli
from repro import own_model

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = 3
PER_CLASS = 8
SHAPE = (8, 8, 1)


def write_png(path, image):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tf.io.write_file(str(path), tf.io.encode_png(image))


def write_images(directory, shape=SHAPE, per_class=PER_CLASS, seed=0):
  """`CLASSES` sub-directories of random 8-bit images, brighter by class."""
  rng = np.random.default_rng(seed)
  for label in range(CLASSES):
    for index in range(per_class):
      image = rng.integers(0, 100, shape) + 70 * label
      write_png(
          os.path.join(directory, f"class_{label}", f"{index}.png"),
          image.astype(np.uint8),
      )
  return str(directory)


def tiny_classifier(shape=SHAPE, seed=0, activation="relu"):
  """Input -> Conv ('conv') -> Flatten -> Dense ('logits'), rescaling inside."""
  keras.utils.set_random_seed(seed)
  images = keras.Input(shape, name="image")
  x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(images)
  x = keras.layers.Conv2D(
      2, 3, strides=2, padding="same", activation=activation, name="conv"
  )(x)
  x = keras.layers.Flatten(name="flatten")(x)
  logits = keras.layers.Dense(CLASSES, name="logits")(x)
  return keras.Model(images, logits, name="tiny")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
  root = tmp_path_factory.mktemp("invert")
  path = str(root / "tiny.keras")
  tiny_classifier().save(path)
  return {
      "root": root,
      "model": path,
      "images": write_images(root / "images"),
      "cache": root / "cache",
  }


def run_invert(workspace, output_dir, *arguments, model=None):
  command = [
      sys.executable,
      "-m",
      "repro.invert",
      f"--model={model or workspace['model']}",
      "--gin_file=gin/invert.gin",
      "--gin_file=gin/scale/smoke.gin",
      "--gin_param=load_dataset.name = 'directory'",
      f"--gin_param=load_dataset.data_dir = '{workspace['images']}'",
      "--gin_param=load_dataset.test_fraction = 0.25",
      "--gin_param=load_dataset.max_train = None",
      "--gin_param=load_dataset.max_test = None",
      "--gin_param=invert.controls = ['constant']",
      "--gin_param=invert.num_sample_images = 2",
      "--gin_param=invert.samples_per_image = 1",
      "--gin_param=invert.bootstrap_resamples = 100",
      f"--gin_param=run.cache_dir = '{workspace['cache']}'",
      f"--output_dir={output_dir}",
      *arguments,
  ]
  return subprocess.run(
      command, cwd=REPOSITORY, capture_output=True, text=True, timeout=600
  )


@pytest.fixture(scope="module")
def first_run(workspace):
  output_dir = workspace["root"] / "out"
  result = run_invert(workspace, output_dir, "--layer=conv")
  assert result.returncode == 0, result.stderr[-4000:]
  return output_dir


def read_json(path):
  with open(path) as f:
    return json.load(f)


def fingerprint(path):
  return own_model.model_fingerprint(own_model.load_classifier(path))


def test_writes_table_samples_and_config_with_finite_numbers(first_run):
  for name in (
      "results.json",
      "results.csv",
      "results.md",
      "samples.npz",
      "samples.png",
      "samples.pdf",
      "operative_config.gin",
  ):
    assert os.path.getsize(first_run / name) > 0, name

  results = read_json(first_run / "results.json")
  assert results["experiment"] == "invert"
  assert results["dataset"]["name"] == "directory"
  assert results["dataset"]["num_test"] == CLASSES * 2
  assert results["model"]["layers"] == ["conv"]
  assert results["model"]["file_sha256"] == own_model.file_sha256(
      results["model"]["file"]
  )
  assert results["model"]["fingerprint"] == fingerprint(
      results["model"]["file"]
  )
  assert [(r["layer"], r["kind"]) for r in results["rows"]] == [
      ("constant", "control"),
      ("conv", "layer"),
  ]
  assert results["rows"][1]["shape"] == [4, 4, 2]

  with open(first_run / "results.csv") as f:
    rows = list(csv.DictReader(f))
  assert [row["layer"] for row in rows] == ["H(x)", "constant", "conv"]
  for row in rows:
    for key in ("bits_per_dim", "mi", "mi_low", "mi_high"):
      assert math.isfinite(float(row[key])), (row["layer"], key)
  assert 0.0 <= float(rows[2]["test_accuracy"]) <= 1.0

  with np.load(first_run / "samples.npz") as samples:
    assert samples["originals"].shape == (2, *SHAPE)
    for column in results["samples"]["columns"]:
      assert samples[column].shape == (2, 1, *SHAPE)
      assert samples[column].dtype == np.uint8
  with open(first_run / "operative_config.gin") as f:
    assert "invert.input_scale = 'raw'" in f.read()


def test_the_model_saved_again_reuses_every_model_and_its_results(
    workspace, first_run, tmp_path
):
  first = read_json(first_run / "results.json")
  assert first["artifacts"] == {
      "trained": 3,
      "reused": 0,
      "restored": 0,
      "skipped": 0,
      "estimates": {"computed": 0, "found": 0},
  }
  # The first run took well over a second, so the time Keras writes into
  # the new file differs from the one in the old.
  resaved = str(tmp_path / "resaved.keras")
  own_model.load_classifier(workspace["model"]).save(resaved)
  assert own_model.file_sha256(resaved) != first["model"]["file_sha256"]

  # A run of another model would refuse to replace these results.
  again = tmp_path / "again"
  shutil.copytree(first_run, again)
  result = run_invert(workspace, again, "--layer=conv", model=resaved)
  assert result.returncode == 0, result.stderr[-4000:]
  second = read_json(again / "results.json")
  assert second["artifacts"] == {
      "trained": 0,
      "reused": 3,
      "restored": 0,
      "skipped": 0,
      "estimates": {"computed": 0, "found": 0},
  }
  assert second["rows"] == [dict(r, reused=True) for r in first["rows"]]
  assert second["config_fingerprint"] == first["config_fingerprint"]
  assert second["model"]["fingerprint"] == first["model"]["fingerprint"]
  assert second["model"]["file_sha256"] != first["model"]["file_sha256"]


def test_an_unknown_layer_stops_the_run_before_anything_is_loaded(
    workspace,
):
  # No store and no data: reaching either would fail otherwise.
  with pytest.raises(ValueError, match="conv9") as info:
    own_model.invert(
        None, 0, model_file=workspace["model"], layers=["conv", "conv9"]
    )
  assert "['image', 'rescale', 'conv', 'flatten', 'logits']" in str(info.value)


def test_layer_flags_may_repeat_or_hold_commas():
  assert invert_cli.layer_list(["conv", "pool, fc"]) == ["conv", "pool", "fc"]


def test_the_artifact_key_survives_loading_and_saving_again(tmp_path):
  first, again, legacy = (
      str(tmp_path / name) for name in ("a.keras", "b.keras", "b.h5")
  )
  tiny_classifier().save(first)
  # Keras writes the time of saving, to the second, into a .keras file.
  time.sleep(1.1)
  own_model.load_classifier(first).save(again)
  own_model.load_classifier(first).save(legacy)
  assert own_model.file_sha256(first) != own_model.file_sha256(again)

  fingerprints = [fingerprint(path) for path in (first, first, again, legacy)]
  assert len(set(fingerprints)) == 1
  assert len(fingerprints[0]) == 64
  image = np.zeros(SHAPE, np.uint8)
  sources = [
      own_model.layer_condition(
          own_model.load_classifier(path),
          "conv",
          fingerprint(path),
          "raw",
          image,
      ).source
      for path in (first, again)
  ]
  assert sources[0] == sources[1]
  assert sources[0]["fingerprint"] == fingerprints[0]
  assert sources[0]["layer"] == "conv"


def test_one_weight_or_one_setting_changes_the_fingerprint(tmp_path):
  path = str(tmp_path / "a.keras")
  tiny_classifier().save(path)
  model = own_model.load_classifier(path)
  original = own_model.model_fingerprint(model)

  # The smallest step a float32 can take, in one element of one kernel.
  kernel = model.get_layer("conv").kernel
  values = np.array(keras.ops.convert_to_numpy(kernel))
  changed = values.copy()
  changed[0, 0, 0, 0] = np.nextafter(changed[0, 0, 0, 0], np.float32(np.inf))
  kernel.assign(changed)
  assert own_model.model_fingerprint(model) != original
  kernel.assign(values)
  assert own_model.model_fingerprint(model) == original

  # The same weights give the same fingerprint in a model built anew, but
  # another one behind another activation.
  relu, tanh = tiny_classifier(seed=1), tiny_classifier(activation="tanh")
  relu.set_weights(model.get_weights())
  tanh.set_weights(model.get_weights())
  assert own_model.model_fingerprint(relu) == original
  assert own_model.model_fingerprint(tanh) != original
  assert own_model.model_fingerprint(tiny_classifier(seed=1)) != original


def test_a_sequential_model_saved_as_h5_is_probed(tmp_path):
  keras.utils.set_random_seed(0)
  sequential = keras.Sequential(
      [
          keras.Input(SHAPE),
          keras.layers.Conv2D(2, 3, name="conv"),
          keras.layers.Flatten(name="flatten"),
          keras.layers.Dense(CLASSES, name="logits"),
      ]
  )
  path = str(tmp_path / "sequential.h5")
  sequential.save(path)
  model = own_model.load_classifier(path)
  own_model.check_layers(model, ["conv", "logits"])
  own_model.check_input_shape(model, SHAPE)
  images = np.zeros((3, *SHAPE), np.uint8)
  condition = own_model.layer_condition(model, "conv", "0", "unit", images[0])
  assert condition.shape == (6, 6, 2)
  assert condition.on(images, None).shape == (3, 6, 6, 2)


def test_input_scales_map_the_8_bit_range():
  images = np.array([0, 255], np.uint8)
  assert own_model.scale_images(images, "raw").tolist() == [0.0, 255.0]
  assert own_model.scale_images(images, "unit").tolist() == [0.0, 1.0]
  assert own_model.scale_images(images, "symmetric").tolist() == [-1.0, 1.0]


def test_an_unknown_input_scale_is_refused():
  with pytest.raises(ValueError, match="'pixels'; accepted: raw, unit"):
    own_model.invert(None, 0, model_file="x.keras", input_scale="pixels")


def test_a_missing_model_file_names_the_path(tmp_path):
  path = str(tmp_path / "absent.keras")
  with pytest.raises(FileNotFoundError, match=path) as info:
    own_model.load_classifier(path)
  assert ".keras or .h5" in str(info.value)


def test_a_file_keras_cannot_load_names_the_path(tmp_path):
  path = tmp_path / "broken.keras"
  path.write_text("not a model")
  with pytest.raises(ValueError, match="could not be loaded") as info:
    own_model.load_classifier(str(path))
  assert str(path) in str(info.value)
  other = tmp_path / "model.pt"
  other.write_text("")
  with pytest.raises(ValueError, match=r"neither \.keras nor \.h5"):
    own_model.load_classifier(str(other))


def test_an_unknown_layer_lists_the_model_layers():
  with pytest.raises(ValueError, match="conv9") as info:
    own_model.check_layers(tiny_classifier(), ["conv", "conv9"])
  assert "['image', 'rescale', 'conv', 'flatten', 'logits']" in str(info.value)


def test_a_layer_without_a_single_output_is_refused():
  sequence = keras.Input((5, 2))
  lstm = keras.layers.LSTM(3, return_state=True, name="lstm")
  output, _, _ = lstm(sequence)
  states = keras.Model(sequence, output)
  with pytest.raises(ValueError, match="'lstm' returns 3 tensors"):
    own_model.check_layers(states, ["lstm"])

  # A layer called twice has one output per call.
  shared = keras.layers.Dense(2, name="shared")
  inputs = keras.Input((2,))
  twice = keras.Model(inputs, shared(shared(inputs)))
  with pytest.raises(ValueError, match="'shared' has no single output"):
    own_model.check_layers(twice, ["shared"])


def test_an_input_shape_unlike_the_images_names_both_shapes():
  with pytest.raises(ValueError) as info:
    own_model.check_input_shape(tiny_classifier(), (28, 28, 1))
  assert "(8, 8, 1)" in str(info.value)
  assert "(28, 28, 1)" in str(info.value)
  own_model.check_input_shape(tiny_classifier(), SHAPE)


def test_a_directory_splits_each_class(tmp_path):
  dataset = data.load_dataset(
      "directory", data_dir=write_images(tmp_path), test_fraction=0.25
  )
  assert dataset.num_classes == CLASSES
  assert dataset.train_images.shape == (CLASSES * 6, *SHAPE)
  assert dataset.train_images.dtype == np.uint8
  assert np.bincount(dataset.test_labels).tolist() == [2] * CLASSES
  # Class k's images lie in [70 k, 70 k + 100).
  for images, labels in (
      (dataset.train_images, dataset.train_labels),
      (dataset.test_images, dataset.test_labels),
  ):
    lowest = images.reshape(len(images), -1).min(axis=1)
    assert np.all(lowest >= 70 * labels)


def test_a_missing_directory_is_named(tmp_path):
  path = str(tmp_path / "nowhere")
  with pytest.raises(data.DatasetUnavailableError, match=path):
    data.load_dataset("directory", data_dir=path)


def test_a_directory_without_images_lists_the_extensions(tmp_path):
  (tmp_path / "cats").mkdir()
  (tmp_path / "cats" / "notes.txt").write_text("")
  with pytest.raises(ValueError, match="no images") as info:
    data.load_dataset("directory", data_dir=str(tmp_path))
  assert ".png, .jpg, .jpeg, .bmp" in str(info.value)


def test_images_of_mixed_sizes_name_both(tmp_path):
  write_images(tmp_path)
  odd = tmp_path / "class_2" / "odd.png"
  write_png(odd, np.zeros((9, 8, 1), np.uint8))
  with pytest.raises(ValueError, match="differ in shape") as info:
    data.load_dataset("directory", data_dir=str(tmp_path))
  message = str(info.value)
  assert str(odd) in message and "(9, 8, 1)" in message
  assert "class_0" in message and "(8, 8, 1)" in message


def test_images_that_are_not_8_bit_are_refused(tmp_path):
  write_png(tmp_path / "a" / "deep.png", np.full((8, 8, 1), 1000, np.uint16))
  with pytest.raises(ValueError, match="16-bit PNG"):
    data.load_dataset("directory", data_dir=str(tmp_path))
  write_png(tmp_path / "b" / "a" / "alpha.png", np.zeros((8, 8, 4), np.uint8))
  with pytest.raises(ValueError, match="4 channels"):
    data.load_directory(str(tmp_path / "b"))


@pytest.mark.parametrize(
    "kwargs, complaint",
    [
        ({"name": "directory"}, "needs load_dataset.data_dir"),
        ({"test_fraction": 0.5}, "accepted only for 'directory'"),
        (
            {"name": "directory", "data_dir": "/x", "test_fraction": 1.0},
            r"test_fraction=1.0; accepted: a float in \(0, 1\)",
        ),
    ],
)
def test_directory_settings_are_checked(kwargs, complaint):
  with pytest.raises(ValueError, match=complaint):
    data.load_dataset(**kwargs)
