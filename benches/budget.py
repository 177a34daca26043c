#!/usr/bin/env python3
"""The time budget of each suite configuration against issue 4's targets (BENCHMARKS.md,
"Where the time must go"): how many FLOPs a training step spends in the large matrix
products and in the recurrent steps, what the products take at a given GEMM rate, and how
fast each recurrent-step dispatch must then be for the step to meet its target. Arithmetic
only, no GPU: the FLOPs follow from the shapes, as in ../shared/device/torch_rnn_bench.py
(which counts the gate products: 3x the forward's).

    python3 benches/budget.py [SUITE.tsv] [--gemm-tflops 26,51.6] [--dispatch-us 5]

Per layer and direction, with N = batch x seq rows, G gates, H units and In inputs:
forward input projection, dW_ih and dX are 2 N In G H each (dX of layer 0 too: the
reference takes the input's gradient), dW_hh is 2 N H G H, all large GEMMs; the forward
and backward recurrent steps are 2 N H G H each, in seq dispatches of B rows (both
directions of a layer share a dispatch).
"""

import argparse
import pathlib

# cuDNN fp32 training-step times measured on the H100 on 2026-11-23 (issue 4's text).
CUDNN_MS = {"small": 1.21, "charlm": 5.70, "flagship": 38.7, "gru4": 32.2, "tanh4": 22.0,
            "wide": 56.6, "batch1": 7.67, "bilstm": 20.6}
# Issue 4's targets as ratios to cuDNN fp32.
TARGET = {"flagship": 1.0, "batch1": 1.0}
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def configs(path):
    try:
        text = pathlib.Path(path).read_text()
    except OSError as e:
        raise SystemExit(f"{path}: cannot read the suite file ({e.strerror})") from e
    for line in text.splitlines():
        f = line.split()
        if not f or f[0].startswith("#"):
            continue
        if len(f) != 8:
            raise SystemExit(f"{path}: expected 8 fields, got {len(f)}: {line!r}")
        name, kind, layers, hidden, inp, batch, seq, direction = f
        if kind not in GATES:
            raise SystemExit(f"{path}: unknown cell kind {kind!r} in {line!r}")
        try:
            sizes = [int(x) for x in (layers, hidden, inp, batch, seq)]
        except ValueError:
            raise SystemExit(f"{path}: sizes must be integers: {line!r}") from None
        yield (name, kind, *sizes, direction)


def main():
    here = pathlib.Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("suite", nargs="?", default=str(here / "../../shared/device/suite.tsv"))
    ap.add_argument("--gemm-tflops", default="26,51.6",
                    help="GEMM rates to budget at (TFLOP/s, comma-separated)")
    ap.add_argument("--dispatch-us", type=float, default=5.0,
                    help="the floor of one dependent dispatch (us)")
    a = ap.parse_args()
    rates = [float(r) for r in a.gemm_tflops.split(",")]
    head = ["config", "target ms", "GEMM GFLOP", "step GFLOP", "step dispatches",
            "MFLOP / step dispatch"]
    for r in rates:
        head += [f"GEMM ms @{r:g}", f"us / step left @{r:g}", f"step TFLOP/s needed @{r:g}"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, kind, layers, hidden, inp, batch, seq, direction in configs(a.suite):
        dirs = 2 if direction == "bi" else 1
        g = GATES[kind]
        rows = batch * seq
        gemm = step = 0.0
        for layer in range(layers):
            width = inp if layer == 0 else hidden * dirs
            proj = dirs * 2 * rows * width * g * hidden
            rec = dirs * 2 * rows * hidden * g * hidden
            gemm += 3 * proj + rec
            step += 2 * rec
        dispatches = 2 * layers * seq
        cudnn = CUDNN_MS.get(name)
        target = cudnn * TARGET.get(name, 1.5) if cudnn else None
        cells = [name, f"{target:.2f}" if target else "-", f"{gemm / 1e9:.1f}",
                 f"{step / 1e9:.1f}", str(dispatches), f"{step / dispatches / 1e6:.1f}"]
        for r in rates:
            gemm_ms = gemm / (r * 1e12) * 1e3
            cells.append(f"{gemm_ms:.2f}")
            if target:
                left_us = (target - gemm_ms) * 1e3 / dispatches
                if left_us <= a.dispatch_us:
                    cells += [f"{left_us:.1f} (below the {a.dispatch_us:g} us floor)", "-"]
                else:
                    need = step / dispatches / (left_us * 1e-6) / 1e12
                    cells += [f"{left_us:.1f}", f"{need:.1f}"]
            else:
                cells += ["-", "-"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
