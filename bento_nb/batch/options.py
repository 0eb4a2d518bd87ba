"""The options of a batch run (the flags of ``bento-nb run``), apart so that every part of
the batch package can name them without importing the package itself."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError
from ..options import option

DEFAULT_BATCH_SIZE = 50_000
FORMATS = ("csv", "json", "jsonl", "parquet")
ON_ERROR = ("fail", "skip", "null")


@dataclass
class BatchOptions:
    """How a batch run reads, calls and writes; the flags of ``bento-nb run``."""

    output: str | None = option(None, "--output", "write results to PATH (.csv, .jsonl, "
                                ".json, .parquet) or - for stdout (default: a JSON list "
                                "on stdout)", metavar="PATH", short="-o")
    output_format: str | None = option(None, "--output-format", "format of --output "
                                       "(default: by its suffix, else json)",
                                       metavar="csv|json|jsonl|parquet")
    batch_size: int = option(DEFAULT_BATCH_SIZE, "--batch-size", "rows per chunk read and "
                             "per API call")
    workers: int = option(1, "--workers", "processes running the API, each loading the "
                          "bundle once; results keep the input order")
    on_error: str = option("fail", "--on-error", "a bad row stops the run (fail), is left "
                           "out (skip) or gets a null result (null)", metavar="fail|skip|null")
    keep_columns: bool = option(False, "--keep-columns", "write the input columns beside "
                                "the prediction (csv, jsonl, parquet)")
    progress: bool | None = None  # a bar on stderr; None: when stderr is a terminal

    def __post_init__(self) -> None:
        if self.on_error not in ON_ERROR:
            raise UsageError(f"--on-error must be one of {', '.join(ON_ERROR)}, "
                             f"not {self.on_error!r}")
        if self.output_format is not None and self.output_format not in FORMATS:
            raise UsageError(f"--output-format must be one of {', '.join(FORMATS)}, "
                             f"not {self.output_format!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise UsageError(f"--batch-size must be a positive number of rows, "
                             f"not {self.batch_size!r}")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise UsageError(f"--workers must be at least 1, not {self.workers!r}")
