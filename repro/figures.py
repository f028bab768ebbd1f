"""Figures, drawn only from an experiment's saved result files."""

import io
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from repro import tables  # noqa: E402

MODE_STYLE = {
    "spatial": ("tab:blue", "o-", "per-pixel conditioning (this project)"),
    "global": ("tab:orange", "s", "TFP's global conditioning"),
}
GROUP_COLOURS = ("tab:blue", "tab:green", "tab:red", "tab:purple", "tab:brown")
# The other estimators get colours of their own, unused by the PixelCNN rows.
BINNING_COLOURS = ("tab:olive", "tab:cyan", "tab:pink", "tab:gray")
KDE_COLOUR = "darkgoldenrod"
LAYER_MARKERS = ("o", "s", "^", "v", "P", "X")


# Without a creation date, the same figure gives the same PDF bytes on every
# run, so a regenerated paper_figures/ differs only where a result does.
_METADATA = {"png": None, "pdf": {"CreationDate": None}}


def _save(figure, output_dir, name):
  """Writes `name`.png and `name`.pdf; returns the PNG's path."""
  paths = []
  for extension, metadata in _METADATA.items():
    buffer = io.BytesIO()
    figure.savefig(
        buffer,
        format=extension,
        dpi=150,
        bbox_inches="tight",
        metadata=metadata,
    )
    path = os.path.join(output_dir, f"{name}.{extension}")
    with tf.io.gfile.GFile(path, "wb") as f:
      f.write(buffer.getvalue())
    paths.append(path)
  plt.close(figure)
  return paths[0]


def _errorbar(axis, x, rows, **style):
  y = np.array([r["mi"]["mean"] for r in rows])
  error = np.array(
      [
          [r["mi"]["mean"] - r["mi"]["low"] for r in rows],
          [r["mi"]["high"] - r["mi"]["mean"] for r in rows],
      ]
  )
  axis.errorbar(x, y, yerr=error, capsize=3, **style)


def _entropy_band(axis, results):
  entropy = results["unconditional"]["entropy"]
  axis.axhline(entropy["mean"], color="k", linestyle="--", linewidth=1)
  axis.axhspan(entropy["low"], entropy["high"], color="k", alpha=0.1)
  # At the right edge in axes units: a point beyond the x limits in data
  # units would be dropped by matplotlib.
  axis.annotate(
      f"estimated H(x) = {entropy['mean']:.0f} bits",
      (0.99, entropy["mean"]),
      xycoords=("axes fraction", "data"),
      textcoords="offset points",
      xytext=(0, 4),
      ha="right",
      fontsize=8,
  )
  axis.axhline(0.0, color="grey", linewidth=0.5)


def _controls(results):
  return {r["layer"]: r for r in results["rows"] if r["kind"] == "control"}


def _estimator_series(results):
  """`(label, colour, marker, rows)` per estimate, in the results' order."""
  series, order = {}, []
  for row in results["estimators"]["rows"]:
    key = (row["estimator"], row["parameter_value"])
    if key not in series:
      order.append(key)
      series[key] = []
    series[key].append(row)
  bins = [key for key in order if key[0] == "binning"]
  styled = []
  for key in order:
    if key[0] == "binning":
      colour = BINNING_COLOURS[bins.index(key) % len(BINNING_COLOURS)]
      label, marker = f"binning, {key[1]} bins", "^"
    else:
      colour, label, marker = KDE_COLOUR, f"KDE bound, σ² = {key[1]:g}", "v"
    styled.append((label, colour, marker, series[key]))
  return styled


def _ceiling(axis, results):
  """The log2 N line that bounds binning and the KDE bound alike."""
  settings = results["estimators"]
  axis.axhline(settings["ceiling_bits"], color="k", linestyle=":", lw=1)
  axis.annotate(
      f"log2 N = {settings['ceiling_bits']:.2f} bits, the ceiling of both "
      f"(N = {settings['num_test']} test images)",
      (0.99, settings["ceiling_bits"]),
      xycoords=("axes fraction", "data"),
      textcoords="offset points",
      xytext=(0, -10),
      ha="right",
      fontsize=7,
  )
  axis.set_ylim(-0.3, settings["ceiling_bits"] * 1.15 + 0.3)
  axis.axhline(0.0, color="grey", linewidth=0.5)


def plot_mi_per_layer(results, output_dir):
  """Î per layer with 95% intervals; controls to the right; H(x) band.

  When the results hold other estimators, a second panel below shows them
  at the same positions, on their own scale (bits, at most log2 N).
  """
  layers = [
      r
      for r in results["rows"]
      if r["kind"] == "layer" and r["conditioning"] == "spatial"
  ]
  controls = _controls(results)
  chain = ([controls["input"]] if "input" in controls else []) + layers
  names = [r["layer"] for r in chain]
  others = [name for name in ("constant", "label") if name in controls]
  width = 1.0 * (len(names) + len(others)) + 2.5
  estimates = results.get("estimators", {}).get("rows")
  if estimates:
    figure, (axis, lower) = plt.subplots(
        2,
        1,
        figsize=(width, 7),
        sharex=True,
        gridspec_kw={"height_ratios": [4, 3]},
    )
  else:
    figure, axis = plt.subplots(figsize=(width, 4))
  _entropy_band(axis, results)

  colour, marker, label = MODE_STYLE["spatial"]
  _errorbar(
      axis, np.arange(len(chain)), chain, fmt=marker, color=colour, label=label
  )
  position = {name: i for i, name in enumerate(names)}
  global_rows = [
      r
      for r in results["rows"]
      if r["conditioning"] == "global" and r["layer"] in position
  ]
  if global_rows:
    colour, marker, label = MODE_STYLE["global"]
    _errorbar(
        axis,
        np.array([position[r["layer"]] + 0.15 for r in global_rows]),
        global_rows,
        fmt=marker,
        color=colour,
        label=label,
    )
  if others:
    x = np.arange(len(names), len(names) + len(others))
    _errorbar(
        axis,
        x,
        [controls[name] for name in others],
        fmt="D",
        color="grey",
        label="controls (expected: 0; at most log2 classes)",
    )
    axis.axvline(len(names) - 0.5, color="grey", linewidth=0.5)

  shapes = ["x".join(map(str, r["shape"])) for r in chain]
  ticks = [f"{n}\n{s}" for n, s in zip(names, shapes)] + others
  axis.set_ylabel("PixelCNN Î(x; layer), bits per image")
  accuracy = results["classifier"]["test_accuracy"]
  axis.set_title(
      f"{results['dataset']['name']}: MI between the input and each layer "
      f"(classifier test accuracy {accuracy:.3f})",
      fontsize=10,
  )
  axis.legend(fontsize=7, loc="center right")
  bottom = axis
  if estimates:
    _plot_estimators_by_layer(lower, results, names, others)
    bottom = lower
  bottom.set_xticks(range(len(ticks)))
  bottom.set_xticklabels(ticks, fontsize=8)
  return _save(figure, output_dir, "mi_per_layer")


def _plot_estimators_by_layer(axis, results, names, others):
  """The other estimators at the PixelCNN panel's positions."""
  _ceiling(axis, results)
  series = _estimator_series(results)
  for index, (label, colour, marker, rows) in enumerate(series):
    by_layer = {r["layer"]: r["bits"] for r in rows}
    offset = 0.08 * (index - (len(series) - 1) / 2)
    chain = [i for i, name in enumerate(names) if name in by_layer]
    axis.plot(
        np.array(chain) + offset,
        [by_layer[names[i]] for i in chain],
        marker + "-",
        color=colour,
        label=label,
    )
    rest = [i for i, name in enumerate(others) if name in by_layer]
    axis.plot(
        np.array(rest) + len(names) + offset,
        [by_layer[others[i]] for i in rest],
        marker,
        color=colour,
    )
  if others:
    axis.axvline(len(names) - 0.5, color="grey", linewidth=0.5)
  axis.set_ylabel("binning and KDE bound,\nbits per image")
  axis.set_title(
      "On the same test activations: binning (Shwartz-Ziv and Tishby) and "
      "the KDE bound (Saxe et al.)",
      fontsize=9,
  )
  axis.legend(fontsize=7, loc="lower left")


# The frame and header colour of an MSE reconstruction in the sample grids.
RECONSTRUCTION_COLOUR = "tab:orange"


def plot_sample_grid(
    samples, columns, output_dir, name, titles=None, reconstructions=None
):
  """Rows of test images: the image, then each column's samples.

  Args:
    samples: the sample arrays; `samples[column]` is uint8
      `[k, samples_per_image, height, width, channels]`.
    columns: the columns to draw, in order.
    output_dir: where the figure goes.
    name: the figure's file name, without extension.
    titles: optional column titles, by column.
    reconstructions: optional map from a column to the key of its MSE
      reconstructions (uint8 `[k, height, width, channels]`); each is drawn
      before that column's samples, framed and headed '<title> MSE'.
  """
  originals = samples["originals"]
  reconstructions = {
      c: key for c, key in (reconstructions or {}).items() if c in columns
  }
  count, per_image = samples[columns[0]].shape[:2]
  starts, width = [], 1
  for column in columns:
    starts.append(width)
    width += per_image + (column in reconstructions)
  figure, axes = plt.subplots(
      count,
      width,
      figsize=(0.75 * width, 0.75 * count + 0.5),
      squeeze=False,
  )
  grey = originals.shape[-1] == 1

  def show(axis, image):
    axis.imshow(
        image[..., 0] if grey else image,
        cmap="gray" if grey else None,
        vmin=0,
        vmax=255,
    )
    axis.set_xticks([])
    axis.set_yticks([])

  for row in range(count):
    show(axes[row, 0], originals[row])
    for start, column in zip(starts, columns):
      if column in reconstructions:
        axis = axes[row, start]
        show(axis, samples[reconstructions[column]][row])
        for spine in axis.spines.values():
          spine.set_edgecolor(RECONSTRUCTION_COLOUR)
          spine.set_linewidth(2)
        start += 1
      for s in range(per_image):
        show(axes[row, start + s], samples[column][row, s])
  axes[0, 0].set_title("test image", fontsize=7)
  for start, column in zip(starts, columns):
    title = (titles or {}).get(column, column)
    if column in reconstructions:
      axes[0, start].set_title(
          f"{title} MSE", fontsize=7, loc="left", color=RECONSTRUCTION_COLOUR
      )
      start += 1
    axes[0, start].set_title(title, fontsize=7, loc="left")
  figure.subplots_adjust(wspace=0.05, hspace=0.05)
  return _save(figure, output_dir, name)


def plot_architectures(results, output_dir):
  """Î per layer, one line per down-sampling variant."""
  groups = results["samples"]["groups"]
  layers = results["samples"]["columns"]
  controls = _controls(results)
  figure, axis = plt.subplots(figsize=(1.0 * len(layers) + 4, 4))
  _entropy_band(axis, results)
  if "input" in controls:
    _errorbar(
        axis,
        np.array([0.0]),
        [controls["input"]],
        fmt="D",
        color="grey",
        label="input (control)",
    )
  for index, group in enumerate(groups):
    rows = [
        r
        for r in results["rows"]
        if r.get("group") == group and r["kind"] == "layer"
    ]
    offset = 0.1 * (index - (len(groups) - 1) / 2)
    accuracy = results["variants"][group]["test_accuracy"]
    _errorbar(
        axis,
        np.arange(1, len(rows) + 1) + offset,
        rows,
        fmt="o-",
        color=GROUP_COLOURS[index % len(GROUP_COLOURS)],
        label=f"{group} (test accuracy {accuracy:.3f})",
    )
  axis.set_xticks(range(len(layers) + 1))
  axis.set_xticklabels(["input"] + layers, fontsize=8)
  axis.set_ylabel("Î(x; layer), bits per image")
  axis.set_title(
      f"{results['dataset']['name']}: MI per layer by down-sampling",
      fontsize=10,
  )
  axis.legend(fontsize=7, loc="center right")
  return _save(figure, output_dir, "mi_by_architecture")


def plot_training_dynamics(results, output_dir):
  """Î against classifier epoch per layer, above accuracy on the same axis.

  When the results hold other estimators, a panel between the two shows
  them per layer: colour for the estimator, marker for the layer (the same
  marker as the layer's in the PixelCNN panel).
  """
  epochs = results["epochs"]
  estimates = results.get("estimators", {}).get("rows")
  # Epoch 0 (initialisation) sits on a symmetric-log axis beside the others.
  if estimates:
    figure, (top, middle, bottom) = plt.subplots(
        3,
        1,
        figsize=(6, 9),
        sharex=True,
        gridspec_kw={"height_ratios": [2, 1.6, 1]},
    )
  else:
    figure, (top, bottom) = plt.subplots(
        2,
        1,
        figsize=(6, 6),
        sharex=True,
        gridspec_kw={"height_ratios": [2, 1]},
    )
  for index, layer in enumerate(results["layers"]):
    rows = [
        r
        for r in results["rows"]
        if r["kind"] == "layer" and r["layer"] == layer
    ]
    rows.sort(key=lambda r: r["epoch"])
    _errorbar(
        top,
        np.array([r["epoch"] for r in rows]),
        rows,
        fmt=LAYER_MARKERS[index % len(LAYER_MARKERS)] + "-",
        color=GROUP_COLOURS[index % len(GROUP_COLOURS)],
        label=layer,
    )
  top.set_ylabel("PixelCNN Î(x; layer),\nbits per image")
  top.legend(fontsize=8)
  top.set_title(
      f"{results['dataset']['name']}: MI over the classifier's training",
      fontsize=10,
  )
  if estimates:
    _plot_estimators_by_epoch(middle, results)
  accuracy = results["accuracy"]
  for key, style in (("train_accuracy", "o-"), ("test_accuracy", "s--")):
    bottom.plot(
        [a["epoch"] for a in accuracy],
        [a[key] for a in accuracy],
        style,
        label=key.replace("_", " "),
    )
  bottom.set_ylabel("accuracy")
  bottom.set_xlabel("classifier epoch")
  bottom.set_xscale("symlog", linthresh=1)
  bottom.set_xticks(epochs)
  bottom.set_xticklabels([str(e) for e in epochs])
  bottom.legend(fontsize=8)
  return _save(figure, output_dir, "mi_training_dynamics")


def _plot_estimators_by_epoch(axis, results):
  """The other estimators against epoch; marker per layer, colour per one."""
  _ceiling(axis, results)
  layers = results["layers"]
  for label, colour, _, rows in _estimator_series(results):
    for index, layer in enumerate(layers):
      points = sorted(
          (r["epoch"], r["bits"])
          for r in rows
          if r["kind"] == "layer" and r["layer"] == layer
      )
      axis.plot(
          [e for e, _ in points],
          [b for _, b in points],
          LAYER_MARKERS[index % len(LAYER_MARKERS)] + "-",
          color=colour,
          label=label if index == 0 else None,
      )
  axis.set_ylabel("binning and KDE\nbound, bits per image")
  axis.set_title(
      "Binning and the KDE bound on the same test activations "
      "(markers: layers as above)",
      fontsize=9,
  )
  axis.legend(fontsize=7, loc="lower left")


def draw(output_dir):
  """Draws every figure of a result directory, by the experiment it holds."""
  results, samples = tables.read_results(output_dir)
  experiment = results["experiment"]
  columns = results["samples"]["columns"]
  # Keys of the MSE reconstructions by sample column, when there are any.
  mse = (results.get("reconstructions") or {}).get("keys", {})
  paths = []
  if experiment == "mi_per_layer":
    paths.append(plot_mi_per_layer(results, output_dir))
    paths.append(
        plot_sample_grid(
            samples, columns, output_dir, "samples", reconstructions=mse
        )
    )
  elif experiment == "inversion_samples":
    paths.append(
        plot_sample_grid(
            samples,
            columns,
            output_dir,
            "inversion_samples",
            reconstructions=mse,
        )
    )
  elif experiment == "architectures":
    paths.append(plot_architectures(results, output_dir))
    for group in results["samples"]["groups"]:
      keyed = [f"{group}__{c}" for c in columns]
      paths.append(
          plot_sample_grid(
              samples,
              keyed,
              output_dir,
              f"samples_{group}",
              titles={k: c for k, c in zip(keyed, columns)},
              reconstructions=mse,
          )
      )
  elif experiment == "mi_training_dynamics":
    paths.append(plot_training_dynamics(results, output_dir))
    titles = {c: c.replace("_", " ") for c in columns}
    paths.append(
        plot_sample_grid(samples, columns, output_dir, "samples", titles)
    )
  elif experiment == "invert":
    paths.append(plot_sample_grid(samples, columns, output_dir, "samples"))
  else:
    raise ValueError(f"No figures for experiment {experiment!r}.")
  return paths
