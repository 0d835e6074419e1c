"""pytest-benchmark suite (kept out of the default test run)."""
