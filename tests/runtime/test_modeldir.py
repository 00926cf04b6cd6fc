"""The model directory's one reader: the typed manifest, and the checks that keep a stranger's
directory from making the runtime read outside it, hang, or return wrong numbers."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from exportkit import make_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metaprep.errors import ModelError
from metaprep.patterncheck import pattern_problem
from metaprep.runtime import onnx_scan
from metaprep.runtime.model import Model
from metaprep.runtime.modeldir import ModelDir, file_sha256, read_manifest
from metaprep.tokenize import DEFAULT_PATTERN


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from metaprep.exporter.run import export_run
    from metaprep.stages import ExportOptions

    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("modeldir")
    run = make_run(base, method="dme", proj_dim=8)  # 38 x 8 float32: an external table
    export_run(run, base / "model", options=ExportOptions(front_end=True, quiet=True),
               log=lambda _: None)
    return base / "model"


@pytest.fixture()
def copy_dir(model_dir: Path, tmp_path: Path) -> Path:
    shutil.copytree(model_dir, tmp_path / "m")
    return tmp_path / "m"


def _manifest(d: Path) -> dict[str, Any]:
    return json.loads((d / "manifest.json").read_text())


def _save(d: Path, data: dict[str, Any], *, rehash: tuple[str, ...] = ()) -> None:
    for name in rehash:  # a consistent forgery: the checksums match the tampered files
        data["files"][name] = {"sha256": file_sha256(d / name), "bytes": (d / name).stat().st_size}
    (d / "manifest.json").write_text(json.dumps(data))


# --- the typed manifest ------------------------------------------------------------------------
def test_manifest_round_trips_to_the_same_json(model_dir: Path) -> None:
    m = read_manifest(model_dir)
    assert m.to_dict() == _manifest(model_dir)
    assert m.task.labels == ("neg", "pos") and m.task.sentence_dim == 8
    assert m.graphs["model"].data_files == ("model.data",) and m.export.fold is True
    assert m.checks.parity["model"].max_abs_diff["logits"] <= 1e-5
    assert m.checks.accuracy is not None and m.checks.accuracy.examples == 40


@pytest.mark.parametrize(("where", "value", "message"), [
    (("max_tokens",), 0, "manifest key max_tokens must be an integer from 1 to 100000"),
    (("max_tokens",), True, "manifest key max_tokens must be an integer from 1 to 100000"),
    # a 50 MB line cut at 10**12 tokens took 18 GB and 90 s in the runtime
    (("max_tokens",), 10**12, "manifest key max_tokens must be an integer from 1 to 100000"),
    (("task", "sentence_dim"), 0, "task.sentence_dim must be an integer >= 1"),
    (("task", "labels"), [], "task.labels must be a non-empty list of unique strings"),
    (("task", "labels"), ["a", "a"], "task.labels must be a non-empty list of unique strings"),
    (("task", "labels"), ["a", 3], "task.labels must be a non-empty list of unique strings"),
    (("task", "pair"), "no", "task.pair must be true or false"),
    (("task", "colour"), "red", "manifest key task has unknown key(s) colour"),
    (("export", "table_dtype"), "int4", "export.table_dtype must be one of float32, float16"),
    (("graphs", "model", "file"), "../model.onnx", "graphs.model.file must be a plain file name"),
    (("graphs", "model", "data_files"), ["/etc/passwd"], "graphs.model.data_files must be"),
    (("graphs", "extra"), {}, "manifest key graphs has unknown key(s) extra"),
    (("files", "../../x"), {"sha256": "0" * 64, "bytes": 1}, "files.../../x is not a plain"),
    (("files", "labels.json", "sha256"), "xyz", "files.labels.json.sha256 must be 64 lowercase"),
    (("checks", "accuracy", "agreement"), 1.5, "checks.accuracy.agreement must be a number"),
    (("case_policy",), "upper", "manifest key case_policy must be one of"),
    (("source_run", "path"), 3, "manifest key source_run must be an object of strings or null"),
])
def test_each_bad_key_is_a_model_error_naming_it(copy_dir: Path, where: tuple[str, ...],
                                                  value: Any, message: str) -> None:
    data = _manifest(copy_dir)
    node = data
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    _save(copy_dir, data)
    with pytest.raises(ModelError, match=re.escape(message)) as info:
        read_manifest(copy_dir)
    assert str(copy_dir / "manifest.json") in str(info.value)


def test_missing_keys_and_unlisted_files(copy_dir: Path) -> None:
    data = _manifest(copy_dir)
    del data["task"]["vocab_size"]
    _save(copy_dir, data)
    with pytest.raises(ModelError, match="manifest key task lacks key"):
        read_manifest(copy_dir)
    data = _manifest(copy_dir)
    data["task"]["vocab_size"] = 36
    del data["files"]["model.data"]
    _save(copy_dir, data)
    with pytest.raises(ModelError, match="manifest key files lacks model.data"):
        read_manifest(copy_dir)


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-3, 10**6) | st.floats()
                     | st.text(max_size=8), lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_manifests_give_a_manifest_or_a_model_error(
        model_dir: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    base = _manifest(model_dir)
    doc = copy.deepcopy(base)
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from(_paths(doc)))
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        parent = doc
        for key in where[:-1]:
            parent = parent[key]
        if not where:
            doc = data.draw(_JSON)
            break
        if action == "delete":
            del parent[where[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[data.draw(st.text(max_size=6))] = data.draw(_JSON)
        else:
            parent[where[-1]] = data.draw(_JSON)
    d = tmp_path_factory.mktemp("fuzz")
    text = json.dumps(doc)
    if data.draw(st.booleans()):  # or damage the bytes themselves
        pos = data.draw(st.integers(0, len(text)))
        text = text[:pos] + data.draw(st.text(max_size=3)) + text[pos + 1:]
    (d / "manifest.json").write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        read_manifest(d)
    except ModelError:
        pass


# --- the directory: nothing from outside is trusted --------------------------------------------
def test_a_listed_file_that_is_a_symlink_out_of_the_directory(copy_dir: Path,
                                                               tmp_path: Path) -> None:
    outside = tmp_path / "secret.json"
    shutil.copy2(copy_dir / "labels.json", outside)
    (copy_dir / "labels.json").unlink()
    os.symlink(outside, copy_dir / "labels.json")
    with pytest.raises(ModelError, match="labels.json points outside the model directory"):
        ModelDir.open(copy_dir, verify="none")
    (copy_dir / "labels.json").unlink()
    os.symlink("labels.real", copy_dir / "labels.json")  # a link inside the directory is fine
    shutil.copy2(outside, copy_dir / "labels.real")
    ModelDir.open(copy_dir)


def test_the_manifest_itself_stays_inside_and_regular(copy_dir: Path, tmp_path: Path) -> None:
    """A manifest.json linked to a file outside was read (and parsed) before any check; a pipe
    in its place blocked forever; a symlink loop among the files was a traceback."""
    manifest = copy_dir / "manifest.json"
    shutil.copy2(manifest, tmp_path / "outside.json")
    manifest.unlink()
    os.symlink(tmp_path / "outside.json", manifest)
    with pytest.raises(ModelError, match="manifest.json points outside the model directory"):
        ModelDir.open(copy_dir)
    manifest.unlink()
    os.mkfifo(manifest)
    with pytest.raises(ModelError, match="manifest.json is not a regular file"):
        ModelDir.open(copy_dir)
    manifest.unlink()
    shutil.copy2(tmp_path / "outside.json", manifest)
    (copy_dir / "labels.json").unlink()
    os.mkfifo(copy_dir / "labels.json")  # checked even when verification is off
    with pytest.raises(ModelError, match="labels.json is not a regular file"):
        ModelDir.open(copy_dir, verify="none")
    (copy_dir / "labels.json").unlink()
    os.symlink("labels.json", copy_dir / "labels.json")
    with pytest.raises(ModelError, match="labels.json cannot be resolved"):
        ModelDir.open(copy_dir, verify="none")


@pytest.mark.parametrize("location", ["../outside.data", "/etc/hostname", "other.data"])
def test_graph_external_data_outside_the_manifest_is_refused(copy_dir: Path,
                                                             location: str) -> None:
    g = onnx.load(str(copy_dir / "model.onnx"), load_external_data=False)
    for t in g.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = location
    (copy_dir / "model.onnx").write_bytes(g.SerializeToString())
    _save(copy_dir, _manifest(copy_dir), rehash=("model.onnx",))
    with pytest.raises(ModelError, match="reads external data from .* which the manifest does"):
        Model(copy_dir)


def test_graph_data_listed_but_linked_out_of_the_directory(copy_dir: Path,
                                                           tmp_path: Path) -> None:
    shutil.move(copy_dir / "model.data", tmp_path / "model.data")
    os.symlink(tmp_path / "model.data", copy_dir / "model.data")
    with pytest.raises(ModelError, match="model.data points outside the model directory"):
        Model(copy_dir, verify="none")


def test_unreadable_graph_is_a_model_error(copy_dir: Path) -> None:
    (copy_dir / "model.onnx").write_bytes(b"\xff" * 40)
    with pytest.raises(ModelError, match="not a readable ONNX graph"):
        Model(copy_dir, verify="none")


def test_labels_must_match_the_graph_class_count(copy_dir: Path) -> None:
    data = _manifest(copy_dir)
    data["task"]["labels"] = ["a", "b", "c"]
    (copy_dir / "labels.json").write_text('["a", "b", "c"]')
    _save(copy_dir, data, rehash=("labels.json",))
    with pytest.raises(ModelError, match=r"model.onnx would give logits of shape \[2, 2\] for "
                                         r"2 texts of 512 tokens, not \[2, 3\]"):
        Model(copy_dir)


@pytest.mark.parametrize(("tamper", "message"), [
    (lambda t: np.where(t == 0, 1, t), "no empty slot"),
    (lambda t: t.astype(np.int32), "expected a 1-D int64 array of 2"),
    (lambda t: np.where(t == t.max(), 10**6, t), "outside 0..36"),
    (lambda t: np.where(t == t.max(), -1, t), "outside 0..36"),
    (lambda t: t[:-1], r"2\^k slots"),
])
def test_tampered_vocabulary_index(copy_dir: Path, tamper: Any, message: str) -> None:
    path = copy_dir / "vocab.index.npy"
    np.save(path, tamper(np.load(path)))
    with pytest.raises(ModelError, match=message):
        Model(copy_dir, verify="none")


def test_tampered_vocabulary_offsets(copy_dir: Path) -> None:
    path = copy_dir / "vocab.offsets.npy"
    offsets = np.load(path)
    offsets[3], offsets[4] = offsets[4], offsets[3]
    np.save(path, offsets)
    with pytest.raises(ModelError, match="offsets are not increasing"):
        Model(copy_dir, verify="none")
    np.save(path, offsets[:-1])
    with pytest.raises(ModelError, match="vocab.txt has"):
        Model(copy_dir, verify="none")


def test_a_vocabulary_that_is_not_utf8_names_its_line(copy_dir: Path) -> None:
    """A non-UTF-8 byte in vocab.txt, its checksum updated, gave a traceback at load (the
    probe texts decode the first words); now the whole file is checked, wherever the byte is."""
    data = _manifest(copy_dir)
    raw = (copy_dir / "vocab.txt").read_bytes()
    for at, line in ((0, 1), (raw.index(b"\nsky\n") + 1, 20)):
        (copy_dir / "vocab.txt").write_bytes(raw[:at] + b"\xff" + raw[at + 1 :])
        _save(copy_dir, data, rehash=("vocab.txt",))
        with pytest.raises(ModelError, match=f"vocab.txt:{line}: bad vocabulary file: not UTF-8 "
                                             f"\\(byte {at}\\)"):
            Model(copy_dir)
    (copy_dir / "vocab.txt").write_bytes(raw.replace(b"\nsky\n", b"\ns\ry\n"))
    _save(copy_dir, data, rehash=("vocab.txt",))
    with pytest.raises(ModelError, match="vocab.txt:20: bad vocabulary file: a word holds a line "
                                         "break"):
        Model(copy_dir)


# the files the runtime reads, each damaged with its checksum brought up to date, so the
# integrity check does not stand in front of the reader
_FILES = ["manifest.json", "labels.json", "tokenizer.json", "vocab.txt", "vocab.offsets.npy",
          "vocab.index.npy", "model.onnx", "front_end.onnx", "text.onnx"]


@pytest.fixture(scope="module")
def fuzz_dir(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("fuzzdir") / "m"
    shutil.copytree(model_dir, d)
    return d


@pytest.mark.parametrize("name", _FILES)
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_files_give_a_model_or_a_one_line_model_error(fuzz_dir: Path, name: str,
                                                              data: st.DataObject) -> None:
    """Each file the runtime reads, with bytes changed, added or cut (checksums updated): the
    model loads and predicts, or the error is one line naming a file. A .npy header gave
    tokenize's TokenError, a byte in vocab.txt a UnicodeDecodeError."""
    path, manifest = fuzz_dir / name, (fuzz_dir / "manifest.json").read_text()
    original = path.read_bytes()
    raw = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw)))
        byte = data.draw(st.sampled_from([0x80, 0xFF, 0xC3, 0x0A, 0x0D, 0x00, 0x22, 0x7B]) |
                         st.integers(0, 255))
        action = data.draw(st.sampled_from(["set", "insert", "cut"]))
        if action == "set" and pos < len(raw):
            raw[pos] = byte
        elif action == "insert":
            raw[pos:pos] = bytes([byte])
        else:
            del raw[pos : pos + data.draw(st.integers(1, 16))]
    path.write_bytes(bytes(raw))
    if name != "manifest.json":
        doc = json.loads(manifest)
        doc["files"][name] = {"sha256": file_sha256(path), "bytes": len(raw)}
        (fuzz_dir / "manifest.json").write_text(json.dumps(doc))
    try:
        Model(fuzz_dir, threads=1).predict_proba(["the cat sat", "", "New York été zebra"])
    except ModelError as exc:
        assert "\n" not in str(exc) and exc.path is not None
    finally:
        path.write_bytes(original)
        (fuzz_dir / "manifest.json").write_text(manifest)


@pytest.mark.parametrize(("pattern", "message"), [
    (r"(\w+)|[^\w\s]", "capture group"),
    (r"(?:a+)+b", "nested repetition"),
    (r"(?:\w+\s?)*", "nested repetition"),
])
def test_tokenizer_pattern_is_checked(copy_dir: Path, pattern: str, message: str) -> None:
    tok = json.loads((copy_dir / "tokenizer.json").read_text())
    (copy_dir / "tokenizer.json").write_text(json.dumps({**tok, "pattern": pattern}))
    with pytest.raises(ModelError, match=f"tokenizer pattern refused: .*{message}"):
        Model(copy_dir, verify="none")


def test_pattern_check_accepts_linear_shapes() -> None:
    for ok in (DEFAULT_PATTERN, r"\S+", r"\w+|[^\w\s]", r"(?:-\w+)*", r"(?:ab|a)+c",
               r"[a-z]+(?:'[a-z]+)?"):
        assert pattern_problem(ok) is None, ok
    for bad in (r"(?:\w-\w+)*", r"(?:.\w+)*", r"(?i)(?:-\w+)*", r"(?:a|b+)+"):
        assert pattern_problem(bad), bad


# --- the protobuf scan -------------------------------------------------------------------------
def _tensor(name: str, location: str) -> onnx.TensorProto:
    t = onnx.helper.make_tensor(name, onnx.TensorProto.FLOAT, [1], [0.0])
    t.ClearField("float_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", "4")):
        e = t.external_data.add()
        e.key, e.value = k, v
    return t


def test_scan_finds_locations_everywhere_a_tensor_can_sit() -> None:
    inner = onnx.helper.make_graph([onnx.helper.make_node("Constant", [], ["c"],
                                                          value=_tensor("c", "in-branch.bin"))],
                                   "branch", [], [])
    node = onnx.helper.make_node("If", ["cond"], ["y"], then_branch=inner, else_branch=inner)
    sparse = onnx.helper.make_sparse_tensor(_tensor("v", "sparse.bin"),
                                            onnx.helper.make_tensor("i", onnx.TensorProto.INT64,
                                                                    [1], [0]), [4])
    graph = onnx.helper.make_graph([node], "g", [], [], initializer=[_tensor("w", "a.bin")],
                                   sparse_initializer=[sparse])
    data = onnx.helper.make_model(graph).SerializeToString()
    assert sorted(onnx_scan.external_locations(data)) == ["a.bin", "in-branch.bin",
                                                          "in-branch.bin", "sparse.bin"]


def test_scan_refuses_location_keys_it_cannot_place() -> None:
    graph = onnx.helper.make_graph([], "g", [], [], initializer=[_tensor("w", "a.bin")])
    model = onnx.helper.make_model(graph)
    model.doc_string = "\x0a\x08location"  # the key's bytes where no tensor can be
    with pytest.raises(ValueError, match="places this reader does not check"):
        onnx_scan.external_locations(model.SerializeToString())
    with pytest.raises(ValueError):
        onnx_scan.external_locations(model.SerializeToString()[:-3])


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_scan_of_damaged_graph_bytes_raises_only_value_error(model_dir: Path,
                                                             data: st.DataObject) -> None:
    raw = bytearray((model_dir / "model.onnx").read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    try:
        locations = onnx_scan.external_locations(bytes(raw[:cut]))
    except ValueError:
        return
    assert all(isinstance(loc, str) for loc in locations)


def test_onnxruntime_floor_is_the_version_tested() -> None:
    """An older onnxruntime resolves external data differently (it could read outside a model
    directory), so the dependency floor must be the version this suite runs."""
    import re
    import tomllib

    import onnxruntime

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    floors = {m.group(1) for spec in project["project"]["optional-dependencies"].values()
              for m in [re.fullmatch(r"onnxruntime>=([\d.]+)", s) for s in spec] if m}
    installed = ".".join(onnxruntime.__version__.split(".")[:2])
    assert floors == {installed}, (floors, onnxruntime.__version__)
