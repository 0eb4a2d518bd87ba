"""Spark, the distributed engine: a bundle's API as a pandas UDF, and a file-to-file job.

    from pyspark.sql.functions import struct
    predict = bento_nb.spark.udf(spark, "Iris:latest", api="predict", result_type="long")
    scored = df.withColumn("pred", predict("sl", "sw", "pl", "pw"))   # or predict(struct(...))

The bundle travels to the executors as its export archive (``SparkContext.addFile``),
or, with ``ship=False``, as the path of its folder on storage every executor reads
(a shared file system). Each executor's Python worker imports the archive into a private
folder and loads the service once, then keeps it for every later batch of that UDF.
Each Arrow batch becomes a DataFrame with the column names the bundle expects (the
column arguments take the adapter's names in order; a ``struct`` keeps its field names)
and goes through the adapter's checks and the API as one call, as ``bento-nb run`` does
with a chunk (:class:`bento_nb.batch.ChunkRunner`).

A job from files to files, for ``spark-submit`` on a cluster (client mode: the bundle is
read from this machine's store and shipped)::

    spark-submit --master yarn "$(python -m bento_nb.spark --script)" \\
        Iris:latest predict --input 's3a://bucket/in/*.csv' --output s3a://bucket/scored

Executors need bento_nb and the model's libraries installed, and ``PYSPARK_PYTHON``
pointing at that Python.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence, Tuple, Union

import pandas as pd  # the UDF's type hints, which Spark reads, name pandas types

from .errors import UsageError

# The services an executor's Python worker has loaded, by archive or folder: one load per
# worker process and bundle, kept for every batch the worker runs.
_LOADED: dict[str, Any] = {}


def udf(spark, target: Any, api: str | None = None, result_type: Any = "double",
        ship: bool = True):
    """A pandas UDF running ``api`` (default: ``predict``, else the first) of the bundle
    ``target`` (a tag, a bundle folder or a Bundle) on each Arrow batch.

    Call it with the input columns (names or Columns; none: the adapter's column names)
    or with one ``struct(...)``. ``result_type``: a Spark type or DDL string, e.g.
    ``"long"``, ``"double"`` (the default, as MLflow's), ``"string"`` or
    ``"array<double>"`` for ``predict_proba``. ``ship=False``: executors read the bundle
    at its path (shared storage) instead of receiving its archive."""
    from pyspark.sql.functions import col, pandas_udf

    from .actions import pick_api, resolve

    resolved = resolve(target)
    if resolved.bundle is None:
        raise UsageError("bento_nb.spark.udf needs a saved bundle (a tag or a bundle folder); "
                         "pack the model first")
    bundle = resolved.bundle
    api_name = pick_api(api, [a["name"] for a in bundle.apis], bundle.tag)
    columns = _adapter_columns(bundle, api_name)
    if ship:
        folder = Path(tempfile.mkdtemp(prefix="bento_nb_spark_"))
        archive = folder / f"{bundle.name}-{bundle.version}.bento"
        from .store.archive import write_archive

        write_archive(bundle, archive)
        spark.sparkContext.addFile(str(archive))
        location = ("archive", archive.name)
    else:
        location = ("path", str(bundle.path))

    def predict(batches: Iterator[Tuple[Union[pd.Series, pd.DataFrame], ...]]
                ) -> Iterator[pd.Series]:
        runner = _runner(location, api_name)
        for batch in batches:
            parts = (batch,) if isinstance(batch, (pd.Series, pd.DataFrame)) else batch
            yield _score(runner, parts, columns)

    spark_udf = pandas_udf(predict, returnType=result_type)

    def call(*arguments):
        if not arguments:
            if not columns:
                raise UsageError(f"{bundle.tag} does not name its input columns: call the "
                                 "UDF with them, e.g. udf('a', 'b', ...) or udf(struct(...))")
            arguments = columns
        return spark_udf(*[col(a) if isinstance(a, str) else a for a in arguments])

    call.__name__ = call.__qualname__ = f"{bundle.name}_{api_name}"
    call.__doc__ = f"{bundle.tag} {api_name} as a Spark pandas UDF returning {result_type}"
    return call


def _adapter_columns(bundle, api_name: str) -> list[str] | None:
    for described in bundle.apis:
        if described["name"] == api_name and isinstance(described.get("input"), dict):
            names = described["input"].get("columns")
            return list(names) if names else None
    return None


def _runner(location: tuple[str, str], api_name: str):
    """The chunk runner of this worker process for the bundle at ``location``."""
    from .batch import ChunkRunner

    key = f"{location[0]}:{location[1]}:{api_name}"
    if key not in _LOADED:
        from .service import load

        if location[0] == "archive":
            from pyspark import SparkFiles

            from .store import Store

            store = Store(tempfile.mkdtemp(prefix="bento_nb_executor_"))
            service = load(store.import_(SparkFiles.get(location[1])))
        else:
            service = load(location[1])
        _LOADED[key] = ChunkRunner(service.apis[api_name])
    return _LOADED[key]


def _score(runner, parts: Sequence, columns: list[str] | None):
    """One Arrow batch (Series per column, or one DataFrame of a struct) through the API:
    a Series with one result per row."""
    import numpy as np

    from .batch import Chunk

    if len(parts) == 1 and isinstance(parts[0], pd.DataFrame):
        frame = parts[0]
    else:
        frame = pd.concat([p.reset_index(drop=True) for p in parts], axis=1)
        frame.columns = (columns if columns and len(columns) == len(parts)
                         else pd.RangeIndex(len(parts)))
    values = runner.run(Chunk(0, "Spark batch", 1, "frame", frame)).values
    if isinstance(values, np.ndarray) and values.ndim > 1:
        return pd.Series(list(values))
    return pd.Series(values)


# -- a file-to-file job -------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``TAG API --input PATH --output PATH``: read CSV (with a header), Parquet or JSON
    Lines with Spark, add the API's result as ``prediction`` and write Parquet."""
    import argparse

    parser = argparse.ArgumentParser(prog="bento_nb.spark", description=main.__doc__)
    parser.add_argument("--script", action="store_true",
                        help="print the path of the script to give spark-submit, and exit")
    parser.add_argument("tag", nargs="?")
    parser.add_argument("api", nargs="?")
    parser.add_argument("--input", help="files or a glob Spark reads (csv, parquet, jsonl)")
    parser.add_argument("--output", help="a folder Spark writes Parquet to")
    parser.add_argument("--format", choices=["csv", "parquet", "jsonl"], default=None,
                        help="input format (default: by the suffix of --input)")
    parser.add_argument("--result-type", default="double")
    parser.add_argument("--columns", default=None,
                        help="comma-separated input columns (default: the bundle's, else all)")
    parser.add_argument("--keep-columns", action="store_true")
    args = parser.parse_args(argv)
    if args.script:
        print(Path(__file__).with_name("_spark_job") / "submit.py")
        return 0
    if not (args.tag and args.api and args.input and args.output):
        parser.error("TAG, API, --input and --output are needed")
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName(f"bento_nb {args.tag} {args.api}").getOrCreate()
    fmt = args.format or {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl",
                          ".json": "jsonl"}.get(os.path.splitext(args.input.rstrip("/*"))[1],
                                                "parquet")
    if fmt == "csv":
        frame = spark.read.csv(args.input, header=True, inferSchema=True)
    elif fmt == "jsonl":
        frame = spark.read.json(args.input)
    else:
        frame = spark.read.parquet(args.input)
    scorer = udf(spark, args.tag, api=args.api, result_type=args.result_type)
    names = args.columns.split(",") if args.columns else (
        _adapter_columns(resolve_bundle(args.tag), args.api) or frame.columns)
    scored = frame.withColumn("prediction", scorer(*names))
    if not args.keep_columns:
        scored = scored.select("prediction")
    scored.write.mode("overwrite").parquet(args.output)
    spark.stop()
    return 0


def resolve_bundle(target: Any):
    from .actions import resolve

    return resolve(target).bundle


if __name__ == "__main__":
    raise SystemExit(main())
