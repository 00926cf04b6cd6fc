"""Forged graphs in a model directory: what they may allocate is bounded before onnxruntime sees
them (graphcheck), and what they give is checked at run time (runcheck)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from exportkit import make_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from metaprep.errors import ModelError
from metaprep.runtime.graphcheck import ROW_BYTES, TOKEN_BYTES, check_graph
from metaprep.runtime.model import Model
from metaprep.runtime.modeldir import file_sha256
from metaprep.runtime.onnx_read import read_model
from metaprep.runtime.runcheck import checked, checked_ids

TEXTS = ["the cat sat on the mat", "", "New York été", "a big red house"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model with every graph: classifier, front end, text and serve."""
    import torch

    from metaprep.exporter.run import export_run
    from metaprep.stages import ExportOptions

    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("graphcheck")
    run = make_run(base, method="dme", encoder="pool", case_policy="exact")
    export_run(run, base / "model", options=ExportOptions(front_end=True, quiet=True),
               log=lambda _: None)
    return base / "model"


def _forge(model_dir: Path, tmp_path: Path, graph: str,
           edit: Callable[[onnx.ModelProto], None]) -> Path:
    """A consistent forgery: the graph edited, the manifest's record and checksum updated."""
    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    path = d / f"{graph}.onnx"
    model = onnx.load(str(path), load_external_data=False)
    edit(model)
    path.write_bytes(model.SerializeToString())
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["graphs"][graph].update(outputs=[o.name for o in model.graph.output],
                                     ops=sorted({n.op_type for n in model.graph.node}))
    manifest["files"][path.name] = {"sha256": file_sha256(path), "bytes": path.stat().st_size}
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d


def _feeding(x: str, extra: list[Any], inits: list[Any] = ()) -> Callable[[onnx.ModelProto],
                                                                          None]:
    """An edit adding ``extra`` nodes whose tensor ``x`` flows into ``probabilities`` (times 0),
    so onnxruntime cannot drop them as unused."""
    def edit(model: onnx.ModelProto) -> None:
        g = model.graph
        for node in g.node:
            node.output[:] = ["forged_p" if o == "probabilities" else o for o in node.output]
        g.node.extend([*extra,
                       helper.make_node("Cast", [x], ["forged_f"], to=TensorProto.FLOAT),
                       helper.make_node("ReduceSum", ["forged_f"], ["forged_s"], keepdims=0),
                       helper.make_node("Mul", ["forged_s", "forged_zero"], ["forged_z"]),
                       helper.make_node("Add", ["forged_p", "forged_z"], ["probabilities"])])
        g.initializer.extend([helper.make_tensor("forged_zero", TensorProto.FLOAT, [], [0.0]),
                              *inits])
    return edit


def _predict(d: Path, tmp_path: Path, texts: list[str]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    return subprocess.run([sys.executable, "-m", "metaprep", "predict", str(d),
                           str(tmp_path / "in.txt")], capture_output=True, text=True, timeout=120)


def _stretched(t: Any, n: int) -> Any:
    """``t`` declaring n elements while holding its one value (a forged initializer)."""
    t.dims[:] = [n]
    return t


def _i64(name: str, values: list[int]) -> Any:
    return helper.make_tensor(name, TensorProto.INT64, [len(values)], values)


# --- the bound ------------------------------------------------------------------------------------
def test_a_serve_graph_allocating_batch_x_2e7_floats_is_refused(model_dir: Path,
                                                                 tmp_path: Path) -> None:
    """The issue's forgery: texts in, a (batch, 2e7) float tensor made (6.4 GB and 30 s for 64
    short lines). Refused at load, in one line, before onnxruntime sees the graph."""
    big = [helper.make_node("Shape", ["text"], ["forged_b"]),
           helper.make_node("Concat", ["forged_b", "forged_n"], ["forged_shape"], axis=0),
           helper.make_node("ConstantOfShape", ["forged_shape"], ["forged_big"],
                            value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]))]
    d = _forge(model_dir, tmp_path, "serve",
               _feeding("forged_big", big, [_i64("forged_n", [20_000_000])]))
    with pytest.raises(ModelError, match=r"serve.onnx: graph refused: a text of 1 token\(s\) "
                                         r"would take 160,000,072 bytes at once"):
        Model(d)
    proc = _predict(d, tmp_path, ["a"] * 64)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and "graph refused" in proc.stderr


@pytest.mark.parametrize(("nodes", "inits", "message"), [
    # a shape read from the data: the largest id as a width
    ([helper.make_node("ReduceMax", ["ids"], ["m1"], keepdims=1),
      helper.make_node("Reshape", ["m1", "flat1"], ["m"]),
      helper.make_node("Shape", ["ids"], ["b"], start=0, end=1),
      helper.make_node("Concat", ["b", "m"], ["shape"], axis=0),
      helper.make_node("Expand", ["one", "shape"], ["x"])], [], "its shape comes from the data"),
    ([helper.make_node("ReduceMax", ["lengths"], ["m"], keepdims=0),
      helper.make_node("Range", ["zero", "m", "unit"], ["x"])], [],
     "its limit comes from the data"),
    # a (batch, tokens, batch, tokens) tensor made of allowed ops
    ([helper.make_node("Unsqueeze", ["ids", "a23"], ["p"]),
      helper.make_node("Unsqueeze", ["ids", "a01"], ["q"]),
      helper.make_node("Add", ["p", "q"], ["x"])], [], "x grows faster than the batch"),
    ([helper.make_node("ConstantOfShape", ["huge"], ["x"])], [],
     "the constant x would take 40,000,000,000 bytes"),
    ([helper.make_node("If", ["cond"], ["x"], then_branch=helper.make_graph(
        [], "t", [], []), else_branch=helper.make_graph([], "e", [], []))], [],
     "op metaprep's exporter never writes"),
    ([helper.make_node("Identity", ["nowhere"], ["x"])], [],
     "reads 'nowhere', which nothing before it makes"),
    ([helper.make_node("Identity", ["fake"], ["x"])],
     [_stretched(helper.make_tensor("fake", TensorProto.FLOAT, [1], [1.0]), 10**9)],
     "initializer fake holds 1 values or bytes for \\[1000000000\\]"),
    # a node of the exporter's ops missing an input (an IndexError), a rank numpy cannot
    # broadcast (its RuntimeError)
    ([helper.make_node("Slice", ["ids"], ["x"])], [], "its inputs do not fit the op"),
    ([helper.make_node("Reshape", ["ids", "rank35"], ["r"]),
      helper.make_node("Add", ["r", "r"], ["x"])], [], "more than 8 dimensions"),
], ids=["expand", "range", "quadratic", "constant", "if", "undefined", "initializer",
        "missing-input", "rank"])
def test_graphs_that_could_allocate_without_bound_are_refused(
        model_dir: Path, tmp_path: Path, nodes: list[Any], inits: list[Any],
        message: str) -> None:
    consts = [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]), _i64("flat1", [1]),
              helper.make_tensor("zero", TensorProto.INT64, [], [0]),
              helper.make_tensor("unit", TensorProto.INT64, [], [1]), _i64("a23", [2, 3]),
              _i64("a01", [0, 1]), _i64("huge", [10**10]), _i64("rank35", [0, 0] + [1] * 33),
              helper.make_tensor("cond", TensorProto.BOOL, [], [True]), *inits]
    d = _forge(model_dir, tmp_path, "model", _feeding("x", nodes, consts))
    with pytest.raises(ModelError, match=f"model.onnx: graph refused: .*{message}") as err:
        Model(d)
    assert "\n" not in str(err.value)


def test_inputs_must_be_the_runtime_feeds(model_dir: Path, tmp_path: Path) -> None:
    def fixed(model: onnx.ModelProto) -> None:
        dim = model.graph.input[0].type.tensor_type.shape.dim[1]
        dim.ClearField("dim_param")
        dim.dim_value = 512

    def extra(model: onnx.ModelProto) -> None:
        model.graph.input.append(helper.make_tensor_value_info("more", TensorProto.INT64, ["n"]))

    with pytest.raises(ModelError, match="its input ids is not of the type and free shape"):
        Model(_forge(model_dir, tmp_path / "a", "model", fixed))
    with pytest.raises(ModelError, match=r"it reads \['ids', 'lengths', 'more'\], not "):
        Model(_forge(model_dir, tmp_path / "b", "model", extra))


def test_exported_graphs_are_far_within_the_bound(model_dir: Path) -> None:
    manifest = json.loads((model_dir / "manifest.json").read_text())
    sizes = {"model.data": (model_dir / "model.data").stat().st_size}
    for name, info in manifest["graphs"].items():
        bound, shapes = check_graph(read_model((model_dir / info["file"]).read_bytes()),
                                    kind=name, max_tokens=512, data_sizes=sizes)
        assert bound.row_bytes < ROW_BYTES / 4 and bound.token_bytes < TOKEN_BYTES / 64, name
        assert set(shapes) == set(info["outputs"])


# --- what a graph gives at run time ---------------------------------------------------------------
def test_an_output_wider_than_declared_is_refused(model_dir: Path, tmp_path: Path) -> None:
    """A model.onnx whose probabilities have a third column while onnxruntime reads the
    declared [batch, 2] (the slice's end is worked out from a shape) gave a traceback; refused
    at load now, and the run-time check refuses such an array too."""
    def wider(model: onnx.ModelProto) -> None:
        g = model.graph
        for node in g.node:
            node.output[:] = ["forged_p" if o == "probabilities" else o for o in node.output]
        g.node.extend([
            helper.make_node("Shape", ["forged_p"], ["forged_shape"]),
            helper.make_node("Gather", ["forged_shape", "s1"], ["forged_c"]),
            helper.make_node("Sub", ["forged_c", "s1"], ["forged_end"]),
            helper.make_node("Slice", ["forged_p", "s0", "forged_end", "s1"], ["forged_col"]),
            helper.make_node("Concat", ["forged_p", "forged_col"], ["probabilities"], axis=1)])
        g.initializer.extend([_i64("s0", [0]), _i64("s1", [1])])

    d = _forge(model_dir, tmp_path, "model", wider)
    with pytest.raises(ModelError, match=r"model.onnx would give probabilities of shape "
                                         r"\[2, 3\] for 2 texts of 512 tokens, not \[2, 2\]"):
        Model(d)
    with pytest.raises(ModelError, match=r"gave probabilities as float32 \[4, 3\] for 4 "
                                         r"text\(s\), not float32 \[4, 2\]"):
        checked(np.zeros((4, 3), np.float32), "probabilities", 4, 2, d / "model.onnx")
    with pytest.raises(ModelError, match="float64"):
        checked(np.zeros((4, 2)), "probabilities", 4, 2, d / "model.onnx")
    with pytest.raises(ModelError, match="ids outside the vocabulary"):
        checked_ids(np.array([[2, 99]]), 1, 40, d / "text.onnx")
    with pytest.raises(ModelError, match="ids outside the vocabulary"):
        checked_ids(np.array([[2, -1]]), 1, 40, d / "text.onnx", missed=np.array([]))


def test_huge_finite_weights_are_an_error_not_numbers(model_dir: Path, tmp_path: Path) -> None:
    """Weights near float32's largest give infinite logits and NaN probabilities: every path
    (the API, predict, embed) says so in one line naming the graph, never prints numbers."""
    def huge(model: onnx.ModelProto) -> None:
        for t in model.graph.initializer:
            if t.name == "classifier.out.w":
                t.CopyFrom(numpy_helper.from_array(
                    np.full(numpy_helper.to_array(t).shape, 3e38, np.float32), t.name))

    d = _forge(model_dir, tmp_path, "model", huge)
    (d / "serve.onnx").unlink()  # the classifier graph alone (the serve graph holds a copy)
    manifest = json.loads((d / "manifest.json").read_text())
    del manifest["graphs"]["serve"], manifest["files"]["serve.onnx"]
    (d / "manifest.json").write_text(json.dumps(manifest))
    model = Model(d)
    with pytest.raises(ModelError, match="model.onnx: the graph gave a NaN or infinite "
                                         "probabilities"):
        model.predict_proba(TEXTS)
    proc = _predict(d, tmp_path, TEXTS)
    assert proc.returncode == 2 and proc.stdout == "" and len(proc.stderr.splitlines()) == 1
    assert "NaN or infinite probabilities" in proc.stderr

    def louder(model: onnx.ModelProto) -> None:  # sentence vectors times 3e38, twice
        g = model.graph
        for node in g.node:
            node.output[:] = ["forged_e" if o == "sentence_embedding" else o for o in node.output]
        g.node.extend([helper.make_node("Mul", ["forged_e", "forged_big"], ["forged_e2"]),
                       helper.make_node("Mul", ["forged_e2", "forged_big"],
                                        ["sentence_embedding"])])
        g.initializer.append(helper.make_tensor("forged_big", TensorProto.FLOAT, [], [3e38]))

    front = Model(_forge(model_dir, tmp_path / "fe", "front_end", louder))
    with pytest.raises(ModelError, match="front_end.onnx: the graph gave a NaN or infinite "
                                         "sentence_embedding"):
        front.embed(TEXTS)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_rewired_graphs_give_a_bound_or_a_one_line_error(model_dir: Path,
                                                         data: st.DataObject) -> None:
    """Nodes fed other tensors, ops swapped, attributes and small constants changed: the check
    answers with a bound or one ModelError line, never another exception (a rank over 32 was
    numpy's RuntimeError, a missing input an IndexError)."""
    kind = data.draw(st.sampled_from(["model", "serve", "text"]))
    model = onnx.load(str(model_dir / f"{kind}.onnx"), load_external_data=False)
    g = model.graph
    names = [o for n in g.node for o in n.output] + [t.name for t in g.initializer] + \
        [i.name for i in g.input] + [""]
    for _ in range(data.draw(st.integers(1, 3))):
        node = g.node[data.draw(st.integers(0, len(g.node) - 1))]
        edit = data.draw(st.sampled_from(["input", "op", "attribute", "constant"]))
        if edit == "input" and node.input:
            node.input[data.draw(st.integers(0, len(node.input) - 1))] = \
                data.draw(st.sampled_from(names))
        elif edit == "op":
            node.op_type = data.draw(st.sampled_from(["Reshape", "Expand", "Range", "Concat",
                                                      "Slice", "Unsqueeze", "MatMul", "Pad"]))
        elif edit == "attribute" and node.attribute:
            a = node.attribute[data.draw(st.integers(0, len(node.attribute) - 1))]
            if a.type == onnx.AttributeProto.INT:
                a.i = data.draw(st.sampled_from([-9, -1, 0, 1, 3, 10**12]))
        else:
            small = [t for t in g.initializer if t.data_type == TensorProto.INT64 and
                     t.data_location == TensorProto.DEFAULT and 0 < np.prod(t.dims) <= 8]
            if small:
                t = data.draw(st.sampled_from(small))
                a = numpy_helper.to_array(t).copy()
                a.flat[data.draw(st.integers(0, a.size - 1))] = \
                    data.draw(st.sampled_from([-1, 0, 2, 10**9, -(10**9), 2**62]))
                t.CopyFrom(numpy_helper.from_array(a, t.name))
    try:
        check_graph(read_model(model.SerializeToString()), kind=kind, max_tokens=9,
                    data_sizes={"model.data": (model_dir / "model.data").stat().st_size})
    except ModelError as exc:
        assert "\n" not in str(exc)


def test_a_name_with_a_line_break_still_gives_a_one_line_error() -> None:
    """A byte of model.onnx damaged into a line break inside an op's name (found by the fuzz
    test of test_modeldir.py) made the refusal two lines."""
    node = helper.make_node("Max\nX", ["ids"], ["max_3"])
    graph = helper.make_graph([node], "g", [
        helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "tokens"]),
        helper.make_tensor_value_info("lengths", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("max_3", TensorProto.INT64, ["batch", "tokens"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ModelError, match="node 0 .Max X 'max_3'. is an op metaprep's exporter "
                                         "never writes") as info:
        check_graph(read_model(model.SerializeToString()), kind="model", max_tokens=9)
    assert "\n" not in str(info.value)
