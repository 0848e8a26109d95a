"""compframe.Codec (numcodecs) and compframe.ZarrCodec (zarr v3), with the real numcodecs and zarr."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

numcodecs = pytest.importorskip("numcodecs")
zarr = pytest.importorskip("zarr")

import compframe as cf  # noqa: E402
from compframe import pipeline  # noqa: E402
from compframe.registry import plugin_class  # noqa: E402

SHAPE, CHUNKS = (100, 70), (32, 32)  # 4 x 3 chunks; the last row and column of chunks are partial


def field(shape=SHAPE, dtype=np.float32, seed=0) -> np.ndarray:
    """A smooth field with noise, a spike and non-finite values."""
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.standard_normal(shape), axis=-1) + 0.1 * rng.standard_normal(shape)
    x.flat[[3, 17, 50]] = [np.nan, np.inf, -np.inf]
    x.flat[123] = 1e3
    return x.astype(dtype)


def assert_within(x: np.ndarray, y: np.ndarray, bound: str) -> None:
    """Every finite element within the bound (rel: times x's own finite range), others bit-identical."""
    mode, _, value = bound.partition(":")
    finite = np.isfinite(x)
    limit = float(value) * (1.0 if mode == "abs" else float(np.ptp(x[finite].astype(np.float64))))
    assert y.dtype == x.dtype and y.shape == x.shape
    err = np.abs(x[finite].astype(np.float64) - y[finite].astype(np.float64))
    assert err.max() <= limit, f"max error {err.max()} > {limit}"
    assert x[~finite].tobytes() == y[~finite].tobytes()


def test_config_round_trips_through_json_and_the_registry():
    codec = cf.Codec(quantizer={"id": "int16"}, encoder={"id": "zstd", "level": 9}, bound="abs:1.2345678901e-3")
    config = json.loads(json.dumps(codec.get_config()))
    assert config["id"] == "compframe" and config["bound"] == "abs:0.0012345678901"
    assert config["encoder"] == {**cf.create("encoder", "zstd").get_config(), "level": 9}
    again = numcodecs.get_codec(config)
    assert type(again) is cf.Codec and again == codec and again.get_config() == codec.get_config()
    assert repr(again) == repr(codec)
    assert cf.Codec().get_config()["bound"] == "rel:0.01"  # cf.compress's default
    assert cf.Codec(quantizer="fp16").get_config()["bound"] is None  # a bit-budget quantizer has none
    assert cf.Codec("int8") != cf.Codec("int8", bound="rel:0.02")


@pytest.mark.slow  # a fresh interpreter imports zarr, numcodecs and compframe
def test_entry_points_find_the_codec_in_a_fresh_process(zarr_arrays):
    """numcodecs and zarr find the codec through entry points alone and read both arrays."""
    code = f"""
import json, sys, warnings
warnings.simplefilter("ignore")
import numcodecs, zarr
from zarr.registry import get_codec_class
before = "compframe" in sys.modules
codec = numcodecs.get_codec({{"id": "compframe", "quantizer": "int16", "bound": "abs:1e-3"}})
out = {{"before": before, "numcodecs": type(codec).__module__ + "." + type(codec).__name__,
       "zarr": get_codec_class("numcodecs.compframe").__name__}}
for name, path in {json.dumps({k: str(v[0]) for k, v in zarr_arrays.items()})}.items():
    out[name] = zarr.open(path, mode="r")[:].tolist()
print(json.dumps(out))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert not out["before"]
    assert out["numcodecs"] == "compframe.codec.Codec" and out["zarr"] == "ZarrCodec"
    for name, (path, x, bound) in zarr_arrays.items():
        assert_within(x, np.array(out[name], dtype=x.dtype), bound)


def test_import_compframe_leaves_numcodecs_and_zarr_out():
    code = "import sys, compframe; print(sorted({'numcodecs', 'zarr'} & set(sys.modules)))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "[]", run.stderr


@pytest.mark.parametrize("quantizer", [q for q in cf.available("quantizer")
                                       if plugin_class("quantizer", q).guarantee == "error_bound"])
@pytest.mark.parametrize("bound", ["abs:1e-2", "rel:1e-3"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bound_held_on_every_element(quantizer, bound, dtype):
    codec = cf.Codec(quantizer=quantizer, bound=bound)
    for shape in [(5000,), (31, 17, 3), (1,)]:
        x = field(shape, dtype) if shape != (1,) else np.array([2.5], dtype)
        frame = codec.encode(x)
        assert isinstance(frame, bytes)
        assert_within(x, codec.decode(frame), bound)


def test_a_bit_budget_quantizer_takes_no_bound():
    """fp16 keeps its 16 bits per value: the chunk comes back as numpy's float16 rounding, bit for bit."""
    x = field((40, 30))
    codec = cf.Codec(quantizer="fp16")
    assert codec.get_config()["bound"] is None
    assert codec.decode(codec.encode(x)).tobytes() == x.astype(np.float16).astype(np.float32).tobytes()


@pytest.mark.parametrize("encoder", [e for e in cf.available("encoder", usable=True)
                                     if "cpu" in plugin_class("encoder", e).devices])
def test_lossless_encoders_give_exactly_the_quantizers_values(encoder):
    """The encoder adds no error: decoding gives the dequantized codes bit for bit."""
    x = field((60, 50), np.float64)
    codec = cf.Codec(quantizer="int16", encoder=encoder, bound="abs:1e-4")
    expected = pipeline.roundtrip(x, cf.create("quantizer", "int16"), cf.ErrorBound("abs", 1e-4))[1]
    assert codec.decode(codec.encode(x)).tobytes() == expected.tobytes()


def test_decode_into_out():
    codec = cf.Codec(quantizer="int16", bound="abs:1e-3")
    x = field((40, 30))
    frame = codec.encode(x)
    y = codec.decode(frame)
    out = np.full_like(x, 7.0)
    assert codec.decode(frame, out=out) is out and out.tobytes() == y.tobytes()
    raw = bytearray(x.nbytes)  # numcodecs' contract: any writeable buffer of the decoded size
    codec.decode(frame, out=raw)
    assert bytes(raw) == y.tobytes()
    with pytest.raises(ValueError, match="cannot reshape"):
        codec.decode(frame, out=np.empty(x.size - 1, x.dtype))


def test_damaged_frames_are_refused():
    codec = cf.Codec(quantizer="int8")
    frame = bytearray(codec.encode(field((64, 64))))
    for bad, match in [(frame[:-1], "truncated"), (b"\x00" * 64, "not a compframe frame"), ("CFRM", "bytes-like")]:
        with pytest.raises(cf.FrameError, match=match):
            codec.decode(bad)
    frame[len(frame) // 2] ^= 0x10
    with pytest.raises(cf.FrameError, match="damaged"):
        codec.decode(bytes(frame))


@pytest.mark.parametrize("kwargs, error, match", [
    ({"quantizer": "int7"}, cf.RegistryError, "unknown quantizer 'int7'.*Did you mean"),
    ({"encoder": {"id": "zstd", "levle": 3}}, cf.ConfigError, "encoder 'zstd': parameter 'levle'"),
    ({"bound": "rel:-1"}, cf.ConfigError, "parameter 'bound' is 'rel:-1'.*> 0"),
    ({"bound": "1e-3"}, cf.ConfigError, "parameter 'bound'.*'rel:1e-2' or 'abs:0.5'"),
    ({"bound": None}, cf.ConfigError, "parameter 'bound' is None.*error-bounded"),
    ({"quantizer": "fp16", "bound": "abs:1e-3"}, cf.ConfigError, "parameter 'bound'.*bit budget"),
    ({"encoder": {"id": "zstd", "device": "cuda"}}, cf.ConfigError, "parameter 'device'"),
])
def test_bad_config_is_refused_when_the_codec_is_made(kwargs, error, match):
    with pytest.raises(error, match=match):
        cf.Codec(**kwargs)
    with pytest.raises(error, match=match):
        numcodecs.get_codec({"id": "compframe", **kwargs})


def test_gpu_only_encoders_are_refused():
    nvcomp = [e for e in cf.available("encoder") if "cpu" not in plugin_class("encoder", e).devices]
    assert nvcomp
    for encoder in nvcomp:
        with pytest.raises(cf.ConfigError, match=f"'{encoder}'"):
            cf.Codec(encoder=encoder)


def test_non_float_chunks_are_refused():
    with pytest.raises(TypeError, match="takes float32, float64 arrays, got int32"):
        cf.Codec().encode(np.arange(10, dtype=np.int32))
    with warnings.catch_warnings(), pytest.raises(TypeError, match="the array's dtype is int32"):
        warnings.simplefilter("ignore")
        zarr.create_array(zarr.storage.MemoryStore(), shape=(10,), chunks=(5,), dtype="int32",
                          serializer=cf.ZarrCodec(), compressors=None)


@pytest.fixture(scope="module")
def zarr_arrays(tmp_path_factory):
    """A zarr v3 array (int16, abs bound) and a zarr v2 one (int8, rel bound) written with the
    codec in several chunks with partial edge chunks: name -> (path, data, bound)."""
    root = tmp_path_factory.mktemp("zarr")
    x32, x64 = field(SHAPE, np.float32, 1), field(SHAPE, np.float64, 2)
    arrays = {"v3": (root / "v3.zarr", x32, "abs:1e-3"), "v2": (root / "v2.zarr", x64, "rel:1e-3")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr: numcodecs codecs are outside the zarr v3 spec
        z = zarr.create_array(zarr.storage.LocalStore(arrays["v3"][0]), shape=SHAPE, chunks=CHUNKS,
                              dtype="float32", serializer=cf.ZarrCodec(quantizer="int16", bound="abs:1e-3"),
                              compressors=None)
        z[:] = x32
        z = zarr.create_array(zarr.storage.LocalStore(arrays["v2"][0]), shape=SHAPE, chunks=CHUNKS, dtype="float64",
                              compressors=cf.Codec(quantizer="int8", bound="rel:1e-3"), zarr_format=2)
        z[:] = x64
    # the rel bound holds per chunk; for the whole-array check, the largest chunk range gives an abs bound
    ranges = [np.ptp(padded_chunk(x64, index)[np.isfinite(padded_chunk(x64, index))]) for index in chunk_indices()]
    arrays["v2"] = (*arrays["v2"][:2], f"abs:{1e-3 * float(max(ranges))!r}")
    return arrays


def chunk_indices():
    grid = [range(-(-n // c)) for n, c in zip(SHAPE, CHUNKS)]
    return [(i, j) for i in grid[0] for j in grid[1]]


def region(index) -> tuple[slice, ...]:
    return tuple(slice(k * c, min((k + 1) * c, n)) for k, c, n in zip(index, CHUNKS, SHAPE))


def padded_chunk(x: np.ndarray, index) -> np.ndarray:
    """The chunk zarr hands the codec: full chunk shape, an edge chunk padded with the fill value 0."""
    chunk = np.zeros(CHUNKS, x.dtype)
    part = x[region(index)]
    chunk[tuple(slice(0, n) for n in part.shape)] = part
    return chunk


def test_zarr_v3_array_reads_back_within_the_bound_chunk_by_chunk(zarr_arrays):
    path, x, bound = zarr_arrays["v3"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        z = zarr.open(zarr.storage.LocalStore(path, read_only=True), mode="r")
        codec = z.metadata.codecs[0]
        assert isinstance(codec, cf.ZarrCodec)
        assert codec.codec_config == cf.Codec(quantizer="int16", bound=bound).get_config()
        for index in chunk_indices():
            assert_within(x[region(index)], z[region(index)], bound)
        assert_within(x, z[:], bound)


def test_zarr_v2_array_holds_a_rel_bound_per_chunk(zarr_arrays):
    path, x, _ = zarr_arrays["v2"]
    z = zarr.open(zarr.storage.LocalStore(path, read_only=True), mode="r")
    assert z.metadata.zarr_format == 2 and isinstance(z.metadata.compressor, cf.Codec)
    for index in chunk_indices():
        chunk, finite = padded_chunk(x, index), np.isfinite(padded_chunk(x, index))
        limit = 1e-3 * float(np.ptp(chunk[finite]))  # relative to the range of the chunk as stored
        assert_within(x[region(index)], z[region(index)], f"abs:{limit!r}")


@pytest.mark.parametrize("name, key", [("v3", "c/{}/{}"), ("v2", "{}.{}")])
def test_stored_chunks_are_ordinary_frames(zarr_arrays, name, key):
    path, x, _ = zarr_arrays[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        z = zarr.open(zarr.storage.LocalStore(path, read_only=True), mode="r")
        for index in chunk_indices():
            chunk = cf.decompress((path / key.format(*index)).read_bytes())
            assert isinstance(chunk, np.ndarray) and chunk.shape == CHUNKS and chunk.dtype == x.dtype
            part = tuple(slice(0, s.stop - s.start) for s in region(index))
            assert chunk[part].tobytes() == z[region(index)].tobytes()


def test_a_damaged_chunk_file_fails_the_read_with_frame_error(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        z = zarr.create_array(zarr.storage.LocalStore(tmp_path / "a.zarr"), shape=(64,), chunks=(32,),
                              dtype="float32", serializer=cf.ZarrCodec(), compressors=None)
        z[:] = np.linspace(0, 1, 64, dtype=np.float32)
        chunk = tmp_path / "a.zarr" / "c" / "1"
        damaged = bytearray(chunk.read_bytes())
        damaged[-3] ^= 0x01
        chunk.write_bytes(bytes(damaged))
        z = zarr.open(zarr.storage.LocalStore(tmp_path / "a.zarr"), mode="r")
        assert np.abs(z[:32] - np.linspace(0, 1, 64, dtype=np.float32)[:32]).max() <= 1e-2
        with pytest.raises(cf.FrameError, match="damaged"):
            z[32:]
