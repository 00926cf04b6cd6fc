"""`metaprep predict`: labels and probabilities from a model directory, with onnxruntime only."""

from __future__ import annotations

import click

from metaprep.cli._serve import Warner, atomic_output, open_input, serve_options


@click.command("predict")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("input_path", metavar="[FILE|-]", default="-")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write JSONL here [default: stdout].")
@serve_options
def command(model_dir: str, input_path: str, output: str | None, fmt: str,
            columns: tuple[str, ...], batch_size: int, threads: int | None, verify: str,
            quiet: bool) -> None:
    """Classify texts with an exported model (no torch needed).

    Reads FILE (or stdin) and writes one JSON line per input record, in order:
    {"line": N, "label": ..., "probabilities": {label: p, ...}}, or {"line": N, "error": ...}
    for a record that could not be read. Empty lines get the model's prediction for an empty
    text; texts longer than the model's max_tokens are truncated (reported once on stderr);
    bytes that are not UTF-8 are replaced (reported with their line number).
    """
    import json

    from metaprep.serve.runtime import Model, predict_stream, read_texts, stats_notes

    model = Model(model_dir, threads=threads, batch_size=batch_size, verify=verify)
    cols = columns or (("text_a", "text_b") if model.pair else ("text",))
    warn = Warner()
    with open_input(input_path) as (stream, name), atomic_output(output) as out:
        records = read_texts(stream, name=name, fmt=fmt, columns=cols, warn=warn)
        for rec in predict_stream(model, records, chunk=max(batch_size, 256)):
            if "error" in rec:
                warn(f"{name}:{rec['line']}: {rec['error']}")
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
            if output is None and rec["line"] % 256 == 0:
                out.flush()
    warn.finish()
    if not quiet:
        for note in stats_notes(model):
            click.echo(f"note: {note}", err=True)
