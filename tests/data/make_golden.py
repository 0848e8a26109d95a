"""Write the golden frames of tests/test_container.py (run once per format version, then commit).

    python tests/data/make_golden.py            # all of them (a new format version)
    python tests/data/make_golden.py options    # only golden_options_* (added with format version 1)
    python tests/data/make_golden.py classes    # only the context=classes streams (stream mode 5)
    python tests/data/make_golden.py lanes      # only ans's lane-mode streams (lanes 16, 64)
    python tests/data/make_golden.py rows       # only ans's row-order column tables (stream modes 6, 7)
    python tests/data/make_golden.py chain      # only the chain encoder's streams (golden_chain_*)
    python tests/data/make_golden.py interp_chain   # only golden_interp_chain*.cfrm (interp + chain frames)

Each golden frame comes with the decoded array (.npy) and the plugin configs (.json); the test
checks that today's compframe still decodes the frame to exactly that array. The golden streams
(``golden_stream_*``) do the same for the formats of compframe's own encoders, one per mode, and
``golden_options_*`` (tests/test_frame_safety.py) for headers that record run-time options
(``device=cuda``, levels, threads).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import compframe as cf
from compframe import container
from compframe.plugins.encoders.chain import stage_library

HERE = Path(__file__).parent


def main() -> None:
    rng = np.random.default_rng(2024)
    x = rng.standard_normal((32, 16)).astype(np.float32)
    x[3, 3], x[4, 4] = np.nan, np.inf
    cases = {
        "int8_lz4": (x, "int8", "lz4", "rel:1e-2"),
        "int16_zstd": (x.astype(np.float64), "int16", "zstd", "abs:1e-3"),
        "int8_none": (x[:5], "int8", "none", "rel:1e-3"),
    }
    for name, (data, q, e, b) in cases.items():
        frame = cf.compress(data, quantizer=q, encoder=e, bound=b)
        (HERE / f"golden_{name}.cfrm").write_bytes(frame)
        np.save(HERE / f"golden_{name}.npy", cf.decompress(frame))
        header = container.loads(frame).header
        (HERE / f"golden_{name}.json").write_text(json.dumps({"quantizer": header["quantizer"],
                                                              "encoder": header["encoder"]}, indent=1))
    write_streams(np.random.default_rng(2025))
    write_class_streams(np.random.default_rng(2027))
    write_lane_streams(np.random.default_rng(2028))
    write_row_streams(np.random.default_rng(2030))
    write_chain_streams(np.random.default_rng(2029))
    write_option_frames()
    write_interp_chain_frames()


def with_encoder_header(frame: bytes, encoder: dict, options: dict | None) -> bytes:
    """``frame`` with its header's ``encoder`` (and ``encoder_options``, dropped if None) replaced:
    the header an encoder configured that way writes, for the same streams."""
    f = container.loads(frame)
    header = {k: v for k, v in f.header.items() if k not in ("sections", "encoder", "encoder_options")}
    header["encoder"] = encoder
    if options is not None:
        header["encoder_options"] = options
    codes = {name: bytes(stream) for name, stream in f.code_streams().items()}
    return container.dumps(header, codes, f.side_arrays())


def write_option_frames() -> None:
    """Frames whose header records run-time options a CPU-only machine cannot use or need not honour:
    ``golden_options_*``. ``old_*`` keep the whole encoder config in ``encoder`` (the layout before
    format parameters and options were separated, as a ``device=cuda`` encoder wrote it); ``new_*``
    put the options under ``encoder_options``. The streams are the same on either device."""
    x = np.random.default_rng(2026).standard_normal((32, 16)).astype(np.float32)
    x[3, 3], x[4, 4] = np.nan, 9.0
    cases = {
        "old_huffman_cuda": ("int8", {"id": "huffman", "chunk": 64, "device": "cuda"}, "rel:1e-2", True),
        "old_ans_cuda": ("int16", {"id": "ans", "chunk": 64, "context": "column", "device": "cuda"}, "abs:1e-3", True),
        "old_gpulz_cuda": ("mxint8", {"id": "gpulz", "chunk": 64, "device": "cuda"}, None, True),
        "old_zstd_level_threads": ("bf16", {"id": "zstd", "level": 19, "threads": 8}, None, True),
        "new_huffman_cuda": ("int8", {"id": "huffman", "chunk": 64, "device": "cuda"}, "rel:1e-2", False),
        "new_lz4_hc_threads": ("int8", {"id": "lz4", "mode": "high_compression", "threads": 16}, "rel:1e-3", False),
    }
    for name, (q, encoder, b, old) in cases.items():
        device = encoder.get("device", "cpu")
        built = cf.create("encoder", encoder["id"], **{k: v for k, v in encoder.items() if k not in ("id", "device")})
        frame = cf.compress(x, quantizer=q, encoder=built, bound=b)
        if old:
            frame = with_encoder_header(frame, {**built.get_config(), "device": device}, None)
        else:
            options = {k: v for k, v in built.get_config().items() if k != "id" and k not in built.format_params}
            frame = with_encoder_header(frame, built.format_config(), {**options, "device": device})  # all options
        (HERE / f"golden_options_{name}.cfrm").write_bytes(frame)
        np.save(HERE / f"golden_options_{name}.npy", cf.decompress(frame))
        header = container.loads(frame).header
        (HERE / f"golden_options_{name}.json").write_text(json.dumps({"quantizer": header["quantizer"],
                                                                      "encoder": header["encoder"]}, indent=1))


def write_streams(rng) -> None:
    """Encoder streams of compframe's own formats (huffman, ans, gpulz) in each of their modes:
    ``golden_stream_<name>.bin`` with the codes it holds (``.npy``) and the encoder config (``.json``)."""
    drift = np.rint(rng.laplace(0, 1, 2100) * np.repeat([1.0, 30.0], 1050)).clip(-127, 127).astype(np.int8)
    pool = rng.integers(-200, 200, (5, 8)).astype(np.int16)
    cases = {
        "huffman_one_table": ("huffman", {"chunk": 64}, np.rint(rng.laplace(0, 4, 700)).astype(np.int8)),
        "huffman_columns": ("huffman", {"chunk": 64, "context": "column"},
                            (rng.laplace(0, 1, (400, 3)) * [0.3, 20, 300] + [0, 500, -900]).round().astype(np.int16)),
        "huffman_blocks": ("huffman", {"chunk": 64, "block": 1024}, drift),
        "huffman_dedup": ("huffman", {"chunk": 64}, pool[rng.integers(0, 5, 40)]),
        "ans_one_table": ("ans", {"chunk": 64}, rng.geometric(0.1, 700).astype(np.uint16)),
        "ans_columns": ("ans", {"chunk": 64, "context": "column", "precision": 12},
                        (rng.laplace(0, 1, (400, 3)) * [0.3, 3, 10] + [0, 60, -60]).round().astype(np.int8)),
        "ans_blocks": ("ans", {"chunk": 64, "block": 1024, "precision": 12}, drift),
        "ans_dedup": ("ans", {"chunk": 64}, pool[rng.integers(0, 5, 40)]),
        "ans_constant": ("ans", {}, np.full(33, 7, np.uint8)),
        "gpulz_s2": ("gpulz", {"chunk": 64}, np.repeat(rng.integers(-9, 9, 100), 3).astype(np.int16)),
        "gpulz_s1": ("gpulz", {"chunk": 64, "symbol_bytes": 1, "window": 8}, rng.integers(0, 4, 500).astype(np.uint8)),
        "gpulz_s4": ("gpulz", {"chunk": 64, "symbol_bytes": 4}, np.repeat(rng.integers(0, 3, 90), 4).astype(np.uint16)),
    }
    save_streams(cases)


def write_class_streams(rng) -> None:
    """The streams of ``context=classes`` (mode 5, added after the others): 16 columns of two spreads."""
    spreads = np.tile([0.5, 12.0], 8)
    cases = {
        "huffman_classes": ("huffman", {"chunk": 64, "context": "classes"},
                            (rng.laplace(0, 1, (300, 16)) * spreads * 20).round().astype(np.int16)),
        "ans_classes": ("ans", {"chunk": 64, "context": "classes", "precision": 12, "lanes": 2},
                        (rng.laplace(0, 1, (300, 16)) * spreads).round().astype(np.int8)),
    }
    save_streams(cases)


def write_lane_streams(rng) -> None:
    """The streams of ``ans``'s lane mode (the ``lanes`` option, added after the others): one table
    and a table per block; chunks long enough for the vector decoder's runs, with tails shorter
    than a group. ``golden_stream_ans_lanes32_columns`` (a table per column, mode 2, 64-bit decoding
    entries) was written here too, until ``ans`` wrote such fields in mode 6 (``write_row_streams``):
    it is kept as written, a stream today's encoder no longer makes but must still decode."""
    drift = np.rint(rng.laplace(0, 1, 2100) * np.repeat([1.0, 30.0], 1050)).clip(-127, 127).astype(np.int8)
    lanes16 = np.rint(rng.laplace(0, 4, 1503)).astype(np.int8)
    rng.laplace(0, 1, (700, 3))  # the columns case's draws: the next case's codes stay those committed
    cases = {
        "ans_lanes16": ("ans", {"chunk": 500, "lanes": 16}, lanes16),
        "ans_lanes64_blocks": ("ans", {"chunk": 256, "lanes": 64, "block": 1024, "precision": 12}, drift),
    }
    save_streams(cases)


def write_row_streams(rng) -> None:
    """``ans``'s modes 6 and 7 (codes in rows, each with its column's table): class tables of int8
    codes (32-bit decoding entries) whose column count does not divide a group, a table per column of
    int16 codes (64-bit entries) with 16 lanes, and class tables per block (mode 7, ``auto``) of
    int8 codes whose rows drift; chunks that end mid-row, tails shorter than a group."""
    classes = np.rint(rng.laplace(0, 1, (600, 11)) * np.tile([0.5, 2.0, 9.0, 40.0], 3)[:11]).clip(-127, 127)
    columns = (rng.laplace(0, 1, (700, 3)) * [0.3, 20, 300] + [0, 500, -900]).round()
    drift = np.rint(rng.laplace(0, 1, (1000, 8)) * np.tile([0.5, 6.0], 4) * np.repeat([1.0, 4.0], 500)[:, None])
    cases = {
        "ans_rows_classes": ("ans", {"chunk": 1000, "lanes": 32, "context": "classes"}, classes.astype(np.int8)),
        "ans_rows_columns": ("ans", {"chunk": 300, "lanes": 16, "context": "column", "precision": 12},
                             columns.astype(np.int16)),
        "ans_rows_blocks": ("ans", {"chunk": 256, "lanes": 16, "block": 4096}, drift.clip(-127, 127).astype(np.int8)),
    }
    save_streams(cases)


def write_chain_streams(rng) -> None:
    """Streams of the ``chain`` encoder (tests/test_encoder_chain.py): ``golden_chain_<name>.bin``,
    ``.npy`` and ``.json`` as for ``golden_stream_*``; run-heavy int16 codes through huffman then
    zstd (the default), and int8 codes through three stages."""
    runs = np.where(rng.random((60, 40)) < 0.9, 0, np.rint(rng.laplace(0, 3, (60, 40)))).astype(np.int16)
    cases = {
        "huffman_zstd": ("chain", {"stages": [{"id": "huffman", "chunk": 256}, {"id": "zstd", "level": 3}]}, runs),
        "ans_huffman_lz4": ("chain", {"stages": [{"id": "ans", "chunk": 64}, {"id": "huffman", "chunk": 64},
                                                 {"id": "lz4"}]},
                            np.rint(rng.laplace(0, 2, 900)).astype(np.int8)),
    }
    save_streams(cases, "golden_chain")
    for name, (_, params, _) in cases.items():  # the last stage's library: its bytes are pinned at that version
        path = HERE / f"golden_chain_{name}.json"
        meta = json.loads(path.read_text())
        meta["last_stage_library"] = stage_library(params["stages"][-1]["id"])
        path.write_text(json.dumps(meta, indent=1))


def write_interp_chain_frames() -> None:
    """``interp`` + ``chain`` (the defaults) on a smooth field with a NaN: ``golden_interp_chain`` as this
    compframe writes it, and ``golden_interp_chain_b7dd09d`` with the header b7dd09d wrote for the same
    streams (``interp``'s tune settings in the quantizer config, ``device`` in the chain's options)."""
    t = np.linspace(0, 3, 48)
    x = (np.sin(t)[:, None] * np.cos(2 * t[:40])[None, :] + 0.1 * t[:, None]).astype(np.float32)
    x[7, 9] = np.nan
    frame = cf.compress(x, quantizer="interp", encoder="chain", bound="rel:1e-3")
    f = container.loads(frame)
    header = {k: v for k, v in f.header.items() if k != "sections"}
    old = {**header, "quantizer": cf.create("quantizer", "interp").get_config(),
           "encoder_options": {"device": "cpu", "stage_options": [{**o, "device": "cpu"}
                                                                  for o in header["encoder_options"]["stage_options"]]}}
    codes = {name: bytes(stream) for name, stream in f.code_streams().items()}
    for name, h in (("interp_chain", header), ("interp_chain_b7dd09d", old)):
        frame = container.dumps(h, codes, f.side_arrays())
        (HERE / f"golden_{name}.cfrm").write_bytes(frame)
        np.save(HERE / f"golden_{name}.npy", cf.decompress(frame))
        (HERE / f"golden_{name}.json").write_text(json.dumps({"quantizer": h["quantizer"], "encoder": h["encoder"]},
                                                            indent=1))


def save_streams(cases, prefix: str = "golden_stream") -> None:
    for name, (pid, params, codes) in cases.items():
        stream = cf.create("encoder", pid, **params).encode(codes)
        (HERE / f"{prefix}_{name}.bin").write_bytes(stream)
        np.save(HERE / f"{prefix}_{name}.npy", codes)
        (HERE / f"{prefix}_{name}.json").write_text(json.dumps({"encoder": pid, "params": params}, indent=1))


if __name__ == "__main__":
    if sys.argv[1:] == ["options"]:
        write_option_frames()
    elif sys.argv[1:] == ["classes"]:
        write_class_streams(np.random.default_rng(2027))
    elif sys.argv[1:] == ["lanes"]:
        write_lane_streams(np.random.default_rng(2028))
    elif sys.argv[1:] == ["rows"]:
        write_row_streams(np.random.default_rng(2030))
    elif sys.argv[1:] == ["chain"]:
        write_chain_streams(np.random.default_rng(2029))
    elif sys.argv[1:] == ["interp_chain"]:
        write_interp_chain_frames()
    else:
        main()
