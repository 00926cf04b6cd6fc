"""A real Triton Inference Server (the nvidia-pytriton wheel's tritonserver, python backend) serving
repositories that `metaprep triton` wrote, on loopback, queried over HTTP with tritonclient: its
answers must be metaprep.runtime's. metaprep.exporter.triton_local says how the server is made to
run our Python; the server is always stopped, also when a test fails.

Needs ``pip install --no-deps nvidia-pytriton`` and ``tritonclient[http]`` (the ``triton`` extra
and scripts/test.sh install them), and pip once to put numpy<2 beside the stub (see
triton_local). Skips, naming what is missing, where these are not installed.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from exportkit import make_run, sentences

from metaprep.errors import ConfigError
from metaprep.exporter.triton_python import write_python_model
from metaprep.runtime.model import Model
from metaprep.stages import TritonOptions

pytestmark = pytest.mark.slow
http = pytest.importorskip("tritonclient.http", reason="tritonclient[http] is not installed")
from tritonclient.utils import InferenceServerException  # noqa: E402


def _skip_without_server() -> None:
    from metaprep.exporter.triton_local import find_triton

    try:
        find_triton()
    except ConfigError as exc:
        pytest.skip(f"no tritonserver: {exc}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One server, three models: a single-sentence model, a pair model (copied into the
    repository, 2 instances) and one whose model directory was tampered with."""
    _skip_without_server()
    import torch

    from metaprep.exporter.run import export_run
    from metaprep.exporter.triton_local import run_triton
    from metaprep.stages import ExportOptions

    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("triton")
    models = {}
    for name, kw, opts in [("single", {"method": "dme", "max_tokens": 64}, {}),
                           ("pair", {"method": "cdme", "pair": True}, {})]:
        run = make_run(base / name, **kw)
        export_run(run, base / name / "model", options=ExportOptions(quiet=True, **opts),
                   log=lambda _: None)
        models[name] = base / name / "model"
    repo = base / "repo"
    write_python_model(models["single"], repo, TritonOptions(name="single", threads=1))
    write_python_model(models["pair"], repo,
                       TritonOptions(name="pair", copy=True, instances=2, threads=1))
    broken = base / "broken"
    shutil.copytree(models["single"], broken)
    write_python_model(broken, repo, TritonOptions(name="broken", threads=1))
    with open(broken / "vocab.txt", "ab") as f:  # after writing: only the load can notice
        f.write(b"tampered\n")
    from metaprep.exporter.triton_local import prepare

    try:  # the stub's venv needs pip once (numpy<2 beside the stub under NumPy 2)
        prepare(base / "server")
    except ConfigError as exc:
        pytest.skip(f"cannot prepare the python backend's environment: {exc}")
    # a model that fails to load must not stop the server (the default exits): the test checks
    # that it is reported unavailable, with metaprep's reason
    with run_triton(repo, base / "server", ready_timeout=240,
                    extra_args=["--exit-on-error", "false", "--strict-readiness", "false"]) as srv:
        client = http.InferenceServerClient(srv.url, network_timeout=120)
        assert client.is_model_ready("single") and client.is_model_ready("pair"), srv.log_tail()
        try:
            yield {"server": srv, "client": client, "models": models}
        finally:
            client.close()


def _text_input(name: str, texts: list[Any]) -> Any:
    inp = http.InferInput(name, [len(texts), 1], "BYTES")
    raw = [t if isinstance(t, bytes) else t.encode("utf-8") for t in texts]
    inp.set_data_from_numpy(np.array(raw, dtype=np.object_).reshape(-1, 1))
    return inp


def test_single_texts_match_the_runtime(served: dict[str, Any]) -> None:
    texts: list[Any] = sentences(20, seed=3) + [
        "", " ", "PARIS été à New York — naïve café 日本語 🙂", " ".join(["dog"] * 10_000),
        "the " * 63 + "cat", b"the cat \xff\xfe sat"]
    result = served["client"].infer("single", [_text_input("TEXT", texts)])
    model = Model(served["models"]["single"])
    as_str = [t.decode("utf-8", errors="replace") if isinstance(t, bytes) else t for t in texts]
    expected = model.predict_proba(as_str)
    np.testing.assert_allclose(result.as_numpy("PROBABILITIES"), expected, atol=1e-6, rtol=0)
    assert [x.decode() for x in result.as_numpy("LABEL").ravel()] == \
        [model.labels[i] for i in expected.argmax(axis=1)]
    np.testing.assert_allclose(result.as_numpy("EMBEDDING"), model.embed(as_str), atol=1e-5)


def test_one_text_per_request_and_outputs_asked_for(served: dict[str, Any]) -> None:
    model = Model(served["models"]["single"])
    for text in ["a very big red house", "", "été"]:
        result = served["client"].infer("single", [_text_input("TEXT", [text])],
                                        outputs=[http.InferRequestedOutput("LABEL")])
        assert result.as_numpy("PROBABILITIES") is None
        assert result.as_numpy("LABEL").ravel()[0].decode() == model.predict([text])[0][0]


def test_pairs_match_the_runtime(served: dict[str, Any]) -> None:
    pairs = list(zip(sentences(9, seed=4), sentences(9, seed=5), strict=True)) + [
        ("", ""), ("ünïcödé", "the cat"), ("dog " * 10_000, "")]
    result = served["client"].infer("pair", [_text_input("TEXT_A", [a for a, _ in pairs]),
                                             _text_input("TEXT_B", [b for _, b in pairs])])
    np.testing.assert_allclose(result.as_numpy("PROBABILITIES"),
                               Model(served["models"]["pair"]).predict_proba(pairs), atol=1e-6)


def test_concurrent_clients_get_their_own_answers(served: dict[str, Any]) -> None:
    """Dynamic batching puts requests of several clients in one call: each must get its rows."""
    srv = served["server"]
    texts = sentences(48, seed=6)
    expected = Model(served["models"]["single"]).predict_proba(texts)
    got: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def client(k: int) -> None:
        c = http.InferenceServerClient(srv.url, network_timeout=120)
        try:
            for i in range(k, len(texts), 8):
                r = c.infer("single", [_text_input("TEXT", [texts[i]])])
                got[i] = r.as_numpy("PROBABILITIES")[0]
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            c.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    np.testing.assert_allclose(np.stack([got[i] for i in range(len(texts))]), expected,
                               atol=1e-6)


def test_bad_requests_get_errors_and_the_server_stays_up(served: dict[str, Any]) -> None:
    c = served["client"]
    ints = http.InferInput("TEXT", [1, 1], "INT32")
    ints.set_data_from_numpy(np.array([[7]], dtype=np.int32))
    wide = http.InferInput("TEXT", [1, 2], "BYTES")
    wide.set_data_from_numpy(np.array([[b"a", b"b"]], dtype=np.object_))
    for model, inputs, message in [
        ("single", [_text_input("TXT", ["a"])], "unexpected inference input 'TXT'"),
        ("single", [ints], "data-type is 'INT32'"),
        ("single", [wide], "unexpected shape"),
        ("single", [_text_input("TEXT", ["a"] * 65)], "batch-size must be <= 64"),
        ("pair", [_text_input("TEXT_A", ["a"])], "expected 2 inputs but got 1"),
        ("nosuch", [_text_input("TEXT", ["a"])], "nosuch"),
    ]:
        with pytest.raises(InferenceServerException, match=message):
            c.infer(model, inputs)
    assert served["server"].alive() and c.is_server_live()
    result = c.infer("single", [_text_input("TEXT", ["still here"])])
    assert result.as_numpy("PROBABILITIES").shape == (1, 2)


def test_a_tampered_model_directory_is_not_loaded(served: dict[str, Any]) -> None:
    c = served["client"]
    assert not c.is_model_ready("broken")
    state = {m["name"]: m for m in c.get_model_repository_index()}["broken"]
    assert state["state"] == "UNAVAILABLE"
    assert "ModelError" in state["reason"] and "vocab.txt has" in state["reason"], state
