"""Stress the float32 fast path's margin (``kernels.uniform.fast_params``) where it decides.

    python bench/stress_uniform_margin.py --seed 0 --trials 300             # expect: no wrong code
    python bench/stress_uniform_margin.py --seed 0 --trials 300 --scale 0.5 # half the margin: wrong codes

Each trial draws a plan (int8 or int16 codes, a reach of up to ±32 766 codes, a step from 1e-30 to
1e10, a centre 0 to 1e6 steps off) and 32 768 float32 values whose code estimate lies within about
4e-3 of ``θ`` from an integer (the band where the margin decides), moved by up to 6 ulps. The fast
path's codes (``quantize_fast_into``) must equal the per-element float64 kernels' (``quantize_into`` +
``repair``) and rebuild within the bound. ``--scale`` multiplies the margin ``1/2 − θ`` (below 1 it
is a negative control: the check must then find wrong codes). Too slow for CI (about a minute per
300 trials); the result is recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.append(str(Path(__file__).resolve().parents[1]))  # last: PYTHONPATH=<another tree> selects the code

from compframe.kernels import uniform as K  # noqa: E402

N = 1 << 15


def trial(rng: np.random.Generator, scale: float) -> tuple[int, str | None]:
    """Values checked (0 if the drawn plan has no fast path) and the first disagreement, if any."""
    lo, hi = (-128.0, 127.0) if rng.random() < 0.3 else (-32768.0, 32767.0)
    reach = int(rng.integers(2, hi - 1))
    step = float(10.0 ** rng.uniform(-30, 10))
    off = float(rng.choice([0.0, rng.uniform(0, 3), rng.uniform(0, 100), 10 ** rng.uniform(0, 6)]))
    centre = float(np.float32(off * step * rng.choice([-1, 1])))
    if not abs(centre) + step * reach < 3e38:
        return 0, None
    eb = step / 2
    fast = K.fast_params(centre, step, eb, reach * step, lo, hi)
    if fast is None:
        return 0, None
    fast = (*fast[:2], np.float32(0.5 - (0.5 - float(fast[2])) * scale), *fast[3:])
    q = rng.integers(-reach, reach + 1, N).astype(np.float64)
    band = float(fast[2]) + rng.uniform(-4e-3, 4e-3, N) * rng.choice([1, 1e-2, 1e-4], N)
    x = (centre + (q + band * rng.choice([-1, 1], N)) * step).astype(np.float32)
    moves = rng.integers(-6, 7, N)
    for _ in range(6):
        for sign in (1, -1):
            m = moves * sign > 0
            x[m] = np.nextafter(x[m], np.float32(sign * np.inf))
            moves[m] -= sign
    dtype = np.int16 if hi > 127 else np.int8
    codes, ref = np.empty(N, dtype), np.empty(N, dtype)
    K.quantize_fast_into(x, codes, fast, centre, step, eb, lo, hi)
    counts = K.quantize_into(x, ref, centre, step, eb, lo, hi)
    if counts.any():
        K.repair(x, ref, centre, step, eb, lo, hi, counts)
    kept = codes != 0
    err = np.abs(x[kept].astype(np.float64) - (centre + codes[kept] * step).astype(np.float32).astype(np.float64))
    if not np.array_equal(codes, ref) or not (err <= eb).all():
        i = int(np.flatnonzero(codes != ref)[0]) if not np.array_equal(codes, ref) else int(np.argmax(err))
        return N, f"centre {centre!r} step {step!r} reach {reach}: x = {x[i]!r}, fast code {codes[i]}, exact {ref[i]}"
    return N, None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the margin 1/2 - theta")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    checked = 0
    for t in range(args.trials):
        n, wrong = trial(rng, args.scale)
        checked += n
        if wrong:
            print(f"trial {t}: wrong code ({wrong}); {checked} values checked")
            sys.exit(1)
    print(f"no wrong code in {checked} values ({args.trials} trials, seed {args.seed}, margin x {args.scale})")


if __name__ == "__main__":
    main()
