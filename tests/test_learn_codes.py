"""task=learn_codes: codes read back from frames, bits per sample from frame bytes, accuracy properties."""

from __future__ import annotations

import json

import numpy as np
import pytest

import compframe as cf
from compframe import codes_learning as cl
from compframe.errors import ConfigError, DataError
from compframe.job import Recorder


def test_features_onehot_histogram_ordinal():
    codes = np.array([[0, 2, 2], [1, 0, 2]], dtype=np.uint8)
    onehot = cl.features(codes, "onehot")
    assert onehot.shape == (2, 9) and (onehot.sum(axis=1) == 3).all()
    assert onehot[0].reshape(3, 3).argmax(axis=1).tolist() == [0, 2, 2]
    assert cl.features(codes, "histogram").tolist() == [[1, 0, 2], [1, 1, 1]]
    signed = np.array([[-2, 1], [0, -2]], dtype=np.int8)  # fixed-point codes start at their minimum
    assert cl.features(signed, "histogram").tolist() == [[1, 0, 0, 1], [1, 0, 1, 0]]
    assert (cl.features(codes, "ordinal") == codes).all()
    with pytest.raises(DataError, match="does not split into 5 samples"):
        cl.per_sample(np.zeros((4, 3)), 5, "W")


def test_patches_are_tiles_of_their_image():
    import skimage.data

    x, y, classes = cl.load("patches", ["brick", "moon"], 16)
    assert x.shape == (2 * 32 * 32, 16, 16) and classes == ["brick", "moon"]
    assert np.bincount(y).tolist() == [1024, 1024]
    assert np.array_equal(x[1024 + 33], skimage.data.moon()[16:32, 16:32] / np.float32(255))
    with pytest.raises(DataError, match="no image 'nosuch'"):
        cl.load("patches", ["nosuch"], 16)


def run_task(tmp_path, **config):
    task = cf.create("task", "learn_codes", **config)
    recorder = Recorder(tmp_path / "results.json", "learn_codes", {})
    task.run({"encoder": cf.create("encoder", "ans")}, recorder, progress=False)
    return recorder.results


def test_digits_codes_bits_and_accuracy(tmp_path):
    reps = [{"quantizer": {"id": "nq", "b0": 8}, "features": "ordinal"},
            {"quantizer": {"id": "vq", "bits": 2, "iterations": 20}, "features": "onehot"},
            {"quantizer": {"id": "lsvd", "rank": 8}, "features": "ordinal", "codes": "Z"}]
    res = run_task(tmp_path, representations=reps)
    x = cl.load("digits", [], 0)[0]
    n = len(x)
    rows = {r["label"]: r for r in res["representations"]}
    assert list(rows) == ["nq_b0-8_ordinal", "vq_bits2_iterations20_onehot", "lsvd_rank8_ordinal"]
    for r, spec in zip(rows.values(), reps):
        assert r["bits_per_sample"] == pytest.approx(8 * r["frame_bytes"] / n)
        samples = x.reshape(n * 8, 8) if spec["quantizer"]["id"] == "vq" else x.reshape(n, -1)
        frame = cf.compress(samples, quantizer=spec["quantizer"], encoder="ans", bound=None)
        assert len(frame) == r["frame_bytes"]  # the bytes counted are those of the real frame
    raw = res["raw"]["accuracy"]
    assert raw > 0.95 and res["raw"]["bits_per_sample"] == 64 * 32
    # at 8 bits (255 steps over [0, 1], error <= half a step) codes and decoded pixels classify as the raw ones
    top = rows["nq_b0-8_ordinal"]
    assert top["rmse"] <= 0.5 / 255 and abs(top["accuracy_codes"] - raw) <= 0.01 and abs(top["accuracy_decoded"] - raw) <= 0.01
    vq = rows["vq_bits2_iterations20_onehot"]
    assert vq["n_features"] == 16 * 4 and vq["bits_per_sample"] < 0.25 * top["bits_per_sample"]
    assert 0.6 < vq["accuracy_codes"] < raw + 0.01  # learns from 2-bit tile indices, above chance (0.1)
    lsvd = rows["lsvd_rank8_ordinal"]
    assert lsvd["n_features"] == 8 and lsvd["accuracy_codes"] > 0.8
    assert res["by_pipeline"]["lsvd_rank8_ordinal"]["accuracy_codes"] == lsvd["accuracy_codes"]
    assert (tmp_path / "accuracy_vs_bits.png").stat().st_size > 5000
    assert json.loads((tmp_path / "results.json").read_text())["results"]["totals"]["raw_accuracy"] == raw


@pytest.mark.parametrize("reps, message", [
    ([{"quantizer": "nq", "features": "pca"}], "features 'pca' is unknown"),
    ([{"quantizer": "int8"}], "error-bounded; give 'bound'"),
    ([{"quantizer": {"id": "vq", "bits": 40}}], "parameter 'bits' is 40"),
    ([{"quantizer": "nq", "colour": 1}], "unknown key(s) ['colour']"),
    ([{"quantizer": "nq"}, {"quantizer": "nq"}], "labels repeat"),
])
def test_bad_representations_fail_before_data(reps, message):
    with pytest.raises(ConfigError, match="representations") as e:
        cf.create("task", "learn_codes", representations=reps)
    assert message in str(e.value)


def test_unknown_code_array_names_the_representation_and_the_arrays(tmp_path):
    reps = [{"quantizer": {"id": "lsvd", "rank": 4}, "features": "ordinal", "codes": "nosuch"}]
    with pytest.raises(ConfigError, match=r"code array 'nosuch' is not in the frame; it holds \["):
        run_task(tmp_path, representations=reps)
