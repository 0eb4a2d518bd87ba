"""The Spark UDF and the spark-submit job on a real local Spark (``local[2]``): the bundle
shipped to the executors as its archive, predictions equal to ``load(tag).predict``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed (pip install pyspark)")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("no Java for Spark: apt-get install openjdk-17-jre-headless",
                allow_module_level=True)

import bento_nb  # noqa: E402
import bento_nb.spark  # noqa: E402

COLUMNS = ["sl", "sw", "pl", "pw"]
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # pyspark and pandas 3


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    from pyspark.sql import SparkSession

    # Executors' Python workers run this interpreter (they find bento_nb on its path).
    os.environ["PYSPARK_PYTHON"] = os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    session = (SparkSession.builder.master("local[2]").appName("bento_nb tests")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.local.dir", str(tmp_path_factory.mktemp("spark")))
               .getOrCreate())
    yield session
    session.stop()


@pytest.fixture
def rows(iris):
    X, _ = iris
    return X[np.random.default_rng(0).integers(0, len(X), 3000)]


def test_udf_on_columns_and_on_a_struct_equals_load_predict(spark, iris, rows):
    from pyspark.sql.functions import struct
    from sklearn import svm

    X, y = iris
    named = svm.SVC().fit(pd.DataFrame(X, columns=COLUMNS), y)
    bundle = bento_nb.pack(named, name="IrisNamed")
    expected = bento_nb.load(bundle.tag).predict(pd.DataFrame(rows, columns=COLUMNS))
    frame = spark.createDataFrame(pd.DataFrame(rows, columns=COLUMNS)).repartition(4)
    predict = bento_nb.spark.udf(spark, "IrisNamed:latest", api="predict", result_type="long")

    def scored(column):
        out = frame.withColumn("pred", column).toPandas()
        reference = bento_nb.load(bundle.tag).predict(out[COLUMNS])
        return out["pred"].to_numpy(), reference

    for column in [predict(*COLUMNS), predict(), predict(struct(*reversed(COLUMNS)))]:
        got, reference = scored(column)
        np.testing.assert_array_equal(got, reference)
    assert sorted(np.unique(expected)) == [0, 1, 2]


def test_udf_of_a_positional_model_and_of_predict_proba(spark, iris, rows):
    X, y = iris
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    bento_nb.pack(forest, name="Forest", apis=["predict", "predict_proba"])
    frame = spark.createDataFrame(pd.DataFrame(rows, columns=["a", "b", "c", "d"]))
    labels = bento_nb.spark.udf(spark, "Forest", result_type="long")
    proba = bento_nb.spark.udf(spark, "Forest", api="predict_proba",
                               result_type="array<double>", ship=False)
    out = frame.select("a", "b", "c", "d", labels("a", "b", "c", "d").alias("label"),
                       proba("a", "b", "c", "d").alias("proba")).toPandas()
    loaded = bento_nb.load("Forest")
    values = out[["a", "b", "c", "d"]].to_numpy()
    np.testing.assert_array_equal(out["label"].to_numpy(), loaded.predict(values))
    np.testing.assert_allclose(np.stack(out["proba"].to_numpy()), loaded.predict_proba(values))


def test_a_bad_row_fails_the_spark_job_with_the_adapters_message(spark, iris_bundle):
    from pyspark.errors import PythonException

    frame = spark.createDataFrame(pd.DataFrame({"a": [5.1, None], "b": [3.5, 3.0],
                                                "c": [1.4, 1.0], "d": [0.2, 0.1]})).coalesce(1)
    predict = bento_nb.spark.udf(spark, iris_bundle.tag, result_type="long")
    with pytest.raises(PythonException, match="NaN and infinite values are not allowed; "
                                              "row 2, column 1 holds nan"):
        frame.withColumn("p", predict("a", "b", "c", "d")).collect()


def test_spark_submit_job_from_csv_to_parquet(iris_bundle, iris_clf, rows, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    for i in range(2):
        pd.DataFrame(rows[i * 1500:(i + 1) * 1500], columns=COLUMNS).to_csv(
            source / f"part-{i}.csv", index=False)
    script = subprocess.run([sys.executable, "-m", "bento_nb.spark", "--script"],
                            capture_output=True, text=True, check=True).stdout.strip()
    submit = os.path.join(os.path.dirname(pyspark.__file__), "bin", "spark-submit")
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    out = subprocess.run([submit, "--master", "local[2]", "--conf", "spark.ui.enabled=false",
                          script, iris_bundle.tag, "predict", "--input", str(source / "*.csv"),
                          "--output", str(tmp_path / "scored"), "--result-type", "long",
                          "--columns", ",".join(COLUMNS), "--keep-columns"],
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    scored = pd.read_parquet(tmp_path / "scored")
    assert len(scored) == 3000
    np.testing.assert_array_equal(scored["prediction"].to_numpy(),
                                  iris_clf.predict(scored[COLUMNS].to_numpy()))
