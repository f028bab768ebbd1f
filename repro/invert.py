r"""Inverts layers of your own saved Keras classifier.

    python -m repro.invert --model=PATH.keras --layer=NAME \
        [--layer=NAME2 | --layer=NAME2,NAME3] \
        [--gin_file=gin/invert.gin] [--gin_file=gin/scale/smoke.gin] \
        [--gin_param='invert.input_scale = "unit"'] [--output_dir=DIR]

Trains (or finds in the cache) the inversion model of each named layer, the
unconditional model and the controls, and writes the MI table, the samples
figure, `results.json` and the operative gin config. The model and layers
are flags because they name inputs, not settings; everything else is gin.
Without `--output_dir`, results go to `invert_output/<model>_<layers>/` in
this repository.
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging

from repro import main as main_lib
from repro import own_model
from repro import training

DEFAULT_GIN_FILE = "gin/invert.gin"

# --gin_file, --gin_param and --output_dir are repro.main's flags.
_MODEL = flags.DEFINE_string(
    "model", None, "The saved Keras classifier, a .keras or .h5 file."
)
_LAYERS = flags.DEFINE_multi_string(
    "layer",
    [],
    "A layer to invert; repeat the flag or separate names by commas, in "
    "depth order.",
)


def layer_list(values):
  """Layer names from repeated and comma-separated flag values."""
  return [name.strip() for value in values for name in value.split(",")]


def default_output_dir(model_file, layers):
  stem = os.path.splitext(os.path.basename(model_file))[0]
  return os.path.join(
      main_lib.REPOSITORY, "invert_output", "_".join([stem, *layers])
  )


def identity(model, layers):
  """What `invert` computes beyond the gin bindings, for `main_lib.run`.

  The model and the layers are not gin bindings, so they join the
  fingerprint that keeps other results in the output directory from being
  replaced. The model enters as `own_model.model_fingerprint`, not as the
  hash of its file, so that the same model saved again counts as the same.

  Args:
    model: the loaded `keras.Model`.
    layers: layer names in depth order.

  Returns:
    A JSON-serialisable dict.
  """
  return {
      "model_fingerprint": own_model.model_fingerprint(model),
      "layers": list(layers),
  }


def invert(model_file, layers, output_dir=None):
  """Runs the `invert` experiment on a saved model, after gin is parsed.

  Args:
    model_file: a `.keras` or `.h5` file.
    layers: layer names in depth order.
    output_dir: results directory; None means
      `invert_output/<model stem>_<layers>/`.

  Returns:
    The output directory.
  """
  own_model.check_model_file(model_file)
  if "://" not in model_file:
    model_file = os.path.abspath(model_file)
  if output_dir is None:
    output_dir = default_output_dir(model_file, layers)

  # A multi-worker strategy must exist before TensorFlow runs anything, and
  # loading the model runs TensorFlow; main_lib.run gets the same strategy.
  training.distribution_strategy(training.TrainConfig().strategy)
  model = own_model.load_classifier(model_file)

  def experiment(store, seed, shard=None):
    return own_model.invert(
        store, seed, shard, model_file=model_file, layers=layers, model=model
    )

  experiment.__name__ = "invert"
  return main_lib.run(
      output_dir, experiment=experiment, identity=identity(model, layers)
  )


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}.")
  try:
    main_lib.parse_config(
        main_lib._GIN_FILES.value or [DEFAULT_GIN_FILE],
        main_lib._GIN_PARAMS.value,
    )
    invert(_MODEL.value, layer_list(_LAYERS.value), main_lib._OUTPUT_DIR.value)
  except main_lib._USER_ERRORS as error:
    logging.error("%s: %s", type(error).__name__, error)
    sys.exit(f"repro.invert: {type(error).__name__}: {error}")


if __name__ == "__main__":
  app.run(main)
