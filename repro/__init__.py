"""Inverting supervised representations with conditional PixelCNN++ models.

A reproduction of Nash, Kushman and Williams, "Inverting Supervised
Representations with Autoregressive Neural Density Models" (AISTATS 2019).
"""

import os

# The classifiers are Keras 3 models and the inversion models run inside a
# TensorFlow Probability distribution, so Keras must use the TensorFlow
# backend; an explicit choice by the user is still respected.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
