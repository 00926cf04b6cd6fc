"""The `metaprep` command: a click group whose commands live one per module in this package.

Each module ``metaprep/cli/<name>.py`` defines ``command`` (a click.Command named like the module,
with ``_`` read as ``-``). Modules are imported only when their command runs or its help is asked
for, and each command imports the heavy library inside its callback, so ``metaprep --help`` stays
instant.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click

from metaprep import __version__
from metaprep.errors import MetaprepError

__all__ = ["cli", "main"]


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        names = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
        return sorted(n.replace("_", "-") for n in names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.list_commands(ctx):
            return None
        module = importlib.import_module(f"{__name__}.{cmd_name.replace('-', '_')}")
        return module.command  # type: ignore[no-any-return]


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="metaprep")
def cli() -> None:
    """metaprep: combine pretrained word embeddings into one learned meta-embedding.

    \b
    Typical flow:
      metaprep align glove=glove.txt ft=crawl.vec -o store.h5   # align + pack into HDF5
      metaprep inspect store.h5                                 # coverage and overlap
      metaprep train --store store.h5 --train t.tsv --dev d.tsv --method dme -o run/
      metaprep export-onnx run/ -o model/                       # ONNX + parity gate
      metaprep predict model/ texts.txt                         # onnxruntime, no torch
      metaprep run pipelines/quickstart.toml                    # all stages from one file
    """


# Packages of the full install that a runtime-only install (`metaprep[runtime]`) lacks.
_FULL_ONLY = {"torch", "h5py", "gensim", "polars", "onnx", "safetensors", "tqdm", "matplotlib"}


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit status 2."""
    try:
        cli.main(standalone_mode=False)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in _FULL_ONLY:
            raise
        command = next((a for a in sys.argv[1:] if not a.startswith("-")), "this command")
        click.echo(f"error: `metaprep {command}` needs the full install (no module {missing!r} "
                   "here): pip install 'metaprep[full]', with torch's CPU build (README, Set "
                   "up); predict and embed need only 'metaprep[runtime]'", err=True)
        sys.exit(2)
    except MetaprepError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:  # a full disk, a file-size limit, a closed pipe, no permission...
        where = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"error: {where}{exc.strerror or exc} (nothing was left half-written)",
                   err=True)
        sys.exit(2)
    except click.UsageError as exc:  # a missing, unknown or wrong value: one line, as all errors
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare command: its help, as asked
            exc.show()
            sys.exit(exc.exit_code)
        where = exc.ctx.command_path if exc.ctx is not None else "metaprep"
        click.echo(f"error: {exc.format_message()} (see {where} --help)", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
