#!/usr/bin/env bash
# Install everything (torch pinned to the CPU build on disk) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet torch==2.13.0
python3 -m pip install --quiet -e ".[full,dev]"
python3 -m ruff check metaprep tests benchmarks
python3 -m mypy metaprep
python3 -m pytest -q "$@"
