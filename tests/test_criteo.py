"""Click-log sources for task=train: the Criteo reader against an independent parse, and the
synthetic generator's planted model (power-law popularity, click rate, learnable signal)."""

from __future__ import annotations

import gzip
import itertools
import math
import os

import numpy as np
import pytest

from compframe import registry
from compframe.errors import ConfigError, DataError
from compframe.plugins.data import criteo

ROWS = [1000] * 13 + [7, 100000, 3, 50] * 3 + [65536]


def random_lines(rng: np.random.Generator, n: int) -> list[str]:
    """Criteo lines with missing fields, negatives, big counts and hex of 1..16 digits, either case."""
    lines = []
    for _ in range(n):
        dense = ["" if rng.random() < 0.2 else str(int(rng.integers(-3, 10 ** int(rng.integers(1, 10))))) for _ in range(13)]
        cats = []
        for _ in range(26):
            if rng.random() < 0.15:
                cats.append("")
                continue
            text = f"{int(rng.integers(0, 2 ** 63)):x}"[:int(rng.integers(1, 17))]
            cats.append(text.upper() if rng.random() < 0.3 else text)
        lines.append("\t".join([str(int(rng.integers(0, 2))), *dense, *cats]))
    return lines


def reference(lines: list[str], rows: list[int]):
    """The preprocessing written plainly, line by line (dlrm: log(1 + max(x, 0)), int(hex, 16) % rows)."""
    label, dense, cat = [], [], []
    for line in lines:
        cols = line.split("\t")
        label.append(float(cols[0]))
        dense.append([math.log1p(max(int(x), 0)) if x else 0.0 for x in cols[1:14]])
        cat.append([int(x, 16) % r if x else 0 for x, r in zip(cols[14:], rows)])
    return np.array(label, np.float32), np.array(dense, np.float32), np.array(cat, np.int64)


def collect(source, split: str, batch_size: int = 37, start: int = 0):
    batches = list(source.batches(split, batch_size, start))
    if not batches:
        return np.zeros(0, np.float32), np.zeros((0, 13), np.float32), np.zeros((0, 26), np.int64)
    for b in batches:
        assert all(np.array_equal(o, np.arange(len(b))) for o in b.offsets)
    return (np.concatenate([b.label for b in batches]), np.concatenate([b.dense for b in batches]),
            np.concatenate([np.stack(b.indices, 1) for b in batches]))


def write(path, lines: list[str], compress: bool = False, newline_at_end: bool = True):
    data = ("\n".join(lines) + ("\n" if newline_at_end else "")).encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@pytest.fixture
def small_blocks(monkeypatch):
    """Tiny read blocks and gzip steps, so a small file crosses many block boundaries."""
    monkeypatch.setattr(criteo, "BLOCK", 512)
    monkeypatch.setattr(criteo, "GZIP_STEP", 97)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("newline_at_end", [True, False])
def test_reader_matches_reference_and_split_covers(tmp_path, small_blocks, compress, newline_at_end):
    lines = random_lines(np.random.default_rng(1), 300)
    path = write(tmp_path / "train.bin", lines, compress, newline_at_end)  # gzip found by magic, not name
    src = registry.create("data", "criteo", path=str(path), rows=ROWS, test_fraction=0.3)
    src.validate()
    train, test = collect(src, "train"), collect(src, "test")
    assert 0 < len(train[0]) < len(lines) and len(train[0]) + len(test[0]) == len(lines)
    assert len(test[0]) == pytest.approx(0.3 * len(lines), abs=0.1 * len(lines))
    for got, want in zip([np.concatenate(p) for p in zip(train, test)], reference(lines, ROWS)):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    assert src.table_rows() == ROWS and src.n_dense() == 13


def test_split_by_files_natural_order(tmp_path, small_blocks):
    rng = np.random.default_rng(2)
    days = {n: random_lines(rng, 20) for n in (0, 1, 2, 10)}
    for n, lines in days.items():
        write(tmp_path / (f"day_{n}.gz" if n % 2 else f"day_{n}"), lines, compress=bool(n % 2))
    (tmp_path / "day_fea_count.npz").write_bytes(b"not criteo")  # dlrm's preprocessing output is ignored
    src = registry.create("data", "criteo", path=str(tmp_path), max_ind_range=1000, test_files=["day_10"])
    want = [reference(days[n], [1000] * 26) for n in (0, 1, 2)]
    for got, expect in zip(collect(src, "train", 7), zip(*want)):
        assert np.array_equal(got, np.concatenate(expect))
    assert np.array_equal(collect(src, "test")[2], reference(days[10], [1000] * 26)[2])
    # without test_files, the last bytes of the concatenation are the test set
    src = registry.create("data", "criteo", path=str(tmp_path), max_ind_range=1000, test_fraction=0.5)
    train, test = collect(src, "train"), collect(src, "test")
    assert len(train[0]) + len(test[0]) == 80 and len(test[0]) > 0
    assert np.array_equal(np.concatenate([train[2], test[2]]),
                          np.concatenate([reference(days[n], [1000] * 26)[2] for n in (0, 1, 2, 10)]))


def test_start_skips_whole_batches(tmp_path, small_blocks):
    for compress in (False, True):
        path = write(tmp_path / f"t{compress}", random_lines(np.random.default_rng(3), 200), compress)
        src = registry.create("data", "criteo", path=str(path), max_ind_range=500, test_fraction=0.25)
        for split in ("train", "test"):
            every = list(src.batches(split, 16))
            for start in (1, 3, len(every) - 1, len(every), len(every) + 2):
                later = list(src.batches(split, 16, start))
                assert len(later) == max(len(every) - start, 0)
                for a, b in zip(later, every[start:]):
                    assert np.array_equal(a.label, b.label) and np.array_equal(a.dense, b.dense)
                    assert all(np.array_equal(x, y) for x, y in zip(a.indices, b.indices))


@pytest.mark.parametrize("compress", [False, True])
def test_bad_lines_name_file_line_and_field(tmp_path, small_blocks, compress):
    lines = random_lines(np.random.default_rng(4), 120)
    cases = {
        57: (lines[57].rsplit("\t", 1)[0], r"line 58: has 39 tab-separated columns, a Criteo line has 40"),
        90: ("\t".join([*lines[90].split("\t")[:20], "12g4", *lines[90].split("\t")[21:]]),
             r"line 91: column 21 \(C7\) is '12g4', not a hexadecimal"),
        110: ("\t".join(["1", "3.5", *lines[110].split("\t")[2:]]), r"line 111: column 2 \(I1\) is '3.5', not an integer"),
        100: ("\t".join(["2", *lines[100].split("\t")[1:]]), r"line 101: column 1 \(label\) is '2', not 0 or 1"),
    }
    for index, (bad, message) in cases.items():
        path = write(tmp_path / f"bad{index}", [*lines[:index], bad, *lines[index + 1:]], compress)
        src = registry.create("data", "criteo", path=str(path), test_fraction=0.5)
        src.validate()
        with pytest.raises(DataError, match=f"file '{path}', {message}"):
            collect(src, "train")
            collect(src, "test")  # late lines sit in the test part, reached by seeking


def test_validate_and_parameters(tmp_path):
    with pytest.raises(DataError, match="path is empty"):
        registry.create("data", "criteo").validate()
    with pytest.raises(DataError, match="does not exist"):
        registry.create("data", "criteo", path=str(tmp_path / "nope")).validate()
    with pytest.raises(DataError, match="no file in .* matches files="):
        registry.create("data", "criteo", path=str(tmp_path)).validate()
    write(tmp_path / "test.txt", ["0\t1\t2"])  # Kaggle's unlabelled test file has 39 columns; here 3
    with pytest.raises(DataError, match="test.txt', line 1: has 3 tab-separated columns"):
        registry.create("data", "criteo", path=str(tmp_path / "test.txt")).validate()
    (tmp_path / "train.txt").write_bytes(b"")
    with pytest.raises(DataError, match="train.txt' holds no lines"):
        registry.create("data", "criteo", path=str(tmp_path)).validate()
    (tmp_path / "day_0.gz").write_bytes(gzip.compress(b"\t".join([b"1"] * 40) + b"\n")[:-12])
    with pytest.raises(DataError, match="day_0.gz' is truncated gzip"):
        registry.create("data", "criteo", path=str(tmp_path), files=["day_*"]).validate()
    outside = tmp_path / "outside"
    write(outside, random_lines(np.random.default_rng(5), 2))
    (tmp_path / "data").mkdir()
    os.symlink(outside, tmp_path / "data" / "day_1")
    with pytest.raises(DataError, match="links to .* outside data.path"):
        registry.create("data", "criteo", path=str(tmp_path / "data")).validate()
    for bad in (["../day_1"], ["/etc/passwd"], ["sub/day_1"]):
        with pytest.raises(DataError, match="parameter 'files'"):
            registry.create("data", "criteo", files=bad)
    with pytest.raises(ConfigError, match="parameter 'test_fraction'"):
        registry.create("data", "criteo", test_fraction=1.0)
    with pytest.raises(ConfigError, match="parameter 'rows'"):
        registry.create("data", "criteo", rows=[10] * 25)


# --- criteo_synthetic ---

def synthetic(**params):
    return registry.create("data", "criteo_synthetic", **params)


def test_synthetic_is_deterministic_and_batch_size_free():
    def raw(src, split, size, start=0, n=3):
        out = []
        for b, _ in zip(src.batches(split, size, start), range(n)):
            out += [b.dense.tobytes(), b.label.tobytes(), *(i.tobytes() for i in b.indices)]
        return b"".join(out)

    a, b, c = synthetic(seed=5, max_ind_range=1000), synthetic(seed=5, max_ind_range=1000), synthetic(seed=6, max_ind_range=1000)
    assert raw(a, "train", 1000) == raw(b, "train", 1000)
    assert raw(a, "train", 1000) != raw(c, "train", 1000)
    assert raw(a, "train", 1000) != raw(a, "test", 1000)
    # sample i does not depend on the batch size; start skips whole batches
    big = next(a.batches("train", 6000))
    small = list(itertools.islice(a.batches("train", 1500, start=2), 2))
    assert np.array_equal(big.dense[3000:6000], np.concatenate([s.dense for s in small]))
    assert np.array_equal(big.indices[7][3000:6000], np.concatenate([s.indices[7] for s in small]))
    sizes = [len(x) for x in synthetic(train_samples=10000).batches("train", 3000)]
    assert sizes == [3000, 3000, 3000, 1000]


def test_synthetic_popularity_follows_the_power_law():
    zipf = 1.3
    src = synthetic(zipf=zipf, rows=[100000] * 2, seed=1, train_samples=131072)
    ids = np.concatenate([b.indices[0] for b in src.batches("train", 32768)])
    counts = np.sort(np.bincount(ids, minlength=100000))[::-1]
    ranks = np.arange(2, 60)   # counts of at least a few hundred: sorting does not reorder them much
    slope = np.polyfit(np.log(ranks), np.log(counts[ranks - 1]), 1)[0]
    assert slope == pytest.approx(-zipf, abs=0.1)
    # the top ranks' shares: the power law's mass on [r, r + 1) of [1, n + 1)
    r = np.arange(1, 6)
    share = (r ** (1 - zipf) - (r + 1) ** (1 - zipf)) / (1 - 100001 ** (1 - zipf))
    assert counts[:5] / counts.sum() == pytest.approx(share, rel=0.05)


def test_synthetic_click_rate_and_shapes():
    for rate in (0.25, 0.05):
        src = synthetic(click_rate=rate, seed=2, max_ind_range=5000)
        p, y = src.probabilities("train", 32768)
        assert abs(y.mean() - rate) < 0.015 and abs(p.mean() - rate) < 0.01
    src = synthetic(multi_hot=3, rows=[10, 20000], max_ind_range=1000, train_samples=100)
    b = next(src.batches("train", 64))
    assert src.table_rows() == [10, 1000] and b.dense.shape == (64, 13) and b.dense.dtype == np.float32
    assert (b.dense >= 0).all() and set(np.unique(b.label)) <= {0.0, 1.0}
    for t, rows in enumerate(src.table_rows()):
        assert b.indices[t].dtype == np.int64 and len(b.indices[t]) == 3 * 64
        assert np.array_equal(b.offsets[t], np.arange(0, 192, 3)) and 0 <= b.indices[t].min() and b.indices[t].max() < rows


@pytest.mark.slow
def test_synthetic_signal_is_learnable_and_oracle_is_the_ceiling():
    """A one-hot logistic regression learns well above chance, and below the planted model's AUC."""
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    src = synthetic(max_ind_range=300, seed=3)
    rows = src.table_rows()
    base = np.cumsum([0, *rows[:-1]])

    def features(split, n):
        b = next(src.batches(split, n))
        cols = np.stack(b.indices, 1) + base
        onehot = sp.csr_matrix((np.ones(cols.size), cols.ravel(), np.arange(0, cols.size + 1, 26)), shape=(n, sum(rows)))
        return sp.hstack([onehot, sp.csr_matrix(b.dense)]).tocsr(), b.label

    x, y = features("train", 20000)
    xt, yt = features("test", 20000)
    auc = roc_auc_score(yt, LogisticRegression(C=0.3, max_iter=500).fit(x, y).predict_proba(xt)[:, 1])
    oracle = src.oracle_auc(20000)
    assert 0.65 < auc < oracle - 0.02, (auc, oracle)
    assert oracle > 0.75
