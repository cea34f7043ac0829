"""bench/load_without_loss.py at a small scale: students, instructors and flapping faults."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from conftest import TEST_DATABASE_URL

pytestmark = pytest.mark.e2e

BENCH = Path(__file__).resolve().parents[2] / "bench" / "load_without_loss.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("load_without_loss", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_load_with_faults_loses_nothing():
    bench = load_bench()
    report = bench.run(students=8, duration=8, database_url=TEST_DATABASE_URL or None, workers=2, quiet=True)
    print("\n" + json.dumps(report, indent=2))
    assert report["accepted_hint_requests"] > 0 and report["fault_switches"] > 0
    assert report["invariants"] == {key: 0 for key in report["invariants"]}, report
    assert report["ok"]
