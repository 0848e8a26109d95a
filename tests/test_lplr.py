"""LPLR (Saha, Srivastava & Pilanci, NeurIPS 2023; pilancilab/matrix-compressor): the sketch options, power
iterations, and the paper's Shepp-Logan row (the repository's log: LPLR 0.240, DSVD 0.497, NQ 0.532)."""

from __future__ import annotations

import numpy as np
import pytest

from compframe import registry
from compframe.plugins.data.image import scaled, shepp_logan
from compframe.registry import ConfigError

# B0 = 1 bit per value, rank 83 at 1000 x 1000; the repository's committed rank-83 images use B1 = 4, B2 = 8
# (artifacts/images/shepp-logan-rank-83_b1-4_b2-8_b0-1), its notebook B1 = 8, B2 = 4
IMAGES = {"b1": 4, "b2": 8, "b0": 1, "normalize_and_shift": True}
NOTEBOOK = {"b1": 8, "b2": 4, "b0": 1, "normalize_and_shift": True}


def rel_error(pid: str, a: np.ndarray, **params) -> float:
    q = registry.create("quantizer", pid, **params)
    y = q.dequantize(q.quantize(a, None)).astype(np.float64)
    return float(np.linalg.norm(y - a) / np.linalg.norm(a))


def slow_spectrum(seed: int = 1, n: int = 240, d: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """An n x d matrix with singular values 1/sqrt(i): a random sketch misses much of its top subspace."""
    rng = np.random.default_rng(seed)
    u = np.linalg.qr(rng.standard_normal((n, d)))[0]
    v = np.linalg.qr(rng.standard_normal((d, d)))[0]
    sigma = 1.0 / np.sqrt(np.arange(1, d + 1))
    return (u * sigma) @ v.T, sigma


@pytest.mark.parametrize("params, param", [
    ({"sketch": "srht"}, "sketch"), ({"sketch": "sparse_jl", "sketch_nnz": 0}, "sketch_nnz"),
    ({"sketch_nnz": 2}, "sketch_nnz"), ({"power_iters": -1}, "power_iters"),
])
def test_bad_options_refused_before_data(params, param):
    with pytest.raises(ConfigError, match=param):
        registry.create("quantizer", "lplr", **params)


def test_sparse_jl_nnz_above_rank_refused():
    q = registry.create("quantizer", "lplr", rank=4, sketch="sparse_jl", sketch_nnz=5)
    with pytest.raises(ConfigError, match="sketch_nnz.*4 columns"):
        q.quantize(np.ones((20, 10)), None)


def test_sparse_jl_sketch_has_the_promised_sparsity():
    q = registry.create("quantizer", "lplr", sketch="sparse_jl", sketch_nnz=3, seed=5)
    s = q.sketch_matrix(400, 12)
    assert s.shape == (400, 12)
    assert ((s != 0).sum(axis=1) == 3).all()
    assert np.array_equal(np.unique(s[s != 0]), [-1 / np.sqrt(3), 1 / np.sqrt(3)])
    counts = (s != 0).sum(axis=0)  # columns drawn uniformly: 100 per column expected
    assert counts.sum() == 1200 and 60 < counts.min() and counts.max() < 140
    assert (s > 0).sum() == pytest.approx(600, abs=90)  # signs fair
    assert np.array_equal(s, q.sketch_matrix(400, 12))
    other = registry.create("quantizer", "lplr", sketch="sparse_jl", sketch_nnz=3, seed=6).sketch_matrix(400, 12)
    assert not np.array_equal(s, other)
    full = registry.create("quantizer", "lplr", sketch="sparse_jl", sketch_nnz=12).sketch_matrix(50, 12)
    assert np.array_equal(np.abs(full), np.full((50, 12), 1 / np.sqrt(12)))


def test_power_iterations_keep_the_range_of_plain_products():
    """Subspace iteration spans (A Aᵀ)^q A S, as the repository's unnormalized products do."""
    a, _ = slow_spectrum()
    q = registry.create("quantizer", "lplr", rank=12, power_iters=2, seed=3)
    plain = a @ (a.T @ (a @ (a.T @ (a @ q.sketch_matrix(a.shape[1], 12)))))
    basis = np.linalg.qr(q.factors(a, 12)[0])[0]
    assert np.linalg.norm(plain - basis @ (basis.T @ plain)) <= 1e-9 * np.linalg.norm(plain)


def test_power_iterations_reduce_error_toward_the_svd():
    """At 16 bits (rounding negligible) the mean error over seeds falls with q toward the rank-r SVD's.

    Measured: 0.826, 0.699, 0.681, 0.677 for q = 0..3 against the optimum 0.672.
    """
    a, sigma = slow_spectrum()
    r = 12
    best = np.sqrt((sigma[r:] ** 2).sum() / (sigma ** 2).sum())
    errors = np.array([[rel_error("lplr", a, b1=16, b2=16, rank=r, power_iters=q, seed=s) for s in range(4)]
                       for q in range(4)])
    means = errors.mean(axis=1)
    assert (np.diff(means) < 0).all(), means
    assert (errors[3] < errors[0]).all()
    assert best <= means[3] <= 1.02 * best and means[0] > 1.15 * best


def test_options_change_the_factors():
    a, _ = slow_spectrum()
    codes = {name: registry.create("quantizer", "lplr", rank=8, **params).quantize(a, None).codes["Z"]
             for name, params in {"gaussian": {}, "sparse_jl": {"sketch": "sparse_jl"},
                                  "power": {"power_iters": 1}}.items()}
    assert not np.array_equal(codes["gaussian"], codes["sparse_jl"])
    assert not np.array_equal(codes["gaussian"], codes["power"])


def test_phantom_ordering_small():
    """At 200x200 (rank 16) LPLR and LSVD beat NQ, but DSVD beats LPLR: the paper's full order needs more rank.

    From 500x500 (rank 41) on, LPLR < DSVD < NQ as in the paper at the notebook's B1 = 8, B2 = 4.
    """
    small = scaled(shepp_logan(200))
    assert rel_error("lplr", small, **NOTEBOOK) < rel_error("nq", small, b0=1)
    assert rel_error("lsvd", small, **NOTEBOOK) < rel_error("nq", small, b0=1)
    medium = scaled(shepp_logan(500))
    errors = [rel_error("lplr", medium, **NOTEBOOK), rel_error("dsvd", medium, **NOTEBOOK), rel_error("nq", medium, b0=1)]
    assert errors == sorted(errors)


def test_phantom_1000_at_the_repository_error():
    """The repository's log: LPLR 0.240 (one unseeded Gaussian sketch), NQ 0.532 (about 4 s: not marked slow).

    At the bits of its rank-83 images (B1 = 4, B2 = 8) the Gaussian sketch gives 0.247, 0.235, 0.226 for seeds
    0-2 (0.225-0.247 over seeds 0-19): their mean must be within 0.01 of 0.240 and at most 0.240; the sparse JL
    sketch with one nonzero per row reaches 0.206 (0.203-0.208 over seeds 0-4). The notebook's B1 = 8,
    B2 = 4 gives 0.27-0.40 over seeds 0-19, above the log for every seed. DSVD (deterministic) 0.480 at the
    notebook's bits: the repository's 0.497 is not reproduced by either split (see docs/benchmarks.md).
    """
    a = scaled(shepp_logan(1000))
    gaussian = np.mean([rel_error("lplr", a, **IMAGES, seed=s) for s in range(3)])
    assert 0.230 <= gaussian <= 0.240
    assert rel_error("lplr", a, **IMAGES, sketch="sparse_jl") <= 0.215
    assert rel_error("lplr", a, **NOTEBOOK) > 0.26
    assert rel_error("nq", a, b0=1) == pytest.approx(0.532, abs=0.005)
    assert rel_error("dsvd", a, **NOTEBOOK) == pytest.approx(0.480, abs=0.02)
