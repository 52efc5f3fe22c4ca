"""Hypothesis profiles for the property tests (tests/test_properties.py, tests/test_hostile_input.py).

  dev      the default for a plain ``pytest``: 50 examples per test, a fresh random search each run
  ci       ``make test`` (``--hypothesis-profile ci``): 300 examples per test, derandomized, so CI is
           reproducible and a failure shows the same minimal example on every machine
  nightly  ``--hypothesis-profile nightly``: 5,000 examples per test, a fresh random search

Every profile prints the reproduction blob of a failure; ``deadline`` is off because a generated
cluster's first sync includes numba's warm path, and timing is never a unit test's verdict.
"""
from hypothesis import HealthCheck, settings

COMMON = dict(deadline=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=50, **COMMON)
settings.register_profile("ci", max_examples=300, derandomize=True, database=None, **COMMON)
settings.register_profile("nightly", max_examples=5_000, **COMMON)
settings.load_profile("dev")


def pytest_runtest_makereport(item, call):
    """Keep each phase's outcome on the test item, so a fixture can tell a passed test from a failed
    one at teardown (tests/test_properties.py counts examples only for tests that passed)."""
    if call.when == "call":
        item.call_failed = call.excinfo is not None
