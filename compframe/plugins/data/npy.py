"""``npy``: float arrays from a ``.npy``/``.npz`` file or a folder of them (not recursive, sorted by name).

Each ``.npy`` array is one field named by the file's stem; each member of an ``.npz`` is one field
named ``stem/member`` with ``layer = member``. Files carry no table or training time, so ``table``
and ``iteration`` are None (a schedule gives such fields its ``base`` bound, factor 1): numbering the
files would tie them to a schedule's tight/loose tables by the accident of their sort order.
With ``mmap`` (the default) ``.npy`` arrays are memory-mapped, read only as they are used; ``.npz``
members are always read whole (numpy cannot map a zip member).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...base import DataError, DataSource, Field
from ...registry import register

SUFFIXES = (".npy", ".npz")


def _header(stream, where: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a ``.npy`` header, without reading the array."""
    try:
        version = np.lib.format.read_magic(stream)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(stream)
    except (ValueError, OSError) as e:
        raise DataError(f"data 'npy': {where} is not a readable .npy array ({e})") from None
    return shape, dtype


def _require_float(dtype: np.dtype, where: str) -> None:
    if not np.issubdtype(dtype, np.floating):
        raise DataError(f"data 'npy': {where} holds {dtype} values; only float arrays can be compressed")


@register("data", "npy")
class Npy(DataSource):
    """Every float array of ``path`` as one field, in file order then member order."""

    @dataclass
    class Config:
        path: str = ""
        mmap: bool = True

    _arrays: list[tuple[Path, str | None]] | None = None  # (file, npz member or None), set by validate()

    def validate(self) -> None:
        """Find the files and check every array's dtype from its header, reading no data."""
        self._arrays = [entry for file in self._files() for entry in self._scan(file)]

    def _files(self) -> list[Path]:
        if not self.config.path:
            raise DataError("data 'npy': path is empty; set data.path=<a .npy/.npz file or a folder of them>")
        path = Path(self.config.path)
        if not path.exists():
            raise DataError(f"data 'npy': path '{path}' does not exist (resolved: {path.absolute()})")
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
            if not files:
                raise DataError(f"data 'npy': folder '{path}' holds no .npy or .npz files")
            return files
        if path.suffix not in SUFFIXES:
            raise DataError(f"data 'npy': file '{path}' is neither .npy nor .npz")
        return [path]

    def _scan(self, file: Path) -> list[tuple[Path, str | None]]:
        if file.suffix == ".npy":
            with open(file, "rb") as stream:
                _, dtype = _header(stream, f"file '{file}'")
            _require_float(dtype, f"file '{file}'")
            return [(file, None)]
        try:
            with zipfile.ZipFile(file) as archive:
                members = [n for n in archive.namelist() if n.endswith(".npy")]
                for name in members:
                    where = f"file '{file}', member '{name[:-4]}'"
                    with archive.open(name) as stream:
                        _, dtype = _header(stream, where)
                    _require_float(dtype, where)
        except (zipfile.BadZipFile, OSError) as e:
            raise DataError(f"data 'npy': file '{file}' is not a readable .npz archive ({e})") from None
        return [(file, name[:-4]) for name in members]

    def _checked(self) -> list[tuple[Path, str | None]]:
        if self._arrays is None:
            self.validate()
        return self._arrays

    def count(self) -> int:
        return len(self._checked())

    def fields(self) -> Iterator[Field]:
        mmap_mode = "r" if self.config.mmap else None
        archive, opened = None, None
        try:
            for file, member in self._checked():
                if member is None:
                    yield Field(name=file.stem, data=np.load(file, mmap_mode=mmap_mode, allow_pickle=False))
                    continue
                if opened != file:
                    if archive is not None:
                        archive.close()
                    archive, opened = np.load(file, allow_pickle=False), file
                yield Field(name=f"{file.stem}/{member}", data=archive[member], layer=member)
        finally:
            if archive is not None:
                archive.close()
