"""Artifact keys, seeds and atomic records."""

import os

from repro import store


def test_fingerprint_ignores_key_order_and_sees_values():
  a = store.fingerprint({"x": 1, "y": [1, 2]})
  assert a == store.fingerprint({"y": [1, 2], "x": 1})
  assert a != store.fingerprint({"x": 2, "y": [1, 2]})


def test_derived_seeds_are_stable_and_distinct():
  assert store.derive_seed(0, "inversion", "conv1") == store.derive_seed(
      0, "inversion", "conv1"
  )
  seeds = {store.derive_seed(0, "inversion", name) for name in "abcdefgh"}
  assert len(seeds) == 8
  assert store.derive_seed(1, "a") != store.derive_seed(0, "a")
  assert all(0 <= s < 2**31 for s in seeds)


def test_an_artifact_is_unfinished_until_its_record_is_written(tmp_path):
  artifacts = store.ArtifactStore(str(tmp_path))
  spec = {"kind": "test", "value": 3}
  directory = artifacts.directory("thing", spec)
  assert artifacts.directory("thing", spec) == directory
  assert artifacts.directory("thing", {"kind": "test", "value": 4}) != directory
  assert store.read_json(os.path.join(directory, store.SPEC)) == spec
  assert artifacts.record(directory) is None
  artifacts.finish(directory, {"accuracy": 0.5})
  assert artifacts.record(directory) == {"accuracy": 0.5}


def test_json_writes_leave_no_temporary_files(tmp_path):
  path = str(tmp_path / "a.json")
  store.write_json(path, {"a": 1})
  store.write_json(path, {"a": 2})
  assert store.read_json(path) == {"a": 2}
  assert os.listdir(tmp_path) == ["a.json"]
