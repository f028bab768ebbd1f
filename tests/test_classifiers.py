"""Classifiers: named layers, probing, and the errors for unknown names."""

import numpy as np
import pytest

from repro import classifiers


@pytest.fixture(scope="module")
def digits_model():
  config = classifiers.ClassifierConfig(width=4, hidden_units=8)
  return classifiers.build_classifier(config, (28, 28, 1), 10)


def test_probe_layers_are_named_in_depth_order(digits_model):
  names = classifiers.layer_names(digits_model)
  expected = ["input", "conv1", "pool1", "conv2", "pool2", "fc", "logits"]
  assert [n for n in names if n in expected] == expected


def test_unknown_layer_lists_the_layers_that_exist(digits_model):
  with pytest.raises(ValueError) as error:
    classifiers.probe(digits_model, ["conv3"])
  message = str(error.value)
  assert "conv3" in message
  for name in ("conv1", "pool2", "fc", "logits"):
    assert name in message


@pytest.mark.parametrize("downsampling", classifiers.DOWNSAMPLING)
def test_activation_shapes(downsampling):
  config = classifiers.ClassifierConfig(
      width=4, hidden_units=8, downsampling=downsampling
  )
  model = classifiers.build_classifier(config, (28, 28, 1), 10)
  images = np.zeros((3, 28, 28, 1), np.uint8)
  shapes = {
      name: classifiers.activations(model, name, images).shape
      for name in ("input", "conv1", "pool1", "pool2", "fc", "logits")
  }
  assert shapes == {
      "input": (3, 28, 28, 1),
      "conv1": (3, 28, 28, 4),
      "pool1": (3, 14, 14, 4),
      "pool2": (3, 7, 7, 8),
      "fc": (3, 8),
      "logits": (3, 10),
  }


def test_input_activation_is_the_image(digits_model):
  images = np.random.default_rng(0).integers(0, 256, (2, 28, 28, 1))
  np.testing.assert_array_equal(
      classifiers.activations(digits_model, "input", images), images
  )


def test_probe_is_frozen(digits_model):
  assert not classifiers.probe(digits_model, ["fc"]).trainable_weights


def test_cifar_resnet_has_its_probe_points():
  config = classifiers.ClassifierConfig(
      architecture="cifar_resnet", width=4, resnet_blocks=1
  )
  model = classifiers.build_classifier(config, (32, 32, 3), 10)
  shapes = {
      name: tuple(model.get_layer(name).output.shape[1:])
      for name in ("conv1", "stage1", "stage2", "stage3", "pool", "logits")
  }
  assert shapes == {
      "conv1": (32, 32, 4),
      "stage1": (32, 32, 4),
      "stage2": (16, 16, 8),
      "stage3": (8, 8, 16),
      "pool": (16,),
      "logits": (10,),
  }


@pytest.mark.parametrize(
    "field, value",
    [
        ("architecture", "vgg"),
        ("downsampling", "unpool"),
        ("width", 0),
        ("epochs", -1),
        ("learning_rate", "fast"),
    ],
)
def test_bad_config_names_the_field(field, value):
  with pytest.raises(ValueError, match=f"ClassifierConfig.{field}="):
    classifiers.ClassifierConfig(**{field: value})
