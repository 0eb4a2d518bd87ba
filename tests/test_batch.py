"""Batch scoring (``bento-nb run --input-file``, ``bento_nb.batch.predict``): chunked
reading with bounded memory, every input and output format, order kept across worker
processes, bad rows named or carried over, and one-line errors for inputs that are not
there or hold no rows."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import bento_nb
from bento_nb import batch

COLUMNS = ["sl", "sw", "pl", "pw"]


def cli(*args, input=None):
    return subprocess.run([sys.executable, "-m", "bento_nb", *args], capture_output=True,
                          text=True, timeout=300, input=input)


@pytest.fixture
def rows(iris):
    """600 iris rows in a shuffled order (predictions change from row to row)."""
    X, _ = iris
    return X[np.random.default_rng(0).integers(0, len(X), 600)]


@pytest.fixture
def expected(iris_clf, rows):
    return iris_clf.predict(rows).tolist()


def write_csv(path, rows, header=True):
    text = (",".join(COLUMNS) + "\n" if header else "") + "".join(
        ",".join(repr(float(v)) for v in r) + "\n" for r in rows)
    path.write_text(text)
    return path


def one_line_error(out, exit_code, message):
    assert out.returncode == exit_code, (out.returncode, out.stderr)
    assert out.stderr.strip().splitlines() == [out.stderr.strip()], out.stderr
    assert out.stderr.startswith("bento-nb: error: ") and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


# -- memory ---------------------------------------------------------------------------------

MEASURE = textwrap.dedent("""
    import resource, sys
    import pandas, pyarrow, pyarrow.csv, pyarrow.parquet, sklearn.linear_model
    from bento_nb import cli, load
    load("Fast")                      # imports and the bundle: not the input's share
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code = cli.main(sys.argv[1:])
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(code, (after - before) // 1024, file=sys.stderr)
""")


def test_run_reads_in_chunks_with_memory_bounded_whatever_the_file_size(iris, tmp_path):
    """A 1M-row CSV (16 MB; 32 MB as numbers, several times that read whole) scored in
    chunks of 10k rows: the process grows by a few MB at most, as for a file 10x smaller."""
    from sklearn.linear_model import LogisticRegression

    X, y = iris
    bento_nb.pack(LogisticRegression(max_iter=500).fit(X, y), name="Fast")
    big = X[np.random.default_rng(1).integers(0, len(X), 1_000_000)]
    path = tmp_path / "big.csv"
    np.savetxt(path, big, fmt="%.1f", delimiter=",", header=",".join(COLUMNS), comments="")
    assert path.stat().st_size > 15_000_000
    growth = {}
    for name, source in [("big", path), ("small", write_csv(tmp_path / "s.csv", big[:100_000]))]:
        out = subprocess.run([sys.executable, "-c", MEASURE, "run", "Fast", "predict",
                              "--input-file", str(source), "--output", str(tmp_path / f"{name}.parquet"),
                              "--batch-size", "10000"], capture_output=True, text=True, timeout=300)
        code, megabytes = out.stderr.strip().splitlines()[-1].split()
        assert code == "0", out.stderr
        growth[name] = int(megabytes)
    written = pd.read_parquet(tmp_path / "big.parquet")["prediction"]
    assert len(written) == 1_000_000 and (written.to_numpy()[:1000] ==
                                          bento_nb.load("Fast").predict(big[:1000])).all()
    assert growth["big"] < 40, growth            # a whole-file read takes 100+ MB here
    assert growth["big"] < growth["small"] + 25, growth  # flat: 10x the rows, same memory


# -- formats --------------------------------------------------------------------------------


def test_every_input_format_gives_the_same_predictions(iris_bundle, rows, expected, tmp_path):
    frame = pd.DataFrame(rows, columns=COLUMNS)
    write_csv(tmp_path / "with_header.csv", rows)
    write_csv(tmp_path / "no_header.csv", rows, header=False)
    frame.to_json(tmp_path / "records.jsonl", orient="records", lines=True)
    (tmp_path / "lists.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows.tolist()))
    (tmp_path / "rows.json").write_text(json.dumps(rows.tolist()))
    frame.to_parquet(tmp_path / "table.parquet")
    for name in ["with_header.csv", "no_header.csv", "records.jsonl", "lists.jsonl",
                 "rows.json", "table.parquet"]:
        out = cli("run", "IrisClassifier", "predict", "--input-file", str(tmp_path / name),
                  "--batch-size", "128")
        assert out.returncode == 0, (name, out.stderr)
        assert json.loads(out.stdout) == expected, name


def test_every_output_format_writes_the_predictions_in_order(iris_bundle, rows, expected,
                                                             tmp_path):
    source = write_csv(tmp_path / "in.csv", rows)
    readers = {"csv": pd.read_csv, "jsonl": lambda p: pd.read_json(p, lines=True),
               "parquet": pd.read_parquet}
    for fmt, read in readers.items():
        target = tmp_path / f"out.{fmt}"
        out = cli("run", "IrisClassifier", "predict", "--input-file", str(source),
                  "--output", str(target), "--batch-size", "100")
        assert out.returncode == 0, out.stderr
        assert "600 rows" in out.stderr and f"wrote {target}" in out.stderr
        written = read(target)
        assert list(written.columns) == ["prediction"]
        assert written["prediction"].tolist() == expected, fmt
        kept = cli("run", "IrisClassifier", "predict", "--input-file", str(source), "-o",
                   str(target), "--keep-columns")
        assert kept.returncode == 0, kept.stderr
        written = read(target)
        assert list(written.columns) == COLUMNS + ["prediction"]
        np.testing.assert_allclose(written[COLUMNS].to_numpy(), rows)
    out = cli("run", "IrisClassifier", "predict", "--input-file", str(source), "-o",
              str(tmp_path / "out.json"))
    assert json.loads((tmp_path / "out.json").read_text()) == expected


def test_several_files_and_globs_are_read_in_order(iris_bundle, rows, expected, tmp_path):
    for i in range(3):
        write_csv(tmp_path / f"part-{i}.csv", rows[i * 200:(i + 1) * 200])
    parts = [str(tmp_path / f"part-{i}.csv") for i in range(3)]
    by_name = cli("run", "IrisClassifier", "predict", "--input-file", *parts)
    assert json.loads(by_name.stdout) == expected, by_name.stderr
    by_glob = cli("run", "IrisClassifier", "predict", "--input-file", str(tmp_path / "part-*.csv"))
    assert json.loads(by_glob.stdout) == expected, by_glob.stderr


def test_a_folder_of_files_for_a_file_api_is_one_item_per_file(tmp_path):
    from bento_nb.adapters import FileInput

    bento_nb.pack(len, name="FileLen", input=FileInput(), batch=False)
    folder = tmp_path / "images"
    folder.mkdir()
    for name, size in [("b.png", 20), ("a.png", 10), ("c.png", 30)]:
        (folder / name).write_bytes(b"\x89PNG" + b"\0" * (size - 4))
    out = cli("run", "FileLen", "predict", "--input-file", str(folder))
    assert json.loads(out.stdout) == [10, 20, 30], out.stderr
    out = cli("run", "FileLen", "predict", "--input-file", str(folder), "-o",
              str(tmp_path / "sizes.csv"), "--keep-columns")
    written = pd.read_csv(tmp_path / "sizes.csv")
    assert written["prediction"].tolist() == [10, 20, 30]
    assert [p.rsplit("/", 1)[-1] for p in written["input"]] == ["a.png", "b.png", "c.png"]


# -- workers --------------------------------------------------------------------------------


def test_two_workers_keep_the_input_order(iris_bundle, rows, expected, tmp_path):
    source = write_csv(tmp_path / "in.csv", np.concatenate([rows] * 5))
    target = tmp_path / "out.parquet"
    out = cli("run", "IrisClassifier", "predict", "--input-file", str(source), "-o",
              str(target), "--workers", "2", "--batch-size", "97")
    assert out.returncode == 0, out.stderr
    assert pd.read_parquet(target)["prediction"].tolist() == expected * 5


class _WorkerProbe:
    """A forest that answers, for each row, how the worker process running it started: its
    parent process, whether that parent had scikit-learn's compiled tree code loaded, the
    CPU the worker had used when it first predicted, and its BLAS/OpenMP thread limit."""

    def __init__(self, forest):
        self.forest = forest
        self.first = None

    def predict(self, X):
        import os
        import time

        from threadpoolctl import threadpool_info

        if self.first is None:
            self.first = time.process_time()
        with open(f"/proc/{os.getppid()}/maps") as maps:
            preloaded = "sklearn/tree/_tree" in maps.read()
        threads = max(pool["num_threads"] for pool in threadpool_info())
        self.forest.predict(X)
        return [{"parent": os.getppid(), "preloaded": preloaded, "cpu": self.first,
                 "threads": threads}] * len(X)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_fork_from_a_server_that_imported_the_bundle_libraries(iris, tmp_path):
    """Workers start from a fork server that imported scikit-learn while the main process
    loaded the bundle, not each importing it again (seconds of CPU per worker), and a
    thread pool of the model gets its share of the cores."""
    import os

    from sklearn.ensemble import RandomForestClassifier

    X, y = iris
    bento_nb.pack(_WorkerProbe(RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)),
                  name="Probe")
    source = write_csv(tmp_path / "in.csv", X)
    run = subprocess.Popen([sys.executable, "-m", "bento_nb", "run", "Probe", "predict",
                            "--input-file", str(source), "--workers", "2",
                            "--batch-size", "10"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    answers = json.loads(out)
    assert len(answers) == len(X)
    assert all(a["parent"] != run.pid and a["preloaded"] for a in answers), answers[0]
    assert max(a["cpu"] for a in answers) < 1.0, answers  # spawned, importing: ~1.9 s
    assert {a["threads"] for a in answers} == {max(1, len(os.sched_getaffinity(0)) // 2)}


# -- bad rows -------------------------------------------------------------------------------


@pytest.fixture
def with_bad_rows(rows, tmp_path):
    """600 rows with an empty cell at row 250, a ragged line at row 400 and a word at
    row 401, read in chunks of 100 rows."""
    lines = [",".join(repr(float(v)) for v in r) for r in rows]
    lines[249] = "5.1,3.5,,0.2"
    lines[399] = "5.1,3.5,1.4"
    lines[400] = "5.1,wide,1.4,0.2"
    path = tmp_path / "bad.csv"
    path.write_text(",".join(COLUMNS) + "\n" + "\n".join(lines) + "\n")
    return path


def test_a_bad_row_stops_the_run_naming_its_row(iris_bundle, with_bad_rows, tmp_path):
    target = tmp_path / "out.parquet"
    out = cli("run", "IrisClassifier", "predict", "--input-file", str(with_bad_rows), "-o",
              str(target), "--batch-size", "100")
    one_line_error(out, 2, f"{with_bad_rows}: expected numbers in every column; row 250, "
                   "column 'pl' holds an empty cell")
    assert not target.exists() and not list(tmp_path.glob(".out.parquet*"))  # no half file
    one_chunk = cli("run", "IrisClassifier", "predict", "--input-file", str(with_bad_rows))
    one_line_error(one_chunk, 2, "row 250, column 'pl' holds an empty cell")  # the first one


@pytest.mark.parametrize("mode", ["skip", "null"])
def test_skip_and_null_carry_on_and_count(iris_bundle, with_bad_rows, expected, tmp_path, mode):
    target = tmp_path / "out.jsonl"
    out = cli("run", "IrisClassifier", "predict", "--input-file", str(with_bad_rows), "-o",
              str(target), "--batch-size", "100", "--on-error", mode)
    assert out.returncode == 0, out.stderr
    summary = out.stderr.splitlines()
    counted = "3 bad rows skipped" if mode == "skip" else "3 bad rows given null"
    assert "600 rows" in summary[0] and counted in summary[0], out.stderr
    assert any("row 250, column 'pl' holds an empty cell" in line for line in summary)
    assert any("row 400: CSV row has 3 values, expected 4" in line for line in summary)
    assert any("row 401, column 'sw' holds the text 'wide'" in line for line in summary)
    written = pd.read_json(target, lines=True)["prediction"].tolist()
    bad = {249, 399, 400}
    if mode == "skip":
        assert written == [p for i, p in enumerate(expected) if i not in bad]
    else:
        assert len(written) == 600
        assert [p for i, p in enumerate(written) if i not in bad] == \
            [p for i, p in enumerate(expected) if i not in bad]
        assert all(pd.isna(written[i]) for i in bad)


def test_a_row_the_model_raises_on_is_isolated(tmp_path):
    def picky(frame):
        values = frame.to_numpy()
        if (values[:, 0] < 0).any():
            raise ValueError("negative sepal")
        return values[:, 0] * 2

    bento_nb.pack(picky, name="Picky")
    data = pd.DataFrame({"x": np.arange(1.0, 51.0)})
    data.loc[33, "x"] = -1.0
    data.to_parquet(tmp_path / "in.parquet")
    out = cli("run", "Picky", "predict", "--input-file", str(tmp_path / "in.parquet"),
              "--batch-size", "16")
    one_line_error(out, 5, "row 34: ValueError: negative sepal")
    result = batch.predict("Picky", data, on_error="null", batch_size=16)
    assert result[33] is None and result[:33] == list(range(2, 68, 2))


# -- inputs that are not there --------------------------------------------------------------


def test_inputs_without_rows_are_one_line_errors(iris_bundle, tmp_path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("sl,sw,pl,pw\n")
    for args, code, message in [
        ([str(tmp_path / "empty.csv")], 2, "no data rows in"),
        ([str(tmp_path / "header.csv")], 2, "only a header row"),
        ([str(tmp_path / "missing.csv")], 3, f"cannot read {tmp_path / 'missing.csv'}"),
        ([str(tmp_path / "nothing-*.csv")], 3, "no file matches"),
    ]:
        out = cli("run", "IrisClassifier", "predict", "--input-file", *args, "-o",
                  str(tmp_path / "out.csv"))
        one_line_error(out, code, message)
        assert not (tmp_path / "out.csv").exists()


def test_bad_options_are_usage_errors(iris_bundle, tmp_path):
    source = write_csv(tmp_path / "in.csv", [[5.1, 3.5, 1.4, 0.2]])
    for args, message in [
        (["--on-error", "ignore"], "--on-error must be one of fail, skip, null"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--batch-size", "0"], "--batch-size must be a positive number"),
        (["-o", str(tmp_path / "out.xlsx")], "cannot tell the format of"),
        (["-o", "-", "--output-format", "parquet"], "Parquet is not written to stdout"),
    ]:
        one_line_error(cli("run", "IrisClassifier", "predict", "--input-file", str(source),
                           *args), 2, message)


# -- Python ---------------------------------------------------------------------------------


def test_batch_predict_of_a_dataframe_and_to_a_file(iris_bundle, iris_clf, rows, expected,
                                                    tmp_path):
    frame = pd.DataFrame(rows, columns=COLUMNS)
    result = batch.predict("IrisClassifier", frame, batch_size=64)
    assert isinstance(result, np.ndarray) and result.tolist() == expected
    assert batch.predict(iris_clf, frame, batch_size=64).tolist() == expected  # a live model
    kept = batch.predict(iris_bundle.tag, frame, keep_columns=True)
    assert list(kept.columns) == COLUMNS + ["prediction"]
    report = batch.predict("IrisClassifier", frame, output=tmp_path / "out.parquet", workers=2,
                           batch_size=100)
    assert (report.rows, report.written) == (600, 600)
    assert pd.read_parquet(tmp_path / "out.parquet")["prediction"].tolist() == expected
    source = write_csv(tmp_path / "in.csv", rows)
    assert batch.predict("IrisClassifier", str(source)).tolist() == expected


def test_quoted_values_across_lines_stay_in_one_chunk(iris_bundle, tmp_path):
    """Chunks are cut at line ends outside quotes (CSV); JSON Lines' escaped quotes do not
    move the cut."""
    (tmp_path / "quoted.csv").write_text('sl,sw,pl,pw\n"5.1",3.5,1.4,0.2\n6.7,3.0,"5.2\n2.3",2.3\n'
                                         '6.7,3.0,5.2,2.3\n')
    out = cli("run", "IrisClassifier", "predict", "--input-file", str(tmp_path / "quoted.csv"),
              "--batch-size", "1", "--on-error", "null")
    assert json.loads(out.stdout) == [0, None, 2], out.stderr
    assert "row 2, column 'pl' holds the text '5.2\\n2.3'" in out.stderr
    (tmp_path / "escaped.jsonl").write_text('{"sl": "a\\"b", "sw": 1, "pl": 1, "pw": 1}\n'
                                            '{"sl": 6.7, "sw": 3.0, "pl": 5.2, "pw": 2.3}\n')
    out = cli("run", "IrisClassifier", "predict", "--input-file", str(tmp_path / "escaped.jsonl"),
              "--batch-size", "1", "--on-error", "skip")
    assert json.loads(out.stdout) == [2] and "1 bad rows skipped" in out.stderr, out.stderr


def test_a_bundle_with_an_example_signature_is_checked_per_chunk(iris, tmp_path):
    from sklearn import svm

    X, y = iris
    frame = pd.DataFrame(X, columns=COLUMNS)
    clf = svm.SVC().fit(frame, y)
    bento_nb.pack(clf, name="Signed", example=frame[:2])
    frame[list(reversed(COLUMNS))].to_parquet(tmp_path / "reordered.parquet")
    assert batch.predict("Signed", tmp_path / "reordered.parquet").tolist() == \
        clf.predict(frame).tolist()
    bad = frame.copy()
    bad.loc[70, "pl"] = np.nan
    with pytest.raises(bento_nb.BentoNbError, match=r"^DataFrame: column 'pl' expects number, "
                                                    r"got nan in row 71$"):
        batch.predict("Signed", bad, batch_size=50)
