"""Run a real Triton Inference Server on this machine, on loopback: for the tests, the benchmark and
local trials of a repository that ``metaprep triton`` wrote.

The server is the one in the nvidia-pytriton wheel (``pip install --no-deps nvidia-pytriton``: the
wheel's own numpy<2 pin is for its Python API, which metaprep does not use). Three things make its
python backend run metaprep, each found by trying:

* **the stub**: the wheel keeps one python backend stub per Python version under
  ``tritonserver/python_backend_stubs/X.Y/``; a backend directory of our own gets the one for this
  Python next to ``libtriton_python.so``. The wheel's libraries are found through
  ``LD_LIBRARY_PATH``, this Python's ``libpython3.X.so`` first (else the stub embeds the
  system's Python, which has none of our packages).
* **the stub's Python**: it starts isolated (no ``PYTHONPATH``), looks ``python3`` up on ``PATH``
  and honours a ``pyvenv.cfg`` beside it. So a venv put first on the server's ``PATH`` is the
  stub's environment. It is made from the *running* environment, venv or not: a ``.pth`` file
  in it adds the running Python's site-packages as site directories (their own ``.pth`` files,
  editable installs among them, are read too) and the folder metaprep is imported from (a
  checkout is served as is). ``--system-site-packages`` would not do: made from inside a venv,
  it shows the base interpreter's site-packages, not the venv's.
* **NumPy 1**: the stub of Triton 2.51 predates NumPy 2 (its pybind11 reads a NumPy 2 dtype's
  item size as 0: every input tensor repeats its first byte, and a BYTES input kills the stub).
  When this Python has NumPy 2, ``numpy<2`` is installed into the venv alone (``pip --target``),
  where it shadows the environment's NumPy for the stub only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metaprep.errors import ConfigError

__all__ = ["TritonInstall", "TritonServer", "find_triton", "free_ports", "prepare", "run_triton",
           "running_site_dirs", "stub_env"]

_INSTALL_HINT = "pip install --no-deps nvidia-pytriton (its tritonserver binary, Linux x86-64)"


@dataclass(frozen=True)
class TritonInstall:
    root: Path  # .../pytriton/tritonserver
    binary: Path
    libs: Path  # the wheel's shared libraries
    stub: Path  # the python backend stub for this Python


def find_triton() -> TritonInstall:
    """The tritonserver of the installed nvidia-pytriton wheel, or ConfigError saying why not."""
    import importlib.util

    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("no tritonserver here: the nvidia-pytriton package is not installed",
                          hint=_INSTALL_HINT)
    root = Path(next(iter(spec.submodule_search_locations))) / "tritonserver"
    binary = root / "bin" / "tritonserver"
    libs = root.parent.parent / "nvidia_pytriton.libs"
    stub = root / "python_backend_stubs" / f"{sys.version_info[0]}.{sys.version_info[1]}" \
        / "triton_python_backend_stub"
    for path in (binary, libs, root / "backends" / "python" / "libtriton_python.so"):
        if not path.exists():
            raise ConfigError("the nvidia-pytriton install lacks a part of tritonserver",
                              path=path, hint=_INSTALL_HINT)
    if not stub.exists():
        raise ConfigError(f"nvidia-pytriton has no python backend stub for Python "
                          f"{sys.version_info[0]}.{sys.version_info[1]}", path=stub.parent.parent)
    return TritonInstall(root, binary, libs, stub)


def prepare(workdir: str | Path, install: TritonInstall | None = None, *,
            import_paths: Sequence[str | Path] = ()) -> tuple[Path, Path]:
    """(backend directory, stub venv) under WORKDIR, made once and reused. ``import_paths`` are
    put on the stub's ``sys.path`` (default: the folder this metaprep is imported from)."""
    inst = install or find_triton()
    work = Path(workdir)
    backends = work / "backends"
    python = backends / "python"
    if not (python / "triton_python_backend_stub").exists():
        python.mkdir(parents=True, exist_ok=True)
        for f in ("libtriton_python.so", "triton_python_backend_utils.py"):
            _copy(inst.root / "backends" / "python" / f, python / f)
        _copy(inst.stub, python / "triton_python_backend_stub")
    return backends, stub_env(work / "stubenv", import_paths=import_paths)


def stub_env(venv: str | Path, *, import_paths: Sequence[str | Path] = ()) -> Path:
    """The stub's Python environment at ``venv`` (made once, its path file rewritten each time):
    the running environment's packages, ``numpy<2`` where this one has NumPy 2, and metaprep
    from ``import_paths`` (default: the folder this metaprep is imported from)."""
    import metaprep

    venv = Path(venv)
    site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    if not (venv / "pyvenv.cfg").exists() or "include-system-site-packages = true" in \
            (venv / "pyvenv.cfg").read_text(encoding="utf-8"):  # one made by an older metaprep
        subprocess.run([sys.executable, "-m", "venv", "--clear", "--without-pip", str(venv)],
                       check=True, timeout=300)
    if int(np.__version__.split(".")[0]) >= 2 and not (site / "numpy").exists():
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--no-deps", "--target", str(site), "numpy>=1.24,<2"],
            capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise ConfigError(f"cannot install numpy<2 for the python backend stub: "
                              f"{done.stderr.strip()[-500:]}", path=site)
    paths = [str(Path(p).resolve()) for p in import_paths] or \
        [str(Path(metaprep.__file__).resolve().parents[1])]
    # the stub's own site-packages (numpy<2) first, then metaprep, then the running environment
    lines = [*paths, *(f"import site; site.addsitedir({d!r})" for d in running_site_dirs())]
    (site / "metaprep-serve.pth").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return venv


def running_site_dirs() -> list[str]:
    """The site-packages folders of the Python running now: a venv's own (and the base's when
    it was made with --system-site-packages), or the system's, and the user's where enabled."""
    import site

    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        dirs.append(site.getusersitepackages())
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


def _copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    import shutil

    shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def free_ports(n: int) -> list[int]:
    """n loopback ports free right now (held open together, so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class TritonServer:
    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    metrics_port: int
    log: Path

    @property
    def url(self) -> str:
        """host:port of the HTTP endpoint, as tritonclient.http takes it."""
        return f"127.0.0.1:{self.http_port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.url}/v2/health/ready", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's log, without its status tables."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(t for t in text.splitlines() if not t.startswith(("|", "+")))[-chars:]

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to the server (it unloads the models and stops its stubs), SIGKILL after
        ``timeout``; then whatever is left of its process group (stubs) gets SIGKILL too."""
        pgid = self.process.pid  # start_new_session: the server leads its own group
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        deadline = time.monotonic() + 10  # stubs notice a gone server within a second or two
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@contextmanager
def run_triton(repo: str | Path, workdir: str | Path, *, ready_timeout: float = 180.0,
               import_paths: Sequence[str | Path] = (), log_verbose: int = 0,
               extra_args: Sequence[str] = ()) -> Iterator[TritonServer]:
    """A tritonserver over REPO on free loopback ports, ready when the block starts; always
    stopped when it ends. ConfigError (with the server log's tail) if it does not get ready."""
    inst = find_triton()
    backends, venv = prepare(workdir, inst, import_paths=import_paths)
    http, grpc, metrics = free_ports(3)
    env = dict(os.environ)
    libdir = sysconfig.get_config_var("LIBDIR") if sysconfig.get_config_var("Py_ENABLE_SHARED") \
        else None
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (libdir, str(inst.libs), env.get("LD_LIBRARY_PATH")) if p)
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    log = Path(workdir) / f"tritonserver.{http}.log"
    args = [str(inst.binary), "--model-repository", str(Path(repo).resolve()),
            "--backend-directory", str(backends.resolve()),
            "--http-address", "127.0.0.1", "--http-port", str(http),
            "--grpc-address", "127.0.0.1", "--grpc-port", str(grpc),
            "--metrics-address", "127.0.0.1", "--metrics-port", str(metrics),
            "--allow-gpu-metrics", "false", "--exit-timeout-secs", "15",
            "--log-verbose", str(log_verbose), *extra_args]
    with open(log, "wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    server = TritonServer(process, http, grpc, metrics, log)
    try:
        deadline = time.monotonic() + ready_timeout
        while not server.ready():
            if not server.alive():
                raise ConfigError(f"tritonserver exited ({process.returncode}) before it was "
                                  f"ready; its log ends:\n{server.log_tail()}", path=log)
            if time.monotonic() > deadline:
                raise ConfigError(f"tritonserver not ready after {ready_timeout:.0f} s; its log "
                                  f"ends:\n{server.log_tail()}", path=log)
            time.sleep(0.25)
        yield server
    finally:
        server.stop()
