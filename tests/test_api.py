"""The Python API: cf.compress, cf.decompress, cf.create, cf.available, cf.ErrorBound."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import compframe as cf
import compframe.pipeline


def test_numpy_round_trip_within_bound():
    x = np.random.default_rng(0).standard_normal((100, 32)).astype(np.float32)
    frame = cf.compress(x, quantizer="int8", encoder="zstd", bound="rel:1e-2")
    y = cf.decompress(frame)
    assert isinstance(y, np.ndarray) and y.shape == x.shape and y.dtype == x.dtype
    assert np.abs(x.astype(np.float64) - y).max() <= 1e-2 * (x.max() - x.min())
    assert len(frame) < x.nbytes / 3


def test_torch_tensor_comes_back_as_tensor():
    t = torch.randn(64, 16, dtype=torch.float64)
    y = cf.decompress(cf.compress(t, quantizer="int16", encoder="lz4", bound=cf.ErrorBound("abs", 1e-3)))
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float64 and y.shape == t.shape
    assert (y - t).abs().max().item() <= 1e-3


def test_plugin_objects_and_config_dicts():
    x = np.linspace(-3, 3, 5000, dtype=np.float32)
    q = cf.create("quantizer", "int16")
    frame = cf.compress(x, quantizer=q, encoder={"id": "zstd", "level": 19}, bound="abs:1e-4")
    assert np.abs(cf.decompress(frame) - x).max() <= 1e-4
    with pytest.raises(TypeError, match="expected a quantizer"):
        cf.compress(x, quantizer=cf.create("encoder", "lz4"))


def test_bound_follows_the_quantizers_promise():
    """Error-bounded quantizers default to rel:1e-2 and refuse None; bit-budget ones take no bound,
    so a frame's header never records a bound that was not held."""
    x = np.random.default_rng(2).standard_normal((64, 16)).astype(np.float32)
    assert cf.pipeline.parse(cf.compress(x))[0].header["bound"] == {"mode": "rel", "value": 1e-2}
    assert cf.pipeline.parse(cf.compress(x, quantizer="fixed"))[0].header["bound"] is None
    with pytest.raises(cf.ConfigError, match="parameter 'bound' .*'fixed' promises a bit budget"):
        cf.compress(x, quantizer="fixed", bound="rel:1e-2")
    with pytest.raises(cf.ConfigError, match="parameter 'bound' is None, but quantizer 'int8' is error-bounded"):
        cf.compress(x, quantizer="int8", bound=None)
    with pytest.raises(cf.ConfigError, match="parameter 'bound' is 'rel:2x'"):
        cf.compress(x, bound="rel:2x")


@pytest.mark.parametrize("value", [1e-2, 1e-3, 5e-7, 1.0, 1.234567891e-3, 123456789.0, 0.1 + 0.2])
def test_error_bound_string_reads_back_to_the_same_bound(value):
    for mode in ("abs", "rel"):
        b = cf.ErrorBound(mode, value)
        assert cf.ErrorBound.parse(str(b)) == b
    assert str(cf.ErrorBound("rel", 1e-2)) == "rel:0.01"


def test_encoder_object_round_trip_and_available():
    enc = cf.create("encoder", "zstd", level=5)
    codes = np.random.default_rng(1).integers(-100, 100, 10000).astype(np.int16)
    assert (enc.decode(enc.encode(codes)) == codes).all()
    assert cf.available("quantizer") == sorted(cf.available("quantizer"))
    assert cf.ErrorBound("abs", 1e-3) == cf.ErrorBound.parse("abs:1e-3")
    assert str(cf.ErrorBound("rel", 0.01)) == "rel:0.01"


def test_parallel_min_environment_variable():
    import os
    import subprocess
    import sys

    code = "import compframe.kernels.targets as t; print(t.PARALLEL_MIN)"
    run = lambda value: subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                       env={**os.environ, "COMPFRAME_PARALLEL_MIN": value}, timeout=120)
    assert run("32768").stdout.strip() == "32768"
    assert run("").stdout.strip() == str(1 << 19)
    bad = run("lots")
    assert bad.returncode != 0 and "COMPFRAME_PARALLEL_MIN='lots' is not a whole number" in bad.stderr
