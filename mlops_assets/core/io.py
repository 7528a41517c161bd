"""File I/O shared by every stage: atomic writes, stable hashing, and table reads
that fail with a message naming the file instead of a deep library traceback."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


class DataError(ValueError):
    """Bad input data. The message names the file, the column and the rows, and says
    what was expected, so it can be shown to a person as it is."""

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike[str] | None = None,
        column: str | None = None,
        rows: list[int] | None = None,
        expected: str | None = None,
    ) -> None:
        parts = [message]
        if path is not None:
            parts.append(f"file: {path}")
        if column is not None:
            parts.append(f"column: {column}")
        if rows:
            shown = ", ".join(str(r) for r in rows[:10])
            more = f" (+{len(rows) - 10} more)" if len(rows) > 10 else ""
            parts.append(f"rows: {shown}{more}")
        if expected is not None:
            parts.append(f"expected: {expected}")
        super().__init__("; ".join(parts))
        self.path = None if path is None else str(path)
        self.column = column
        self.rows = rows or []
        self.expected = expected


def md5_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """The md5 DVC records for a file (DVC hashes the raw bytes)."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def md5_bytes(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and a trailing newline: the same object gives the same bytes."""
    return json.dumps(obj, sort_keys=True, indent=2, default=_json_default, allow_nan=False) + "\n"


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (pd.Timestamp,)):
        return o.isoformat()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


@contextmanager
def atomic_path(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `dest`; on success rename it into place.

    The rename is atomic on POSIX, so a failed or killed writer leaves the previous
    version of `dest` intact and never a half-written file."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are ordinary files
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(dest: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_text_atomic(dest: str | os.PathLike[str], text: str) -> Path:
    return write_bytes_atomic(dest, text.encode("utf-8"))


def write_json_atomic(dest: str | os.PathLike[str], obj: Any) -> Path:
    return write_text_atomic(dest, canonical_json(obj))


def write_parquet_atomic(dest: str | os.PathLike[str], df: pd.DataFrame) -> Path:
    """Deterministic Parquet: no pandas index, fixed compression, no write-time stamps.

    The same frame gives the same bytes with the same pyarrow version (pinned)."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    with atomic_path(dest) as tmp:
        pq.write_table(
            table,
            tmp,
            compression="zstd",
            use_dictionary=True,
            write_statistics=True,
            row_group_size=1 << 20,
        )
    return Path(dest)


def read_table(path: str | os.PathLike[str], columns: list[str] | None = None) -> pd.DataFrame:
    """Read CSV or Parquet, turning every low-level failure into a DataError naming the file."""
    path = Path(path)
    if not path.exists():
        raise DataError("input file does not exist", path=path, expected="an existing CSV or Parquet file")
    if path.stat().st_size == 0:
        raise DataError("input file is empty (0 bytes)", path=path, expected="a header and at least one row")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path, columns=columns)
        elif suffix in (".csv", ".txt"):
            df = _read_csv(path, columns)
        else:
            raise DataError(f"unsupported file type {suffix!r}", path=path, expected=".csv or .parquet")
    except DataError:
        raise
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"cannot read Parquet file ({_first_line(e)})", path=path,
                        expected="a valid Parquet file") from None
    except pd.errors.EmptyDataError:
        raise DataError("CSV file has no columns", path=path, expected="a header row") from None
    except pd.errors.ParserError as e:
        raise DataError(f"malformed CSV ({_first_line(e)})", path=path,
                        expected="comma-separated rows with as many fields as the header") from None
    except (KeyError, ValueError) as e:
        raise DataError(f"cannot read table ({_first_line(e)})", path=path) from None
    if len(df) == 0:
        raise DataError("input file has no rows", path=path, expected="at least one data row")
    return df


def _read_csv(path: Path, columns: list[str] | None) -> pd.DataFrame:
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(
            f"CSV is not valid UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start}, line {line})",
            path=path, rows=[max(line - 2, 0)], expected="UTF-8 encoded text",
        ) from None
    return pd.read_csv(path, usecols=columns,
                       keep_default_na=True, low_memory=False)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__
