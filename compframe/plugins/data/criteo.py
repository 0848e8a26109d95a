"""``criteo``: a streaming reader of the Criteo click logs (Kaggle ``train.txt``, Terabyte ``day_N``).

Format: one sample per line, 40 tab-separated columns: the label (0 or 1), 13 integer features
``I1..I13`` and 26 categorical features ``C1..C26`` written as hexadecimal strings; any feature may
be empty (missing). Files are plain text or gzip (detected by their magic bytes, whatever the name).

Preprocessing, as facebookresearch/dlrm (``data_utils.py``) does: a dense value ``x`` becomes
``log(1 + max(x, 0))`` (missing = 0), a categorical value ``int(hex, 16)`` is hashed modulo the
table's rows (missing = 0). The split is placed by position in the stored bytes, so no file is
ever read whole or counted first (see ``Criteo`` and docs/data.md). Lines are read in blocks of
a few MiB and each block is parsed in one pass of a numba loop.
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np

from ...base import ClickBatch, ClickData, DataError
from ...registry import register

N_DENSE, N_CAT = 13, 26
N_COLS = 1 + N_DENSE + N_CAT
COLUMN_NAMES = ["label", *(f"I{i}" for i in range(1, N_DENSE + 1)), *(f"C{i}" for i in range(1, N_CAT + 1))]
GZIP_MAGIC = b"\x1f\x8b"
BLOCK = 4 << 20        # bytes of a plain file read at a time
GZIP_STEP = 1 << 20    # compressed bytes fed to the decoder at a time; a gzip split falls on this step
DEFAULT_FILES = ["train.txt", "train.txt.gz", "day_[0-9]", "day_[0-9][0-9]", "day_[0-9].gz", "day_[0-9][0-9].gz"]


class _BadField(Exception):
    """A parse failure at ``line`` (index in the block) and ``col``; ``what`` says what is wrong."""

    def __init__(self, line: int, what: str):
        self.line, self.what = line, what


@dataclass
class _Block:
    """Complete lines of one file: ``data`` ends with a newline; ``line0`` is the 1-based number of
    its first line when known (gzip), ``offset`` the byte offset of its first line (plain files)."""

    data: bytes
    line0: int | None
    offset: int | None


class _File:
    """One data file: where it is, how many bytes it stores, whether it is gzip."""

    def __init__(self, path: Path):
        self.path = path
        self.size = os.stat(path).st_size
        with open(path, "rb") as f:
            self.gzip = f.read(2) == GZIP_MAGIC

    def blocks(self, lo: int, hi: int) -> Iterator[_Block]:
        """The lines whose position (see ``Criteo``) is in ``[lo, hi)``, as blocks of whole lines."""
        yield from (self._gzip_blocks if self.gzip else self._plain_blocks)(lo, hi)

    def _plain_blocks(self, lo: int, hi: int) -> Iterator[_Block]:
        with open(self.path, "rb") as f:
            if lo > 0:  # the first line starting at or after byte lo
                f.seek(lo - 1)
                f.readline()
            pos, carry = f.tell(), b""
            while pos < hi:
                chunk = f.read(BLOCK)
                if not chunk:
                    if carry:
                        yield _Block(carry + b"\n", None, pos)
                    return
                data = carry + chunk
                end = data.rfind(b"\n") + 1
                data, carry = data[:end], data[end:]
                if pos + len(data) > hi:  # keep the lines that start before hi
                    data = data[:data.find(b"\n", hi - pos - 1) + 1]
                if data:
                    yield _Block(data, None, pos)
                pos += len(data)

    def _gzip_blocks(self, lo: int, hi: int) -> Iterator[_Block]:
        """A line's position is the count of compressed bytes read before the step that ends it."""
        line, carry, pos, last = 1, b"", 0, 0
        decoder = zlib.decompressobj(wbits=47)
        with open(self.path, "rb") as f:
            while pos < hi:
                raw = f.read(GZIP_STEP)
                if raw:
                    data = carry + self._inflate(decoder, raw)
                    while decoder.eof and decoder.unused_data:  # a file of several gzip members
                        rest, decoder = decoder.unused_data, zlib.decompressobj(wbits=47)
                        data += self._inflate(decoder, rest)
                    end = data.rfind(b"\n") + 1
                    lines, carry, last = data[:end], data[end:], pos
                elif not decoder.eof:
                    raise DataError(f"data 'criteo': file '{self.path}' is truncated gzip (its stream does not end)")
                else:  # an unterminated last line belongs to the last step
                    lines, carry = (carry + b"\n" if carry else b""), b""
                if lines and (pos if raw else last) >= lo:
                    yield _Block(lines, line, None)
                line += lines.count(b"\n")
                if not raw:
                    return
                pos += len(raw)

    def _inflate(self, decoder, raw: bytes) -> bytes:
        try:
            return decoder.decompress(raw)
        except zlib.error as e:
            raise DataError(f"data 'criteo': file '{self.path}' is damaged gzip ({e})") from None

    def line_number(self, offset: int) -> int:
        """1-based number of the line starting at byte ``offset`` of a plain file."""
        count = 1
        with open(self.path, "rb") as f:
            while offset > 0:
                chunk = f.read(min(BLOCK, offset))
                count += chunk.count(b"\n")
                offset -= len(chunk)
        return count


# What _parse_block reports for the first bad line (besides the line and the column).
WRONG_COLUMNS, BAD_LABEL, BAD_INT, BAD_HEX = 1, 2, 3, 4


@numba.njit(cache=True, nogil=True)
def _parse_block(buf, rows, label, dense, cat):
    """Parse ``len(label)`` whole lines of ``buf`` (which ends with a newline) in one pass.

    Fills ``label``, ``dense = log(1 + max(x, 0))`` and ``cat[t] = int(hex, 16) % rows[t]`` (missing
    fields 0). Returns ``(-1, 0, 0)``, or ``(line, column, what)`` at the first bad field, where for
    ``WRONG_COLUMNS`` the column is the number of columns the line has.
    """
    pos = 0
    for i in range(len(label)):
        col = 0
        while True:
            start = pos
            while buf[pos] != 9 and buf[pos] != 10:
                pos += 1
            end = pos
            if buf[end] == 10 and end > start and buf[end - 1] == 13:  # \r\n line end
                end -= 1
            if col == N_COLS:  # too many: count them for the message
                while buf[pos] != 10:
                    col += buf[pos] == 9
                    pos += 1
                return i, col + 1, WRONG_COLUMNS
            if col <= N_DENSE:
                k, neg = start, False
                if k < end and buf[k] == 45:  # '-'
                    neg, k = True, k + 1
                if col == 0 and k == end and buf[pos] == 10:  # an empty line
                    return i, 1, WRONG_COLUMNS
                if end - k > 18 or (neg and k == end) or (col == 0 and k == end):
                    return i, col, BAD_LABEL if col == 0 else BAD_INT
                value = 0
                while k < end:
                    digit = np.int64(buf[k]) - 48
                    if digit < 0 or digit > 9:
                        return i, col, BAD_LABEL if col == 0 else BAD_INT
                    value = value * 10 + digit
                    k += 1
                if neg:
                    value = -value
                if col == 0:
                    if value != 0 and value != 1:
                        return i, col, BAD_LABEL
                    label[i] = value
                else:
                    dense[i, col - 1] = np.log1p(np.float64(max(value, 0)))
            else:
                if end - start > 16:
                    return i, col, BAD_HEX
                hexval = np.uint64(0)
                for k in range(start, end):
                    c = buf[k]
                    if 48 <= c <= 57:
                        digit = c - 48
                    elif 97 <= c <= 102:
                        digit = c - 87
                    elif 65 <= c <= 70:
                        digit = c - 55
                    else:
                        return i, col, BAD_HEX
                    hexval = (hexval << np.uint64(4)) | np.uint64(digit)
                t = col - 1 - N_DENSE
                cat[t, i] = np.int64(hexval % np.uint64(rows[t]))
            col += 1
            pos += 1
            if buf[pos - 1] == 10:
                break
        if col != N_COLS:
            return i, col, WRONG_COLUMNS
    return -1, 0, 0


def parse_lines(data: bytes, rows: np.ndarray):
    """Parse whole Criteo lines (``data`` ends with a newline) into preprocessed arrays.

    Returns ``(label float32 [n], dense float32 [n, 13], cat int64 [26, n])`` with
    ``dense = log(1 + max(x, 0))`` and ``cat[t] = int(hex, 16) % rows[t]`` (missing: 0 for both).
    Raises ``_BadField`` at the first bad line of the block.
    """
    n = data.count(b"\n")
    label = np.zeros(n, np.float32)
    dense = np.zeros((n, N_DENSE), np.float32)
    cat = np.zeros((N_CAT, n), np.int64)
    line, col, what = _parse_block(np.frombuffer(data, np.uint8), rows.astype(np.int64), label, dense, cat)
    if line < 0:
        return label, dense, cat
    if what == WRONG_COLUMNS:
        raise _BadField(line, f"has {col} tab-separated columns, a Criteo line has {N_COLS} "
                              "(label, 13 integer, 26 hexadecimal features)")
    text = data.split(b"\n", line + 1)[line].rstrip(b"\r").split(b"\t")[col][:40].decode("latin-1")
    kind = {BAD_LABEL: "0 or 1", BAD_INT: "an integer (or empty)",
            BAD_HEX: "a hexadecimal string of at most 16 digits (or empty)"}[what]
    raise _BadField(line, f"column {col + 1} ({COLUMN_NAMES[col]}) is '{text}', not {kind}")


def _natural(path: Path):
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", path.name)]


@register("data", "criteo")
class Criteo(ClickData):
    """Criteo click logs from ``path`` (a file, or a folder of files matching ``files``), streamed.

    Split: with ``test_files`` (names or globs inside ``path``, e.g. ``[day_23]`` for Terabyte)
    those files are the test set and the others the training set. Without, the files are taken in
    natural name order as one stream of stored bytes, and test is every line whose position is in
    the last ``test_fraction`` of those bytes (default 1/7: Kaggle's ``train.txt`` holds seven days
    and the last is held out, as in facebookresearch/dlrm). A plain-file line's position is the
    byte where it starts, found by seeking; a gzip line's position is the count of compressed bytes
    read before the 1 MiB step that ends it, so a gzip test set is reached by decompressing (not
    parsing) what comes before it. Train and test are disjoint and together hold every line.
    """

    _files: list[_File] | None = None
    _test: list[_File] | None = None

    @dataclass
    class Config:
        path: str = ""
        files: list[str] = field(default_factory=lambda: list(DEFAULT_FILES))
        test_files: list[str] = field(default_factory=list)
        test_fraction: float = 1 / 7
        max_ind_range: int = 10_000_000
        rows: list[int] = field(default_factory=list)

    def check(self):
        c = self.config
        self.require("test_fraction", low=0.0, high=1.0, open_low=True)
        if c.test_fraction >= 1:
            self.fail("test_fraction", f"is {c.test_fraction}; allowed range (0, 1): some data must train")
        self.require("max_ind_range", low=1)
        if c.rows and (len(c.rows) != N_CAT or min(c.rows) < 1):
            self.fail("rows", f"holds {len(c.rows)} values (smallest {min(c.rows)}); needs {N_CAT}, each >= 1")
        for param in ("files", "test_files"):
            for pattern in getattr(c, param):
                if not pattern or os.path.isabs(pattern) or ".." in Path(pattern).parts or "/" in pattern:
                    raise DataError(f"data 'criteo': parameter '{param}' holds '{pattern}'; patterns are file "
                                    "names or globs inside data.path (no folders, no '..', not absolute)")
        if not c.files:
            self.fail("files", "is empty; the default matches train.txt[.gz] and day_N[.gz]")

    def n_dense(self) -> int:
        return N_DENSE

    def table_rows(self) -> list[int]:
        """``max_ind_range`` per table, or ``min(rows[t], max_ind_range)`` when true counts are given."""
        c = self.config
        return [min(r, c.max_ind_range) for r in c.rows] if c.rows else [c.max_ind_range] * N_CAT

    def validate(self) -> None:
        """Find the files, check each is readable and that its first line is a Criteo line."""
        c = self.config
        if not c.path:
            raise DataError("data 'criteo': path is empty; set data.path=<train.txt, day_N, or a folder of them>")
        root = Path(c.path)
        if not root.exists():
            raise DataError(f"data 'criteo': path '{root}' does not exist (resolved: {root.absolute()})")
        if root.is_dir():
            test = self._match(root, c.test_files, "test_files") if c.test_files else []
            train = [p for p in self._match(root, c.files, "files") if p not in test]
        else:
            if c.test_files:
                raise DataError(f"data 'criteo': test_files needs data.path to be a folder; '{root}' is a file")
            train, test = [root], []
        if not train:
            raise DataError(f"data 'criteo': every file in '{root}' is a test file; nothing is left to train on")
        self._files, self._test = [self._open(p) for p in train], [self._open(p) for p in test]
        rows = np.array(self.table_rows())
        for f in self._files + self._test:
            block = next(f.blocks(0, math.inf), None)
            if block is None:
                raise DataError(f"data 'criteo': file '{f.path}' holds no lines")
            self._parse(f, _Block(block.data[:block.data.find(b"\n") + 1], 1, 0), rows)

    @staticmethod
    def _match(root: Path, patterns: list[str], param: str) -> list[Path]:
        """Files of ``root`` (not recursive) matching any pattern, in natural order; symlinks must stay inside."""
        inside = root.resolve()
        names = sorted((p for p in root.iterdir() if any(fnmatch.fnmatchcase(p.name, g) for g in patterns)),
                       key=_natural)
        if not names:
            raise DataError(f"data 'criteo': no file in '{root}' matches {param}={patterns}")
        for p in names:
            if not p.resolve().is_relative_to(inside):
                raise DataError(f"data 'criteo': '{p}' links to '{p.resolve()}', outside data.path '{root}'")
            if not p.is_file():
                raise DataError(f"data 'criteo': '{p}' matches {param}={patterns} but is not a file")
        return names

    @staticmethod
    def _open(path: Path) -> _File:
        try:
            return _File(path)
        except OSError as e:
            raise DataError(f"data 'criteo': cannot read '{path}': {e.strerror}") from None

    def _ranges(self, split: str) -> list[tuple[_File, int, int]]:
        """(file, lo, hi) position ranges that make up ``split``, in order."""
        if split not in ("train", "test"):
            raise ValueError(f"split is '{split}'; allowed: train, test")
        if self._files is None:
            self.validate()
        if self._test:
            return [(f, 0, math.inf) for f in (self._files if split == "train" else self._test)]
        cut = round((1 - self.config.test_fraction) * sum(f.size for f in self._files))
        out, base = [], 0
        for f in self._files:
            lo, hi = (0, cut - base) if split == "train" else (cut - base, math.inf)
            if lo < f.size and hi > 0:  # lines starting before the end (a last unterminated line too)
                out.append((f, max(lo, 0), hi))
            base += f.size
        return out

    def _parse(self, f: _File, block: _Block, rows: np.ndarray):
        try:
            return parse_lines(block.data, rows)
        except _BadField as e:
            data = block.data
            start = 0
            for _ in range(e.line):
                start = data.index(b"\n", start) + 1
            line = block.line0 + e.line if block.line0 is not None else f.line_number(block.offset + start)
            raise DataError(f"data 'criteo': file '{f.path}', line {line}: {e.what}") from None

    def lines(self, split: str, skip: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Parsed blocks ``(label, dense, cat)`` of ``split``, after dropping its first ``skip`` lines unparsed."""
        rows = np.array(self.table_rows())
        for f, lo, hi in self._ranges(split):
            for block in f.blocks(lo, hi):
                if skip:
                    n = block.data.count(b"\n")
                    if skip >= n:
                        skip -= n
                        continue
                    cut = np.flatnonzero(np.frombuffer(block.data, np.uint8) == 10)[skip - 1] + 1
                    block = _Block(block.data[cut:], None if block.line0 is None else block.line0 + skip,
                                   None if block.offset is None else block.offset + int(cut))
                    skip = 0
                yield self._parse(f, block, rows)

    def batches(self, split: str, batch_size: int, start: int = 0) -> Iterator[ClickBatch]:
        """Global mini-batches of ``batch_size`` lines in file order; the last one may be shorter.

        Batch ``start`` comes first: the ``start * batch_size`` lines before it are counted, not parsed.
        """
        if batch_size < 1 or start < 0:
            raise ValueError(f"batch_size must be >= 1 and start >= 0, got {batch_size} and {start}")
        pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        held = 0
        for parsed in self.lines(split, skip=start * batch_size):
            pending.append(parsed)
            held += len(parsed[0])
            if held < batch_size:
                continue
            label, dense, cat = (np.concatenate([p[k] for p in pending], axis=-1 if k == 2 else 0) for k in range(3))
            whole = held - held % batch_size
            for i in range(0, whole, batch_size):
                yield _batch(label[i:i + batch_size], dense[i:i + batch_size], cat[:, i:i + batch_size])
            pending, held = [(label[whole:], dense[whole:], cat[:, whole:])], held - whole
        if held:
            label, dense, cat = (np.concatenate([p[k] for p in pending], axis=-1 if k == 2 else 0) for k in range(3))
            yield _batch(label, dense, cat)


def _batch(label: np.ndarray, dense: np.ndarray, cat: np.ndarray) -> ClickBatch:
    """One index per sample and table: ``offsets`` are ``0..B-1``."""
    offsets = np.arange(len(label), dtype=np.int64)
    return ClickBatch(dense=np.ascontiguousarray(dense), indices=[np.ascontiguousarray(c) for c in cat],
                      offsets=[offsets] * len(cat), label=label)
