"""`metaprep embed`: sentence vectors from a model directory, with onnxruntime only."""

from __future__ import annotations

import click

from metaprep.cli._serve import Warner, atomic_output, open_input, serve_options


@click.command("embed")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("input_path", metavar="[FILE|-]", default="-")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="OUT.npy (float32 matrix, one row per input record) or OUT.jsonl "
                   "({\"line\", \"embedding\"} per record).")
@serve_options
def command(model_dir: str, input_path: str, output: str, fmt: str, columns: tuple[str, ...],
            batch_size: int, threads: int | None, verify: str, quiet: bool) -> None:
    """Write the sentence vector of every text (the encoder output the classifier reads).

    In a .npy file, row i belongs to the i-th input record; a record that could not be read
    (bad JSON, a missing column) gets a row of NaN and a warning with its line number.
    """
    import json

    import numpy as np

    from metaprep.errors import ConfigError
    from metaprep.serve.runtime import Model, embed_stream, read_texts, stats_notes

    if not output.endswith((".npy", ".jsonl")):
        raise ConfigError("the output must end in .npy or .jsonl", path=output)
    model = Model(model_dir, threads=threads, batch_size=batch_size, verify=verify)
    warn = Warner()
    rows: list[np.ndarray] = []
    width = int(model.manifest.task["sentence_dim"])
    with open_input(input_path) as (stream, name), \
            atomic_output(output, "wb" if output.endswith(".npy") else "w") as out:
        records = read_texts(stream, name=name, fmt=fmt, columns=columns or ("text",), warn=warn)
        for no, vec, problem in embed_stream(model, records, chunk=max(batch_size, 256)):
            if vec is None:
                warn(f"{name}:{no}: {problem}")
                vec = np.full(width, np.nan, dtype=np.float32)
            if output.endswith(".npy"):
                rows.append(vec)
            else:
                out.write(json.dumps({"line": no, "embedding": [round(float(x), 7)
                                                                for x in vec]}) + "\n")
        if output.endswith(".npy"):
            np.save(out, np.stack(rows) if rows else np.zeros((0, width), np.float32))
    warn.finish()
    if not quiet:
        for note in stats_notes(model):
            click.echo(f"note: {note}", err=True)
        click.echo(f"wrote {output}", err=True)
