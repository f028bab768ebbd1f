"""An experiment split over shards trains each model once, then gathers."""

import glob
import json
import os
import subprocess
import sys

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = ["--gin_file=gin/mi_per_layer.gin", "--gin_file=gin/scale/smoke.gin"]


def command(output_dir, cache_dir, *extra):
  return [
      sys.executable,
      "-m",
      "repro.main",
      *SMOKE,
      *extra,
      f"--output_dir={output_dir}",
      f"--gin_param=run.cache_dir = '{cache_dir}'",
  ]


def test_shards_split_the_models_and_a_plain_run_gathers(tmp_path):
  cache_dir = tmp_path / "cache"
  shards = [
      subprocess.Popen(
          command(
              tmp_path / "out",
              cache_dir,
              f"--gin_param=run.shard_index = {index}",
              "--gin_param=run.num_shards = 2",
          ),
          cwd=REPOSITORY,
          stdout=subprocess.DEVNULL,
          stderr=subprocess.PIPE,
          text=True,
      )
      for index in range(2)
  ]
  logs = [process.communicate(timeout=900)[1] for process in shards]
  for process, log in zip(shards, logs):
    assert process.returncode == 0, log[-3000:]
  # Shards write no results, only models.
  assert not (tmp_path / "out").exists()
  trained = [log.count(": training in ") for log in logs]
  assert all(count > 0 for count in trained), trained
  # Inversion models and MSE decoders alike.
  models = glob.glob(str(cache_dir / "inversion" / "*" / "record.json"))
  decoders = glob.glob(str(cache_dir / "decoder" / "*" / "record.json"))
  assert decoders and len(models) + len(decoders) == sum(trained)
  # The shards computed every other estimate between them.
  assert glob.glob(str(cache_dir / "estimate" / "*" / "record.json"))

  gather = subprocess.run(
      command(tmp_path / "out", cache_dir),
      cwd=REPOSITORY,
      capture_output=True,
      text=True,
      timeout=900,
  )
  assert gather.returncode == 0, gather.stderr[-3000:]
  with open(tmp_path / "out" / "results.json") as f:
    results = json.load(f)
  assert results["artifacts"]["trained"] == 0
  assert results["artifacts"]["skipped"] == 0
  assert results["artifacts"]["reused"] == sum(trained) + 1  # + classifier
  assert results["artifacts"]["estimates"]["computed"] == 0
  assert results["artifacts"]["estimates"]["found"] == len(
      results["estimators"]["rows"]
  )


def test_a_bad_shard_index_is_refused(tmp_path):
  result = subprocess.run(
      command(
          tmp_path / "out",
          tmp_path / "cache",
          "--gin_param=run.shard_index = 2",
          "--gin_param=run.num_shards = 2",
      ),
      cwd=REPOSITORY,
      capture_output=True,
      text=True,
      timeout=300,
  )
  assert result.returncode != 0
  assert "run.shard_index=2; accepted: an integer in [0, 2)" in result.stderr
