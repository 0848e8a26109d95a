"""``image``: built-in test images as float32 fields scaled to [0, 1], nothing on disk needed.

- ``shepp_logan``: the modified Shepp-Logan head phantom (Shepp & Logan 1974 geometry, Toft 1996
  Table B.1 "modified" grey levels for contrast), drawn here from its ten ellipses on a
  ``size`` x ``size`` grid over [-1, 1]² (row i at y = -1 + 2i/(size-1), as phantominator's
  ``ct_shepp_logan``, which the LPLR repository used for its image experiment).
- ``camera``: scikit-image's 512 x 512 ``camera`` photograph (``skimage.data.camera()``), divided by 255.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ...base import DataError, DataSource, Field
from ...registry import register

# grey level, semi-axis along x, semi-axis along y, centre x, centre y, rotation (degrees)
SHEPP_LOGAN_ELLIPSES = np.array([
    [1.0, 0.69, 0.92, 0.0, 0.0, 0.0],
    [-0.8, 0.6624, 0.874, 0.0, -0.0184, 0.0],
    [-0.2, 0.11, 0.31, 0.22, 0.0, -18.0],
    [-0.2, 0.16, 0.41, -0.22, 0.0, 18.0],
    [0.1, 0.21, 0.25, 0.0, 0.35, 0.0],
    [0.1, 0.046, 0.046, 0.0, 0.1, 0.0],
    [0.1, 0.046, 0.046, 0.0, -0.1, 0.0],
    [0.1, 0.046, 0.023, -0.08, -0.605, 0.0],
    [0.1, 0.023, 0.023, 0.0, -0.605, 0.0],
    [0.1, 0.023, 0.046, 0.06, -0.605, 0.0],
])

IMAGES = ("shepp_logan", "camera")


def shepp_logan(size: int) -> np.ndarray:
    """The modified Shepp-Logan phantom, ``size`` x ``size``, float64, values in [0, 1]."""
    grid = np.linspace(-1.0, 1.0, size)
    x, y = grid[None, :], grid[:, None]
    image = np.zeros((size, size))
    for grey, ax, ay, cx, cy, degrees in SHEPP_LOGAN_ELLIPSES:
        c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
        u = (x - cx) * c + (y - cy) * s
        v = (x - cx) * s - (y - cy) * c
        image += grey * ((u / ax) ** 2 + (v / ay) ** 2 <= 1.0)
    return image


def scaled(image: np.ndarray) -> np.ndarray:
    """``image`` mapped affinely onto [0, 1] as float32 (a constant image becomes zeros)."""
    image = image.astype(np.float64)
    lo, span = image.min(), np.ptp(image)
    return ((image - lo) / span if span > 0 else image - lo).astype(np.float32)


@register("data", "image")
class Image(DataSource):
    """The images named in ``images`` (``shepp_logan``, ``camera``), one field each; ``size`` is the phantom's side."""

    @dataclass
    class Config:
        images: list[str] = field(default_factory=lambda: list(IMAGES))
        size: int = 1000

    def check(self):
        unknown = [name for name in self.config.images if name not in IMAGES]
        if unknown or not self.config.images:
            self.fail("images", f"is {self.config.images!r}; choose from {', '.join(IMAGES)}")
        self.require("size", low=2, high=16384)

    def validate(self) -> None:
        if "camera" in self.config.images:
            try:
                import skimage.data  # noqa: F401
            except ImportError:
                raise DataError("data 'image': 'camera' needs scikit-image (pip install scikit-image)") from None

    def count(self) -> int:
        return len(self.config.images)

    def fields(self) -> Iterator[Field]:
        for name in self.config.images:
            if name == "shepp_logan":
                data = scaled(shepp_logan(self.config.size))
            else:
                import skimage.data

                data = scaled(skimage.data.camera())
            yield Field(name=name, data=data, layer=name)
