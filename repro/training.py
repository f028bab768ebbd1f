"""Training and evaluating inversion models, resumably.

Training is a fixed number of Adam steps on minibatches drawn without
replacement, epoch by epoch, from a permutation that depends only on the seed
and the epoch. The batch at step s is therefore the same whether or not the
run was interrupted before s, and a resumed run follows the same path as an
uninterrupted one.
"""

import dataclasses
import math
import os

import gin
import keras
import numpy as np
import tensorflow as tf
from absl import logging

LOG2 = math.log(2.0)
STRATEGIES = ("default", "mirrored", "multi_worker")
_STRATEGY = {}


def distribution_strategy(name):
  """The process's `tf.distribute` strategy, created on first use.

  Args:
    name: 'default' (one device), 'mirrored' (every local GPU, or CPU, in
      sync: `tf.distribute.MirroredStrategy`) or 'multi_worker' (every
      device of every host named in the `TF_CONFIG` environment variable:
      `tf.distribute.MultiWorkerMirroredStrategy`). A multi-worker strategy
      must exist before TensorFlow runs anything else, so `repro.main`
      creates it first.

  Returns:
    The strategy; the same object on every later call.
  """
  if name not in STRATEGIES:
    raise ValueError(f"TrainConfig.strategy={name!r}; accepted: {STRATEGIES}.")
  if _STRATEGY and name not in _STRATEGY:
    raise ValueError(
        f"The strategy is already {next(iter(_STRATEGY))!r} in this process; "
        f"got {name!r}."
    )
  if name not in _STRATEGY:
    if name == "default":
      _STRATEGY[name] = tf.distribute.get_strategy()
    elif name == "mirrored":
      _STRATEGY[name] = tf.distribute.MirroredStrategy()
    else:
      _STRATEGY[name] = tf.distribute.MultiWorkerMirroredStrategy()
  return _STRATEGY[name]


def is_chief(strategy):
  """Whether this process writes artifacts (always, unless a worker > 0)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  return resolver.task_type == "chief" or (
      resolver.task_type == "worker" and resolver.task_id == 0
  )


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN or infinite loss."""


@gin.configurable
@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How an inversion model is trained.

  Attributes:
    steps: optimizer steps.
    batch_size: images per step.
    learning_rate: Adam's initial step size; it decays by cosine to
      `final_learning_fraction` of itself over `steps`.
    final_learning_fraction: the step size at the end, as a fraction.
    checkpoint_every: steps between checkpoints.
    jit_compile: whether XLA compiles the training step. Off by default:
      on a 2-core CPU it was measured slower at the embedded size (74.8
      against 92.5 images a second, `python -m repro.bench`) and spends
      22 s compiling each model.
    eval_batch_size: images per batch when computing test likelihoods.
    strategy: 'default', 'mirrored' or 'multi_worker'; see
      `distribution_strategy`. The batch is split evenly over the replicas.
  """

  steps: int = 1000
  batch_size: int = 32
  learning_rate: float = 2e-3
  final_learning_fraction: float = 0.05
  checkpoint_every: int = 250
  jit_compile: bool = False
  eval_batch_size: int = 100
  strategy: str = "default"

  def __post_init__(self):
    for name in ("steps", "batch_size", "checkpoint_every", "eval_batch_size"):
      value = getattr(self, name)
      if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(
            f"TrainConfig.{name}={value!r}; accepted: an integer >= 1."
        )
    if not (
        isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0
    ):
      raise ValueError(
          f"TrainConfig.learning_rate={self.learning_rate!r}; accepted: a "
          "number > 0."
      )
    if not 0.0 <= self.final_learning_fraction <= 1.0:
      raise ValueError(
          "TrainConfig.final_learning_fraction="
          f"{self.final_learning_fraction!r}; accepted: a number in [0, 1]."
      )
    if self.strategy not in STRATEGIES:
      raise ValueError(
          f"TrainConfig.strategy={self.strategy!r}; accepted: {STRATEGIES}."
      )
    if not isinstance(self.jit_compile, bool):
      raise ValueError(
          f"TrainConfig.jit_compile={self.jit_compile!r}; accepted: True or "
          "False."
      )


def batch_indices(num_examples, batch_size, step, seed):
  """Indices of the minibatch at `step`, a pure function of its arguments.

  Args:
    num_examples: size of the training set.
    batch_size: images per batch; at most `num_examples`.
    step: the optimizer step, from 0.
    seed: the training seed.

  Returns:
    int array `[batch_size]`.
  """
  batches_per_epoch = num_examples // batch_size
  epoch, position = divmod(step, batches_per_epoch)
  order = np.random.default_rng([seed, epoch]).permutation(num_examples)
  return order[position * batch_size : (position + 1) * batch_size]


def train(
    model, images, conditions, config, directory, seed, label="", strategy=None
):
  """Trains `model` for `config.steps` steps, resuming from checkpoints.

  Args:
    model: an `InversionModel`.
    images: `[n, height, width, channels]` integers in [0, high], float32.
    conditions: `[n, *conditional_shape]` float32, or None when the model is
      unconditional.
    config: a `TrainConfig`.
    directory: where checkpoints and TensorBoard events are written.
    seed: determines minibatches and dropout.
    label: a name shown in progress output.
    strategy: the `tf.distribute` strategy the model was built under; None
      means `distribution_strategy(config.strategy)`.

  Returns:
    Dict with the final training loss in bits per dimension and the number
    of steps run in this call.

  Raises:
    NonFiniteLossError: if a loss is NaN or infinite; the last checkpoint is
      the last good one, and nothing after it is saved.
  """
  num_examples = images.shape[0]
  if config.batch_size > num_examples:
    raise ValueError(
        f"TrainConfig.batch_size={config.batch_size} exceeds the "
        f"{num_examples} training images."
    )
  if strategy is None:
    strategy = distribution_strategy(config.strategy)
  replicas = strategy.num_replicas_in_sync
  if config.batch_size % replicas:
    raise ValueError(
        f"TrainConfig.batch_size={config.batch_size} does not split over "
        f"{replicas} replicas; accepted: a multiple of {replicas}."
    )
  per_replica = config.batch_size // replicas
  dims = float(np.prod(images.shape[1:]))
  schedule = keras.optimizers.schedules.CosineDecay(
      config.learning_rate,
      decay_steps=config.steps,
      alpha=config.final_learning_fraction,
  )
  with strategy.scope():
    optimizer = keras.optimizers.Adam(schedule)
    variables = model.network.trainable_variables
    optimizer.build(variables)
  step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
  # The last loss is checkpointed too, so that a resumed run reports what an
  # uninterrupted one would.
  last_loss = tf.Variable(np.nan, dtype=tf.float32, trainable=False)
  checkpoint = tf.train.Checkpoint(
      network=_variables(model.network),
      optimizer=_variables(optimizer),
      step=step,
      loss=last_loss,
  )
  checkpoints = os.path.join(directory, "checkpoints")
  if not is_chief(strategy):
    # Every worker must save (saving is collective), but only the chief's
    # copy is kept.
    checkpoints = os.path.join(
        directory, f"worker-{strategy.cluster_resolver.task_id}-checkpoints"
    )
  manager = tf.train.CheckpointManager(checkpoint, checkpoints, max_to_keep=2)
  if manager.latest_checkpoint:
    checkpoint.restore(manager.latest_checkpoint).assert_consumed()
    logging.info("%s: resuming at step %d.", label, int(step.numpy()))

  def replica_step(x, c):
    # Each replica takes its slice of the global batch; the optimizer sums
    # the replicas' gradients, hence the division.
    replica = tf.distribute.get_replica_context().replica_id_in_sync_group
    x = x[replica * per_replica : (replica + 1) * per_replica]
    kwargs = {}
    if c is not None:
      kwargs["conditional_input"] = c[
          replica * per_replica : (replica + 1) * per_replica
      ]
    with tf.GradientTape() as tape:
      log_prob = model.log_prob(x, training=True, **kwargs)
      loss = -tf.reduce_mean(log_prob) / (dims * LOG2)
      replica_share = loss / replicas
    gradients = tape.gradient(replica_share, variables)
    optimizer.apply_gradients(zip(gradients, variables))
    return loss

  @tf.function(jit_compile=config.jit_compile, reduce_retracing=True)
  def train_step(x, c):
    losses = strategy.run(replica_step, args=(x, c))
    return strategy.reduce(tf.distribute.ReduceOp.MEAN, losses, axis=None)

  writer = tf.summary.create_file_writer(os.path.join(directory, "train"))
  start = int(step.numpy())
  progress = keras.utils.Progbar(
      config.steps,
      stateful_metrics=["bits/dim"],
      unit_name="step",
      interval=1.0,
  )
  progress.update(start)
  for current in range(start, config.steps):
    index = batch_indices(num_examples, config.batch_size, current, seed)
    x = tf.constant(images[index])
    c = None if conditions is None else tf.constant(conditions[index])
    loss_value = float(train_step(x, c))
    if not math.isfinite(loss_value):
      raise NonFiniteLossError(
          f"{label}: the training loss is {loss_value} at step {current}; "
          f"stopped, the last good checkpoint ({manager.latest_checkpoint}) "
          "is kept."
      )
    step.assign(current + 1)
    last_loss.assign(loss_value)
    progress.update(current + 1, [("bits/dim", loss_value)])
    if (current + 1) % 25 == 0:
      with writer.as_default(step=current + 1):
        tf.summary.scalar("train_bits_per_dim", loss_value)
    if (current + 1) % config.checkpoint_every == 0:
      manager.save(checkpoint_number=current + 1)
  if int(step.numpy()) % config.checkpoint_every:
    manager.save(checkpoint_number=int(step.numpy()))
  writer.flush()
  return {
      "final_train_bits_per_dim": float(last_loss.numpy()),
      "steps": config.steps,
      "resumed_from_step": start,
  }


def _variables(keras_object):
  """Every variable of a Keras model or optimizer, in a fixed order.

  Checkpoints track these lists rather than the Keras objects themselves:
  `tf.train.Checkpoint` does not follow Keras 3's lists of layers, so a
  checkpoint of the model object would silently miss most of its layers.
  The order is that of construction, the same for the same configuration.
  """
  return [getattr(v, "value", v) for v in keras_object.variables]


def restore(model, directory):
  """Loads the network weights of the latest checkpoint in `directory`.

  Raises:
    FileNotFoundError: if the directory holds no checkpoint.
    AssertionError: if the checkpoint does not match the network exactly.
  """
  checkpoint = tf.train.Checkpoint(network=_variables(model.network))
  path = tf.train.latest_checkpoint(os.path.join(directory, "checkpoints"))
  if path is None:
    raise FileNotFoundError(f"No checkpoint under {directory}.")
  checkpoint.restore(path).expect_partial().assert_existing_objects_matched()
  return path


def negative_log_likelihoods(model, images, conditions, batch_size=100):
  """-log2 p(x | c) for every image, in bits per image.

  Args:
    model: an `InversionModel`.
    images: `[n, height, width, channels]` integers in [0, high], float32.
    conditions: `[n, *conditional_shape]`, or None.
    batch_size: images per forward pass.

  Returns:
    float64 array `[n]`.
  """

  @tf.function(reduce_retracing=True)
  def log_prob(x, c):
    kwargs = {} if c is None else {"conditional_input": c}
    return model.log_prob(x, training=False, **kwargs)

  values = []
  for start in range(0, images.shape[0], batch_size):
    x = tf.constant(images[start : start + batch_size])
    c = None
    if conditions is not None:
      c = tf.constant(conditions[start : start + batch_size])
    values.append(log_prob(x, c).numpy())
  return -np.concatenate(values).astype(np.float64) / LOG2
