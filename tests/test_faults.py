"""Faults: killed runs resume to the same numbers, bad losses stop cleanly.

A run killed with SIGKILL while training and started again with the same
command must finish with the numbers of an uninterrupted run; a NaN loss
must stop training at the step that produced it and leave the last good
checkpoint as the latest.
"""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from repro import inversion
from repro import training

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Two models (unconditional, fc) of 40 steps each, deterministic kernels.
SMALL_RUN = (
    "--gin_file=gin/mi_per_layer.gin",
    "--gin_file=gin/scale/smoke.gin",
    "--gin_param=mi_per_layer.layers = ['fc']",
    "--gin_param=mi_per_layer.controls = []",
    "--gin_param=mi_per_layer.global_conditioning_layers = []",
    "--gin_param=TrainConfig.steps = 40",
    "--gin_param=TrainConfig.checkpoint_every = 4",
    "--gin_param=run.deterministic_ops = True",
)


def command(output_dir, cache_dir):
  return [
      sys.executable,
      "-m",
      "repro.main",
      *SMALL_RUN,
      f"--output_dir={output_dir}",
      f"--gin_param=run.cache_dir = '{cache_dir}'",
  ]


def run(output_dir, cache_dir):
  result = subprocess.run(
      command(output_dir, cache_dir),
      cwd=REPOSITORY,
      capture_output=True,
      text=True,
      timeout=600,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  with open(os.path.join(output_dir, "results.json")) as f:
    return json.load(f)


def numbers(results):
  """What a run computes, without timings and provenance."""
  rows = [
      {k: v for k, v in row.items() if k not in ("reused", "train_seconds")}
      for row in results["rows"]
  ]
  return rows, results["unconditional"]["entropy"]


def test_a_killed_run_resumes_to_the_numbers_of_an_uninterrupted_one(
    tmp_path,
):
  reference = run(tmp_path / "reference", tmp_path / "reference_cache")

  cache_dir = tmp_path / "cache"
  process = subprocess.Popen(
      command(tmp_path / "out", cache_dir),
      cwd=REPOSITORY,
      stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL,
  )
  # Kill it once the first inversion model has checkpointed mid-training.
  pattern = str(cache_dir / "inversion" / "*" / "checkpoints" / "ckpt-8.index")
  deadline = time.time() + 300
  while not glob.glob(pattern) and process.poll() is None:
    assert time.time() < deadline, "no checkpoint appeared"
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  process.wait()
  assert not (tmp_path / "out").exists()

  resumed = run(tmp_path / "out", cache_dir)
  records = [
      json.load(open(path))
      for path in glob.glob(str(cache_dir / "inversion" / "*" / "record.json"))
  ]
  assert any(r["resumed_from_step"] > 0 for r in records)
  assert all(r["steps"] == 40 for r in records)
  assert numbers(resumed) == numbers(reference)


def tiny_model(seed=0):
  keras.utils.set_random_seed(seed)
  config = inversion.PixelCNNConfig(
      num_filters=4, num_logistic_mix=2, conditioner_filters=4
  )
  return inversion.build_inversion_model(
      config, (4, 4, 1), "spatial", (3,), (np.zeros(3), np.ones(3))
  )


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(
    tmp_path,
):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (16, 4, 4, 1)).astype(np.float32)
  conditions = rng.normal(size=(16, 3)).astype(np.float32)
  # Poison the minibatch of step 3: its loss is NaN, the earlier ones are not.
  conditions[training.batch_indices(16, 4, 3, seed=5)] = np.nan
  config = training.TrainConfig(steps=10, batch_size=4, checkpoint_every=2)
  model = tiny_model()
  with pytest.raises(training.NonFiniteLossError, match="at step 3"):
    training.train(model, images, conditions, config, str(tmp_path), seed=5)
  latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
  assert latest.endswith("ckpt-2")
  assert not glob.glob(str(tmp_path / "checkpoints" / "ckpt-4*"))

  # The kept checkpoint is good: a fresh model restored from it is finite.
  restored = tiny_model(seed=1)
  training.restore(restored, str(tmp_path))
  log_prob = restored.log_prob(images[:2], conditional_input=conditions[:2])
  assert np.all(np.isfinite(log_prob.numpy()))


def test_minibatches_depend_only_on_seed_and_step():
  first = [training.batch_indices(100, 8, step, seed=3) for step in range(30)]
  again = [training.batch_indices(100, 8, step, seed=3) for step in range(30)]
  np.testing.assert_array_equal(first, again)
  # An epoch of 12 batches covers 96 distinct examples.
  assert len(set(np.concatenate(first[:12]))) == 96
  other = training.batch_indices(100, 8, 0, seed=4)
  assert not np.array_equal(first[0], other)


def test_colour_channels_get_independent_noise():
  """With identical channel distributions, channels still differ."""
  model = inversion.build_inversion_model(
      inversion.PixelCNNConfig(num_filters=4, num_logistic_mix=1),
      (2, 2, 3),
  )
  n = 2000
  # One component; every channel Logistic(127.5, 0.3 * 127.5); no coupling.
  params = [
      tf.zeros([n, 2, 2, 1]),
      tf.zeros([n, 2, 2, 1, 3]),
      tf.fill([n, 2, 2, 1, 3], 0.3),
      tf.zeros([n, 2, 2, 1, 3]),
  ]
  pixels = model.sample_pixel(params, 0, 0, tf.constant([1, 2])).numpy()
  same = np.mean(
      (pixels[:, 0] == pixels[:, 1]) & (pixels[:, 1] == pixels[:, 2])
  )
  assert same < 0.01
  correlation = np.corrcoef(pixels[:, 0], pixels[:, 1])[0, 1]
  assert abs(correlation) < 0.1


def test_interrupted_training_resumes_to_the_same_weights(
    tmp_path, monkeypatch
):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (16, 4, 4, 1)).astype(np.float32)
  conditions = rng.normal(size=(16, 3)).astype(np.float32)
  config = training.TrainConfig(steps=10, batch_size=4, checkpoint_every=4)
  straight = tiny_model()
  expected = training.train(
      straight, images, conditions, config, str(tmp_path / "a"), seed=1
  )

  original = training.batch_indices

  def interrupt_at_step_7(num_examples, batch_size, step, seed):
    if step == 7:
      raise KeyboardInterrupt
    return original(num_examples, batch_size, step, seed)

  monkeypatch.setattr(training, "batch_indices", interrupt_at_step_7)
  with pytest.raises(KeyboardInterrupt):
    training.train(
        tiny_model(), images, conditions, config, str(tmp_path / "b"), seed=1
    )
  monkeypatch.setattr(training, "batch_indices", original)
  resumed = tiny_model()
  result = training.train(
      resumed, images, conditions, config, str(tmp_path / "b"), seed=1
  )

  assert result["resumed_from_step"] == 4
  assert result["steps"] == expected["steps"] == 10
  # Equal up to the order of floating-point reductions in multithreaded CPU
  # kernels; bitwise with run.deterministic_ops (see the test above).
  np.testing.assert_allclose(
      result["final_train_bits_per_dim"],
      expected["final_train_bits_per_dim"],
      rtol=1e-5,
  )
  for a, b in zip(straight.network.variables, resumed.network.variables):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
