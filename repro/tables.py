"""Result files: the JSON of every number, CSV and Markdown tables, samples.

Each file is written to a temporary name and renamed into place, so a reader
(or a crash) never sees half a file.
"""

import csv
import io
import os

import numpy as np
import tensorflow as tf

from repro import store as store_lib

RESULTS = "results.json"
SAMPLES = "samples.npz"

COLUMNS = (
    ("layer", "layer"),
    ("conditioning", "conditioning"),
    ("shape", "shape"),
    ("bits_per_dim", "bits/dim"),
    ("mi", "MI (bits/image)"),
    ("mi_low", "95% low"),
    ("mi_high", "95% high"),
    ("mi_fraction", "MI / H(x)"),
    ("test_accuracy", "classifier test acc."),
)


def _write_text(path, text):
  temporary = f"{path}.tmp-{os.getpid()}"
  with tf.io.gfile.GFile(temporary, "w") as f:
    f.write(text)
  tf.io.gfile.rename(temporary, path, overwrite=True)


def _write_npz(path, arrays):
  buffer = io.BytesIO()
  np.savez_compressed(buffer, **arrays)
  temporary = f"{path}.tmp-{os.getpid()}"
  with tf.io.gfile.GFile(temporary, "wb") as f:
    f.write(buffer.getvalue())
  tf.io.gfile.rename(temporary, path, overwrite=True)


def table_rows(results):
  """One flat dict per table row, the entropy row first."""
  entropy = results["unconditional"]["entropy"]
  accuracy = results["classifier"]["test_accuracy"]
  rows = [
      {
          "layer": "H(x): unconditional",
          "conditioning": "none",
          "shape": "",
          "bits_per_dim": results["unconditional"]["bits_per_dim"],
          "mi": entropy["mean"],
          "mi_low": entropy["low"],
          "mi_high": entropy["high"],
          "mi_fraction": 1.0,
          "test_accuracy": accuracy,
      }
  ]
  for row in results["rows"]:
    rows.append(
        {
            "layer": row["layer"],
            "conditioning": row["conditioning"],
            "shape": "x".join(str(d) for d in row["shape"]),
            "bits_per_dim": row["bits_per_dim"],
            "mi": row["mi"]["mean"],
            "mi_low": row["mi"]["low"],
            "mi_high": row["mi"]["high"],
            "mi_fraction": row["mi"]["mean"] / entropy["mean"],
            "test_accuracy": accuracy,
        }
    )
  return rows


def _format(key, value):
  if isinstance(value, str):
    return value
  if key in ("bits_per_dim", "mi_fraction", "test_accuracy"):
    return f"{value:.4f}" if key != "bits_per_dim" else f"{value:.3f}"
  return f"{value:.1f}"


def csv_text(rows):
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator="\n")
  writer.writerow([key for key, _ in COLUMNS])
  for row in rows:
    writer.writerow([repr(row[key]) if isinstance(row[key], float)
                     else row[key] for key, _ in COLUMNS])
  return buffer.getvalue()


def markdown_text(rows):
  lines = [
      "| " + " | ".join(title for _, title in COLUMNS) + " |",
      "|" + "|".join("---" for _ in COLUMNS) + "|",
  ]
  for row in rows:
    lines.append(
        "| " + " | ".join(_format(key, row[key]) for key, _ in COLUMNS) + " |"
    )
  return "\n".join(lines) + "\n"


def write_results(output_dir, results, sample_arrays):
  """Writes results.json, results.csv, results.md and samples.npz."""
  tf.io.gfile.makedirs(output_dir)
  _write_npz(os.path.join(output_dir, SAMPLES), sample_arrays)
  rows = table_rows(results)
  _write_text(os.path.join(output_dir, "results.csv"), csv_text(rows))
  _write_text(os.path.join(output_dir, "results.md"), markdown_text(rows))
  store_lib.write_json(os.path.join(output_dir, RESULTS), results)


def read_results(output_dir):
  """The results dict and the sample arrays of a finished experiment."""
  results = store_lib.read_json(os.path.join(output_dir, RESULTS))
  with tf.io.gfile.GFile(os.path.join(output_dir, SAMPLES), "rb") as f:
    samples = dict(np.load(io.BytesIO(f.read())))
  return results, samples
