"""Mixed precision and tf.distribute give the numbers of the plain model."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np

from repro import inversion

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build(precision):
  keras.utils.set_random_seed(0)
  config = inversion.PixelCNNConfig(
      num_filters=8,
      num_logistic_mix=3,
      conditioner_filters=8,
      precision=precision,
  )
  return inversion.build_inversion_model(
      config, (8, 8, 3), "spatial", (4, 4, 2), (np.zeros(2), np.ones(2))
  )


def test_mixed_precision_agrees_with_float32():
  plain, mixed = build("float32"), build("mixed_bfloat16")
  for source, target in zip(plain.network.variables, mixed.network.variables):
    target.assign(source)
  assert mixed.network.output_layer.compute_dtype == "bfloat16"
  assert mixed.network.output_layer.kernel.dtype == "float32"
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (6, 8, 8, 3)).astype(np.float32)
  conditions = rng.normal(size=(6, 4, 4, 2)).astype(np.float32)
  expected = plain.log_prob(images, conditional_input=conditions).numpy()
  actual = mixed.log_prob(images, conditional_input=conditions).numpy()
  assert actual.dtype == np.float32
  # bfloat16 keeps 8 bits of mantissa: agreement to a percent per image.
  np.testing.assert_allclose(actual, expected, rtol=0.01)
  samples = mixed.sample(2, seed=(0, 1), conditional_input=conditions[:2])
  assert samples.shape == (2, 8, 8, 3)


MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys, tempfile
    import repro
    import keras, numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from repro import inversion, training

    config = inversion.PixelCNNConfig(
        num_filters=4, num_logistic_mix=2, conditioner_filters=4)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 4, 4, 1)).astype(np.float32)
    conditions = rng.normal(size=(8, 3)).astype(np.float32)
    train = training.TrainConfig(steps=1, batch_size=8, checkpoint_every=1)

    def one_step(strategy):
      keras.utils.set_random_seed(0)
      with strategy.scope():
        model = inversion.build_inversion_model(
            config, (4, 4, 1), "spatial", (3,), (np.zeros(3), np.ones(3)))
      initial = [np.asarray(v.numpy()).tolist()
                 for v in model.network.trainable_variables]
      result = training.train(model, images, conditions, train,
                              tempfile.mkdtemp(), seed=0, strategy=strategy)
      weights = [np.asarray(v.numpy()).tolist()
                 for v in model.network.trainable_variables]
      return result["final_train_bits_per_dim"], initial, weights

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    single = one_step(tf.distribute.get_strategy())
    double = one_step(mirrored)
    print("RESULT " + json.dumps({"single": single, "mirrored": double}))
    """)


def test_a_mirrored_step_equals_a_single_device_step():
  """One step on two logical CPUs gives the loss and weights of one CPU."""
  output = subprocess.run(
      [sys.executable, "-c", MIRRORED_SCRIPT],
      cwd=REPOSITORY,
      capture_output=True,
      text=True,
      timeout=600,
  )
  assert output.returncode == 0, output.stderr[-3000:]
  line = [l for l in output.stdout.splitlines() if l.startswith("RESULT ")]
  result = json.loads(line[0][len("RESULT ") :])
  single_loss, initial, single = result["single"]
  mirrored_loss, mirrored_initial, mirrored = result["mirrored"]
  np.testing.assert_allclose(mirrored_loss, single_loss, rtol=1e-5)
  moved = 0
  for start, other_start, a, b in zip(
      initial, mirrored_initial, single, mirrored
  ):
    np.testing.assert_array_equal(np.array(other_start), np.array(start))
    # Adam normalises the first step, so a weight moves by about the
    # learning rate (2e-3) whatever its gradient. Where a gradient is within
    # a few epsilons of zero the order of the cross-replica sum shifts that
    # step by a few percent of it; a lost or wrong replica flips its sign.
    np.testing.assert_allclose(np.array(b), np.array(a), rtol=1e-4, atol=2e-4)
    moved += not np.allclose(np.array(a), np.array(start))
  # The step changed most of the weights, so the agreement says something.
  assert moved > len(initial) // 2
