"""Data sources: the synthetic generator, dumped embedding lookups (emb_dump) and .npy/.npz files."""

import time

import numpy as np
import pytest

from compframe.base import DataError
from compframe.plugins.data.synthetic import TERABYTE_ROWS
from compframe.registry import ConfigError, create

SMALL = dict(tables=3, iterations=2, batch=64, dim=8, max_rows=5000)


def test_registered():
    """Each built-in source is registered under its id, as a DataSource of kind 'data'."""
    from compframe.base import DataSource
    from compframe.registry import plugin_class

    for pid in ("synthetic", "emb_dump", "npy", "image", "model"):
        cls = plugin_class("data", pid)
        assert issubclass(cls, DataSource) and (cls.kind, cls.plugin_id) == ("data", pid)
        assert create("data", pid).get_config()["id"] == pid


# --- synthetic -------------------------------------------------------------------------------------

def test_synthetic_deterministic():
    a = [f.data.tobytes() for f in create("data", "synthetic", seed=7, **SMALL).fields()]
    b = [f.data.tobytes() for f in create("data", "synthetic", seed=7, **SMALL).fields()]
    c = [f.data.tobytes() for f in create("data", "synthetic", seed=8, **SMALL).fields()]
    assert a == b
    assert all(x != y for x, y in zip(a, c))


def test_synthetic_tables_independent_of_count():
    """Table t is generated from (seed, t) alone: fewer tables give the same leading fields."""
    few = [f.data for f in create("data", "synthetic", **{**SMALL, "tables": 1}).fields()]
    many = [f.data for f in create("data", "synthetic", **SMALL).fields()]
    for x, y in zip(few, many):
        assert np.array_equal(x, y)


def test_synthetic_shapes_and_coordinates():
    src = create("data", "synthetic", dump_interval=100, **SMALL)
    fields = list(src.fields())
    assert src.count() == len(fields) == 6
    assert [(f.table, f.iteration) for f in fields] == [(t, k * 100) for t in range(3) for k in range(2)]
    assert [f.name for f in fields[:2]] == ["EMB_0_iter_0", "EMB_0_iter_1"]
    for f in fields:
        assert f.data.shape == (64, 8) and f.data.dtype == np.float32 and f.layer is None
        assert np.isfinite(f.data).all()


def test_synthetic_init_range_and_drift():
    """One fixed-size bag of 1 row per sample shows the table itself: |w| <= sqrt(1/n) before any drift."""
    n = 20000
    src = create("data", "synthetic", tables=1, iterations=1, batch=4096, dim=4, rows=[n],
                 bag_size=1, bag_size_fixed=True)
    first = next(src.fields()).data
    assert np.abs(first).max() <= np.sqrt(1 / n) * (1 + 1e-6)
    assert np.abs(first).max() > 0.9 * np.sqrt(1 / n)
    moved = create("data", "synthetic", tables=1, iterations=2, batch=4096, dim=4, rows=[n],
                   bag_size=1, bag_size_fixed=True, drift=0.5)
    assert np.abs(list(moved.fields())[1].data).max() > np.sqrt(1 / n) * 1.05


def test_synthetic_bag_sums():
    """Fixed bags of 4 rows: the pooled values spread about twice as wide as single rows."""
    one = create("data", "synthetic", tables=1, iterations=1, batch=4096, dim=16, rows=[10**6],
                 bag_size=1, bag_size_fixed=True)
    four = create("data", "synthetic", tables=1, iterations=1, batch=4096, dim=16, rows=[10**6],
                  bag_size=4, bag_size_fixed=True, zipf=0.01)
    s1 = next(one.fields()).data.std()
    s4 = next(four.fields()).data.std()
    assert 1.7 < s4 / s1 < 2.3


def test_synthetic_power_law():
    """With single-row bags each output row is a table row: the hottest row dwarfs the median one."""
    src = create("data", "synthetic", tables=1, iterations=1, batch=8192, dim=4, rows=[1000],
                 bag_size=1, bag_size_fixed=True)
    data = next(src.fields()).data
    _, counts = np.unique(data, axis=0, return_counts=True)
    counts = np.sort(counts)[::-1]
    assert counts[0] > 20 * np.median(counts)
    flat = create("data", "synthetic", tables=1, iterations=1, batch=8192, dim=4, rows=[1000],
                  bag_size=1, bag_size_fixed=True, zipf=0.001)
    _, flat_counts = np.unique(next(flat.fields()).data, axis=0, return_counts=True)
    assert flat_counts.max() < 4 * np.median(flat_counts)


def test_synthetic_rows_default_and_cycle():
    src = create("data", "synthetic", tables=30)
    assert [src.rows_of(t) for t in range(26)] == TERABYTE_ROWS
    assert src.rows_of(27) == TERABYTE_ROWS[1]
    assert create("data", "synthetic", rows=[5, 7]).rows_of(3) == 7


def test_synthetic_default_is_fast():
    src = create("data", "synthetic")
    start = time.perf_counter()
    total = sum(f.data.nbytes for f in src.fields())
    elapsed = time.perf_counter() - start
    assert total == 26 * 3 * 2048 * 64 * 4
    assert elapsed < 4.0  # about 0.6 s on one core; generous for loaded CI machines


@pytest.mark.parametrize("param, value", [
    ("tables", 0), ("iterations", 0), ("batch", -1), ("dim", 0), ("max_rows", 0), ("bag_size", 0),
    ("zipf", 0.0), ("zipf", -1.0), ("dump_interval", 0), ("drift", -0.1), ("seed", -1), ("rows", [10, 0]),
])
def test_synthetic_bad_params(param, value):
    with pytest.raises(ConfigError, match=f"parameter '{param}'"):
        create("data", "synthetic", **{param: value})


# --- emb_dump --------------------------------------------------------------------------------------

def write_dumps(folder, tables=(0, 1, 3), dumps=3, shape=(16, 4), seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for t in tables:
        for k in range(dumps):
            a = rng.standard_normal(shape).astype(np.float32)
            a.tofile(folder / f"EMB_{t}_iter_{k}.bin")
            arrays[t, k] = a
    return arrays


def test_emb_dump_round_trip(tmp_path):
    arrays = write_dumps(tmp_path)
    (tmp_path / "notes.txt").write_text("ignored")
    src = create("data", "emb_dump", path=str(tmp_path), shape=[16, 4], dump_interval=4096)
    src.validate()
    fields = list(src.fields())
    assert src.count() == len(fields) == 9
    assert [(f.table, f.iteration // 4096) for f in fields] == sorted(arrays)
    for f in fields:
        assert f.name == f"EMB_{f.table}_iter_{f.iteration // 4096}"
        assert f.data.dtype == np.float32 and f.data.shape == (16, 4)
        assert np.array_equal(f.data, arrays[f.table, f.iteration // 4096])


def test_emb_dump_sorted_numerically(tmp_path):
    write_dumps(tmp_path, tables=(2, 10), dumps=12, shape=(2, 2))
    fields = list(create("data", "emb_dump", path=str(tmp_path), shape=[2, 2], dump_interval=1).fields())
    assert [(f.table, f.iteration) for f in fields] == [(t, k) for t in (2, 10) for k in range(12)]


def test_emb_dump_padding_and_tables(tmp_path):
    arrays = write_dumps(tmp_path)
    src = create("data", "emb_dump", path=str(tmp_path), shape=[16, 4], pad_copies=3, tables=[3])
    fields = list(src.fields())
    assert [f.table for f in fields] == [3, 3, 3]
    for f in fields:
        original = arrays[3, f.iteration // 4096]
        assert f.data.shape == (48, 4)
        assert np.array_equal(f.data, np.concatenate([original] * 3))
        assert f.data.tobytes() == original.tobytes() * 3


def test_emb_dump_missing_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="nowhere"):
        create("data", "emb_dump", path=str(missing)).validate()
    with pytest.raises(DataError, match="path is empty"):
        create("data", "emb_dump").validate()
    (tmp_path / "dump.bin").write_bytes(b"")
    with pytest.raises(DataError, match="dump.bin' is not a folder"):
        create("data", "emb_dump", path=str(tmp_path / "dump.bin")).validate()


def test_emb_dump_no_files(tmp_path):
    (tmp_path / "other.bin").write_bytes(b"\0" * 16)
    with pytest.raises(DataError, match=r"EMB_\*_iter_\*\.bin") as info:
        create("data", "emb_dump", path=str(tmp_path)).validate()
    assert str(tmp_path) in str(info.value)


def test_emb_dump_wrong_size(tmp_path):
    write_dumps(tmp_path, tables=(0,), dumps=2, shape=(16, 4))
    (tmp_path / "EMB_0_iter_1.bin").write_bytes(b"\0" * 100)
    with pytest.raises(DataError, match="EMB_0_iter_1.bin") as info:
        create("data", "emb_dump", path=str(tmp_path), shape=[16, 4]).validate()
    message = str(info.value)
    assert "100" in message and "256" in message and "[16, 4]" in message


def test_emb_dump_bad_name(tmp_path):
    write_dumps(tmp_path, tables=(0,), dumps=1, shape=(2, 2))
    (tmp_path / "EMB_x_iter_1.bin").write_bytes(b"\0" * 16)
    with pytest.raises(DataError, match="EMB_x_iter_1.bin"):
        create("data", "emb_dump", path=str(tmp_path), shape=[2, 2]).validate()


def test_emb_dump_missing_table(tmp_path):
    write_dumps(tmp_path, tables=(0,), dumps=1, shape=(2, 2))
    with pytest.raises(DataError, match=r"tables \[5\]"):
        create("data", "emb_dump", path=str(tmp_path), shape=[2, 2], tables=[0, 5]).validate()


def test_emb_dump_validates_before_reading(tmp_path, monkeypatch):
    write_dumps(tmp_path, tables=(0,), dumps=1, shape=(2, 2))
    (tmp_path / "EMB_1_iter_0.bin").write_bytes(b"\0" * 3)
    monkeypatch.setattr(np, "fromfile", lambda *a, **k: pytest.fail("data read before validation"))
    with pytest.raises(DataError, match="EMB_1_iter_0.bin"):
        next(create("data", "emb_dump", path=str(tmp_path), shape=[2, 2]).fields())


@pytest.mark.parametrize("param, value", [
    ("shape", []), ("shape", [16, 0]), ("pad_copies", 0), ("dump_interval", 0), ("tables", [-1]), ("pattern", ""),
])
def test_emb_dump_bad_params(param, value):
    with pytest.raises(ConfigError, match=f"parameter '{param}'"):
        create("data", "emb_dump", **{param: value})


# --- npy -------------------------------------------------------------------------------------------

def test_npy_file_and_mmap(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "weights.npy", a)
    for mmap in (True, False):
        src = create("data", "npy", path=str(tmp_path / "weights.npy"), mmap=mmap)
        src.validate()
        (f,) = list(src.fields())
        assert src.count() == 1
        assert f.name == "weights" and f.table is None and f.iteration is None and f.layer is None
        assert np.array_equal(f.data, a) and f.data.dtype == np.float32
        assert isinstance(f.data, np.memmap) == mmap


def test_npy_folder_and_npz(tmp_path):
    x = np.linspace(0, 1, 10)
    y = np.ones((2, 3), dtype=np.float16)
    np.save(tmp_path / "b.npy", x)
    np.savez(tmp_path / "a.npz", fc1=y, fc2=y * 2)
    (tmp_path / "readme.txt").write_text("ignored")
    sub = tmp_path / "nested"
    sub.mkdir()
    np.save(sub / "c.npy", x)
    fields = list(create("data", "npy", path=str(tmp_path)).fields())
    assert [f.name for f in fields] == ["a/fc1", "a/fc2", "b"]
    assert [f.layer for f in fields] == ["fc1", "fc2", None]
    assert np.array_equal(fields[1].data, y * 2) and fields[1].data.dtype == np.float16
    assert np.array_equal(fields[2].data, x)


@pytest.mark.parametrize("bad", [np.arange(4), np.ones(3, dtype=bool), np.array([1, None], dtype=object),
                                 np.ones(2, dtype=np.complex64)])
def test_npy_non_float(tmp_path, bad):
    np.save(tmp_path / "labels.npy", bad, allow_pickle=True)
    with pytest.raises(DataError, match="labels.npy"):
        create("data", "npy", path=str(tmp_path)).validate()


def test_npy_validates_from_headers(tmp_path, monkeypatch):
    np.save(tmp_path / "a.npy", np.ones(4))
    np.savez(tmp_path / "b.npz", ids=np.arange(4))
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("data read before validation"))
    with pytest.raises(DataError, match="b.npz"):
        create("data", "npy", path=str(tmp_path)).validate()


def test_npz_non_float_member(tmp_path):
    np.savez(tmp_path / "model.npz", weight=np.ones(3, dtype=np.float32), index=np.arange(3))
    with pytest.raises(DataError, match="model.npz") as info:
        create("data", "npy", path=str(tmp_path / "model.npz")).validate()
    assert "index" in str(info.value)


def test_npy_errors(tmp_path):
    with pytest.raises(DataError, match="nothing.npy"):
        create("data", "npy", path=str(tmp_path / "nothing.npy")).validate()
    with pytest.raises(DataError, match="no .npy or .npz"):
        create("data", "npy", path=str(tmp_path)).validate()
    (tmp_path / "table.csv").write_text("1,2")
    with pytest.raises(DataError, match="table.csv"):
        create("data", "npy", path=str(tmp_path / "table.csv")).validate()
    (tmp_path / "broken.npy").write_bytes(b"not an array")
    with pytest.raises(DataError, match="broken.npy"):
        create("data", "npy", path=str(tmp_path)).validate()
    (tmp_path / "broken.npy").unlink()
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="broken.npz"):
        create("data", "npy", path=str(tmp_path)).validate()
    with pytest.raises(DataError, match="path is empty"):
        create("data", "npy").validate()
