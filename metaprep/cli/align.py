"""`metaprep align`: several embedding files -> one HDF5 store over one vocabulary."""

from __future__ import annotations

from typing import Any

import click

from metaprep.cli._common import assignments, column_options, output_option, quiet_option

__all__ = ["command"]

_EPILOG = """\b
Examples:
  metaprep align glove=glove.840B.300d.txt w2v=GoogleNews.bin -o store.h5
  metaprep align glove.txt ft=crawl.bin --vocab train.tsv --vocab dev.tsv \\
      --case fallback --oov ft=subword --oov-default map -o store.h5
"""


@click.command("align", epilog=_EPILOG)
@click.argument("sources", nargs=-1, required=True, metavar="NAME=PATH...")
@output_option("The store to write (HDF5; written to a temp file, then renamed).",
               required=True, dir_okay=False)
@click.option("--format", "formats", multiple=True, metavar="NAME=FMT",
              help="Override format detection for one source (glove, word2vec-text, "
                   "word2vec-binary, fasttext-bin, npy, safetensors).")
@click.option("--tensor", "tensors", multiple=True, metavar="NAME=TENSOR",
              help="Tensor name inside a .safetensors source.")
@click.option("--vocab-file", "vocab_files", multiple=True, metavar="NAME=PATH",
              help="Vocabulary file (one token per line) of a matrix source (npy/safetensors).")
@click.option("--vocab", multiple=True, metavar="union|intersection|FILE",
              help="The words to align: union (default) or intersection of the sources' words, "
                   "or word lists / task data files (TSV/CSV/JSONL with text,label or "
                   "text_a,text_b,label columns, fastText __label__ lines). Repeatable for files.")
@click.option("--case", "case", default="exact", show_default=True,
              type=click.Choice(["exact", "lower", "fallback"]),
              help="How vocabulary words find source rows: as written; lowercased on both sides "
                   "(first match wins); or exact -> lower -> Title -> UPPER.")
@click.option("--oov", "oov", multiple=True, metavar="NAME=STRATEGY",
              help="How a source fills words it lacks: zero, random, mean, subword (fastText "
                   ".bin), map (linear map from the other sources) or map:OTHER.")
@click.option("--oov-default", default="zero", show_default=True,
              help="The OOV strategy of sources without --oov.")
@click.option("--normalize", "normalize", multiple=True, metavar="[NAME=]none|l2|center",
              help="Normalise present rows before OOV filling: l2, or center (subtract the "
                   "source's mean, then l2). A bare value applies to every source.")
@click.option("--dtype", default="float32", show_default=True,
              type=click.Choice(["float32", "float16"]), help="Storage dtype of the vectors.")
@click.option("--data-encoding", default="utf-8", show_default=True,
              help="Encoding of word lists and task data (e.g. latin-1).")
@click.option("--lowercase/--no-lowercase", default=False, show_default=True,
              help="Tokenizer: lowercase task data before splitting (stored for train/runtime).")
@click.option("--token-pattern", default=None, metavar="REGEX",
              help="Tokenizer: a regex whose matches are the tokens (default: words, numbers, "
                   "single punctuation marks).")
@click.option("--whitespace", is_flag=True, help="Tokenizer: split on whitespace instead.")
@click.option("--min-count", default=1, show_default=True, type=click.IntRange(min=1),
              help="Task data words seen fewer times are left out.")
@click.option("--max-vocab", default=None, type=click.IntRange(min=1),
              help="Keep the first N words (task data: the N most frequent).")
@click.option("--limit", default=None, type=click.IntRange(min=1),
              help="Read at most N rows of each source.")
@click.option("--on-bad-line", default="error", show_default=True,
              type=click.Choice(["error", "skip"]), help="A malformed row stops the run or is "
                                                          "skipped (and counted).")
@click.option("--encoding-errors", default="strict", show_default=True,
              type=click.Choice(["strict", "replace"]),
              help="Invalid UTF-8 in a source: an error, or U+FFFD.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of random OOV rows and of the map's held-out split.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@quiet_option()
@column_options()
def command(**kw: Any) -> None:
    """Align embedding files into one HDF5 store over one vocabulary.

    Each source is NAME=PATH, or a bare PATH named by its file stem. Only the rows the
    vocabulary needs are read, in streaming chunks; every source keeps a `present` mask saying
    which rows came from its file. Prints the inspect summary of the store at the end.
    """
    import json

    from metaprep import stages
    from metaprep.prep.alignplan import parse_source_args
    from metaprep.prep.inspect import format_summary

    options = stages.AlignOptions(
        sources={n: str(p) for n, p in parse_source_args(list(kw["sources"]))},
        output=str(kw["output"]), vocab=tuple(kw["vocab"]) or ("union",),
        format=assignments(kw["formats"], "--format"),
        tensor=assignments(kw["tensors"], "--tensor"),
        vocab_file=assignments(kw["vocab_files"], "--vocab-file"),
        oov=assignments(kw["oov"], "--oov"),
        normalize=assignments(kw["normalize"], "--normalize", allow_all=True),
        **{k: kw[k] for k in _PLAIN},
    )
    result = stages.align(options)
    click.echo(json.dumps(result.summary, indent=2) if kw["as_json"]
               else format_summary(result.summary))


# options passed to the stage as they are
_PLAIN = ("oov_default", "case", "dtype", "data_encoding", "lowercase", "token_pattern",
          "whitespace", "min_count", "max_vocab", "limit", "on_bad_line", "encoding_errors",
          "seed", "quiet", "text_column", "label_column", "text_a_column", "text_b_column")
