"""Figures, drawn only from an experiment's saved result files."""

import io
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from repro import tables  # noqa: E402

COLOURS = {"spatial": "tab:blue", "global": "tab:orange"}
LABELS = {
    "spatial": "per-pixel conditioning (this project)",
    "global": "TFP's global conditioning",
}


def _save(figure, output_dir, name):
  """Writes `name`.png and `name`.pdf; returns the PNG's path."""
  paths = []
  for extension in ("png", "pdf"):
    buffer = io.BytesIO()
    figure.savefig(buffer, format=extension, dpi=150, bbox_inches="tight")
    path = os.path.join(output_dir, f"{name}.{extension}")
    with tf.io.gfile.GFile(path, "wb") as f:
      f.write(buffer.getvalue())
    paths.append(path)
  plt.close(figure)
  return paths[0]


def plot_mi_per_layer(results, output_dir):
  """MI per layer with 95% intervals, against the estimate of H(x)."""
  spatial = [r for r in results["rows"] if r["conditioning"] == "spatial"]
  names = [r["layer"] for r in spatial]
  position = {name: i for i, name in enumerate(names)}
  figure, axis = plt.subplots(figsize=(1.1 * len(names) + 2.5, 4.0))

  entropy = results["unconditional"]["entropy"]
  axis.axhline(entropy["mean"], color="k", linestyle="--", linewidth=1)
  axis.axhspan(entropy["low"], entropy["high"], color="k", alpha=0.1)
  axis.annotate(
      f"estimated H(x) = {entropy['mean']:.0f} bits",
      (len(names) - 0.5, entropy["mean"]),
      textcoords="offset points",
      xytext=(0, 4),
      ha="right",
      fontsize=8,
  )
  axis.axhline(0.0, color="grey", linewidth=0.5)

  for mode, offset in (("spatial", 0.0), ("global", 0.15)):
    rows = [
        r
        for r in results["rows"]
        if r["conditioning"] == mode and r["layer"] in position
    ]
    if not rows:
      continue
    x = np.array([position[r["layer"]] + offset for r in rows])
    y = np.array([r["mi"]["mean"] for r in rows])
    error = np.array(
        [[r["mi"]["mean"] - r["mi"]["low"] for r in rows],
         [r["mi"]["high"] - r["mi"]["mean"] for r in rows]]
    )
    axis.errorbar(
        x,
        y,
        yerr=error,
        fmt="o-" if mode == "spatial" else "s",
        color=COLOURS[mode],
        capsize=3,
        label=LABELS[mode],
    )

  shapes = {r["layer"]: "x".join(map(str, r["shape"])) for r in spatial}
  axis.set_xticks(range(len(names)))
  axis.set_xticklabels([f"{n}\n{shapes[n]}" for n in names], fontsize=8)
  axis.set_ylabel("Î(x; layer), bits per image")
  accuracy = results["classifier"]["test_accuracy"]
  axis.set_title(
      f"{results['dataset']['name']}: MI between input and layer "
      f"(classifier test accuracy {accuracy:.3f})",
      fontsize=10,
  )
  axis.legend(fontsize=8, loc="center right")
  return _save(figure, output_dir, "mi_per_layer")


def plot_samples(results, samples, output_dir, name="samples"):
  """One row per test image: the image, then samples per layer by depth."""
  layers = results["samples"]["layers"] + ["unconditional"]
  originals = samples["originals"]
  count, per_image = samples[layers[0]].shape[:2]
  columns = 1 + len(layers) * per_image
  figure, axes = plt.subplots(
      count,
      columns,
      figsize=(0.8 * columns, 0.8 * count + 0.4),
      squeeze=False,
  )
  cmap = "gray" if originals.shape[-1] == 1 else None

  def show(axis, image):
    axis.imshow(image.squeeze(-1) if cmap else image, cmap=cmap,
                vmin=0, vmax=255)
    axis.set_xticks([])
    axis.set_yticks([])

  for row in range(count):
    show(axes[row, 0], originals[row])
    for j, layer in enumerate(layers):
      for s in range(per_image):
        show(axes[row, 1 + j * per_image + s], samples[layer][row, s])
  axes[0, 0].set_title("test image", fontsize=7)
  for j, layer in enumerate(layers):
    axes[0, 1 + j * per_image].set_title(layer, fontsize=7)
  figure.subplots_adjust(wspace=0.05, hspace=0.05)
  return _save(figure, output_dir, name)


def draw_mi_per_layer(output_dir):
  """Draws every figure of an mi_per_layer result directory."""
  results, samples = tables.read_results(output_dir)
  return [
      plot_mi_per_layer(results, output_dir),
      plot_samples(results, samples, output_dir),
  ]
