"""compframe's codec for zarr v3 arrays: ``compframe.Codec`` as an array-to-bytes codec (a serializer).

    import zarr
    from compframe.zarr_codec import ZarrCodec

    z = zarr.create_array(store, shape=(1000, 1000), chunks=(256, 256), dtype="float32",
                          serializer=ZarrCodec(quantizer="int16", bound="abs:1e-3"), compressors=None)

compframe needs the chunk as a float array, so the codec takes zarr's serializer place (array ->
bytes); each stored chunk is one ordinary compframe frame. The array's ``zarr.json`` names it
``numcodecs.compframe`` (zarr's convention for numcodecs codecs) with the ``compframe.Codec``
config, and zarr finds this class through the entry point group ``zarr.codecs``, so a fresh
``zarr.open`` reads the array wherever compframe is installed. Built on zarr's adapter for numcodecs
codecs (``zarr.codecs.numcodecs``, zarr >= 3.1.3), which zarr warns is outside the zarr v3 spec.
"""

from __future__ import annotations

from typing import Any

from zarr.codecs.numcodecs import _NumcodecsArrayBytesCodec

from .codec import Codec


class ZarrCodec(_NumcodecsArrayBytesCodec, codec_name=Codec.codec_id):
    """``compframe.Codec(quantizer=..., encoder=..., bound=...)`` as a zarr v3 serializer (the same
    parameters, as keywords).

    The parameters are checked when the codec is made (a bad one raises as ``compframe.Codec`` does)
    and stored in their full form, every plugin parameter included; an array whose dtype the
    quantizer does not take is refused when it is created.
    """

    def __init__(self, **codec_config: Any) -> None:
        super().__init__(**codec_config)
        codec = Codec.from_config({k: v for k, v in self.codec_config.items() if k != "id"})
        object.__setattr__(self, "codec_config", codec.get_config())

    def validate(self, *, shape: tuple[int, ...], dtype: Any, chunk_grid: Any) -> None:
        name = dtype.to_native_dtype().name
        if name not in self._codec.float_dtypes:
            raise TypeError(f"zarr codec numcodecs.compframe: the array's dtype is {name}; the quantizer "
                            f"takes {', '.join(self._codec.float_dtypes)}")
