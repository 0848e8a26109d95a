"""task=compress_model: weights through frames, size accounting, exact pruning, pattern errors,
compression-aware fine-tuning, and one command-line run into MLflow."""

from __future__ import annotations

import json

import numpy as np
import pytest

import compframe as cf
from compframe import registry
from compframe.errors import ConfigError
from compframe.job import Recorder
from compframe.modelcomp.weights import format_bits

from conftest import run_cli

SMALL_MLP = {"id": "mlp_digits", "hidden": [32, 16], "epochs": 30}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("model_cache"))


def _parts(cache, task, quantizer="fixed", encoder="zstd", **qparams):
    return {"model": registry.create_from_config("model", {**SMALL_MLP, "cache_dir": cache}),
            "quantizer": registry.create("quantizer", quantizer, **qparams),
            "encoder": registry.create("encoder", encoder),
            "schedule": registry.create("schedule", "constant", base=1e-2, E=1.0),
            "task": registry.create_from_config("task", {"id": "compress_model", **task})}


def _compress(cache, tmp_path, task, **kw):
    parts = _parts(cache, task, **kw)
    recorder = Recorder(tmp_path / "results.json", "test", {})
    model = parts.pop("task").compressed_model(parts, recorder, progress=False)
    return parts, model, recorder.results


def test_weights_are_the_frames_round_trip_and_sizes_are_the_frames(cache, tmp_path):
    layers = {"fc1": {"quantizer": "fixed", "width": 4, "frac_width": 5, "prune": {"sparsity": 0.3}},
              "fc2": {"quantizer": "int8"},  # error-bounded: the schedule's bound (rel 1e-2)
              "fc*": None}
    parts, model, results = _compress(cache, tmp_path, {"layers": layers}, quantizer="mxint8")
    fp32 = dict(parts["model"].load().named_parameters())
    compressed = dict(model.named_parameters())
    rows = {r["name"]: r for r in results["layers"]}
    assert set(rows) == {"fc1", "fc2"}
    assert rows["fc2"]["bound"] == "rel:0.01"
    for name, row in rows.items():
        w = fp32[f"{name}.weight"].detach().numpy()
        frame = cf.compress(w, quantizer=row["quantizer"], encoder="zstd", bound=row["bound"])
        assert np.array_equal(compressed[f"{name}.weight"].detach().numpy(), cf.decompress(frame))
        assert row["frame_bytes"] == len(frame)
        assert row["format_bits"] == format_bits(frame)
    assert rows["fc1"]["bits_per_weight"] == pytest.approx(1 + 4 * (1 - 0.3), abs=1e-3)  # mask + 4-bit survivors
    # fc3 (matched by 'fc*') and the biases stay fp32
    n_params = sum(p.numel() for p in model.parameters())
    t = results["totals"]
    n_weights = rows["fc1"]["n_weights"] + rows["fc2"]["n_weights"]
    assert t["compressed_weights"] == n_weights and t["compressed_layers"] == 2
    assert t["model_frame_bits"] == 8 * (rows["fc1"]["frame_bytes"] + rows["fc2"]["frame_bytes"]) + 32 * (n_params - n_weights)
    assert t["model_bits"] == pytest.approx(rows["fc1"]["format_bits"] + rows["fc2"]["format_bits"] + 32 * (n_params - n_weights))
    assert t["fp32_model_bits"] == 32 * n_params
    assert t["metric"] == t["accuracy"] and t["fp32_metric"] == t["fp32_accuracy"]
    assert t["metric_drop"] == pytest.approx(t["fp32_metric"] - t["metric"])
    assert t["metric"] == parts["model"].evaluate(model)["accuracy"]


@pytest.mark.parametrize("scope,mode", [("layer", "magnitude"), ("layer", "random"), ("global", "magnitude"),
                                        ("global", "random")])
def test_pruning_reaches_the_sparsity_exactly(cache, tmp_path, scope, mode):
    sparsity = 0.37
    task = {"sparsity": sparsity, "prune_scope": scope, "prune_mode": mode}
    parts, model, results = _compress(cache, tmp_path, task, quantizer="fp16")
    fp32 = dict(parts["model"].load().named_parameters())
    weights = {r["name"]: dict(model.named_parameters())[f"{r['name']}.weight"].detach().numpy() for r in results["layers"]}
    zeros = {n: int((w == 0).sum()) for n, w in weights.items()}  # fp16 keeps every nonzero weight of these nets nonzero
    sizes = {n: w.size for n, w in weights.items()}
    if scope == "layer":
        assert zeros == {n: round(sparsity * s) for n, s in sizes.items()}
    else:
        assert sum(zeros.values()) == round(sparsity * sum(sizes.values()))
    if mode == "magnitude":  # the pruned weights are the smallest: none kept is smaller than any pruned
        pooled = [(np.abs(fp32[f"{n}.weight"].detach().numpy()), weights[n] == 0) for n in weights]
        groups = pooled if scope == "layer" else [(np.concatenate([a.ravel() for a, _ in pooled]),
                                                   np.concatenate([z.ravel() for _, z in pooled]))]
        for magnitude, pruned in groups:
            assert magnitude[pruned].max() <= magnitude[~pruned].min()
    assert results["totals"]["sparsity"] == pytest.approx(sum(zeros.values()) / sum(sizes.values()))


def test_unmatched_pattern_names_it_and_lists_the_layers(cache, tmp_path):
    with pytest.raises(ConfigError, match=r"'conv\*' matches no layer.*fc1, fc2, fc3"):
        _compress(cache, tmp_path, {"layers": {"fc1": {"quantizer": "fp16"}, "conv*": {"quantizer": "fp16"}}})


def test_bad_layer_entries_fail_at_construction():
    with pytest.raises(ConfigError, match=r"layers\['fc1'\].*width"):
        registry.create("task", "compress_model", layers={"fc1": {"quantizer": "fixed", "width": 99}})
    with pytest.raises(ConfigError, match=r"layers\['fc1'\].prune.sparsity"):
        registry.create("task", "compress_model", layers={"fc1": {"quantizer": "fp16", "prune": {"sparsity": 2}}})
    with pytest.raises(ConfigError, match="prune_scope is 'global'"):
        registry.create("task", "compress_model", prune_scope="global",
                        layers={"fc1": {"quantizer": "fp16", "prune": {"sparsity": 0.5}}})


def test_finetuning_repairs_a_damaged_model(cache, tmp_path):
    # 2-bit fixed point (values -1, -0.5, 0, 0.5) wrecks the net; four epochs of STE training recover it
    task = {"finetune_epochs": 4, "finetune_lr": 3e-3}
    _, _, results = _compress(cache, tmp_path, task, width=2, frac_width=1)
    t = results["totals"]
    assert t["metric_before_finetune"] < t["fp32_metric"] - 0.2
    assert t["metric"] > t["metric_before_finetune"] + 0.2
    assert [r["epoch"] for r in results["finetune"]] == [1, 2, 3, 4]


@pytest.mark.slow
def test_cli_run_into_mlflow(tmp_path):
    r = run_cli(["task=compress_model", "model.hidden=[16]", "model.epochs=5", "quantizer=fixed",
                 "quantizer.width=8", "quantizer.frac_width=6", "progress=false",
                 "+task.layers={fc1: {quantizer: mxint8}, fc2: null}"], tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads(next((tmp_path / "outputs" / "runs").glob("*/*/results.json")).read_text())
    assert results["status"] == "finished"
    assert [row["name"] for row in results["results"]["layers"]] == ["fc1"]
    import mlflow

    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("compframe").experiment_id])
    for name in ("metric", "accuracy", "fp32_metric", "metric_drop", "bits_per_weight", "model_bits",
                 "compressed_layers"):
        assert run.data.metrics[name] == pytest.approx(results["results"]["totals"][name])
    assert run.data.metrics["compressed_layers"] == 1
    assert run.data.tags["compframe.model"] == "mlp_digits" and run.data.tags["compframe.task"] == "compress_model"


def test_activations_are_quantized_on_the_way_in(cache, tmp_path):
    acts = {"fc2": {"quantizer": "fixed", "width": 6, "frac_width": 3}}
    parts, model, results = _compress(cache, tmp_path, {"activations": acts}, quantizer="bf16")
    assert results["activations"] == [{"name": "fc2", "quantizer": {"id": "fixed", "width": 6, "frac_width": 3,
                                                                   "saturating": True}}]
    seen = []
    model.fc2.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().numpy()))
    parts["model"].evaluate(model)
    x = np.concatenate(seen)
    assert np.array_equal(x * 8, np.round(x * 8)) and x.max() <= 31 / 8 and len(np.unique(x)) > 4


def test_a_format_that_refuses_a_layer_names_it(cache, tmp_path):
    layers = {"fc1": {"quantizer": "lplr", "prune": {"sparsity": 0.5}}}  # lplr needs a matrix, prune gives it 1-D survivors
    with pytest.raises(ValueError, match="layer 'fc1': quantizer 'prune' cannot represent its values"):
        _compress(cache, tmp_path, {"layers": layers})


def test_conv_kernels_are_compressed_as_fan_in_matrices(cache, tmp_path):
    parts = _parts(cache, {"layers": {"conv2": {"quantizer": "mxfp4"}}})
    parts["model"] = registry.create("model", "cnn_digits", channels=[4, 8], epochs=2, cache_dir=cache)
    recorder = Recorder(tmp_path / "results.json", "test", {})
    model = parts.pop("task").compressed_model(parts, recorder, progress=False)
    w = parts["model"].load().conv2.weight.detach().numpy()  # (8, 4, 3, 3): rows of 36 values
    expect = cf.decompress(cf.compress(w.reshape(8, 36), quantizer="mxfp4", encoder="zstd", bound=None))
    assert np.array_equal(model.conv2.weight.detach().numpy(), expect.reshape(w.shape))
    (row,) = recorder.results["layers"]
    assert row["shape"] == [8, 4, 3, 3] and row["bits_per_weight"] == pytest.approx(4 + 8 * 2 / 36)  # 2 blocks a row
