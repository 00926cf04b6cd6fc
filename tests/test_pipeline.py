from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metaprep.errors import ConfigError, MetaprepError
from metaprep.pipeline import load_pipeline, run_pipeline
from metaprep.stages import SplitOptions


def _write(tmp_path: Path, body: str) -> Path:
    corpus = tmp_path / "c.txt"
    corpus.write_text("".join(f"__label__{'ab'[i % 2]} text {i}\n" for i in range(40)))
    p = tmp_path / "p.toml"
    p.write_bytes(body.encode("utf-8", "surrogateescape"))  # "\udcff": the byte 0xff
    return p


def test_keys_become_the_stages_own_options(tmp_path: Path) -> None:
    p = _write(tmp_path, '[pipeline]\nname = "t"\n[split]\ndata = "c.txt"\ndev = 0.25\n')
    pipe = load_pipeline(p, artifacts=tmp_path / "art")
    (plan,) = pipe.stages
    assert isinstance(plan.options, SplitOptions)
    assert plan.options.data == str(tmp_path / "c.txt")
    assert plan.options.dev == 0.25
    assert plan.options.output == str(tmp_path / "art" / "t" / "split")


@pytest.mark.parametrize(
    "body, message",
    [
        ('[split]\ndata = "c.txt"\nfraction = 2\n', "unknown key 'fraction'"),
        ('[splat]\ndata = "c.txt"\n', "unknown section"),
        ('[pipeline]\nname = "x"\ncolour = 1\n', "unknown key"),
        ("[split\n", "not valid TOML"),
        ('[pipeline]\nname = "x"\n', "names no stage"),
        ('[split]\ndata = "{train}/x"\n', "not an earlier stage"),
        ('[train]\nstore = "s.h5"\nepochs = "many"\n', "epochs must be a whole number"),
        ('[train]\nstore = "s.h5"\nlr = true\n', "lr must be a number"),
        ('[train]\nstore = "s.h5"\nhidden = 1000000000\n', "hidden must be from 1 to 16,384"),
        ('[train]\nmask_missing = 1\n', "mask_missing must be true or false"),
        ('[align]\nsources = ["a.txt"]\n', "sources must be a table"),
        ('[pipeline]\nname = "../../x"\n[split]\ndata = "c.txt"\n', "one folder name"),
        ('[pipeline]\nname = ".."\n[split]\ndata = "c.txt"\n', "one folder name"),
        ('[split]\ndata = "c.txt"\noutput = "../../elsewhere"\n', "only inside its stage"),
        ('[split]\ndata = "c.txt"\noutput = "/tmp/elsewhere"\n', "only inside its stage"),
        # names that become folders: refused when the file is loaded (a dry run)
        ('[export]\nrun = "r"\ntriton = "repo"\ntriton_name = "../x"\n',
         r"\[export\] triton_name '../x' must be one folder name"),
        ('[align.sources]\n"a/b" = "c.txt"\n', r"\[align\] sources: the name 'a/b' must be one"),
        ('[pipeline]\nname = "x y"\n[split]\ndata = "c.txt"\n', "one folder name"),
        # TOML has nan and inf; a deep nesting was a RecursionError traceback
        ('[split]\ndata = "c.txt"\ndev = nan\n', "dev must be a finite number, not nan"),
        ('[export]\nrun = "r"\ntolerance = inf\n', "tolerance must be a finite number"),
        ("[split]\ndata = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        ('[split]\ndata = "c.txt"\n# \udcff\n', "not UTF-8"),
    ],
)
def test_bad_pipeline_files_name_the_key_and_file(tmp_path: Path, body: str, message: str) -> None:
    p = _write(tmp_path, body)
    with pytest.raises(ConfigError, match=message) as info:
        load_pipeline(p, artifacts=tmp_path / "art")
    assert str(p) in str(info.value)


def test_a_pipeline_file_is_a_small_regular_file(tmp_path: Path) -> None:
    """A FIFO given as the pipeline file hung the run; /dev/zero filled memory."""
    os.mkfifo(tmp_path / "p.toml")
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * (1 << 20) + "\n[split]\ndata = \"c.txt\"\n")
    for file, message in ((tmp_path / "p.toml", "not a regular file"),
                          (Path("/dev/zero"), "not a regular file"),
                          (tmp_path, "is a folder"), (big, "larger than 1,048,576 bytes")):
        with pytest.raises(ConfigError, match=message) as info:
            load_pipeline(file, artifacts=tmp_path / "art")
        assert str(file) in str(info.value)


def test_an_artifacts_folder_that_is_a_device_or_pipe_is_refused(tmp_path: Path) -> None:
    """It said only "File exists"."""
    p = _write(tmp_path, '[split]\ndata = "c.txt"\n')
    os.mkfifo(tmp_path / "fifo")
    for art in (Path("/dev/null"), tmp_path / "fifo"):
        with pytest.raises(ConfigError, match="would go inside .*, which is not a folder"):
            run_pipeline(p, artifacts=art, echo=lambda s: None)


def test_rerun_skips_unchanged_and_force_reruns(tmp_path: Path) -> None:
    p = _write(tmp_path, '[split]\ndata = "c.txt"\n')
    art = tmp_path / "art"
    first = run_pipeline(p, artifacts=art, echo=lambda s: None)
    assert first.stages[0].action == "run"
    assert first.stages[0].figures == {"train": 28, "dev": 6, "test": 6}
    second = run_pipeline(p, artifacts=art, echo=lambda s: None)
    assert second.stages[0].action == "skip"
    assert second.stages[0].figures == first.stages[0].figures
    forced = run_pipeline(p, artifacts=art, force="split", echo=lambda s: None)
    assert forced.stages[0].action == "force"
    (tmp_path / "c.txt").write_text("".join(f"__label__{'ab'[i % 2]} t {i}\n" for i in range(40)))
    changed = run_pipeline(p, artifacts=art, echo=lambda s: None)
    assert changed.stages[0].action == "run"  # the input file's hash changed
    with pytest.raises(ConfigError, match="no such stage"):
        run_pipeline(p, artifacts=art, force="train", echo=lambda s: None)


def test_dry_run_runs_nothing(tmp_path: Path) -> None:
    p = _write(tmp_path, '[split]\ndata = "c.txt"\n')
    lines: list[str] = []
    run_pipeline(p, artifacts=tmp_path / "art", dry_run=True, echo=lines.append)
    assert lines and lines[0].startswith("[split] run: data=")
    assert not (tmp_path / "art" / "p" / "split" / "train.tsv").exists()


def test_pkg_paths_resolve_inside_installed_packages(tmp_path: Path) -> None:
    p = _write(tmp_path, '[split]\ndata = "pkg:gensim/test/test_data/pang_lee_polarity.cor"\n'
               'encoding = "latin-1"\n')
    (plan,) = load_pipeline(p, artifacts=tmp_path / "art").stages
    assert Path(plan.options.data).is_file()
    q = _write(tmp_path, '[split]\ndata = "pkg:no_such_pkg_xyz/a.txt"\n')
    with pytest.raises(ConfigError, match="not installed"):
        load_pipeline(q, artifacts=tmp_path / "art")


def test_upstream_outputs_do_not_invalidate_downstream(tmp_path: Path) -> None:
    # A stage reading an earlier stage's output must be skipped on a plain rerun, even though that
    # output did not exist when the first run was planned.
    p = _write(tmp_path, '[split]\ndata = "c.txt"\n')
    p.write_text('[split]\ndata = "c.txt"\n[align]\nvocab = "{split}/train.tsv"\n'
                 'quiet = true\n[align.sources]\nv = "v.txt"\n')
    (tmp_path / "v.txt").write_text("text 0.1 0.2\nt 0.3 0.4\n")
    art = tmp_path / "art"
    first = run_pipeline(p, artifacts=art, echo=lambda s: None)
    assert [s.action for s in first.stages] == ["run", "run"]
    again = run_pipeline(p, artifacts=art, echo=lambda s: None)
    assert [s.action for s in again.stages] == ["skip", "skip"]
    forced = run_pipeline(p, artifacts=art, force="align", echo=lambda s: None)
    assert [s.action for s in forced.stages] == ["skip", "force"]


def test_only_paths_are_rebased_on_the_pipeline_folder(tmp_path: Path) -> None:
    (tmp_path / "v.txt").write_text("a 0.1\n")
    p = _write(tmp_path, '[align]\nvocab = "union"\ntoken_pattern = "\\\\w+/\\\\w+"\n'
               'output = "out/store.h5"\n[align.sources]\nv = "v.txt"\n[align.oov]\nv = "zero"\n')
    (plan,) = load_pipeline(p, artifacts=tmp_path / "art").stages
    o = plan.options
    assert o.sources == {"v": str(tmp_path / "v.txt")}  # an input path: rebased
    assert o.token_pattern == "\\w+/\\w+"  # a regex with a slash: kept
    assert o.vocab == ("union",)
    assert o.oov == {"v": "zero"}
    # an output named in the file lands inside the stage's directory
    assert o.output == str(tmp_path / "art" / "p" / "align" / "out" / "store.h5")


def test_a_retrained_run_outside_the_pipeline_reruns_export(tmp_path: Path) -> None:
    # directories given from outside (a run made by hand) are fingerprinted, not ignored
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    p = _write(tmp_path, f'[export]\nrun = "{run}"\n')
    pipe = load_pipeline(p, artifacts=tmp_path / "art")
    from metaprep.pipeline import plan_pipeline

    plan_pipeline(pipe)
    first = pipe.stages[0].inputs_hash
    (run / "best.safetensors").write_text("new weights")
    again = load_pipeline(p, artifacts=tmp_path / "art")
    plan_pipeline(again)
    assert again.stages[0].inputs_hash != first


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    p = _write(tmp_path, '[split]\ndata = "c.txt"\n')
    run_pipeline(p, artifacts=tmp_path / "art", dry_run=True, echo=lambda s: None)
    assert not (tmp_path / "art").exists()


def test_a_failed_rerun_keeps_the_last_good_output(tmp_path: Path) -> None:
    p = _write(tmp_path, '[split]\ndata = "c.txt"\n')
    art = tmp_path / "art"
    run_pipeline(p, artifacts=art, echo=lambda s: None)
    out = art / "p" / "split"
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    (tmp_path / "c.txt").write_text("not a labelled line\n")  # the rerun's split fails
    with pytest.raises(Exception, match="c.txt"):
        run_pipeline(p, artifacts=art, echo=lambda s: None)
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    assert not (out.parent / ".split.previous").exists()  # nothing left aside


@pytest.mark.parametrize("record", ['{"hash": "h", "figures": 5}', "[1, 2]", "[" * 5000, "fifo"])
def test_a_damaged_stage_record_means_the_stage_runs_again(tmp_path: Path, record: str) -> None:
    """Figures that were not a table gave a TypeError traceback, deep nesting a RecursionError;
    a FIFO would block the read."""
    p = _write(tmp_path, '[split]\ndata = "c.txt"\n')
    art = tmp_path / "art"
    run_pipeline(p, artifacts=art, echo=lambda s: None)
    path = art / "p" / "split" / ".metaprep-stage.json"
    good = json.loads(path.read_text())
    for damaged in (path, art / "p" / ".hash-cache.json"):  # the hash cache, damaged the same
        damaged.unlink()
        if record == "fifo":
            os.mkfifo(damaged)
        else:
            damaged.write_text(record.replace('"h"', json.dumps(good["hash"])))
    assert run_pipeline(p, artifacts=art, echo=lambda s: None).stages[0].action == "run"
    assert json.loads(path.read_text())["figures"] == good["figures"]


def test_pkg_paths_never_run_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "site" / "sneaky_pkg_xyz"
    pkg.mkdir(parents=True)
    marker = tmp_path / "ran"
    (pkg / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\n")
    (pkg / "data.txt").write_text("x")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    p = _write(tmp_path, '[split]\ndata = "pkg:sneaky_pkg_xyz/data.txt"\n')
    lines: list[str] = []
    run_pipeline(p, artifacts=tmp_path / "art", dry_run=True, echo=lines.append)
    assert not marker.exists()  # found, not imported
    assert str(pkg / "data.txt") in lines[0]
    for name, message in (("os.path", "not the name of a top-level package"),
                          ("os", "'os' is a module, not a package with data files"),
                          ("no_such_pkg_xyz", "package 'no_such_pkg_xyz' is not installed")):
        q = _write(tmp_path, f'[split]\ndata = "pkg:{name}/x"\n')
        with pytest.raises(ConfigError, match=message):
            load_pipeline(q, artifacts=tmp_path / "art")
    for bad in ("sneaky_pkg_xyz/../../../../etc/passwd", "sneaky_pkg_xyz/", "sneaky_pkg_xyz"):
        q = _write(tmp_path, f'[split]\ndata = "pkg:{bad}"\n')  # '..' used to leave the package
        with pytest.raises(ConfigError, match="must name a file inside the package"):
            load_pipeline(q, artifacts=tmp_path / "art")


def test_a_killed_rerun_never_costs_the_last_good_output(tmp_path: Path) -> None:
    p = _write(tmp_path, '[split]\ndata = "c.txt"\n')
    art = tmp_path / "art"
    run_pipeline(p, artifacts=art, echo=lambda s: None)
    out = art / "p" / "split"
    good = {f.name: f.read_bytes() for f in out.iterdir()}
    # a rerun killed after setting the good output aside, before its own finished
    aside = out.with_name(".split.previous")
    out.rename(aside)
    again = run_pipeline(p, artifacts=art, echo=lambda s: None)
    assert again.stages[0].action == "skip"  # the good output came back, and is still current
    assert {f.name: f.read_bytes() for f in out.iterdir()} == good
    assert not aside.exists()


def test_upstream_folders_with_a_relative_artifacts_folder(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # `metaprep run quickstart` from any folder: artifacts/ is relative to where it runs, not to
    # the folder of the pipeline file
    (tmp_path / "pipes").mkdir()
    p = _write(tmp_path / "pipes", '[split]\ndata = "c.txt"\n[align]\nvocab = "{split}/train.tsv"'
               '\n[align.sources]\nv = "c.txt"\n[train]\nquiet = true\n')
    monkeypatch.chdir(tmp_path)
    pipe = load_pipeline(p, artifacts="art")
    assert pipe.stages[1].options.vocab == ("art/p/split/train.tsv",)
    assert pipe.stages[2].options.train == "art/p/split/train.tsv"
    assert pipe.stages[2].options.store == "art/p/align/store.h5"
    assert pipe.stages[0].options.data == str(tmp_path / "pipes" / "c.txt")  # rebased input


def test_a_pipeline_trains_exports_and_scores_an_ensemble(tmp_path: Path) -> None:
    """`members` in [train]: the ensemble goes through export, evaluate and predict, and the
    summary's figures are the averaged members'."""
    import json

    quick = Path(__file__).resolve().parents[1] / "metaprep" / "pipelines" / "quickstart.toml"
    body = quick.read_text(encoding="utf-8").replace("epochs = 8", "epochs = 2\nmembers = 2")
    p = tmp_path / "ens.toml"
    p.write_text(body, encoding="utf-8")
    art = tmp_path / "art"
    result = run_pipeline(p, artifacts=art, echo=lambda s: None)
    assert [s.action for s in result.stages] == ["run"] * len(result.stages)
    metrics = json.loads((art / "quickstart" / "train" / "run" / "metrics.json").read_text())
    assert len(metrics["member_metrics"]) == 2
    train = next(s for s in result.stages if s.name == "train")
    assert train.figures["best_dev_acc"] == round(metrics["best_dev_accuracy"], 4)
    manifest = json.loads((art / "quickstart" / "export" / "model" / "manifest.json").read_text())
    assert manifest["task"]["members"] == 2


# --- kills and concurrent runs, with real processes -----------------------------------------
# A predict stage reading a FIFO stops, deterministically, inside the stage: the test opens the
# FIFO's other end (which succeeds only once the stage has opened it) and then kills the run.
@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from exportkit import make_run

    from metaprep.exporter.run import export_run
    from metaprep.stages import ExportOptions

    base = tmp_path_factory.mktemp("pipeline-model")
    run = make_run(base, method="sum", encoder="pool", dev=False)
    export_run(run, base / "model", options=ExportOptions(quiet=True), log=lambda s: None)
    return base / "model"


def _predicting(tmp_path: Path, model: Path, source: str) -> Path:
    p = tmp_path / "p.toml"
    p.write_text(f'[predict]\nmodel_dir = "{model}"\ninput = "{source}"\nquiet = true\n')
    return p


def _inside_the_stage(p: Path, art: Path, fifo: Path) -> tuple[subprocess.Popen[bytes], int]:
    """`metaprep run` in its own process, stopped inside its predict stage (reading the FIFO,
    whose writing end is returned)."""
    proc = subprocess.Popen([sys.executable, "-m", "metaprep", "run", str(p), "--artifacts",
                             str(art)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while True:
        try:
            return proc, os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:  # ENXIO: nobody reads the FIFO yet
            if exc.errno != errno.ENXIO or proc.poll() is not None \
                    or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(proc.communicate()[1].decode()) from exc
            time.sleep(0.02)


def _files(folder: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(folder.iterdir())}


def test_no_sequence_of_kills_and_failures_costs_the_last_good_output(tmp_path: Path,
                                                                      model: Path) -> None:
    """A rerun killed twice lost the last good output (the second run deleted what the first
    had set aside), and so did a failing rerun after a kill -9."""
    (tmp_path / "in.txt").write_text("the cat sat\nred house\n")
    os.mkfifo(tmp_path / "fifo")
    art = tmp_path / "art"
    good_toml = _predicting(tmp_path, model, "in.txt").read_text()
    run_pipeline(tmp_path / "p.toml", artifacts=art, echo=lambda s: None)
    out = art / "p" / "predict"
    good = _files(out)
    p = _predicting(tmp_path, model, "fifo")
    for _ in range(2):  # kill -9 inside the stage, twice
        proc, fd = _inside_the_stage(p, art, tmp_path / "fifo")
        proc.kill()
        proc.wait()
        os.close(fd)
        assert _files(out.with_name(".predict.previous")) == good
    p.write_text(good_toml)  # a dry run plans from the good output set aside, and writes nothing
    plan = run_pipeline(p, artifacts=art, dry_run=True, echo=lambda s: None)
    assert plan.stages[0].action == "skip"
    assert _files(out.with_name(".predict.previous")) == good
    _predicting(tmp_path, model, "missing.txt")  # then a rerun that fails
    with pytest.raises(MetaprepError, match="missing.txt"):
        run_pipeline(p, artifacts=art, echo=lambda s: None)
    assert _files(out) == good and not out.with_name(".predict.previous").exists()
    p.write_text(good_toml)  # the good config again: its output is current
    assert run_pipeline(p, artifacts=art, echo=lambda s: None).stages[0].action == "skip"
    assert _files(out) == good


def _tree(root: Path) -> dict[str, tuple[int, int, int]]:
    return {str(f.relative_to(root)): (f.lstat().st_ino, f.lstat().st_size,
                                       f.lstat().st_mtime_ns) for f in root.rglob("*")}


def test_a_second_run_of_a_running_pipeline_is_refused_and_changes_nothing(
        tmp_path: Path, model: Path) -> None:
    """The second run set the first's stage folder aside before a stage lock refused it."""
    (tmp_path / "in.txt").write_text("the cat sat\n")
    os.mkfifo(tmp_path / "fifo")
    art = tmp_path / "art"
    run_pipeline(_predicting(tmp_path, model, "in.txt"), artifacts=art, echo=lambda s: None)
    p = _predicting(tmp_path, model, "fifo")
    first, fd = _inside_the_stage(p, art, tmp_path / "fifo")
    try:
        while not list((art / "p" / "predict").glob(".predictions.jsonl.*.tmp")):
            time.sleep(0.02)  # the first run has opened its output too: it waits for lines now
        before = _tree(art)
        second = subprocess.run([sys.executable, "-m", "metaprep", "run", str(p), "--artifacts",
                                 str(art)], capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert second.stderr.splitlines() == [
            f"error: {art / 'p'}: another `metaprep run` of pipeline 'p' is running (it holds "
            f"{art / 'p'}); nothing was changed (wait for it to finish)"]
        assert _tree(art) == before
        os.write(fd, b"red house\nblue sky\n")
    finally:
        os.close(fd)
    assert first.wait(timeout=120) == 0, first.communicate()[1].decode()
    lines = (art / "p" / "predict" / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 2 and not (art / "p" / ".predict.previous").exists()
