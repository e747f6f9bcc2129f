"""File helpers shared by every stage: atomic writes and JSONL."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from korquad_tune import KorquadTuneError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def ensure_dir(path: str | Path, what: str = "output folder", create: bool = True) -> Path:
    """Create a folder (or only check that it could be), or say clearly that a file stands where it should be."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise KorquadTuneError(f"{path}: is a file, not a folder; pass a folder as the {what}")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise KorquadTuneError(f"{parent}: is a file, so {path} cannot be created; choose another {what}")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` via a temp file + rename, so a kill never leaves half a file."""
    path = Path(path)
    ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a run folder should be shareable as umask says
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextmanager
def atomic_dir(out: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `out`; it replaces `out` only if the block finishes, else it is removed."""
    out = Path(out)
    ensure_dir(out.parent)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    return atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


# Korean users' files are often CP949 (EUC-KR's superset) rather than UTF-8.
ENCODINGS = ("utf-8-sig", "cp949")


def decode_text(raw: bytes, path: str | Path) -> str:
    """UTF-8 (with or without BOM) or CP949/EUC-KR; anything else is a clear error."""
    for encoding in ENCODINGS:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError as e:
            if encoding == ENCODINGS[0]:
                first_error = e
    if first_error.reason == "unexpected end of data":
        # UTF-8 up to a character cut in half at the end: a file cut short (a copy or download that stopped)
        raise KorquadTuneError(f"{path}: UTF-8 text cut off in the middle of a character at byte "
                               f"{first_error.start} of {len(raw)}; is the file truncated? copy it again") from None
    raise KorquadTuneError(f"{path}: neither UTF-8 nor CP949/EUC-KR text ({first_error.reason} at byte "
                           f"{first_error.start}); convert it to UTF-8, e.g. iconv -f <encoding> -t UTF-8") from None


def read_text(path: str | Path) -> str:
    """A text file's contents, in any of ENCODINGS; a missing file or a folder is a clear error."""
    path = Path(path)
    if not path.exists():
        raise KorquadTuneError(f"{path}: file not found")
    if path.is_dir():
        raise KorquadTuneError(f"{path}: is a folder; pass a file")
    return decode_text(path.read_bytes(), path)


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise KorquadTuneError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line_number, record) for each non-blank line; bad JSON names the line."""
    path = Path(path)
    for lineno, line in enumerate(read_text(path).split("\n"), 1):  # not splitlines(): U+2028 may sit in a string
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise KorquadTuneError(f"{path}, line {lineno}: invalid JSON ({e.msg})") from None
        if not isinstance(rec, dict):
            raise KorquadTuneError(f"{path}, line {lineno}: expected a JSON object, got {type(rec).__name__}")
        yield lineno, rec


def read_jsonl(path: str | Path) -> list[dict]:
    return [rec for _, rec in iter_jsonl(path)]
