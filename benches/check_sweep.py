#!/usr/bin/env python3
"""A randomized sweep of `wgrnn check`: draws networks and kernel choices the tests do not
enumerate together (cell, layers, widths, directions, peepholes and projections, GRU
variant, task, batch shapes with mixed lengths, f16 caches, the layer pipeline, every step
kernel, tile, K split, chunk depth and forward width, the H100's workgroup-memory layout,
submission pieces, naga's checks on or off) and compares each with the CPU reference on
whatever adapter `wgrnn check` opens (lavapipe here). The tensor-core choices run with
their matrix operations emulated (WGRNN_EMULATE_TENSOR_CORES=1) unless the adapter has
them.

    cargo build --release
    python3 benches/check_sweep.py [--count 400] [--seed 1] [--big] [--wgrnn target/release/wgrnn]

Each run ends one of four ways: `ok`; `refused`, a clear error for a combination the engine
does not take (exit 1 with `Error:`, e.g. a Jordan layer made bidirectional); `FAIL`, a
tensor beyond its tolerance; `CRASH`, anything else (a panic, a signal). The sweep prints
every FAIL and CRASH with the command that reproduces it and exits non-zero if there is
one.

What the draws avoid, because the comparison itself cannot hold there:
- ReLU layers at `--big` widths: a pre-activation within rounding of zero takes the other
  side of the kink on one backend, and that unit's gradient differs by O(1) (seen at 3 x 300
  units with the f64 CPU reference as candidate, too).
- More than one Adam step where products or caches are rounded to f16: Adam moves an
  element by about lr whatever its gradient's size, so a gradient near zero whose sign the
  rounding flips moves it 2 lr the other way each step, past `check`'s f16 update tolerance
  (3e-2 at lr 0.01) by the third.

`--big` draws 100-300 units and batches of 8-129 sequences (a few seconds a run on 2 cores)
instead of 1-130 units and 1-70 sequences.
"""

import argparse
import os
import random
import subprocess
import sys
import time

CELLS = ["lstm", "lstm", "gru", "rnn-tanh", "rnn-relu", "elman-linear", "jordan"]
STEP_KERNELS = ["tiled", "blocked", "rowwise", "gemv", "tensor", "tensor-split"]
GEMMS = ["small", "big", "tall", "tensor", "tensor-split"]


def draw(r, big):
    """One `wgrnn check` argument list."""
    cells = [c for c in CELLS if not (big and c == "rnn-relu")]
    cell = r.choice(cells)
    hidden = r.choice([100, 127, 128, 200, 256, 300] if big else
                      [1, 2, 3, 5, 8, 13, 16, 17, 31, 32, 33, 48, 64, 65, 96, 130])
    a = ["--cell", cell, "--layers", str(r.choice([1, 2, 3] if big else [1, 1, 2, 3, 4])),
         "--hidden", str(hidden), "--input", str(r.choice([1, 2, 4, 7, 16, 33, 64]))]
    if r.random() < 0.3:
        a.append("--bidirectional")
    if cell == "lstm" and r.random() < 0.2:
        a.append("--peephole")
    if cell == "lstm" and hidden > 1 and r.random() < 0.2:
        a += ["--proj", str(r.randint(1, hidden - 1))]
    if cell == "gru" and r.random() < 0.4:
        a += ["--gru-variant", "reset-before"]
    a += ["--task", r.choice(["tagging", "regression", "classification", "none"])]
    a += ["--classes", str(r.choice([1, 2, 3, 10, 40]))]
    batch = r.choice([8, 31, 64, 100, 129] if big else [1, 2, 3, 4, 5, 16, 17, 33, 40, 70])
    steps = r.choice([3, 10, 25] if big else [1, 2, 3, 7, 20, 45])
    lengths = [r.randint(1, steps) for _ in range(batch)]
    lengths[r.randrange(batch)] = steps
    a += ["--lengths", ",".join(map(str, lengths)), "--seed", str(r.randint(1, 10**9))]
    if r.random() < 0.3:
        a += ["--precision", "f16"]
    if r.random() < 0.3:
        a += ["--wavefront", str(r.choice([2, 3, 4, 8]))]
    if r.random() < 0.3:
        a += ["--step-kernel", r.choice(STEP_KERNELS)]
    if r.random() < 0.2:
        a += ["--step-units", str(r.choice([16, 32, 64]))]
    if r.random() < 0.2:
        a += ["--step-k-split", str(r.choice([1, 2, 4]))]
    if r.random() < 0.2:
        a += ["--step-chunk-rows", str(r.choice([16, 32, 64]))]
    if r.random() < 0.2:
        a += ["--forward-sequences", str(r.choice([16, 32]))]
    if r.random() < 0.2:
        a += ["--gemm", r.choice(GEMMS)]
    if r.random() < (0.7 if big else 0.3):
        a += ["--workgroup-memory", "49152"]
    if r.random() < 0.2:
        a += ["--submit-first", str(r.choice([0, 1, 5]))]
    if r.random() < 0.2:
        a.append("--unchecked")
    rounded = "f16" in a or "tensor" in a
    if rounded:
        a += ["--steps", "1"]
    return a


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=400)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--big", action="store_true")
    ap.add_argument("--wgrnn", default="target/release/wgrnn")
    args = ap.parse_args()
    env = dict(os.environ, XDG_RUNTIME_DIR=os.environ.get("XDG_RUNTIME_DIR", "/tmp"),
               RUST_BACKTRACE="0", RUST_LIB_BACKTRACE="0")
    counts = {"ok": 0, "refused": 0, "FAIL": 0, "CRASH": 0}
    bad = []
    start = time.time()
    for i in range(args.count):
        r = random.Random(args.seed * 1_000_003 + i)
        a = draw(r, args.big)
        e = dict(env)
        emulate = any(x in ("tensor", "tensor-split") for x in a)
        if emulate:
            e["WGRNN_EMULATE_TENSOR_CORES"] = "1"
        p = subprocess.run([args.wgrnn, "check", *a], capture_output=True, text=True, env=e)
        out = p.stdout + p.stderr
        if p.returncode == 0:
            kind = "ok"
        elif p.returncode == 1 and "panicked" not in out and "FAILED" in out:
            kind = "FAIL"
        elif p.returncode == 1 and "panicked" not in out and out.startswith("Error:"):
            kind = "refused"
        else:
            kind = "CRASH"
        counts[kind] += 1
        if kind in ("FAIL", "CRASH"):
            prefix = "WGRNN_EMULATE_TENSOR_CORES=1 " if emulate else ""
            lines = [ln for ln in out.splitlines() if "FAIL" in ln or "panicked" in ln
                     or ln.startswith("Error")]
            bad.append(f"{kind} (exit {p.returncode}): {prefix}{args.wgrnn} check "
                       + " ".join(a) + "\n    " + "\n    ".join(lines[:6]))
            print(bad[-1], flush=True)
    took = time.time() - start
    print(f"{args.count} runs in {took:.0f} s (seed {args.seed}{', big' if args.big else ''}): "
          + ", ".join(f"{v} {k}" for k, v in counts.items()))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
