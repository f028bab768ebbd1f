r"""Speed and memory of the inversion model against TFP's stock PixelCNN.

    python -m repro.bench [--sizes=embedded,paper] [--nofull_run]
        [--output=FILE.json]

For each size it measures, in one run on one machine, each in a fresh
subprocess so that peak memory is the measurement's own:

- training throughput (images per second) of this project's inversion model,
  conditioned per pixel on an activation map, and of TFP's stock
  `tfp.distributions.PixelCNN` at the same sizes, conditioned on the same map
  in its own (global) way, without weight normalisation, which this
  project's network does not use either;
- sampling throughput of both samplers: TFP's, one full network pass per
  pixel, and this project's band sampler;
- the peak resident memory of each subprocess;
- this project's training step compiled with XLA, for the choice of
  `TrainConfig.jit_compile`.

With `--full_run` (the default) it also times one whole
`gin/mi_per_layer.gin` run at the embedded scale, from an empty cache and
into a temporary directory, so that nothing already trained is reused and
`paper_figures/` is left alone; it reports the wall time of the command and
its peak memory.

At the paper's size a full sample takes a CPU far too long (TFP's sampler
runs a 160-filter PixelCNN++ 1,025 times per image), so there one pixel
step of each sampler is timed and multiplied by the number of steps an image
takes; the output says so. This is a benchmark: it reports, it asserts
nothing.
"""

import json
import os
import resource
import subprocess
import sys
import time

from absl import app
from absl import flags

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SIZES = {
    # The embedded scale of gin/scale/embedded.gin.
    "embedded": {
        "image_shape": (28, 28, 1),
        "activation_shape": (14, 14, 32),
        "num_filters": 16,
        "num_resnet": 1,
        "num_stages": 2,
        "num_logistic_mix": 5,
        "dropout_rate": 0.0,
        "activation": "elu",
        "batch_size": 8,
        "train_steps": 100,
        "samples": 8,
    },
    # PixelCNN++ at its CIFAR-10 settings, as in gin/scale/paper.gin.
    "paper": {
        "image_shape": (32, 32, 3),
        "activation_shape": (16, 16, 32),
        "num_filters": 160,
        "num_resnet": 5,
        "num_stages": 3,
        "num_logistic_mix": 10,
        "dropout_rate": 0.5,
        "activation": "concat_elu",
        "batch_size": 16,
        "train_steps": 3,
        "samples": 4,
    },
    # Tiny, to check that the benchmark itself runs.
    "smoke": {
        "image_shape": (8, 8, 1),
        "activation_shape": (4, 4, 2),
        "num_filters": 4,
        "num_resnet": 1,
        "num_stages": 2,
        "num_logistic_mix": 2,
        "dropout_rate": 0.0,
        "activation": "elu",
        "batch_size": 4,
        "train_steps": 2,
        "samples": 2,
    },
}

_SIZES = flags.DEFINE_list("sizes", ["embedded", "paper"], "Sizes to run.")
_OUTPUT = flags.DEFINE_string("output", None, "Also write the JSON here.")
_FULL_SAMPLES = flags.DEFINE_list(
    "full_samples",
    ["embedded"],
    "Sizes at which whole images are sampled; elsewhere one pixel step is "
    "timed and extrapolated.",
)


def _worker(kind, size_name, full):
  """One measurement, run inside its own process; prints a JSON line."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  import repro  # noqa: F401  pylint: disable=g-import-not-at-top
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_probability as tfp  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top

  from repro import inversion  # pylint: disable=g-import-not-at-top

  tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
  size = SIZES[size_name]
  ours = kind.startswith("ours")
  shape, activation_shape = size["image_shape"], size["activation_shape"]
  batch = size["batch_size"]
  keras.utils.set_random_seed(0)
  if ours:
    config = inversion.PixelCNNConfig(
        num_filters=size["num_filters"],
        num_resnet=size["num_resnet"],
        num_stages=size["num_stages"],
        num_logistic_mix=size["num_logistic_mix"],
        dropout_rate=size["dropout_rate"],
        activation=size["activation"],
        conditioner_filters=size["num_filters"],
    )
    channels = activation_shape[-1]
    model = inversion.build_inversion_model(
        config,
        shape,
        "spatial",
        activation_shape,
        (np.zeros(channels), np.ones(channels)),
    )
    variables = model.network.trainable_variables
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(variables)
  else:
    model = tfp.distributions.PixelCNN(
        shape,
        conditional_shape=activation_shape,
        num_resnet=size["num_resnet"],
        num_hierarchies=size["num_stages"],
        num_filters=size["num_filters"],
        num_logistic_mix=size["num_logistic_mix"],
        dropout_p=size["dropout_rate"],
        resnet_activation=size["activation"],
        use_weight_norm=False,
    )
    variables = model.network.trainable_variables
    optimizer = tf_keras.optimizers.Adam(1e-3)

  rng = np.random.default_rng(0)
  images = tf.constant(rng.integers(0, 256, (batch, *shape)), tf.float32)
  conditions = tf.constant(
      rng.normal(size=(batch, *activation_shape)), tf.float32
  )
  result = {"kind": kind, "size": size_name}

  if "train" in kind:

    @tf.function(jit_compile=kind.endswith("xla"))
    def step(x, c):
      with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(
            model.log_prob(x, conditional_input=c, training=True)
        )
      optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
      return loss

    started = time.time()
    step(images, conditions).numpy()
    result["first_step_seconds"] = time.time() - started
    started = time.time()
    for _ in range(size["train_steps"]):
      loss = step(images, conditions)
    loss.numpy()
    seconds = time.time() - started
    result["images_per_second"] = size["train_steps"] * batch / seconds
  else:
    n = size["samples"]
    c = conditions[:1] * tf.ones([n, 1, 1, 1])
    height, width = shape[:2]
    if full:
      seconds = _time_full_sampler(model, ours, n, c)
      result["extrapolated"] = False
    else:
      step_seconds = _time_one_pixel_step(model, ours, n, c)
      # TFP: one full pass per pixel and one before the loop. Band sampler:
      # one band pass per pixel and one more per band to record its rows.
      steps = height * width + 1
      if ours:
        steps = height * width + height // model.network.band_height
      seconds = step_seconds * steps
      result["seconds_per_pixel_step"] = step_seconds
      result["extrapolated"] = True
    result["images_per_second"] = n / seconds
  result["peak_rss_mb"] = (
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
  )
  print("BENCH " + json.dumps(result))


def _time_full_sampler(model, ours, n, conditions):
  """Seconds to draw n images, after a first call that traces."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  seed = (1, 2) if ours else 1  # TFP's sampler takes only integer seeds.
  draw = tf.function(lambda c: model.sample(n, seed=seed, conditional_input=c))
  draw(conditions).numpy()
  started = time.time()
  draw(conditions).numpy()
  return time.time() - started


def _time_one_pixel_step(model, ours, n, conditions, repeats=5):
  """Seconds of one pixel step of the sampler, averaged over `repeats`.

  A step of TFP's sampler is a pass of the network over the whole image and
  a draw; a step of the band sampler is a pass over one band of rows, given
  the rows above it, and a draw.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from repro import pixelcnn  # pylint: disable=g-import-not-at-top

  height, width, channels = model.image_shape
  if ours:
    band_height = model.network.band_height
    features = model.network.conditioning_features(conditions, False)
    features = [f[:, : band_height // 2**k] for k, f in enumerate(features)]
    above = {
        key: tf.zeros([n, *shape], dtype)
        for key, (shape, dtype) in model.band_context_specs().items()
    }
    images = tf.zeros([n, band_height, width, channels])

    @tf.function
    def step(x):
      params = model.network.parameters(
          x, features, False, pixelcnn.Band(above)
      )
      return model.sample_pixel(params, 0, 0, tf.constant([1, 2]))

  else:
    images = tf.zeros([n, height, width, channels])

    @tf.function
    def step(x):
      params = model.network([x, conditions], training=False)
      # TFP's own per-pixel draw, as its sampler makes it.
      # pylint: disable-next=protected-access
      sample_channels = model._sample_channels
      return sample_channels(*params, seed=1)

  step(images).numpy()
  started = time.time()
  for _ in range(repeats):
    value = step(images)
  value.numpy()
  return (time.time() - started) / repeats


def _measure(kind, size_name):
  full = "full" if size_name in _FULL_SAMPLES.value else "step"
  return _run_worker(f"{kind}:{size_name}:{full}")


def _run_worker(worker):
  """Runs one measurement in a fresh process and returns its JSON line."""
  command = [sys.executable, "-m", "repro.bench", f"--worker={worker}"]
  output = subprocess.run(
      command, cwd=REPOSITORY, capture_output=True, text=True, check=False
  )
  for line in output.stdout.splitlines():
    if line.startswith("BENCH "):
      return json.loads(line[len("BENCH ") :])
  raise RuntimeError(f"Benchmark {worker} failed:\n{output.stderr[-3000:]}")


_WORKER = flags.DEFINE_string("worker", None, "Internal: one measurement.")
_FULL_RUN = flags.DEFINE_bool(
    "full_run",
    True,
    "Also time a whole gin/mi_per_layer.gin run from an empty cache.",
)


def _full_run_worker():
  """Times gin/mi_per_layer.gin from scratch; prints a JSON line.

  The experiment runs as this process's only child, so the children's peak
  resident memory is the experiment's own.
  """
  import tempfile  # pylint: disable=g-import-not-at-top

  with tempfile.TemporaryDirectory() as directory:
    output_dir = os.path.join(directory, "mi_per_layer")
    command = [
        sys.executable,
        "-m",
        "repro.main",
        "--gin_file=gin/mi_per_layer.gin",
        f"--output_dir={output_dir}",
        f"--gin_param=run.cache_dir = '{os.path.join(directory, 'cache')}'",
    ]
    started = time.time()
    output = subprocess.run(
        command, cwd=REPOSITORY, capture_output=True, text=True, check=False
    )
    seconds = time.time() - started
    if output.returncode:
      raise RuntimeError(
          f"{' '.join(command)} failed:\n{output.stderr[-3000:]}"
      )
    with open(os.path.join(output_dir, "results.json")) as f:
      results = json.load(f)
  print(
      "BENCH "
      + json.dumps(
          {
              "kind": "full_run",
              "seconds": seconds,
              "artifacts": results["artifacts"],
              "peak_rss_mb": (
                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
                  / 1024.0
              ),
          }
      )
  )


def main(argv):
  del argv
  if _WORKER.value == "full_run":
    _full_run_worker()
    return
  if _WORKER.value:
    kind, size_name, full = _WORKER.value.split(":")
    _worker(kind, size_name, full == "full")
    return
  unknown = sorted(set(_SIZES.value) - set(SIZES))
  if unknown:
    raise app.UsageError(f"--sizes {unknown}; accepted: {sorted(SIZES)}.")

  report = {"machine": os.uname().machine, "cpus": os.cpu_count(), "rows": []}
  for size_name in _SIZES.value:
    xla = _measure("ours_train_xla", size_name)
    report["rows"].append(
        {
            "size": size_name,
            "task": "train with XLA",
            "ours_images_per_second": xla["images_per_second"],
            "ours_first_step_seconds": xla["first_step_seconds"],
            "ours_peak_rss_mb": xla["peak_rss_mb"],
        }
    )
    print(
        f"{size_name:>8} XLA train: ours {xla['images_per_second']:8.3g} "
        f"img/s (first step, with compilation, {xla['first_step_seconds']:.0f}"
        " s)",
        flush=True,
    )
    for task in ("train", "sample"):
      ours = _measure(f"ours_{task}", size_name)
      stock = _measure(f"stock_{task}", size_name)
      row = {
          "size": size_name,
          "task": task,
          "ours_images_per_second": ours["images_per_second"],
          "stock_images_per_second": stock["images_per_second"],
          "ratio": ours["images_per_second"] / stock["images_per_second"],
          "ours_peak_rss_mb": ours["peak_rss_mb"],
          "stock_peak_rss_mb": stock["peak_rss_mb"],
          "extrapolated": bool(
              ours.get("extrapolated") or stock.get("extrapolated")
          ),
          "details": {"ours": ours, "stock": stock},
      }
      report["rows"].append(row)
      print(_format_row(row), flush=True)

  if _FULL_RUN.value:
    full_run = _run_worker("full_run")
    report["mi_per_layer_run"] = full_run
    print(
        "python -m repro.main --gin_file=gin/mi_per_layer.gin from an empty "
        f"cache: {full_run['seconds'] / 60:.1f} min, "
        f"{full_run['artifacts']['trained']} models trained, peak memory "
        f"{full_run['peak_rss_mb']:.0f} MB",
        flush=True,
    )
  if _OUTPUT.value:
    with open(_OUTPUT.value, "w") as f:
      json.dump(report, f, indent=2)


def _format_row(row):
  note = (
      " (sampling extrapolated from one pixel step)"
      if row["extrapolated"]
      else ""
  )
  return (
      f"{row['size']:>8} {row['task']:>6}: ours "
      f"{row['ours_images_per_second']:8.3g} img/s, stock "
      f"{row['stock_images_per_second']:8.3g} img/s, ratio "
      f"{row['ratio']:6.2f}; peak memory {row['ours_peak_rss_mb']:.0f} MB vs "
      f"{row['stock_peak_rss_mb']:.0f} MB{note}"
  )


if __name__ == "__main__":
  app.run(main)
