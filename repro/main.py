r"""Runs one experiment from gin files.

    python -m repro.main --gin_file=gin/mi_per_layer.gin \
        [--gin_file=gin/scale/smoke.gin] [--gin_param='TrainConfig.steps = 10'] \
        [--output_dir=DIR]

Every hyper-parameter is a gin binding; the flags only say which gin files
and bindings to read and where to write. Without `--output_dir`, results go
to `paper_figures/<experiment>/` in this repository.
"""

import os

from absl import app
from absl import flags
from absl import logging
import gin
import tensorflow as tf

import repro  # noqa: F401  (selects the Keras backend first)
from repro import experiments
from repro import figures
from repro import store as store_lib

# Imported for their gin configurables, which must be registered before the
# gin files are parsed so that a misspelt name is an error.
from repro import classifiers  # noqa: F401
from repro import data  # noqa: F401
from repro import inversion  # noqa: F401
from repro import training  # noqa: F401

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FIGURES = {"mi_per_layer": figures.draw_mi_per_layer}

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
    "paper_figures/<experiment>/.",
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
  for path in gin_files:
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
  try:
    gin.parse_config_files_and_bindings(
        gin_files, gin_params, skip_unknown=False
    )
  except (ValueError, KeyError, SyntaxError, TypeError) as error:
    raise ConfigError(f"Invalid gin configuration: {error}") from error


@gin.configurable(denylist=["output_dir"])
def run(
    output_dir=None,
    experiment=gin.REQUIRED,
    seed=0,
    cache_dir=None,
    optimize_graphs=False,
):
  """Runs `experiment`, saves its operative config, draws its figures.

  Args:
    output_dir: results directory; None means paper_figures/<experiment>/.
    experiment: an experiment function of `repro.experiments`.
    seed: the master seed; every other seed is derived from it.
    cache_dir: where trained artifacts are kept; None means `cache/` in
      this repository (ignored by git).
    optimize_graphs: whether TensorFlow's graph optimizer (Grappler) runs.
      Off by default: on a CPU it costs seconds per traced function and, as
      measured for these models, gains no speed.

  Returns:
    The output directory.
  """
  tf.config.optimizer.set_experimental_options(
      {"disable_meta_optimizer": not optimize_graphs}
  )
  name = experiment.__name__
  if output_dir is None:
    output_dir = os.path.join(REPOSITORY, "paper_figures", name)
  if cache_dir is None:
    cache_dir = os.path.join(REPOSITORY, "cache")
  logging.info("Experiment %s: results in %s, artifacts in %s.", name,
               output_dir, cache_dir)
  experiment(output_dir, store_lib.ArtifactStore(cache_dir), seed)
  config_path = os.path.join(output_dir, "operative_config.gin")
  with open(config_path, "w") as f:
    f.write(gin.operative_config_str())
  for path in FIGURES[name](output_dir):
    logging.info("Wrote %s.", path)
  return output_dir


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}.")
  parse_config(_GIN_FILES.value, _GIN_PARAMS.value)
  run(_OUTPUT_DIR.value)


if __name__ == "__main__":
  app.run(main)
