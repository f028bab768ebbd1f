"""The real command line, at smoke scale, into temporary directories."""

import csv
import json
import os
import subprocess
import sys

import pytest

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
      command, cwd=REPOSITORY, capture_output=True, text=True, timeout=600
  )


SMOKE = ("--gin_file=gin/mi_per_layer.gin", "--gin_file=gin/scale/smoke.gin")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
  output_dir = tmp_path_factory.mktemp("smoke")
  cache_dir = tmp_path_factory.mktemp("cache")
  result = run_main(*SMOKE, output_dir=output_dir, cache_dir=cache_dir)
  assert result.returncode == 0, result.stderr[-3000:]
  return output_dir


def test_smoke_run_writes_tables_figures_and_config(smoke_run):
  for name in (
      "results.json",
      "results.csv",
      "results.md",
      "samples.npz",
      "operative_config.gin",
      "mi_per_layer.png",
      "mi_per_layer.pdf",
      "samples.png",
      "samples.pdf",
  ):
    path = os.path.join(smoke_run, name)
    assert os.path.getsize(path) > 0, name

  with open(os.path.join(smoke_run, "results.json")) as f:
    results = json.load(f)
  with open(os.path.join(smoke_run, "operative_config.gin")) as f:
    config = f.read()
  layers = [r["layer"] for r in results["rows"] if r["conditioning"] == "spatial"]
  assert layers[0] == "input"
  for layer in layers:
    assert f"'{layer}'" in config
  assert "TrainConfig.steps = 3" in config

  with open(os.path.join(smoke_run, "results.csv")) as f:
    rows = list(csv.DictReader(f))
  assert rows[0]["layer"].startswith("H(x)")
  assert [r["layer"] for r in rows[1:]] == [r["layer"] for r in results["rows"]]
  for row in rows:
    assert float(row["mi_low"]) <= float(row["mi"]) <= float(row["mi_high"])


def test_misspelt_gin_name_is_an_error_naming_it(tmp_path):
  result = run_main(
      *SMOKE,
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


def test_unknown_layer_is_an_error_listing_the_layers(tmp_path):
  result = run_main(
      *SMOKE,
      "--gin_param=mi_per_layer.layers = ['input', 'conv7']",
      output_dir=tmp_path / "out",
      cache_dir=tmp_path / "cache",
  )
  assert result.returncode != 0
  assert "conv7" in result.stderr
  assert "pool1" in result.stderr and "logits" in result.stderr
  assert not (tmp_path / "out").exists()
