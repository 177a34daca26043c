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
    python3 benches/check_sweep.py [--count 400] [--seed 1] [--big] [--mixed] [--gemm CHOICE]
        [--wavefront CHOICE] [--k-split CHOICE]
        [--wgrnn target/release/wgrnn]

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

`--mixed` draws whole network descriptions instead (`wgrnn check --config FILE.toml`), which
the flags cannot give: a different cell, width and direction in each layer, dropout between
layers, layers without recurrence, LSTM activations other than PyTorch's and a forget-gate
bias, Jordan feedback linear or softmax, embedding and one-hot inputs, mean pooling, an
ignored label and the language-model task.
"""

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time

CELLS = ["lstm", "lstm", "gru", "rnn-tanh", "rnn-relu", "elman-linear", "jordan"]
STEP_KERNELS = ["tiled", "blocked", "rowwise", "gemv", "tensor", "tensor-split"]
GEMMS = ["small", "big", "tall", "tensor", "tensor-split", "measured", "measured", "rules"]


def mixed_cell(r, top, big):
    """One layer's `cell = {...}` table; a Jordan cell only where `top`, no ReLU where `big`
    (the kink, above)."""
    kind = r.choice(["lstm", "lstm", "gru", "elman"] + (["jordan"] if top else []))
    if kind == "lstm":
        t = ['kind = "lstm"']
        if r.random() < 0.3:
            t.append(f'gate = "{r.choice(["sigmoid", "tanh"])}"')
            t.append(f'cell = "{r.choice(["tanh", "sigmoid", "linear"])}"')
            t.append(f'hidden = "{r.choice(["tanh", "sigmoid", "linear"])}"')
        if r.random() < 0.25:
            t.append("peephole = true")
        if r.random() < 0.25:
            t.append(f"forget_bias = {r.choice([1.0, 0.5])}")
        return t, kind
    if kind == "gru":
        return ['kind = "gru"', f'variant = "{r.choice(["pytorch", "reset_before"])}"'], kind
    act = r.choice(["tanh", "tanh", "relu", "linear"])
    if big and act == "relu":
        act = "tanh"
    if kind == "elman":
        return ['kind = "elman"', f'activation = "{act}"'], kind
    return ['kind = "jordan"', f'activation = "{act}"',
            f'feedback = "{r.choice(["softmax", "linear"])}"'], kind


def mixed_network(r, big):
    """A whole network description (TOML) of layers that differ from each other."""
    inp = r.choice(["dense", "dense", "embedding", "one_hot"])
    vocab = r.choice([2, 5, 30])
    if inp == "dense":
        toml = [f'input = {{ kind = "dense", features = {r.choice([1, 3, 16, 33])} }}']
    elif inp == "embedding":
        toml = [f'input = {{ kind = "embedding", vocab = {vocab}, '
                f'dim = {r.choice([1, 4, 17])} }}']
    else:
        toml = [f'input = {{ kind = "one_hot", vocab = {vocab} }}']
    task = r.choice(["tagging", "tagging-ignore", "regression", "classification-last",
                     "classification-mean", "language_model", "none"])
    if task == "language_model" and inp == "dense":
        task = "tagging"
    layers = r.choice([1, 2, 3] if big else [1, 2, 3, 4])
    for k in range(layers):
        top = k + 1 == layers
        # (A Jordan layer feeds back a per-step head's output.)
        per_step = task not in ("none", "classification-last", "classification-mean")
        cell, kind = mixed_cell(r, top and per_step, big)
        hidden = r.choice([100, 128, 200] if big else [1, 3, 8, 16, 17, 32, 33, 64])
        if kind == "lstm" and hidden > 1 and r.random() < 0.2:
            cell.append(f"proj = {r.randint(1, hidden - 1)}")
        toml += ["[[layers]]", "cell = { " + ", ".join(cell) + " }", f"hidden = {hidden}"]
        if kind != "jordan" and r.random() < 0.35:
            toml.append("bidirectional = true")
        if not top and r.random() < 0.3:
            toml.append(f"dropout = {r.choice([0.1, 0.5])}")
        if r.random() < 0.1:
            toml.append("recurrent = false")
    if task != "none":
        classes = vocab if task == "language_model" else r.choice([1, 2, 3, 10])
        kinds = {
            "tagging": '{ kind = "tagging" }',
            "tagging-ignore": f'{{ kind = "tagging", ignore_label = {r.randrange(classes)} }}',
            "regression": '{ kind = "regression" }',
            "classification-last": '{ kind = "classification", pooling = "last" }',
            "classification-mean": '{ kind = "classification", pooling = "mean" }',
            "language_model": '{ kind = "language_model" }',
        }
        toml += ["[head]", f"classes = {classes}", f"task = {kinds[task]}"]
    return "\n".join(toml) + "\n"


def draw(r, big, mixed, gemm=None, wavefront=None, k_split=None):
    """One `wgrnn check` argument list, and the network description it reads (or None);
    `gemm`, `wavefront` and `k_split`, where given, are every run's `--gemm`, `--wavefront`
    and `--step-k-split`."""
    toml = None
    if mixed:
        toml = mixed_network(r, big)
        a = []
    else:
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
    if r.random() < 0.25:
        # No padding: buffers a full batch writes whole are not cleared first.
        lengths = [steps] * batch
    a += ["--lengths", ",".join(map(str, lengths)), "--seed", str(r.randint(1, 10**9))]
    if r.random() < 0.3:
        a += ["--precision", "f16"]
    if r.random() < 0.3:
        # "measured": the check's passes run layer by layer and over 4 and 8 chunks in turn.
        drawn = str(r.choice([2, 3, 4, 8, "measured"]))
        a += ["--wavefront", wavefront or drawn]
    elif wavefront:
        a += ["--wavefront", wavefront]
    if r.random() < 0.3:
        a += ["--step-kernel", r.choice(STEP_KERNELS)]
    if r.random() < 0.2:
        a += ["--step-units", str(r.choice([16, 32, 64]))]
    if r.random() < 0.2:
        # "measured": each step shape's slice counts timed aside, the fastest taken.
        drawn = str(r.choice([1, 2, 4, "measured", "rules"]))
        a += ["--step-k-split", k_split or drawn]
    elif k_split:
        a += ["--step-k-split", k_split]
    if r.random() < 0.2:
        a += ["--step-chunk-rows", str(r.choice([16, 32, 64]))]
    if r.random() < 0.2:
        a += ["--forward-sequences", str(r.choice([16, 32]))]
    if r.random() < 0.2:
        drawn = r.choice(GEMMS)
        a += ["--gemm", gemm or drawn]
    elif gemm:
        a += ["--gemm", gemm]
    if r.random() < (0.7 if big else 0.3):
        a += ["--workgroup-memory", "49152"]
    if r.random() < 0.2:
        a += ["--submit-first", str(r.choice([0, 1, 5]))]
    if r.random() < 0.2:
        a.append("--unchecked")
    rounded = "f16" in a or "tensor" in a
    if rounded:
        a += ["--steps", "1"]
    return a, toml


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=400)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--big", action="store_true")
    ap.add_argument("--mixed", action="store_true")
    ap.add_argument("--wgrnn", default="target/release/wgrnn")
    ap.add_argument("--gemm", choices=sorted(set(GEMMS)),
                    help="every run's --gemm (the other draws unchanged)")
    ap.add_argument("--wavefront", help="every run's --wavefront (e.g. measured)")
    ap.add_argument("--k-split", help="every run's --step-k-split (e.g. measured)")
    args = ap.parse_args()
    # WGRNN_TUNING=off: every run from the defaults and its own measurements, not from an
    # autotune table or the tiles and pipeline choices an earlier run kept (nor adding to
    # them).
    env = dict(os.environ, XDG_RUNTIME_DIR=os.environ.get("XDG_RUNTIME_DIR", "/tmp"),
               WGRNN_TUNING="off",
               RUST_BACKTRACE="0", RUST_LIB_BACKTRACE="0")
    counts = {"ok": 0, "refused": 0, "FAIL": 0, "CRASH": 0}
    bad = []
    refusals = {}
    start = time.time()
    keep = tempfile.mkdtemp(prefix="check_sweep_")
    for i in range(args.count):
        r = random.Random(args.seed * 1_000_003 + i)
        a, toml = draw(r, args.big, args.mixed, args.gemm, args.wavefront, args.k_split)
        if toml is not None:
            path = os.path.join(keep, f"net{i}.toml")
            with open(path, "w") as f:
                f.write(toml)
            a = ["--config", path] + a
        e = dict(env)
        emulate = any(x in ("tensor", "tensor-split", "measured") for x in a)
        if emulate:
            e["WGRNN_EMULATE_TENSOR_CORES"] = "1"
        p = subprocess.run([args.wgrnn, "check", *a], capture_output=True, text=True, env=e)
        if toml is not None and p.returncode == 0:
            os.remove(path)
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
        if kind == "refused":
            why = re.sub(r"\d+", "N", out.splitlines()[0])[:110]
            refusals[why] = refusals.get(why, 0) + 1
        if kind in ("FAIL", "CRASH"):
            prefix = "WGRNN_EMULATE_TENSOR_CORES=1 " if emulate else ""
            lines = [ln for ln in out.splitlines() if "FAIL" in ln or "panicked" in ln
                     or ln.startswith("Error")]
            bad.append(f"{kind} (exit {p.returncode}): {prefix}{args.wgrnn} check "
                       + " ".join(a) + "\n    " + "\n    ".join(lines[:6]))
            print(bad[-1], flush=True)
    took = time.time() - start
    for why, n in sorted(refusals.items(), key=lambda kv: -kv[1]):
        print(f"refused {n}x: {why}")
    if args.mixed:
        print(f"network descriptions of the runs that did not pass: {keep}")
    kinds = (", big" if args.big else "") + (", mixed" if args.mixed else "")
    print(f"{args.count} runs in {took:.0f} s (seed {args.seed}{kinds}): "
          + ", ".join(f"{v} {k}" for k, v in counts.items()))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
