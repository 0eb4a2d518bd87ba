"""CSV through pyarrow's C parser, with the meaning :class:`DataframeInput` gives cells.

Two readers, for the two places tables of CSV arrive:

- :func:`numbers`: a request body (``text/csv``) that is a table of plain numbers, as
  one array, or None for anything else: the adapter's Python parser then reads it, and
  refuses it naming the row if it must. A table of numbers is nearly every large body
  and costs a few percent of the Python parser; the rest keeps its exact behaviour.
  (Bodies under :data:`FAST_MIN_BYTES` go to the Python parser directly: faster there.)
- :func:`read_block`: a block of whole lines of a CSV file (``bento-nb run``), as a
  DataFrame: numeric columns as pyarrow parsed them, other columns cell by cell as the
  adapter reads a CSV cell (:func:`cell_value`: an integer, else a float, else the text;
  an empty cell ``""``), and its ragged lines apart::

    frame, ragged = read_block(b"5.1,3.5,1.4,0.2\\n6.2,,5.4,2.3\\n", ("a", "b", "c", "d"))
    frame["b"].tolist()       # [3.5, ""]: the empty cell stays one, for the error
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

import numpy as np

from ..errors import BadInput

_BOM = b"\xef\xbb\xbf"
# Below this many bytes the Python parser is faster than pyarrow's fixed cost (~0.3 ms).
FAST_MIN_BYTES = 4096
# pyarrow reads an integer too large for int64 as a float (the Python parser keeps it an
# integer, refused as too large): a float this large may have been one.
_INT64_LIMIT = 2.0 ** 63


def cell_value(text: str) -> Any:
    """A CSV cell as the adapter takes it: an integer, else a float, else the text
    (stripped). An integer longer than Python converts is a BadInput."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        if len(text) > sys.get_int_max_str_digits() and text.lstrip("+-").isdigit():
            raise BadInput(f"an integer in the CSV has {len(text.lstrip('+-'))} digits, more "
                           f"than {sys.get_int_max_str_digits()}; send fewer digits") from None
    try:
        return float(text)
    except ValueError:
        return text


def first_line(body: bytes) -> tuple[list[str] | None, bytes]:
    """The cells of the first non-blank line of a body and the bytes after that line;
    None when that line is not plain comma-separated UTF-8 without quotes (the Python
    parser reads it then)."""
    if body.startswith(_BOM):
        body = body[len(_BOM):]
    start = 0
    while True:
        end = body.find(b"\n", start)
        line = body[start:] if end < 0 else body[start:end]
        if line.strip() or end < 0:
            break
        start = end + 1
    if b'"' in line:
        return None, b""
    try:
        cells = [c.strip() for c in line.rstrip(b"\r").decode("utf-8").split(",")]
    except UnicodeDecodeError:
        return None, b""
    return cells, (b"" if end < 0 else body[end + 1:])


def numbers(data: bytes, width: int) -> np.ndarray | None:
    """Rows of ``width`` plain numbers (no header) as a 2-D int64 or float64 array, as the
    adapter's Python parser would make them; None when any cell is anything else (text,
    empty, an integer that may not fit 64 bits), a row has another width, or no row."""
    if not data.strip():
        return None
    try:
        import pyarrow as pa
    except ImportError:  # an environment without it: the Python parser reads every body
        return None

    table = _parse(data, [f"c{i}" for i in range(width)], None)
    if table is None or table.num_rows == 0:
        return None
    columns = []
    for column in table.columns:
        if column.null_count or not (pa.types.is_int64(column.type)
                                     or pa.types.is_float64(column.type)):
            return None
        values = column.to_numpy()
        if values.dtype.kind == "f" and (np.abs(values) >= _INT64_LIMIT).any():
            return None
        columns.append(values)
    return np.column_stack(columns)


def read_block(data: bytes, names: Sequence[str] | None,
               width: int | None = None) -> tuple[Any, list[tuple[int, int, str]]]:
    """A block of whole CSV lines (no header) as a DataFrame with columns ``names``, or
    0..n-1 when None (``width`` of them, else the first line's), and the lines of another
    width as ``(values, expected, text)``, left out of the frame. Blank lines are skipped.
    Numeric columns stay as parsed; a column with text or empty cells is read cell by cell
    with :func:`cell_value` (empty: ``""``), so a cell means what it means in a request."""
    import pyarrow as pa

    if width is None:
        width = len(names) if names else _width(data)
    ragged: list[tuple[int, int, str]] = []

    def refuse(row) -> str:
        ragged.append((row.actual_columns, row.expected_columns, row.text))
        return "skip"

    column_names = list(names) if names else [f"c{i}" for i in range(width)]
    table = _parse(data, column_names, refuse, strict=True)
    columns = {}
    for name, column in zip(column_names, table.columns):
        if (pa.types.is_int64(column.type) or pa.types.is_float64(column.type)) \
                and not column.null_count:
            columns[name] = column.to_numpy()
        else:
            columns[name] = np.array([_cell(v) for v in column.to_pylist()], dtype=object)
    import pandas as pd

    frame = pd.DataFrame(columns, columns=column_names)
    if not names:
        frame.columns = pd.RangeIndex(width)
    return frame, ragged


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            return cell_value(value)
        except BadInput:
            return value.strip()  # refused by the number check, naming the cell
    return value


def _width(data: bytes) -> int:
    cells, _ = first_line(data)
    if cells is not None:
        return len(cells)
    import csv

    for line in data.splitlines():
        if line.strip():
            try:
                return len(next(csv.reader([line.decode("utf-8", "replace")])))
            except csv.Error:
                break
    return 1


def _parse(data: bytes, names: list[str], on_invalid, strict: bool = False):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        return pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=len(data) > 1 << 18,
                                           block_size=max(1 << 16, min(1 << 20, len(data) // 4))),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                null_values=[""], true_values=[], false_values=[], strings_can_be_null=True,
                quoted_strings_can_be_null=True))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
        if strict:
            raise BadInput(f"malformed CSV: {' '.join(str(e).split())}") from None
        return None
