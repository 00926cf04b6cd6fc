"""A long-document task from PyPI: a project's long description -> its top-level trove topic.

    python benchmarks/realdata.py --pypi-long [--pypi-cache benchmarks/data/pypi-cache]

A second long-text task beside ``debian-long``, from another domain (Python projects' READMEs
rather than Debian's package descriptions), so that training defaults tuned on long texts can be
checked on two. Built from PyPI's public JSON API:

1. names: the simple index (``https://pypi.org/simple/``, about 900k projects; the JSON form or
   the HTML one, whichever the server sends), shuffled with a seeded generator;
2. each project's ``https://pypi.org/pypi/<name>/json`` is fetched in that order (16 threads,
   retries with back-off), in batches of 1,000, until the task reaches ``target`` texts or
   ``max_fetch`` projects were asked for. Every answer (a 404 too) is cached gzipped under the
   cache folder, so a rerun is offline and writes identical files;
3. label: the top-level ``X`` of the project's ``Topic :: X :: ...`` classifiers when there is
   exactly one distinct ``X`` (several: ambiguous, dropped; ``Other/Nonlisted Topic``: says
   nothing, dropped), as a slug (``Scientific/Engineering`` -> ``scientific-engineering``).
   One exception: ``Software Development`` beside exactly one other topic is ignored, since
   templates add "Software Development :: Libraries :: Python Modules" to projects of any topic.
   Only 36 % of projects have a topic, 24 % exactly one; the exception takes the texts kept from
   25,000 projects from 3,060 to 4,213 (``generic_topic=None``: the strict rule);
4. text: ``info.description`` (Markdown, reStructuredText or plain) with the markup taken out by
   :func:`clean_description` (code blocks, HTML, images and badges, URLs, tables, directives,
   headings' markup, shell and doctest lines) and the project's name removed (names often say
   the topic: ``django-*``). The summary line and the classifiers are left out: the task is the
   long text. A text whose words are under ``min_stopword_share`` common English words is not
   English-looking prose (another language, or what is left of code) and is dropped;
5. the rest as ``debian-long``: under ``min_words`` (100) words dropped, exact duplicates,
   near-duplicates (the same first 30 words: project families share a README), labels under
   ``min_count`` (20) texts, a stratified seeded 80/10/10 split;
6. a cap per label, the same for all, the largest that keeps every label at most ``max_share``
   (25 %) of the task, as fortunes' cap does: ``Scientific/Engineering`` (1,472 texts) and
   ``Software Development`` (1,120) are otherwise 61 % of the 4,213, and a model could score
   well on those two alone. At 25 % the cap is 810 a label and the task 3,241 texts.
"""

from __future__ import annotations

import gzip
import html
import json
import random
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import realdata

from metaprep.errors import DataError, FormatError

__all__ = ["PypiConfig", "clean_description", "label_of", "prepare_pypi_long", "project_row",
           "pypi_long_task", "read_names", "share_cap",
           "task_of_rows"]

INDEX_URL = "https://pypi.org/simple/"
PROJECT_URL = "https://pypi.org/pypi/{}/json"
USER_AGENT = "metaprep-benchmarks/pypitask (one-off task build; cached)"


@dataclass(frozen=True)
class PypiConfig:
    seed: int = 0  # the name sample and the split
    target: int = 6000  # stop fetching once the task holds this many texts (goal: 3k-8k)
    max_fetch: int = 25000  # ask PyPI for at most this many projects
    batch: int = 1000  # projects fetched between two looks at the task's size
    threads: int = 16
    min_words: int = 100  # as debian-long
    opening_words: int = 30  # texts opening with the same words are near-duplicates
    min_count: int = 20  # labels with fewer texts are dropped
    max_share: float = 0.25  # no label above this share of the task (a cap per label)
    # a topic that, beside exactly one other, is ignored: projects made from a template carry
    # "Software Development :: Libraries :: Python Modules" whatever they are about (None: keep
    # the strict rule, one top-level topic only; it yields 3,060 texts before the cap, not 4,213)
    generic_topic: str | None = "Software Development"
    # English READMEs measure 0.06-0.5 (median 0.29) of these words, other languages under 0.06
    min_stopword_share: float = 0.07
    fractions: tuple[float, float, float] = (0.80, 0.10, 0.10)  # train / dev / test


# --- the text ---------------------------------------------------------------------------------

_BLOCKS = re.compile(r"<!--.*?-->|<(pre|script|style|code|table)\b.*?</\1\s*>", re.S | re.I)
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)|!\[[^\]]*\]\[[^\]]*\]")
_SUBSTITUTION = re.compile(r"\|[^|\s][^|]*\|_{0,2}")  # reStructuredText's |badge|
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)|\[([^\]]*)\]\[[^\]]*\]")
_RST_LINK = re.compile(r"`([^`<]*?)\s*<[^>`]*>`_{1,2}|`([^`]+)`_{1,2}")
_SKIP_LINE = re.compile(
    r"^\s*(\||\+[-=+]|[-=~^\"'`#*+:.]{3,}\s*$|\$ |>>>|\.\.\. |In \[\d*\]|\[[^\]]+\]:\s|"
    r":[\w -]+:(\s|$))|.*\s::\s")
_INLINE_DROP = re.compile(
    r"``.*?``|`[^`]*`|<[^>]*>|\b(?:https?|ftp)://\S+|\bwww\.\S+"
    r"|\S+@\S+\.\w+|\[[ xX]\]")
_LINE_MARKUP = re.compile(r"^\s*(?:#+|>+|[-*+]|\d+[.)])\s+")
_EMPHASIS = re.compile(r"\*+|~~|(?<!\w)_+|_+(?!\w)")
_EMPTY = re.compile(r"\(\s*[,;:]?\s*\)|\[\s*\]")  # what a removed code span or link leaves
STOPWORDS = frozenset(
    "a an and are as at be by can for from has have in is it its of on or that the this to "
    "was were which will with you your not but if all also more when it's their they".split())


def _without_blocks(lines: Sequence[str]) -> list[str]:
    """Lines outside fenced code, reStructuredText directives (``.. code::``, ``.. image::``,
    comments) with their indented bodies, literal blocks after ``::`` and indented code."""
    out: list[str] = []
    fence = ""
    body_indent = -1  # inside a directive or literal block: lines indented more are its body
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if fence:
            fence = "" if stripped.startswith(fence) else fence
            continue
        if stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
            continue
        if body_indent >= 0:
            if not stripped or indent > body_indent:
                continue
            body_indent = -1
        if stripped.startswith(".. "):
            body_indent = indent
            continue
        if line.startswith(("    ", "\t")):
            continue
        if stripped.endswith("::"):
            body_indent = indent
            line = line.rstrip()[:-1]
        out.append(line)
    return out


def clean_description(text: str, name: str = "") -> str:
    """The prose of a project description, one line, its markup and ``name`` taken out."""
    text = _BLOCKS.sub(" ", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _IMAGE.sub(" ", text)
    text = _LINK.sub(lambda m: m.group(1) or m.group(2) or " ", text)
    text = _RST_LINK.sub(lambda m: m.group(1) or m.group(2), text)
    kept: list[str] = []
    for line in _without_blocks(text.split("\n")):
        line = _SUBSTITUTION.sub("", line)
        if _SKIP_LINE.match(line):
            continue
        line = _LINE_MARKUP.sub("", line)
        line = html.unescape(_INLINE_DROP.sub(" ", line))
        line = _EMPTY.sub(" ", _EMPHASIS.sub("", line)).rstrip("\\")
        chars = line.replace(" ", "")
        if chars and sum(c.isalpha() for c in chars) >= 0.5 * len(chars):
            kept.append(line)
    text = " ".join(" ".join(kept).split())
    if name:
        parts = [re.escape(p) for p in re.split(r"[-_.]+", name) if p]
        pattern = r"(?<![\w-])" + r"[-_. ]?".join(parts) + r"(?![\w-])"
        text = " ".join(re.sub(pattern, " ", text, flags=re.I).split())
    return text


def stopword_share(text: str) -> float:
    words = text.lower().split()
    return sum(w.strip(".,;:!?()\"") in STOPWORDS for w in words) / len(words) if words else 0.0


def label_of(classifiers: Iterable[str],
             generic: str | None = "Software Development") -> tuple[str, str]:
    """``(label, "")``, or ``("", why not)``: "no_topic", "several_topics" or "other_topic".
    ``generic`` beside one other top-level topic is ignored (the other one is the label)."""
    tops = {c.split("::")[1].strip() for c in classifiers
            if c.startswith("Topic ::") and len(c.split("::")) > 1}
    if not tops:
        return "", "no_topic"
    if len(tops) == 2 and generic in tops:
        tops.discard(generic)
    if len(tops) > 1:
        return "", "several_topics"
    top = tops.pop()
    if top.startswith("Other"):
        return "", "other_topic"
    return re.sub(r"[^a-z0-9]+", "-", top.lower()).strip("-"), ""


def project_row(data: Mapping[str, Any] | None,
                config: PypiConfig = PypiConfig()) -> tuple[str, str, str, str]:
    """``(name, label, text, "")`` of one project's JSON, or ``("", "", "", why not)``."""
    if not data:
        return "", "", "", "missing"
    info = data.get("info") or {}
    label, why = label_of(info.get("classifiers") or [], config.generic_topic)
    if why:
        return "", "", "", why
    name = str(info.get("name") or "")
    text = clean_description(str(info.get("description") or ""), name)
    if not text or text.upper() == "UNKNOWN":
        return "", "", "", "no_description"
    if stopword_share(text) < config.min_stopword_share:
        return "", "", "", "not_english"
    return name, label, text, ""


def share_cap(sizes: Iterable[int], max_share: float) -> int | None:
    """The largest cap ``c`` for which each label's ``min(n, c)`` is at most ``max_share`` of
    the capped total; None when no cap is needed."""
    sizes = sorted(sizes)
    if not sizes or sizes[-1] <= max_share * sum(sizes):
        return None
    best = None
    for c in range(1, sizes[-1] + 1):  # c / sum(min(n, c)) grows with c: stop at the first miss
        if c > max_share * sum(min(n, c) for n in sizes):
            break
        best = c
    return best


def pypi_long_task(
    projects: Iterable[Mapping[str, Any] | None], config: PypiConfig = PypiConfig()
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """``{label: texts}`` and the counts dropped per reason, from project JSONs (None: a 404)."""
    return task_of_rows([project_row(data, config) for data in projects], config)


def task_of_rows(rows: Sequence[tuple[str, str, str, str]],
                 config: PypiConfig = PypiConfig()) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """:func:`pypi_long_task` from the projects' :func:`project_row`."""
    stats: dict[str, Any] = {"projects": len(rows), "missing": 0, "no_topic": 0,
                             "several_topics": 0, "other_topic": 0, "no_description": 0,
                             "not_english": 0}
    packages = []
    for name, label, text, why in rows:
        if why:
            stats[why] += 1
        else:
            packages.append(realdata.Package(name=name, description="", section=label,
                                             area="pypi", tags=(), long_description=text))
    long_config = realdata.DebianLongConfig(min_words=config.min_words,
                                            opening_words=config.opening_words,
                                            min_count=config.min_count, seed=config.seed)
    by_label, long_stats = realdata.debian_long_task(packages, {}, long_config)
    for key in ("packages", "no_long_description"):  # counted above, before the text rules
        long_stats.pop(key)
    stats.update(long_stats)
    stats["cap"] = share_cap((len(t) for t in by_label.values()), config.max_share)
    return by_label, stats


def _total(by_label: Mapping[str, Sequence[str]], cap: int | None) -> int:
    return sum(min(len(t), cap or len(t)) for t in by_label.values())


# --- fetching ----------------------------------------------------------------------------------


def _get(url: str, accept: str = "application/json", tries: int = 5) -> bytes | None:
    """The body of ``url``; None on a 404; retries other errors with back-off."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": accept})
    for attempt in range(tries):
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code in (404, 410):
                return None
            error: Exception = exc
        except (urllib.error.URLError, OSError) as exc:
            error = exc
        if attempt + 1 < tries:
            time.sleep(2.0 ** attempt)
    raise DataError(f"cannot fetch {url}: {error}", hint="check the network; rerun to resume "
                    "(what was fetched is cached)")


def read_names(body: bytes) -> list[str]:
    """Project names of the simple index, sorted: its JSON form or its HTML one."""
    if body.lstrip().startswith(b"{"):
        return sorted(p["name"] for p in json.loads(body)["projects"])
    return sorted(m.decode() for m in re.findall(rb'<a href="[^"]*">([^<]+)</a>', body))


def _cached(path: Path, fetch: Any) -> bytes | None:
    """The cached body at ``path`` (b"" for a cached 404), fetching and caching it if absent."""
    if path.is_file():
        try:
            return gzip.decompress(path.read_bytes())
        except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
            raise FormatError(f"not a gzip file: {exc}", path=path,
                              hint="delete it to fetch it again") from exc
    body = fetch()
    path.parent.mkdir(parents=True, exist_ok=True)
    with realdata._atomic_path(path) as tmp:
        tmp.write_bytes(gzip.compress(body or b"", mtime=0))
    return body or b""


def _project(cache: Path, name: str) -> dict[str, Any] | None:
    key = re.sub(r"[-_.]+", "-", name).lower()
    path = cache / "projects" / key[:2] / f"{key}.json.gz"
    body = _cached(path, lambda: _get(PROJECT_URL.format(urllib.parse.quote(key))))
    if not body:
        return None
    try:
        data: dict[str, Any] = json.loads(body)
    except json.JSONDecodeError as exc:
        raise FormatError(f"not JSON: {exc}", path=path, hint="delete it to fetch it again") \
            from exc
    return data


def prepare_pypi_long(out: Path, cache: Path,
                      config: PypiConfig = PypiConfig()) -> dict[str, Any]:
    """Fetch (or read from ``cache``) project JSONs until the task is big enough; write
    ``pypi-long.{train,dev,test}.tsv`` into ``out``; return the manifest entry."""
    from tqdm import tqdm

    start = time.perf_counter()
    index = _cached(cache / "simple-index.gz",
                    lambda: _get(INDEX_URL, "application/vnd.pypi.simple.v1+json, text/html"))
    names = read_names(index or b"")
    if not names:
        raise DataError("the simple index lists no project", path=cache / "simple-index.gz",
                        hint="delete it to fetch it again")
    random.Random(f"{config.seed}:pypi-names").shuffle(names)
    rows: list[tuple[str, str, str, str]] = []
    with ThreadPoolExecutor(config.threads) as pool, \
            tqdm(total=config.max_fetch, desc="pypi projects", unit="proj") as bar:
        while len(rows) < min(config.max_fetch, len(names)):
            batch = names[len(rows): min(len(rows) + config.batch, config.max_fetch)]
            for data in pool.map(lambda n: _project(cache, n), batch):
                rows.append(project_row(data, config))
                bar.update()
            by_label, stats = task_of_rows(rows, config)
            bar.set_postfix(texts=_total(by_label, stats["cap"]))
            if _total(by_label, stats["cap"]) >= config.target:
                break
    seconds = time.perf_counter() - start
    if len(by_label) < 2:
        raise DataError(f"only {len(by_label)} label(s) with >= {config.min_count} texts from "
                        f"{len(rows):,} projects", path=cache,
                        hint="raise max_fetch or lower min_count")
    splits = realdata.split_task(by_label, realdata.TaskConfig(
        categories=tuple(by_label), cap=stats["cap"], fractions=config.fractions,
        seed=config.seed))
    stats["before_cap"] = {lab: len(t) for lab, t in by_label.items()}
    return {"files": realdata._write_splits(out, "pypi-long", splits),
            "source": f"{INDEX_URL} + {PROJECT_URL}", "cache": str(cache),
            "config": asdict(config), "cleaning": stats, "seconds": round(seconds, 1),
            "counts": realdata._counts(splits, by_label), "words": realdata._lengths(splits)}


def print_summary(entry: Mapping[str, Any]) -> None:
    """What :func:`prepare_pypi_long` kept and dropped, per label and split."""
    c, cfg = entry["cleaning"], entry["config"]
    kept = sum(n for split in entry["counts"].values() for n in split.values())
    duplicates = c["duplicate"] + c["cross_section"]
    print(f"pypi-long: {c['projects']:,} projects read in {entry['seconds']:g} s (from PyPI or "
          f"the cache) -> "
          f"{kept:,} texts (dropped: {c['missing']:,} missing, {c['no_topic']:,} without a topic, "
          f"{c['several_topics']:,} with several, {c['other_topic']:,} 'Other', "
          f"{c['no_description']:,} without a description, {c['not_english']:,} not English, "
          f"{c['too_short']:,} under {cfg['min_words']} words, {duplicates:,} "
          f"duplicates, {c['near_duplicate']:,} near-duplicates, {c['small_section']:,} in "
          f"{len(c['small_sections'])} labels under {cfg['min_count']} texts; cap per label: "
          f"{c['cap']})")
    realdata._print_counts(entry["counts"], {"header": "before the cap",
                                             **{k: str(v) for k, v in c["before_cap"].items()}})
    for split, w in entry["words"].items():
        if w["texts"]:
            print(f"  pypi-long {split}: {w['texts']:,} texts, words per text: min {w['min']}, "
                  f"p10 {w['p10']:g}, median {w['median']:g}, mean {w['mean']:g}, "
                  f"p90 {w['p90']:g}, max {w['max']:,}")
    print("task files: " + ", ".join(entry["files"][s] for s in realdata.SPLITS) + "\n")
