"""Shared by the engine tests (tests/runtime/test_spark.py, test_ray.py, test_engines_doc.py) and
benchmarks/bench_engines.py: the texts they score, what is missing for an engine to run, and the
engines started small, on this machine's loopback address only."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from exportkit import make_run, sentences

# what the engines' own processes must not do: reach past this machine, or phone home
LOOPBACK = "127.0.0.1"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

HARD = ["", "   ", "été à Paris — naïve café", "İstanbul ΑΣ Σα ΌΣΟΣ", "中文 日本語 😀👍🏽",
        "a\x00b \x1c c", "New York " * 400, "dog " * 3000, "x" * 20000, "The CAT sat ON the Mat."]


def engine_texts(n: int = 300, seed: int = 7) -> list[str]:
    """``n`` short sentences of the test vocabulary (some unknown words) and the hard cases:
    empty, blank, non-ASCII, control characters, far longer than max_tokens."""
    return HARD + sentences(n, seed)


def engine_model(base: Path, out: Path | None = None) -> Path:
    """A small exported model (max_tokens 40, so the long texts are cut) at ``out``, by default
    ``base/model``."""
    from metaprep.exporter.run import export_run
    from metaprep.stages import ExportOptions

    out = out or base / "model"
    run = make_run(base / "run", max_tokens=40)
    export_run(run, out, options=ExportOptions(quiet=True), log=lambda _: None)
    return out


@functools.cache
def spark_missing() -> str | None:
    """Why Spark cannot run here (pyspark, pandas, pyarrow or a Java 17+ runtime missing), or
    None."""
    for module in ("pyspark", "pandas", "pyarrow"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install 'metaprep[spark]')"
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home, "bin", "java")) if home else shutil.which("java")
    if not java:
        return "no Java runtime: java is not on PATH and JAVA_HOME is not set (Spark needs 17+)"
    if not Path(java).exists():
        return f"no Java runtime: JAVA_HOME is {home}, where there is no bin/java"
    out = subprocess.run([java, "-version"], capture_output=True, text=True)
    found = re.search(r'version "(\d+)', out.stderr + out.stdout)
    if not found or int(found.group(1)) < 17:
        return f"Spark 4 needs Java 17 or newer; {java} says {out.stderr.strip()[:80]!r}"
    return None


@functools.cache
def ray_missing() -> str | None:
    try:
        import ray.data  # noqa: F401
    except ImportError:
        return "ray[data] is not installed (pip install 'metaprep[ray]')"
    return None


def spark_home(base: Path) -> Path:
    """A SPARK_HOME of links to the installed pyspark: a local-cluster's workers write their
    work directories (executor logs, fetched files) under SPARK_HOME/work, which would
    otherwise be inside site-packages."""
    import pyspark

    src = Path(pyspark.__file__).parent
    home = base / "spark-home"
    home.mkdir(parents=True, exist_ok=True)
    for name in ("bin", "jars", "python"):
        if (src / name).exists() and not (home / name).exists():
            (home / name).symlink_to(src / name)
    return home


JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xss4m"


def spark_session(master: str, base: Path, **conf: str) -> Any:
    """A SparkSession on ``master`` (``local-cluster[2,1,1024]``: two executors of one core in
    their own JVMs) that listens on the loopback address only; executors run this Python."""
    from pyspark.sql import SparkSession

    os.environ["SPARK_LOCAL_IP"] = LOOPBACK
    if master.startswith("local-cluster"):
        os.environ["SPARK_HOME"] = str(spark_home(base))
    builder = (SparkSession.builder.master(master).appName("metaprep-tests")
               .config("spark.driver.host", LOOPBACK)
               .config("spark.driver.bindAddress", LOOPBACK)
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.pyspark.python", sys.executable)
               .config("spark.pyspark.driver.python", sys.executable)
               .config("spark.executorEnv.PYTHONPATH", os.environ.get("PYTHONPATH", ""))
               .config("spark.executorEnv.OMP_NUM_THREADS", "1")
               # small JVMs that start fast: the C1 compiler only, one GC thread
               .config("spark.driver.extraJavaOptions", JVM_OPTIONS)
               .config("spark.executor.extraJavaOptions", JVM_OPTIONS))
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def wait_for_executors(spark: Any, count: int, timeout: float) -> None:
    """Until ``count`` executors have joined, then one task on each that imports the runtime:
    the tests and benchmarks then time scoring, not JVMs and Python workers starting (and a
    killed executor's tasks have another one to go to)."""
    sc = spark.sparkContext
    end = time.monotonic() + timeout
    while sc._jsc.sc().getExecutorMemoryStatus().size() < count + 1:  # the driver counts too
        if time.monotonic() > end:
            raise TimeoutError(f"fewer than {count} Spark executors after {timeout:.0f} s")
        time.sleep(0.2)

    def warm(_: Any) -> Any:
        import os

        import metaprep.runtime.model  # noqa: F401  (numpy, onnxruntime)
        yield os.getpid()

    sc.parallelize(range(count), count).mapPartitions(warm).collect()


def ray_init(num_cpus: int = 2) -> None:
    import ray

    ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address=LOOPBACK,
             log_to_driver=False, configure_logging=False)


def wait_for(directory: Path, prefix: str, timeout: float) -> Iterator[Path]:
    """The files named ``prefix*`` in ``directory`` once there is one, within ``timeout``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = sorted(directory.glob(f"{prefix}*"))
        if found:
            return iter(found)
        time.sleep(0.1)
    raise TimeoutError(f"no {prefix}* in {directory} after {timeout:.0f} s")


@contextlib.contextmanager
def killing_the_stalled(marks: Path, timeout: float = 120) -> Iterator[list[int]]:
    """While the block runs, a thread waits for a file ``stalled-PID`` in ``marks``, writes
    ``marks/killed`` (so the next attempt goes straight through), then kills PID with SIGKILL.
    Yields the list of the pids killed."""
    killed: list[int] = []

    def kill() -> None:
        marker = next(wait_for(marks, "stalled-", timeout))
        (marks / "killed").touch()
        pid = int(marker.name.split("-")[1])
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    yield killed
    thread.join(timeout=5)
