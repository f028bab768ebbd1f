r"""Runs every experiment of the bundle in one process, as `run_all.sh` does.

    python -m repro.run_all [--scale=embedded|paper|smoke] [--shard=I/N] \
        [--experiments=mi_per_layer,architectures] \
        [--gin_file=EXTRA.gin] [--gin_param='run.seed = 1'] \
        [--output_root=DIR]

Each experiment reads `gin/<experiment>.gin`, then `gin/scale/<scale>.gin`
for a scale other than the embedded one, then any `--gin_file` and
`--gin_param` given here, and writes to `<output_root>/<experiment>/`
(`<output_root>/<scale>/<experiment>/` off the embedded scale). One process
imports TensorFlow and parses the digits once for all of them, so a run
whose models are all in the cache takes seconds per experiment. The first
experiment that fails stops the run, which exits non-zero naming it.
"""

import gc
import os
import re
import sys

from absl import app
from absl import flags
from absl import logging
import gin
import keras

from repro import main as main_lib

EXPERIMENTS = (
    "mi_per_layer",
    "inversion_samples",
    "architectures",
    "mi_training_dynamics",
)
SCALES = ("embedded", "paper", "smoke")

# --gin_file and --gin_param are repro.main's flags; here the files are
# read after each experiment's own.
_SCALE = flags.DEFINE_string(
    "scale", "embedded", f"The scale, one of {', '.join(SCALES)}."
)
_SHARD = flags.DEFINE_string(
    "shard",
    None,
    "INDEX/COUNT: train only this share of the models (see README.md); "
    "then run again without it to gather the results.",
)
_EXPERIMENTS = flags.DEFINE_list(
    "experiments",
    list(EXPERIMENTS),
    "The experiments to run, in order; default all of them.",
)
_OUTPUT_ROOT = flags.DEFINE_string(
    "output_root",
    None,
    "Where each experiment's directory is made; default paper_figures/ in "
    "this repository.",
)


def shard_bindings(shard):
  """The gin bindings of `--shard=INDEX/COUNT`; none for None."""
  if shard is None:
    return []
  match = re.fullmatch(r"([0-9]+)/([0-9]+)", shard)
  if match is None or not 0 <= int(match[1]) < int(match[2]):
    raise ValueError(
        f"--shard={shard}; accepted: INDEX/COUNT with whole numbers, "
        "0 <= INDEX < COUNT, e.g. 0/4."
    )
  return [
      f"run.shard_index = {int(match[1])}",
      f"run.num_shards = {int(match[2])}",
  ]


def check_selection(scale, names):
  """Fails on an unknown scale or experiment, before anything runs."""
  if scale not in SCALES:
    raise ValueError(f"--scale={scale}; accepted: {', '.join(SCALES)}.")
  unknown = [name for name in names if name not in EXPERIMENTS]
  if unknown or not names:
    raise ValueError(
        f"--experiments={','.join(names)}; accepted: a comma-separated "
        f"selection of {', '.join(EXPERIMENTS)}."
    )


def experiment_files(name, scale, extra_files):
  """The gin files of one experiment at one scale, in reading order."""
  files = [os.path.join("gin", f"{name}.gin")]
  if scale != "embedded":
    files.append(os.path.join("gin", "scale", f"{scale}.gin"))
  return files + list(extra_files)


def parse(name, scale, extra_files, params):
  """Parses one experiment's configuration, checking that it is that one.

  Raises:
    main.ConfigError: if the configuration is invalid, or if the extra
      files or bindings make it run another experiment.
  """
  gin.clear_config()
  main_lib.parse_config(experiment_files(name, scale, extra_files), params)
  bound = gin.query_parameter("run.experiment").selector
  if bound != name:
    raise main_lib.ConfigError(
        f"The gin files and bindings given to run_all bind run.experiment "
        f"to {bound!r} in the configuration of {name!r}; accepted: files "
        "and bindings that leave run.experiment alone."
    )


def output_dir(root, name, scale):
  if scale == "embedded":
    return os.path.join(root, name)
  return os.path.join(root, scale, name)


def _refused(name, error):
  """Logs a bad input or refused action of an experiment; returns its line."""
  logging.error("%s: %s: %s", name, type(error).__name__, error)
  return f"experiment {name} failed: {type(error).__name__}: {error}"


def run_experiments(names, scale, extra_files, params, output_root):
  """Runs the experiments in turn, stopping at the first that fails.

  Args:
    names: experiment names, in order.
    scale: 'embedded', 'paper' or 'smoke'.
    extra_files: gin files read after each experiment's own.
    params: gin bindings applied last.
    output_root: where the experiments' directories are made.

  Returns:
    None when all of them finished, else a line naming the experiment that
    failed and why; the error has been logged.
  """
  # Every configuration is read first, so that a misspelt name or a bad
  # value in any of them stops the run before anything is trained.
  for name in names:
    try:
      parse(name, scale, extra_files, params)
    except main_lib._USER_ERRORS as error:
      return _refused(name, error)
  for index, name in enumerate(names, 1):
    logging.info("== [%d/%d] %s (%s scale)", index, len(names), name, scale)
    # Each experiment starts from its own configuration alone, and what
    # the last one built is freed before this one builds.
    keras.backend.clear_session()
    gc.collect()
    try:
      parse(name, scale, extra_files, params)
      main_lib.run(output_dir(output_root, name, scale))
    except main_lib._USER_ERRORS as error:
      return _refused(name, error)
    except Exception as error:  # pylint: disable=broad-except
      logging.exception("%s failed.", name)
      return (
          f"experiment {name} failed: {type(error).__name__}; the traceback "
          "is above."
      )
  return None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}.")
  if main_lib._OUTPUT_DIR.value is not None:
    raise app.UsageError(
        f"--output_dir={main_lib._OUTPUT_DIR.value}: every experiment needs "
        "its own directory; pass --output_root, under which each gets one."
    )
  try:
    check_selection(_SCALE.value, _EXPERIMENTS.value)
    params = shard_bindings(_SHARD.value) + list(main_lib._GIN_PARAMS.value)
  except ValueError as error:
    sys.exit(f"run_all: {error}")
  root = _OUTPUT_ROOT.value or os.path.join(
      main_lib.REPOSITORY, "paper_figures"
  )
  failed = run_experiments(
      _EXPERIMENTS.value,
      _SCALE.value,
      main_lib._GIN_FILES.value,
      params,
      root,
  )
  if failed is not None:
    sys.exit(f"run_all: {failed}")
  count = len(_EXPERIMENTS.value)
  print(
      f"run_all: {'all ' if count > 1 else ''}{count} "
      f"experiment{'s' if count > 1 else ''} done ({_SCALE.value} scale).",
      flush=True,
  )


if __name__ == "__main__":
  app.run(main)
