"""Result files: the JSON of every number, CSV and Markdown tables, samples.

Each file is written to a temporary name and renamed into place, so a reader
never sees half a file; `repro.main` moreover writes a whole result directory
beside the old one and swaps it in only when it is complete.
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
    ("group", "group"),
    ("layer", "layer"),
    ("kind", "kind"),
    ("conditioning", "conditioning"),
    ("shape", "shape"),
    ("bits_per_dim", "bits/dim"),
    ("mi", "MI (bits/image)"),
    ("mi_low", "95% low"),
    ("mi_high", "95% high"),
    ("mi_fraction", "MI / H(x)"),
    ("check", "expectation"),
    ("flag", "flag"),
    ("test_accuracy", "classifier test acc."),
    ("decoder_mse", "MSE decoder (test)"),
)


def write_text(path, text):
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


def _accuracy(results, row):
  """The test accuracy of the classifier a row's layer belongs to."""
  if row.get("kind") == "control":
    return ""
  if "variants" in results:
    return results["variants"][row["group"]]["test_accuracy"]
  if "accuracy" in results:
    by_epoch = {a["epoch"]: a["test_accuracy"] for a in results["accuracy"]}
    return by_epoch[row["epoch"]]
  # None for a saved model whose output is not one score per class.
  accuracy = results["classifier"]["test_accuracy"]
  return "" if accuracy is None else accuracy


def _decoder_errors(results):
  """The MSE decoders' rows by (group, layer); empty without decoders."""
  rows = (results.get("reconstructions") or {}).get("rows", [])
  return {(r.get("group", ""), r["layer"]): r for r in rows}


def table_rows(results):
  """One flat dict per table row, the H(x) row first.

  With MSE decoders, `decoder_mse` is the decoder's test error per pixel
  for the per-pixel conditioned rows that have one; on the H(x) row it is
  the error of the training mean image, what a decoder that sees nothing
  reaches at best.
  """
  entropy = results["unconditional"]["entropy"]
  decoders = _decoder_errors(results)
  rows = [
      {
          "group": "",
          "layer": "H(x)",
          "kind": "unconditional",
          "conditioning": "none",
          "shape": "",
          "bits_per_dim": results["unconditional"]["bits_per_dim"],
          "mi": entropy["mean"],
          "mi_low": entropy["low"],
          "mi_high": entropy["high"],
          "mi_fraction": 1.0,
          "check": "",
          "flag": "",
          "test_accuracy": "",
          "decoder_mse": next(iter(decoders.values()))["mean_image_mse"]
          if decoders
          else "",
      }
  ]
  for row in results["rows"]:
    check = row.get("check")
    flag = ""
    if row.get("rises_with_depth"):
      flag = "rises above " + ", ".join(row["rises_above"])
    decoder = None
    if row["conditioning"] == "spatial":
      decoder = decoders.get((row.get("group", ""), row["layer"]))
    rows.append(
        {
            "group": row.get("group", ""),
            "layer": row["layer"],
            "kind": row["kind"],
            "conditioning": row["conditioning"],
            "shape": "x".join(str(d) for d in row["shape"]),
            "bits_per_dim": row["bits_per_dim"],
            "mi": row["mi"]["mean"],
            "mi_low": row["mi"]["low"],
            "mi_high": row["mi"]["high"],
            "mi_fraction": row["mi"]["mean"] / entropy["mean"],
            "check": ""
            if check is None
            else f"{check['expectation']}: "
            + ("holds" if check["held"] else "FAILS"),
            "flag": flag,
            "test_accuracy": _accuracy(results, row),
            "decoder_mse": "" if decoder is None else decoder["test_mse"],
        }
    )
  return rows


def _format(key, value):
  if isinstance(value, str):
    return value
  if key == "bits_per_dim":
    return f"{value:.3f}"
  if key in ("mi_fraction", "test_accuracy", "decoder_mse"):
    return f"{value:.4f}"
  return f"{value:.1f}"


def _columns(rows):
  """The columns, without 'group' or 'decoder_mse' when no row has one."""
  return tuple(
      c
      for c in COLUMNS
      if c[0] not in ("group", "decoder_mse")
      or any(row[c[0]] != "" for row in rows)
  )


def _csv(columns, rows):
  """CSV of `rows` under the keys of `columns`, floats at full precision.

  Args:
    columns: `(key, title)` pairs; the header is the keys.
    rows: dicts; a missing key is an empty cell.
  """
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator="\n")
  writer.writerow([key for key, _ in columns])
  for row in rows:
    values = (row.get(key, "") for key, _ in columns)
    writer.writerow([repr(v) if isinstance(v, float) else v for v in values])
  return buffer.getvalue()


def _markdown(columns, rows, format_cell):
  """A Markdown table of `rows` under the titles of `columns`.

  Args:
    columns: `(key, title)` pairs.
    rows: dicts; a missing key is an empty cell.
    format_cell: maps `(key, value)` to the cell's text.
  """
  lines = [
      "| " + " | ".join(title for _, title in columns) + " |",
      "|" + "|".join("---" for _ in columns) + "|",
  ]
  for row in rows:
    cells = [format_cell(key, row.get(key, "")) for key, _ in columns]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def csv_text(rows):
  return _csv(_columns(rows), rows)


def markdown_text(rows):
  return _markdown(_columns(rows), rows, _format)


def _estimator_key(row):
  """A column key for one estimator at one setting, e.g. 'binning_30'."""
  if row["estimator"] == "binning":
    return f"binning_{row['parameter_value']}"
  return f"kde_{row['parameter_value']:g}"


def _estimator_title(row):
  if row["estimator"] == "binning":
    return f"binning, {row['parameter_value']} bins"
  return f"KDE bound, σ² = {row['parameter_value']:g}"


def estimator_columns(results):
  """`(key, title)` of the side-by-side table, one column per estimate."""
  rows = results["estimators"]["rows"]
  columns = [("group", "group")] if any(r.get("group") for r in rows) else []
  columns += [
      ("layer", "layer"),
      ("kind", "kind"),
      ("shape", "shape"),
      ("pixelcnn", "PixelCNN Î"),
  ]
  seen = []
  for row in rows:
    column = (_estimator_key(row), _estimator_title(row))
    if column not in seen:
      seen.append(column)
  return columns + seen + [("check", "expectation (other estimators)")]


def estimator_table_rows(results):
  """One row per layer or control: the PixelCNN Î beside the others.

  Every number is in bits per image; the PixelCNN Î is the per-pixel
  conditioned row of `results['rows']` for the same group and layer.
  """
  pixelcnn = {
      (r.get("group", ""), r["layer"]): r
      for r in results["rows"]
      if r["conditioning"] == "spatial"
  }
  table, order = {}, []
  for row in results["estimators"]["rows"]:
    key = (row.get("group", ""), row["layer"])
    if key not in table:
      order.append(key)
      model = pixelcnn.get(key)
      table[key] = {
          "group": key[0],
          "layer": row["layer"],
          "kind": row["kind"],
          "shape": "x".join(str(d) for d in model["shape"]) if model else "",
          "pixelcnn": model["mi"]["mean"] if model else "",
          "check": "",
          "_checks": [],
      }
    table[key][_estimator_key(row)] = row["bits"]
    if row.get("check"):
      table[key]["_checks"].append((_estimator_title(row), row["check"]))
  result = []
  for key in order:
    row = table[key]
    checks = row.pop("_checks")
    if checks:
      failing = [title for title, check in checks if not check["held"]]
      verdict = "FAILS for " + ", ".join(failing) if failing else "holds"
      row["check"] = f"{checks[0][1]['expectation']}: {verdict}"
    result.append(row)
  return result


def estimators_markdown(results):
  """The side-by-side table, under a note on what bounds each estimate."""
  settings = results["estimators"]
  entropy = results["unconditional"]["entropy"]["mean"]
  note = (
      "Bits per image, on the same "
      f"{settings['num_test']} test images. Binning and the KDE bound "
      f"cannot exceed log2 N = {settings['ceiling_bits']:.2f} bits for "
      f"N = {settings['num_test']} images (every image its own symbol); "
      "the PixelCNN Î is bounded by H(x) instead (estimated here at "
      f"{entropy:.0f} bits). Bins span the "
      f"{settings['bin_range']}; the KDE bound adds Gaussian noise of "
      "variance "
      f"σ² = {settings['kde_noise_variance']:g}.\n\n"
  )
  table = _markdown(
      estimator_columns(results),
      estimator_table_rows(results),
      _format_estimate,
  )
  return note + table


def _format_estimate(key, value):
  if isinstance(value, str):
    return value
  if key == "pixelcnn":
    return f"{value:.1f}"
  return f"{value:.2f}"


def estimators_csv(results):
  return _csv(estimator_columns(results), estimator_table_rows(results))


RECONSTRUCTION_COLUMNS = (
    ("group", "group"),
    ("layer", "layer"),
    ("shape", "shape"),
    ("test_mse", "MSE decoder (test, per pixel)"),
    ("test_psnr", "PSNR (dB)"),
    ("mean_image_mse", "MSE of the mean image"),
    ("final_train_mse", "final training MSE"),
)


def reconstruction_rows(results):
  """One row per MSE decoder, its errors in [0, 1] pixel units."""
  rows = []
  for row in results["reconstructions"]["rows"]:
    rows.append(
        dict(
            row,
            group=row.get("group", ""),
            shape="x".join(str(d) for d in row["shape"]),
        )
    )
  return rows


def _reconstruction_columns(rows):
  if any(row["group"] for row in rows):
    return RECONSTRUCTION_COLUMNS
  return RECONSTRUCTION_COLUMNS[1:]


def reconstructions_markdown(results):
  """The MSE decoders' test errors, under a note on their units."""
  rows = reconstruction_rows(results)
  columns = _reconstruction_columns(rows)
  note = (
      "Deterministic decoders trained with the mean squared error "
      "(Dosovitskiy and Brox 2016) on the activations of each layer. Errors "
      "are per pixel, on pixels scaled to [0, 1], averaged over the test "
      "images; PSNR is 10 log10(1 / MSE). The mean image is what a decoder "
      "that ignores the activation reaches at best.\n\n"
  )
  return note + _markdown(columns, rows, _format_reconstruction)


def _format_reconstruction(key, value):
  if isinstance(value, str):
    return value
  if key == "test_psnr":
    return f"{value:.2f}"
  return f"{value:.4f}"


def reconstructions_csv(results):
  rows = reconstruction_rows(results)
  return _csv(_reconstruction_columns(rows), rows)


def write_results(output_dir, results, sample_arrays):
  """Writes results.json, samples.npz and, for MI tables, CSV and Markdown.

  Experiments with other estimators also get `estimators.csv` and
  `estimators.md`, the side-by-side table; experiments with MSE decoders
  get `reconstructions.csv` and `reconstructions.md`, their test errors.
  """
  tf.io.gfile.makedirs(output_dir)
  _write_npz(os.path.join(output_dir, SAMPLES), sample_arrays)
  if results["rows"]:
    rows = table_rows(results)
    write_text(os.path.join(output_dir, "results.csv"), csv_text(rows))
    write_text(os.path.join(output_dir, "results.md"), markdown_text(rows))
  if results.get("estimators", {}).get("rows"):
    write_text(
        os.path.join(output_dir, "estimators.csv"), estimators_csv(results)
    )
    write_text(
        os.path.join(output_dir, "estimators.md"), estimators_markdown(results)
    )
  if (results.get("reconstructions") or {}).get("rows"):
    write_text(
        os.path.join(output_dir, "reconstructions.csv"),
        reconstructions_csv(results),
    )
    write_text(
        os.path.join(output_dir, "reconstructions.md"),
        reconstructions_markdown(results),
    )
  store_lib.write_json(os.path.join(output_dir, RESULTS), results)


def read_results(output_dir):
  """The results dict and the sample arrays of a finished experiment."""
  results = store_lib.read_json(os.path.join(output_dir, RESULTS))
  with tf.io.gfile.GFile(os.path.join(output_dir, SAMPLES), "rb") as f:
    samples = dict(np.load(io.BytesIO(f.read())))
  return results, samples
