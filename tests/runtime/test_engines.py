"""runtime/engines.py, what the Spark and Ray integrations share, without either engine: the
outputs of a batch of text columns against Model's, null rows, refused outputs, and the import
wall of the three modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from enginekit import engine_texts
from exportkit import make_run

from metaprep.errors import ModelError
from metaprep.runtime.engines import OUTPUTS, check_model, check_outputs, score
from metaprep.runtime.model import Model

PACKAGE = Path(__file__).resolve().parents[2] / "metaprep"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from metaprep.exporter.run import export_run
    from metaprep.stages import ExportOptions

    base = tmp_path_factory.mktemp("engines")
    out = {}
    for name, kw, opts in [("single", {}, {}),
                           ("pair", {"method": "cdme", "pair": True}, {})]:
        run = make_run(base / name, **kw)
        export_run(run, base / name / "model", options=ExportOptions(quiet=True, **opts),
                   log=lambda _: None)
        out[name] = base / name / "model"
    return out


def test_outputs_are_model_predict_and_embed(models: dict[str, Path]) -> None:
    model = Model(models["single"], threads=1)
    texts = engine_texts(60)
    got = score(model, [np.array(texts, dtype=object)], OUTPUTS)
    assert list(got) == list(OUTPUTS)
    want = model.predict(texts)
    assert got["label"].tolist() == [label for label, _ in want]
    probs = model.predict_proba(texts)
    np.testing.assert_array_equal(got["probabilities"], probs)
    np.testing.assert_array_equal(got["probability"], probs.max(axis=1))
    np.testing.assert_array_equal(got["embedding"], model.embed(texts))


def test_null_texts_give_null_rows(models: dict[str, Path]) -> None:
    model = Model(models["single"], threads=1)
    column = np.array(["a cat", None, "", float("nan"), "the dog"], dtype=object)
    got = score(model, [column], OUTPUTS)
    assert got["label"][[1, 3]].tolist() == [None, None]
    assert np.isnan(got["probability"][[1, 3]]).all()
    assert np.isnan(got["probabilities"][[1, 3]]).all() and np.isnan(got["embedding"][1]).all()
    kept = ["a cat", "", "the dog"]
    assert got["label"][[0, 2, 4]].tolist() == [label for label, _ in model.predict(kept)]
    np.testing.assert_array_equal(got["probabilities"][[0, 2, 4]], model.predict_proba(kept))
    every = score(model, [np.array([None, None], dtype=object)], ("label", "probability"))
    assert every["label"].tolist() == [None, None] and np.isnan(every["probability"]).all()


def test_a_text_that_is_not_a_string_is_refused(models: dict[str, Path]) -> None:
    from metaprep.errors import DataError

    with pytest.raises(DataError, match="texts must be str, not int"):
        score(Model(models["single"], threads=1), [np.array(["a", 3], dtype=object)],
              ("label",))


def test_pair_columns(models: dict[str, Path]) -> None:
    model = Model(models["pair"], threads=1)
    a, b = engine_texts(20, seed=1), engine_texts(20, seed=2)
    got = score(model, [np.array(a, dtype=object), np.array(b, dtype=object)],
                ("label", "probabilities"))
    pairs = list(zip(a, b, strict=True))
    np.testing.assert_array_equal(got["probabilities"], model.predict_proba(pairs))
    b[3] = None  # type: ignore[call-overload]
    got = score(model, [np.array(a, dtype=object), np.array(b, dtype=object)], ("label",))
    assert got["label"][3] is None and got["label"][4] is not None


def test_outputs_checked_before_any_worker() -> None:
    assert check_outputs("label") == ("label",)
    for bad in [(), ("label", "label"), ("labels",)]:
        with pytest.raises(ValueError, match="outputs must be one or more of label"):
            check_outputs(bad)


def test_outputs_a_model_cannot_give_are_refused() -> None:
    multilabel = SimpleNamespace(multilabel=True, pair=False, path="m/")
    with pytest.raises(ModelError, match="multi-label.*outputs=\\('probabilities',\\)"):
        check_model(multilabel, ("label",))  # type: ignore[arg-type]
    check_model(multilabel, ("probabilities", "embedding"))  # type: ignore[arg-type]
    pair = SimpleNamespace(multilabel=False, pair=True, path="m/")
    with pytest.raises(ModelError, match="sentence-pair model gives no embedding"):
        check_model(pair, ("label", "embedding"))  # type: ignore[arg-type]


def test_engine_modules_import_no_engine_and_nothing_of_training() -> None:
    """Top-level imports: the standard library, numpy and the runtime's side of metaprep; the
    engines' packages only inside functions, so the modules import without them."""
    allowed = set(sys.stdlib_module_names) | {"__future__", "numpy"}
    for name in ("engines", "spark", "ray"):
        tree = ast.parse((PACKAGE / "runtime" / f"{name}.py").read_text(encoding="utf-8"))
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        mods = {a.name for n in top if isinstance(n, ast.Import) for a in n.names}
        mods |= {n.module or "" for n in top if isinstance(n, ast.ImportFrom)}
        third = {m.split(".")[0] for m in mods} - allowed - {"metaprep"}
        assert third == set(), name
        own = {m for m in mods if m.startswith("metaprep")}
        assert own <= {"metaprep.errors", "metaprep.runtime.engines", "metaprep.runtime.model"}
    code = ("import sys, metaprep.runtime.spark, metaprep.runtime.ray; print(sorted(m for m in "
            "sys.modules if m.split('.')[0] in ('pyspark', 'ray', 'pandas', 'pyarrow', "
            "'torch', 'h5py', 'gensim', 'click')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_ship_model_zips_the_directory_under_a_name_of_its_files(models: dict[str, Path],
                                                                  tmp_path: Path) -> None:
    """What ship_model hands SparkContext.addArchive (a stand-in here): a zip of every file of
    the directory at its root, named after the directory and a digest of its files, so a
    model exported again never shares the name of the copy executors already hold."""
    import shutil
    import zipfile

    from metaprep.runtime.spark import ship_model

    added: list[str] = []
    spark = SimpleNamespace(sparkContext=SimpleNamespace(addArchive=added.append))
    copy = tmp_path / "topics"
    shutil.copytree(models["single"], copy)
    first = ship_model(spark, copy)
    assert first.archive.startswith("topics-") and added[0].endswith(first.archive)
    with zipfile.ZipFile(added[0]) as zf:
        assert sorted(zf.namelist()) == sorted(
            p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file())
        assert zf.read("labels.json") == (copy / "labels.json").read_bytes()
    (copy / "labels.json").write_bytes((copy / "labels.json").read_bytes() + b" ")
    assert ship_model(spark, copy).archive != first.archive
    with pytest.raises(ModelError, match="not a model directory"):
        ship_model(spark, tmp_path / "missing")
