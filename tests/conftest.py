"""Shared test settings: quiet TensorFlow, the Keras backend chosen first."""

import repro  # noqa: F401  (sets KERAS_BACKEND before Keras is imported)
