"""``emb_dump``: embedding lookups dumped in the layout of the DLRM compression benchmark (dlrm_comp).

A folder of headerless float32 C-order files ``EMB_{table}_iter_{k}.bin``, each one pooled lookup of
``shape`` (2048x64 for Criteo Terabyte, 128x32 for Kaggle), dumped every ``dump_interval`` training
iterations: ``k`` is the dump index and ``Field.iteration = k * dump_interval``. ``pad_copies``
repeats each file's data along axis 0, as the benchmark's ``padding_files.py`` does (128 copies).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...base import DataError, DataSource, Field
from ...registry import register

NAME = re.compile(r"EMB_(\d+)_iter_(\d+)\.bin")


@register("data", "emb_dump")
class EmbDump(DataSource):
    """One field per file, sorted by (table, k); ``tables`` keeps only those tables (empty = all)."""

    _files: list[tuple[int, int, Path]] | None = None  # set by validate()

    @dataclass
    class Config:
        path: str = ""
        shape: list[int] = field(default_factory=lambda: [2048, 64])
        pad_copies: int = 1
        dump_interval: int = 4096
        tables: list[int] = field(default_factory=list)
        pattern: str = "EMB_*_iter_*.bin"

    def check(self):
        c = self.config
        if not c.shape or any(n < 1 for n in c.shape):
            self.fail("shape", f"is {c.shape}; needs one or more sizes, each >= 1")
        self.require("pad_copies", low=1)
        self.require("dump_interval", low=1)
        if any(t < 0 for t in c.tables):
            self.fail("tables", f"is {c.tables}; table ids are >= 0")
        if not c.pattern:
            self.fail("pattern", "is empty; the default is 'EMB_*_iter_*.bin'")

    def validate(self) -> None:
        """Find the files, parse their names and check their sizes, reading no data."""
        self._files = self._scan()

    def _scan(self) -> list[tuple[int, int, Path]]:
        c = self.config
        if not c.path:
            raise DataError("data 'emb_dump': path is empty; set data.path=<folder of EMB_{table}_iter_{k}.bin files>")
        folder = Path(c.path)
        if not folder.is_dir():
            what = "is not a folder" if folder.exists() else "does not exist"
            raise DataError(f"data 'emb_dump': path '{folder}' {what} (resolved: {folder.absolute()})")
        expected = math.prod(c.shape) * 4
        found: dict[tuple[int, int], Path] = {}
        for file in sorted(folder.glob(c.pattern)):
            match = NAME.fullmatch(file.name)
            if match is None:
                raise DataError(f"data 'emb_dump': file '{file}' matches '{c.pattern}' but is not named EMB_{{table}}_iter_{{k}}.bin")
            key = (int(match[1]), int(match[2]))
            if key in found:
                raise DataError(f"data 'emb_dump': files '{found[key]}' and '{file}' both hold table {key[0]}, dump {key[1]}")
            size = os.stat(file).st_size
            if size != expected:
                raise DataError(
                    f"data 'emb_dump': file '{file}' holds {size} bytes; shape {list(c.shape)} of float32 needs {expected}"
                )
            found[key] = file
        if not found:
            raise DataError(f"data 'emb_dump': no files matching '{c.pattern}' in '{folder}'")
        if c.tables:
            missing = sorted(set(c.tables) - {t for t, _ in found})
            if missing:
                raise DataError(f"data 'emb_dump': no files of tables {missing} in '{folder}' (pattern '{c.pattern}')")
            found = {key: f for key, f in found.items() if key[0] in c.tables}
        return [(t, k, found[t, k]) for t, k in sorted(found)]

    def _checked(self) -> list[tuple[int, int, Path]]:
        if self._files is None:
            self.validate()
        return self._files

    def count(self) -> int:
        return len(self._checked())

    def fields(self) -> Iterator[Field]:
        c = self.config
        for table, k, file in self._checked():
            data = np.fromfile(file, dtype="<f4").reshape(c.shape)
            if c.pad_copies > 1:
                data = np.tile(data, (c.pad_copies,) + (1,) * (data.ndim - 1))
            yield Field(name=file.stem, data=data, table=table, iteration=k * c.dump_interval)
