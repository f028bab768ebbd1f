"""The real command line, at smoke scale, into temporary directories.

Every shipped experiment file runs with `gin/scale/smoke.gin` through
`run_all.sh` (all four in one process), and `python -m repro.main` runs
them one at a time; the tests never write into paper_figures/.
"""

import csv
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from repro import run_all as run_all_lib

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _binds_an_experiment(path):
  """Whether a gin file is an experiment of repro.main (gin/invert.gin,
  for repro.invert, is not: tests/test_invert.py runs it)."""
  with open(path) as f:
    return any(line.startswith("run.experiment = @") for line in f)


EXPERIMENTS = sorted(
    os.path.basename(path)[: -len(".gin")]
    for path in glob.glob(os.path.join(REPOSITORY, "gin", "*.gin"))
    if _binds_an_experiment(path)
)
FIGURES = {
    "mi_per_layer": ["mi_per_layer", "samples"],
    "inversion_samples": ["inversion_samples"],
    "architectures": [
        "mi_by_architecture",
        "samples_max_pool",
        "samples_strided_conv",
    ],
    "mi_training_dynamics": ["mi_training_dynamics", "samples"],
}


def run_main(*arguments, output_dir, cache_dir):
  command = [
      sys.executable,
      "-m",
      "repro.main",
      *arguments,
      f"--output_dir={output_dir}",
      f"--gin_param=run.cache_dir = '{cache_dir}'",
  ]
  return subprocess.run(
      command, cwd=REPOSITORY, capture_output=True, text=True, timeout=900
  )


def smoke(name):
  return (f"--gin_file=gin/{name}.gin", "--gin_file=gin/scale/smoke.gin")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("cache")


def run_all(*arguments, output_root, cache_dir):
  command = [
      os.path.join(REPOSITORY, "run_all.sh"),
      *arguments,
      f"--output_root={output_root}",
      f"--gin_param=run.cache_dir = '{cache_dir}'",
  ]
  return subprocess.run(
      command, cwd=REPOSITORY, capture_output=True, text=True, timeout=900
  )


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cache_dir):
  """Every experiment at smoke scale through run_all.sh, in one process."""
  root = tmp_path_factory.mktemp("figures")
  result = run_all("--scale=smoke", output_root=root, cache_dir=cache_dir)
  assert result.returncode == 0, result.stderr[-4000:]
  assert "all 4 experiments done (smoke scale)" in result.stdout
  return {name: root / "smoke" / name for name in EXPERIMENTS}


def read(output_dir, name):
  with open(os.path.join(output_dir, name)) as f:
    return json.load(f) if name.endswith(".json") else f.read()


# The experiments whose gin files switch the MSE decoders on.
RECONSTRUCTIONS = ("mi_per_layer", "inversion_samples", "architectures")


def test_every_experiment_has_a_figure_list_and_runs_in_run_all():
  assert set(EXPERIMENTS) == set(FIGURES)
  assert set(EXPERIMENTS) == set(run_all_lib.EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_writes_results_figures_and_config(runs, name):
  output_dir = runs[name]
  expected = ["results.json", "samples.npz", "operative_config.gin"]
  for figure in FIGURES[name]:
    expected += [f"{figure}.png", f"{figure}.pdf"]
  for file_name in expected:
    assert os.path.getsize(os.path.join(output_dir, file_name)) > 0, file_name
  config = read(output_dir, "operative_config.gin")
  assert "TrainConfig.steps = 2" in config
  assert f"run.experiment = @{name}" in config
  assert not glob.glob(f"{output_dir}.partial-*")


@pytest.mark.parametrize(
    "name", ["mi_per_layer", "architectures", "mi_training_dynamics"]
)
def test_tables_hold_controls_layers_and_intervals(runs, name):
  results = read(runs[name], "results.json")
  with open(os.path.join(runs[name], "results.csv")) as f:
    rows = list(csv.DictReader(f))
  assert rows[0]["layer"] == "H(x)"
  assert len(rows) == len(results["rows"]) + 1
  kinds = {row["kind"] for row in rows[1:]}
  assert kinds == {"control", "layer"}
  for row in rows:
    assert float(row["mi_low"]) <= float(row["mi"]) <= float(row["mi_high"])
  for row in results["rows"]:
    if row["kind"] == "control":
      assert row["check"]["expectation"]
      assert isinstance(row["check"]["held"], bool)


@pytest.mark.parametrize("name", RECONSTRUCTIONS)
def test_mse_reconstructions_sit_beside_the_samples(runs, name):
  output_dir = runs[name]
  results = read(output_dir, "results.json")
  decoders = results["reconstructions"]
  assert decoders["config"]["steps"] == 2
  samples = np.load(os.path.join(output_dir, "samples.npz"))
  count = len(results["samples"]["test_indices"])
  assert decoders["keys"]
  for key in decoders["keys"].values():
    assert samples[key].shape == (count, 28, 28, 1)
    assert samples[key].dtype == np.uint8
  assert len(decoders["rows"]) == len(decoders["keys"])
  for row in decoders["rows"]:
    assert 0.0 < row["test_mse"] < 1.0
    assert row["mean_image_mse"] > 0.0
  with open(os.path.join(output_dir, "reconstructions.csv")) as f:
    table = list(csv.DictReader(f))
  assert len(table) == len(decoders["rows"])
  assert "MSE of the mean image" in read(output_dir, "reconstructions.md")


def test_the_mi_table_has_the_decoders_error(runs):
  results = read(runs["mi_per_layer"], "results.json")
  decoders = {r["layer"]: r for r in results["reconstructions"]["rows"]}
  assert set(decoders) == {"input", "pool2", "fc"}
  with open(os.path.join(runs["mi_per_layer"], "results.csv")) as f:
    rows = list(csv.DictReader(f))
  for row in rows:
    expected = ""
    if row["layer"] == "H(x)":
      expected = decoders["fc"]["mean_image_mse"]
    elif row["conditioning"] == "spatial" and row["layer"] in decoders:
      expected = decoders[row["layer"]]["test_mse"]
    assert row["decoder_mse"] == (expected and repr(expected))
  assert "MSE decoder (test)" in read(runs["mi_per_layer"], "results.md")


def test_mi_per_layer_rows(runs):
  results = read(runs["mi_per_layer"], "results.json")
  names = [(r["layer"], r["conditioning"]) for r in results["rows"]]
  assert names == [
      ("input", "spatial"),
      ("label", "spatial"),
      ("pool2", "spatial"),
      ("fc", "spatial"),
      ("input", "global"),
  ]
  markdown = read(runs["mi_per_layer"], "results.md")
  assert "| input | control | spatial |" in markdown


@pytest.mark.parametrize("name", ["mi_per_layer", "mi_training_dynamics"])
def test_other_estimators_sit_beside_the_pixelcnn_rows(runs, name):
  results = read(runs[name], "results.json")
  estimates = results["estimators"]
  assert estimates["num_test"] == 16
  assert estimates["ceiling_bits"] == 4.0
  settings = {(r["estimator"], r["parameter_value"]) for r in estimates["rows"]}
  assert settings == {("binning", 2), ("binning", 30), ("kde_upper_bound", 0.1)}
  for row in estimates["rows"]:
    assert 0.0 <= row["bits"] <= estimates["ceiling_bits"] + 1e-9
    assert (row["check"] is not None) == (row["kind"] == "control")
  pixelcnn = {
      (r.get("group", ""), r["layer"])
      for r in results["rows"]
      if r["conditioning"] == "spatial"
  }
  estimated = {(r.get("group", ""), r["layer"]) for r in estimates["rows"]}
  assert estimated == pixelcnn
  with open(os.path.join(runs[name], "estimators.csv")) as f:
    table = list(csv.DictReader(f))
  assert len(table) == len(pixelcnn)
  assert all(float(row["pixelcnn"]) for row in table)
  assert "log2 N = 4.00" in read(runs[name], "estimators.md")


@pytest.mark.parametrize(
    "binding, shown",
    [
        ("OtherEstimators.bin_counts = [1, 30]", "Bin count 1"),
        ("OtherEstimators.kde_noise_variance = 0.0", "variance 0.0"),
        ("DecoderConfig.steps = 0", "DecoderConfig.steps=0"),
        ("DecoderConfig.batch_size = 65", "DecoderConfig.batch_size=65"),
    ],
)
def test_bad_setting_stops_before_training(tmp_path, binding, shown):
  result = run_main(
      *smoke("mi_per_layer"),
      f"--gin_param={binding}",
      output_dir=tmp_path / "out",
      cache_dir=tmp_path / "cache",
  )
  assert result.returncode != 0
  assert shown in result.stderr and "accepted" in result.stderr
  assert not (tmp_path / "out").exists()
  assert not list((tmp_path / "cache").glob("*/*"))


def test_a_second_run_reuses_every_artifact(runs, cache_dir, tmp_path):
  first = read(runs["mi_per_layer"], "results.json")
  assert first["artifacts"]["trained"] > 0
  result = run_main(
      *smoke("mi_per_layer"), output_dir=tmp_path / "again", cache_dir=cache_dir
  )
  assert result.returncode == 0, result.stderr[-3000:]
  second = read(tmp_path / "again", "results.json")
  assert second["artifacts"]["trained"] == 0
  assert second["artifacts"]["restored"] == 0
  assert first["artifacts"]["estimates"]["computed"] > 0
  assert second["artifacts"]["estimates"] == {
      "computed": 0,
      "found": len(first["estimators"]["rows"]),
  }
  assert second["artifacts"]["reused"] == (
      first["artifacts"]["trained"] + first["artifacts"]["reused"]
  )
  assert second["rows"] == [dict(r, reused=True) for r in first["rows"]]
  assert second["reconstructions"]["rows"] == [
      dict(r, reused=True) for r in first["reconstructions"]["rows"]
  ]
  assert second["estimators"] == first["estimators"]


def test_a_different_configuration_does_not_replace_results(runs, cache_dir):
  output_dir = runs["mi_per_layer"]
  before = read(output_dir, "results.json")
  result = run_main(
      *smoke("mi_per_layer"),
      "--gin_param=run.seed = 7",
      output_dir=output_dir,
      cache_dir=cache_dir,
  )
  assert result.returncode != 0
  assert "different configuration" in result.stderr
  assert "run.overwrite = True" in result.stderr
  assert read(output_dir, "results.json") == before


def test_misspelt_gin_name_is_an_error_naming_it(tmp_path):
  result = run_main(
      *smoke("mi_per_layer"),
      "--gin_param=TrainConfig.stepz = 3",
      output_dir=tmp_path / "out",
      cache_dir=tmp_path / "cache",
  )
  assert result.returncode != 0
  assert "stepz" in result.stderr
  assert not (tmp_path / "out").exists()


def test_missing_gin_file_is_an_error_listing_the_experiments(tmp_path):
  result = run_main(
      "--gin_file=gin/no_such_experiment.gin",
      output_dir=tmp_path / "out",
      cache_dir=tmp_path / "cache",
  )
  assert result.returncode != 0
  assert "no_such_experiment.gin" in result.stderr
  assert "gin/mi_per_layer.gin" in result.stderr


def test_binding_of_the_wrong_type_is_an_error_naming_it(tmp_path):
  result = run_main(
      *smoke("mi_per_layer"),
      "--gin_param=TrainConfig.batch_size = 'eight'",
      output_dir=tmp_path / "out",
      cache_dir=tmp_path / "cache",
  )
  assert result.returncode != 0
  assert "TrainConfig.batch_size='eight'" in result.stderr
  assert not (tmp_path / "out").exists()
  assert not list((tmp_path / "cache").glob("inversion/*"))


def test_unknown_layer_is_an_error_listing_the_layers(tmp_path):
  result = run_main(
      *smoke("mi_per_layer"),
      "--gin_param=mi_per_layer.layers = ['pool1', 'conv7']",
      output_dir=tmp_path / "out",
      cache_dir=tmp_path / "cache",
  )
  assert result.returncode != 0
  assert "conv7" in result.stderr
  assert "pool1" in result.stderr and "logits" in result.stderr
  assert not (tmp_path / "out").exists()
  # The names are checked before anything is trained.
  assert not list((tmp_path / "cache").glob("*/*"))


def test_a_second_run_all_trains_restores_and_recomputes_nothing(
    runs, cache_dir, tmp_path
):
  result = run_all("--scale=smoke", output_root=tmp_path, cache_dir=cache_dir)
  assert result.returncode == 0, result.stderr[-4000:]
  for name, first_dir in runs.items():
    first = read(first_dir, "results.json")
    second = read(tmp_path / "smoke" / name, "results.json")
    assert second["artifacts"]["trained"] == 0, name
    assert second["artifacts"]["restored"] == 0, name
    assert second["artifacts"]["estimates"]["computed"] == 0, name
    assert second["rows"] == [dict(r, reused=True) for r in first["rows"]]
    assert second.get("estimators") == first.get("estimators"), name
    for table in ("results.md", "estimators.md", "reconstructions.md"):
      if (first_dir / table).exists():
        assert read(tmp_path / "smoke" / name, table) == read(first_dir, table)
    with np.load(first_dir / "samples.npz") as a, np.load(
        tmp_path / "smoke" / name / "samples.npz"
    ) as b:
      assert sorted(a.files) == sorted(b.files)
      for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name} {key}")


def test_run_all_stops_at_a_failing_experiment_and_names_it(
    runs, cache_dir, tmp_path
):
  result = run_all(
      "--scale=smoke",
      "--experiments=inversion_samples,mi_training_dynamics,mi_per_layer",
      "--gin_param=mi_training_dynamics.epochs = [1, 0]",
      output_root=tmp_path,
      cache_dir=cache_dir,
  )
  assert result.returncode != 0
  assert "run_all: experiment mi_training_dynamics failed" in result.stderr
  assert "[1, 0]" in result.stderr
  # What finished before it is kept; nothing after it ran.
  assert (tmp_path / "smoke" / "inversion_samples" / "results.json").exists()
  assert not (tmp_path / "smoke" / "mi_training_dynamics").exists()
  assert not (tmp_path / "smoke" / "mi_per_layer").exists()


@pytest.mark.parametrize(
    "argument, shown",
    [
        ("--scale=huge", "--scale=huge; accepted: embedded, paper, smoke"),
        ("--experiments=mi_per_layer,typo", "--experiments=mi_per_layer,typo"),
        ("--shard=1-4", "--shard=1-4; accepted: INDEX/COUNT"),
        ("--shard=4/4", "--shard=4/4; accepted: INDEX/COUNT"),
        ("--output_dir=/tmp/x", "pass --output_root"),
        (
            "--gin_param=run.experiment = @mi_per_layer",
            "bind run.experiment to 'mi_per_layer' in the configuration of "
            "'inversion_samples'",
        ),
        (
            "--gin_param=mi_training_dynamics.epoch = [1]",
            "doesn't have a parameter named 'epoch'",
        ),
    ],
)
def test_run_all_refuses_a_bad_argument_naming_it(argument, shown, tmp_path):
  result = run_all(argument, output_root=tmp_path, cache_dir=tmp_path / "c")
  assert result.returncode != 0
  assert shown in result.stderr
  assert not list(tmp_path.iterdir())
