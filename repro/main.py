r"""Runs one experiment from gin files.

    python -m repro.main --gin_file=gin/mi_per_layer.gin \
        [--gin_file=gin/scale/smoke.gin] \
        [--gin_param='TrainConfig.steps = 10'] \
        [--output_dir=DIR]

Every hyper-parameter is a gin binding; the flags only say which gin files
and bindings to read and where to write. Without `--output_dir`, results go
to `paper_figures/<experiment>/` in this repository.
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging
import gin
import tensorflow as tf

import repro  # noqa: F401  (selects the Keras backend first)
from repro import experiments
from repro import figures
from repro import pipeline
from repro import store as store_lib
from repro import tables

# Imported for their gin configurables, which must be registered before the
# gin files are parsed so that a misspelt name is an error.
from repro import classifiers  # noqa: F401
from repro import data  # noqa: F401
from repro import decoder  # noqa: F401
from repro import inversion  # noqa: F401
from repro import training

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_GIN_FILES = flags.DEFINE_multi_string(
    "gin_file", [], "Gin files to read, in order; later ones override."
)
_GIN_PARAMS = flags.DEFINE_multi_string(
    "gin_param", [], "Gin bindings, e.g. 'TrainConfig.steps = 100'."
)
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir",
    None,
    "Where results and figures are written; default "
    "paper_figures/<experiment>/ (repro.main) or "
    "invert_output/<model>_<layers>/ (repro.invert).",
)


class ConfigError(ValueError):
  """A gin file or binding that cannot be used."""


def parse_config(gin_files, gin_params):
  """Parses gin files and bindings strictly: unknown names are errors."""
  if not gin_files:
    raise ConfigError(
        "No --gin_file given; pass one experiment's file, e.g. "
        "--gin_file=gin/mi_per_layer.gin."
    )
  resolved = []
  for path in gin_files:
    if not os.path.isfile(path) and os.path.isfile(
        os.path.join(REPOSITORY, path)
    ):
      path = os.path.join(REPOSITORY, path)
    resolved.append(path)
    if not os.path.isfile(path):
      available = sorted(
          os.path.join("gin", name)
          for name in os.listdir(os.path.join(REPOSITORY, "gin"))
          if name.endswith(".gin")
      )
      raise ConfigError(
          f"Gin file {path!r} does not exist; the experiments are: "
          f"{available}."
      )
  # `include 'gin/scale/...'` inside the gin files resolves from anywhere.
  gin.add_config_file_search_path(REPOSITORY)
  try:
    gin.parse_config_files_and_bindings(
        resolved, gin_params, skip_unknown=False
    )
  except (ValueError, KeyError, SyntaxError, TypeError) as error:
    raise ConfigError(f"Invalid gin configuration: {error}") from error


# Bindings that change where and how fast a run works, not what it computes.
_OPERATIONAL = (
    "run.cache_dir",
    "run.overwrite",
    "run.optimize_graphs",
    "run.deterministic_ops",
    "run.shard_index",
    "run.num_shards",
)


def config_fingerprint(identity=None):
  """A hash of the parsed gin bindings, less the operational ones.

  Args:
    identity: JSON-serialisable description of inputs that are not gin
      bindings (e.g. a saved model's hash), or None.
  """
  lines = [
      line
      for line in gin.config_str().splitlines()
      if line.strip() and not line.startswith(_OPERATIONAL)
  ]
  if identity is not None:
    lines.append(identity)
  return store_lib.fingerprint(lines)


def _check_output_dir(output_dir, fingerprint, overwrite):
  """Refuses to replace finished results of a different configuration."""
  path = os.path.join(output_dir, tables.RESULTS)
  if overwrite or not tf.io.gfile.exists(path):
    return
  previous = store_lib.read_json(path).get("config_fingerprint")
  if previous != fingerprint:
    raise FileExistsError(
        f"{output_dir} holds finished results of a different configuration "
        f"(fingerprint {previous}, this run {fingerprint}). Choose another "
        "--output_dir, or pass --gin_param='run.overwrite = True' to "
        "replace them."
    )


def _replace_directory(staging, output_dir):
  """Moves a finished staging directory into place, then drops the old one."""
  old = f"{output_dir}.old-{os.getpid()}"
  if tf.io.gfile.exists(output_dir):
    tf.io.gfile.rename(output_dir, old)
  tf.io.gfile.rename(staging, output_dir)
  if tf.io.gfile.exists(old):
    tf.io.gfile.rmtree(old)


@gin.configurable(denylist=["output_dir", "identity"])
def run(
    output_dir=None,
    experiment=gin.REQUIRED,
    seed=0,
    cache_dir=None,
    optimize_graphs=False,
    deterministic_ops=False,
    overwrite=False,
    shard_index=None,
    num_shards=1,
    identity=None,
):
  """Runs `experiment`, saves its results, operative config and figures.

  Everything is written to a staging directory beside `output_dir` and
  moved into place only when complete, so a failed run leaves the previous
  results as they were and no partial output.

  Args:
    output_dir: results directory; None means paper_figures/<experiment>/.
    experiment: an experiment function of `repro.experiments`.
    seed: the master seed; every other seed is derived from it.
    cache_dir: where trained artifacts are kept; None means `cache/` in
      this repository (ignored by git).
    optimize_graphs: whether TensorFlow's graph optimizer (Grappler) runs.
      Off by default: on a CPU it costs seconds per traced function and, as
      measured for these models, gains no speed.
    deterministic_ops: whether TensorFlow runs only deterministic kernels
      (`tf.config.experimental.enable_op_determinism`): then the same seed
      on the same machine gives the same numbers to the last bit.
    overwrite: whether results of a different configuration in
      `output_dir` may be replaced.
    shard_index: with `num_shards` > 1, which share of the experiment's
      models this process trains, in [0, num_shards). A shard writes no
      results: once every shard has finished, the same command without
      sharding finds every model in the shared cache and draws the figures.
    num_shards: how many processes (machines) share the training.
    identity: what the experiment computes beyond the gin bindings, for the
      fingerprint that guards `output_dir`; `repro.invert` passes the saved
      model's hash and layers. None for the experiments of this module.

  Returns:
    The output directory.
  """
  tf.config.optimizer.set_experimental_options(
      {"disable_meta_optimizer": not optimize_graphs}
  )
  if deterministic_ops:
    tf.config.experimental.enable_op_determinism()
  # A multi-worker strategy must exist before TensorFlow runs anything.
  training.distribution_strategy(training.TrainConfig().strategy)
  shard = _shard(shard_index, num_shards)
  name = experiment.__name__
  if output_dir is None:
    output_dir = os.path.join(REPOSITORY, "paper_figures", name)
  if cache_dir is None:
    cache_dir = os.path.join(REPOSITORY, "cache")
  fingerprint = config_fingerprint(identity)
  if shard is None:
    _check_output_dir(output_dir, fingerprint, overwrite)
  logging.info(
      "Experiment %s: results in %s, artifacts in %s.",
      name,
      output_dir,
      cache_dir,
  )

  results, arrays = experiment(
      store_lib.ArtifactStore(cache_dir), seed, shard=shard
  )
  if shard is not None:
    logging.info(
        "%s shard %d/%d done in %.0f s: %d artifacts trained, %d reused, %d "
        "left to other shards. When every shard is done, run the same "
        "command without run.shard_index and run.num_shards to gather.",
        name,
        shard.index,
        shard.count,
        results["seconds"],
        results["artifacts"]["trained"],
        results["artifacts"]["reused"],
        results["artifacts"]["skipped"],
    )
    return None
  results["config_fingerprint"] = fingerprint
  staging = f"{output_dir.rstrip('/')}.partial-{os.getpid()}"
  if tf.io.gfile.exists(staging):
    tf.io.gfile.rmtree(staging)
  tables.write_results(staging, results, arrays)
  tables.write_text(
      os.path.join(staging, "operative_config.gin"), gin.operative_config_str()
  )
  for path in figures.draw(staging):
    logging.info("Drew %s.", os.path.basename(path))
  _replace_directory(staging, output_dir)
  logging.info(
      "%s done in %.0f s: %d artifacts trained, %d reused (%d of them "
      "restored to draw new samples or reconstructions); results in %s.",
      name,
      results["seconds"],
      results["artifacts"]["trained"],
      results["artifacts"]["reused"],
      results["artifacts"]["restored"],
      output_dir,
  )
  return output_dir


def _shard(index, count):
  """The `pipeline.Shard` of this process, or None when unsharded."""
  if not isinstance(count, int) or isinstance(count, bool) or count < 1:
    raise ValueError(f"run.num_shards={count!r}; accepted: an integer >= 1.")
  if count == 1:
    if index not in (None, 0):
      raise ValueError(
          f"run.shard_index={index!r} with run.num_shards=1; accepted: None."
      )
    return None
  if (
      not isinstance(index, int)
      or isinstance(index, bool)
      or not (0 <= index < count)
  ):
    raise ValueError(
        f"run.shard_index={index!r}; accepted: an integer in [0, {count})."
    )
  return pipeline.Shard(index, count)


# Errors that describe a bad input or a refused action; they are reported
# as one message, without a traceback.
_USER_ERRORS = (
    TimeoutError,
    ValueError,
    FileNotFoundError,
    FileExistsError,
    FloatingPointError,
)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}.")
  try:
    parse_config(_GIN_FILES.value, _GIN_PARAMS.value)
    run(_OUTPUT_DIR.value)
  except _USER_ERRORS as error:
    logging.error("%s: %s", type(error).__name__, error)
    sys.exit(f"repro.main: {type(error).__name__}: {error}")


if __name__ == "__main__":
  app.run(main)
