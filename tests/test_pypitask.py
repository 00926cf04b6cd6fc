"""The PyPI long-document task (benchmarks/pypitask.py) on hand-written JSONs; no network."""

from __future__ import annotations

import gzip
import importlib.util
import json
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from metaprep.errors import FormatError

_BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str) -> Any:
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _BENCH / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_load("realdata")
pypitask = _load("pypitask")

_PROSE = ("This library helps you read the files that a telescope writes, and it gives you a "
          "simple way to plot them.")

MARKDOWN = f"""<h1 align="center"><img src="https://x.org/logo.svg"></h1>
<!-- a comment with words that must go -->
[![Build](https://img.shields.io/badge/build-ok.svg)](
https://ci.example.org/star-reader)
# Star-Reader

{_PROSE} See the [documentation](https://docs.example.org) or www.example.org for more.

```python
import star_reader
star_reader.plot("sky.fits")
```

| option | meaning |
|--------|---------|
| fast   | skip    |

$ pip install star-reader
>>> star_reader.version()

- **Fast:** it reads `sky.fits` in one pass; write to dev@example.org.
    indented code that is dropped
"""

RST = f"""Star Reader
===========

.. image:: https://img.shields.io/pypi/v/star-reader.svg
   :target: https://pypi.org/project/star-reader

|badge| {_PROSE} Read `the guide <https://guide.example.org>`_ and `Usage`_.

.. code-block:: python

   import star_reader

Example::

    star_reader.plot()

+-------+------+
| a     | b    |
+=======+======+

Classifier: Topic :: Scientific/Engineering :: Astronomy
"""


def test_clean_markdown_keeps_prose_only() -> None:
    text = pypitask.clean_description(MARKDOWN, "star-reader")
    assert text == (f"{_PROSE} See the documentation or for more. Fast: it reads in one pass; "
                    "write to .")


def test_clean_rst_keeps_prose_only() -> None:
    text = pypitask.clean_description(RST, "star_reader")
    assert text == f"{_PROSE} Read the guide and Usage. Example:"


def test_clean_removes_the_name_in_any_spelling() -> None:
    text = pypitask.clean_description("Star Reader and star_reader and STAR-READER and "
                                      "star-readers and my-star-reader stay.", "star-reader")
    assert text == "and and and star-readers and my-star-reader stay."


@pytest.mark.parametrize(("classifiers", "expected"), [
    (["Topic :: Scientific/Engineering :: Astronomy", "Topic :: Scientific/Engineering",
      "License :: OSI Approved"], ("scientific-engineering", "")),
    (["Topic :: Software Development :: Libraries"], ("software-development", "")),
    (["Topic :: Internet", "Topic :: Software Development :: Libraries"], ("internet", "")),
    (["Topic :: Internet", "Topic :: System", "Topic :: Software Development"],
     ("", "several_topics")),
    (["Topic :: Internet", "Topic :: System"], ("", "several_topics")),
    (["Topic :: Other/Nonlisted Topic"], ("", "other_topic")),
    (["Intended Audience :: Developers"], ("", "no_topic")),
    ([], ("", "no_topic")),
])
def test_label_of(classifiers: list[str], expected: tuple[str, str]) -> None:
    assert pypitask.label_of(classifiers) == expected


def test_label_of_strict() -> None:
    both = ["Topic :: Internet", "Topic :: Software Development :: Libraries"]
    assert pypitask.label_of(both, None) == ("", "several_topics")


def _project(name: str, topic: str | None, description: str,
             summary: str = "A summary that is left out") -> dict[str, Any]:
    classifiers = ["Programming Language :: Python"] + ([f"Topic :: {topic}"] if topic else [])
    return {"info": {"name": name, "summary": summary, "classifiers": classifiers,
                     "description": description}}


def test_project_row_reasons() -> None:
    row = pypitask.project_row(_project("star-reader", "Multimedia", MARKDOWN))
    assert row[:2] == ("star-reader", "multimedia") and row[3] == ""
    assert "summary" not in row[2] and "Multimedia" not in row[2]
    assert pypitask.project_row(None)[3] == "missing"
    assert pypitask.project_row(_project("x", None, MARKDOWN))[3] == "no_topic"
    assert pypitask.project_row(_project("x", "System", "UNKNOWN"))[3] == "no_description"
    german = "Diese Bibliothek liest die Dateien eines Teleskops und zeichnet sie schnell. " * 5
    assert pypitask.project_row(_project("x", "System", german))[3] == "not_english"


def _prose(rng: random.Random, words: int) -> str:
    vocab = ["data", "files", "server", "image", "parse", "fast", "user", "model", "network"]
    stop = ["the", "of", "and", "to", "a", "is", "for", "with"]
    return " ".join(rng.choice(stop if i % 2 else vocab) for i in range(words))


def test_duplicates_near_duplicates_length_and_min_count() -> None:
    rng = random.Random(0)
    shared = _prose(rng, 120)
    own = _prose(rng, 110)
    projects = [
        _project("a1", "Internet", shared),
        _project("b1", "Database", shared),  # in two labels: dropped from both
        _project("s1", "System", own),
        _project("s2", "System", own.upper()),  # the same text, other case: one kept
        _project("c1", "System", _prose(rng, 40) + " tail one " + _prose(rng, 80)),
    ]
    opening = projects[-1]["info"]["description"].split()[:35]
    projects.append(_project("c2", "System", " ".join(opening) + " " + _prose(rng, 90)))
    projects.append(_project("d1", "System", _prose(rng, 99)))  # too short
    projects.append(None)
    config = pypitask.PypiConfig(min_count=2)
    by_label, stats = pypitask.pypi_long_task(projects, config)
    assert stats["missing"] == 1 and stats["too_short"] == 1
    assert stats["duplicate"] == 1 and stats["cross_section"] == 2
    assert stats["near_duplicate"] == 1  # c1 and c2 open alike
    assert sorted(by_label) == ["system"] and len(by_label["system"]) == 2
    assert stats["small_sections"] == {}


@pytest.mark.parametrize(("sizes", "cap"), [
    ([100, 10, 10, 10], 10), ([50, 40, 30, 20, 10], 30), ([30, 30, 30, 30], None),
    ([90, 10], None),  # two labels cannot be under 25 % each: no cap
])
def test_share_cap(sizes: list[int], cap: int | None) -> None:
    assert pypitask.share_cap(sizes, 0.25) == cap
    if cap:
        capped = [min(n, cap) for n in sizes]
        assert max(capped) <= 0.25 * sum(capped)
        assert max(c2 := [min(n, cap + 1) for n in sizes]) > 0.25 * sum(c2)


def _cache(tmp_path: Path, sizes: dict[str, int]) -> Path:
    """A cache holding a simple index and every project it lists: no fetch needed."""
    cache = tmp_path / "cache"
    rng = random.Random(1)
    names = []
    for topic, n in sizes.items():
        for i in range(n):
            name = f"{topic[:3].lower()}-{i}"
            names.append(name)
            path = cache / "projects" / name[:2] / f"{name}.json.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            body = json.dumps(_project(name, topic, _prose(rng, 100 + i))).encode()
            path.write_bytes(gzip.compress(body))
    index = "".join(f'<a href="/simple/{n}/">{n}</a>\n' for n in names)
    (cache / "simple-index.gz").write_bytes(gzip.compress(index.encode()))
    return cache


def test_prepare_is_offline_stratified_capped_and_deterministic(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("fetched although the cache holds everything")

    monkeypatch.setattr(pypitask, "_get", no_network)
    sizes = {"Internet": 60, "System": 40, "Database": 30, "Multimedia": 30, "Security": 20,
             "Education": 5}
    cache = _cache(tmp_path, sizes)
    config = pypitask.PypiConfig(target=10_000, batch=50)
    entry = pypitask.prepare_pypi_long(tmp_path / "a", cache, config)
    assert entry["cleaning"]["projects"] == sum(sizes.values())
    assert entry["cleaning"]["small_sections"] == {"education": 5}
    cap = entry["cleaning"]["cap"]
    assert cap == pypitask.share_cap([60, 40, 30, 30, 20], 0.25) == 40
    rows = {s: pypitask.realdata.read_tsv(tmp_path / "a" / f"pypi-long.{s}.tsv")
            for s in ("train", "dev", "test")}
    for label, n in (("internet", 40), ("system", 40), ("database", 30), ("security", 20)):
        got = [Counter(lab for _, lab in rows[s])[label] for s in ("train", "dev", "test")]
        assert got == [n - 2 * round(n / 10), round(n / 10), round(n / 10)]
    texts = [t for s in rows.values() for t, _ in s]
    assert len(texts) == len(set(texts)) == 160
    again = pypitask.prepare_pypi_long(tmp_path / "b", cache, config)
    for s in ("train", "dev", "test"):
        assert ((tmp_path / "a" / f"pypi-long.{s}.tsv").read_bytes()
                == (tmp_path / "b" / f"pypi-long.{s}.tsv").read_bytes())
    assert again["counts"] == entry["counts"]


def test_prepare_stops_once_the_target_is_reached(tmp_path: Path) -> None:
    cache = _cache(tmp_path, {"Internet": 100, "System": 100})
    config = pypitask.PypiConfig(target=30, batch=50, max_share=1.0, min_count=5)
    entry = pypitask.prepare_pypi_long(tmp_path / "a", cache, config)
    assert entry["cleaning"]["projects"] == 50


def test_read_names_json_and_html() -> None:
    body = json.dumps({"meta": {}, "projects": [{"name": "b"}, {"name": "a"}]}).encode()
    assert pypitask.read_names(body) == ["a", "b"]
    assert pypitask.read_names(b'<html><a href="/simple/z/">z</a>\n<a href="y/">y</a>') == [
        "y", "z"]


def test_a_damaged_cache_file_is_one_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "projects" / "ab" / "abc.json.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not gzip")

    def fetch() -> bytes:
        raise AssertionError("a cached answer is never fetched again")

    with pytest.raises(FormatError, match="not a gzip file") as err:
        pypitask._cached(path, fetch)
    assert str(err.value.path) == str(path) and "\n" not in str(err.value)
    path.write_bytes(gzip.compress(b'{"info": {}}')[:-4])  # cut short
    with pytest.raises(FormatError, match="not a gzip file"):
        pypitask._cached(path, fetch)
