"""The benchmark runs end to end and refuses sizes it does not know.

These tests check the machinery and the report's form, never a speed.
"""

import json
import os
import subprocess
import sys

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_bench(*arguments):
  return subprocess.run(
      [sys.executable, "-m", "repro.bench", *arguments],
      cwd=REPOSITORY,
      capture_output=True,
      text=True,
      timeout=600,
      check=False,
  )


def test_the_benchmark_reports_every_task_of_both_models(tmp_path):
  report_path = tmp_path / "bench.json"
  output = run_bench(
      "--sizes=smoke",
      "--full_samples=smoke",
      "--nofull_run",
      f"--output={report_path}",
  )
  assert output.returncode == 0, output.stderr[-3000:]
  report = json.loads(report_path.read_text())
  tasks = {row["task"]: row for row in report["rows"]}
  assert sorted(tasks) == ["sample", "train", "train with XLA"]
  for task in ("train", "sample"):
    row = tasks[task]
    assert row["ours_images_per_second"] > 0
    assert row["stock_images_per_second"] > 0
    assert row["ratio"] == (
        row["ours_images_per_second"] / row["stock_images_per_second"]
    )
    assert row["ours_peak_rss_mb"] > 0 and row["stock_peak_rss_mb"] > 0
  assert not tasks["sample"]["extrapolated"]
  assert "smoke sample: ours" in output.stdout
  assert "mi_per_layer_run" not in report


def test_an_unknown_size_is_refused_by_name():
  output = run_bench("--sizes=smoke,huge", "--nofull_run")
  assert output.returncode != 0
  assert "huge" in output.stderr
  assert "embedded" in output.stderr and "paper" in output.stderr
