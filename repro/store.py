"""Trained artifacts stored under keys derived from their configuration.

Every artifact (a trained classifier, an inversion model and its test
log-likelihoods, an MSE decoder, one estimate of another estimator) lives in
a directory named after a hash of the complete
specification that produced it: data, classifier, layer, model sizes,
training settings and seed. Experiments that share a specification share the
artifact, and a finished artifact is never trained twice. An artifact counts
as finished only once its `record.json` exists; that file is written last,
and atomically, so an interrupted run leaves an unfinished artifact that the
next run resumes.

All file access goes through `tf.io.gfile`, so the root may be a bucket path.
"""

import hashlib
import json
import os

import tensorflow as tf

RECORD = "record.json"
SPEC = "spec.json"


def fingerprint(spec):
  """A short, stable hash of a JSON-serialisable specification."""
  text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def derive_seed(master_seed, *parts):
  """A seed in [0, 2**31) determined by a master seed and names.

  Args:
    master_seed: the experiment's one seed.
    *parts: strings or numbers naming what the seed is for.

  Returns:
    An int, the same for the same arguments on every machine.
  """
  text = json.dumps([master_seed, *parts], sort_keys=True)
  return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 2**31


def write_json(path, value):
  """Writes JSON so that a reader sees the old file or the new, never half."""
  temporary = f"{path}.tmp-{os.getpid()}"
  with tf.io.gfile.GFile(temporary, "w") as f:
    f.write(json.dumps(value, indent=2, sort_keys=True) + "\n")
  tf.io.gfile.rename(temporary, path, overwrite=True)


def read_json(path):
  with tf.io.gfile.GFile(path) as f:
    return json.loads(f.read())


class ArtifactStore:
  """A directory of artifacts, one sub-directory per specification."""

  def __init__(self, root):
    self.root = root

  def directory(self, kind, spec):
    """The directory for `spec`, created with a copy of the spec inside.

    Args:
      kind: the artifact's kind, e.g. 'classifier' or 'inversion'.
      spec: JSON-serialisable dict that fully determines the artifact.

    Returns:
      The directory's path.
    """
    path = os.path.join(self.root, kind, fingerprint(spec))
    tf.io.gfile.makedirs(path)
    spec_path = os.path.join(path, SPEC)
    if not tf.io.gfile.exists(spec_path):
      write_json(spec_path, spec)
    return path

  @staticmethod
  def record(directory):
    """The finished artifact's record, or None while it is unfinished."""
    path = os.path.join(directory, RECORD)
    if not tf.io.gfile.exists(path):
      return None
    return read_json(path)

  @staticmethod
  def finish(directory, record):
    """Marks the artifact finished by writing its record last."""
    write_json(os.path.join(directory, RECORD), record)
