#!/usr/bin/env bash
# Runs on the lent GPU machine (../shared/device/README.md), from the repository root of the
# device's copy of the working tree, after `cargo build --release` and
# `../shared/device/prepare.sh target/release/wgrnn` here and with carry [".gl", ".bin"]:
#
#   bash benches/device.sh first    what a session with one short device call needs most, in
#                                   order, each part cut off at what remains of $BUDGET seconds
#                                   (default 540): check-new, suite, before, products, ksplit,
#                                   f16, check, variants
#   bash benches/device.sh check    every kernel variant against the CPU reference, on the GPU
#   bash benches/device.sh check-new the defaults (also at 3 sequences), the 256x128 GEMM
#                                   tile, the gated forwards in 32 sequences and the
#                                   tensor-core builds (which lavapipe can only emulate)
#   bash benches/device.sh suite    the suite (default kernels, per-kernel table) and PyTorch
#   bash benches/device.sh before   the suite with an older build, .bin/wgrnn-before (or
#                                   $BEFORE) where one was staged: the "before" of the kernels
#                                   changed since (BENCHMARKS.md says which commit), with
#                                   $BEFORE_ARGS added to its bench flags (e.g.
#                                   "--precision f16" for the f16 path's kernels)
#   bash benches/device.sh products the suite's large products one by one under each tile
#   bash benches/device.sh ksplit   the suite with the split tensor-core products and
#                                   steps (f32 accuracy), and the steps alone, with the
#                                   product tiles by the rules (entry 71's before), layer by
#                                   layer (entry 72's), the K slices by the grid's rule
#                                   (entry 73's), the tiles' K split 1 way (entry 48's before) and 4 ways in
#                                   16-unit tiles, with the gated forwards in 16 sequences
#                                   (entry 56's before), with the layer pipeline over 4
#                                   chunks of time steps (entry 58), with the step tiles' 16-row chunks
#                                   (entry 19's before), with the 256x128 GEMM tile, with K
#                                   split 4 ways (also in 16-row
#                                   chunks: entry 34's before) and 2 at every grid, with
#                                   each step submitted whole (entry 21's before), with
#                                   the matrix-vector steps and with the tiles at every
#                                   batch
#   bash benches/device.sh variants the suite once per other alternative kernel choice
#   bash benches/device.sh f16      the suite with f16 caches, tensor-core products and steps,
#                                   each alone and together, the LSTM's tensor-core forward in
#                                   16 sequences (entry 57's before), the layer pipeline over
#                                   4 chunks (entry 58), the tensor-core steps on
#                                   the f32 weights (entry 54's) and at one K slice (entry
#                                   51's)
#   bash benches/device.sh tune     `wgrnn bench --tune` over the suite: every kernel choice,
#                                   the fastest in $OUT/tuning.json (the autotune table,
#                                   overall and per shape), then the suite run from it
#   bash benches/device.sh tune-f16 the same with --precision f16 (its own table entry)
#
# Each part fits the device tool's 10-minute limit on its own; `first` is the first thing to
# run (a wrong kernel makes its timings meaningless, so it checks before it times). Results go
# to $OUT.
set -uo pipefail
OUT="${OUT:?set by the device tool}"
export XDG_RUNTIME_DIR=/tmp
# What runs: the staged engine, suite and reference script (../shared/device/prepare.sh);
# tests/device_script.rs puts stand-ins here to run every part without a GPU.
W="${WGRNN:-.bin/wgrnn}"
S="${SUITE:-.bin/suite.tsv}"
TORCH_BENCH="${TORCH_BENCH:-python3 .bin/torch_rnn_bench.py}"
if [ -z "${DEVICE_SH_PART:-}" ]; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
    nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv | tee "$OUT/device.txt"
    "$W" devices | tee -a "$OUT/device.txt"
fi

# Every kernel variant `check` compares with the CPU reference; the last ten are the
# matrix-vector steps and the tensor-core builds (their K slices by the grid, at 32 units
# the flagship's layout, and at one slice; the split products and steps, at f32's
# tolerances; the steps reading W_hh from its f16 copy, entry 54, which the defaults take
# only where it pays: at the suite's sizes, not at these), which no machine without matrix
# units can run
# (`check-new` runs them, the defaults and the 256x128 GEMM tile, the kernels that have
# never met a GPU; the last two are the layer pipeline's joined steps, entries 58-60, the
# second its f16 backward in windows and, where the adapter has matrix units, the joined
# tensor-core steps, which wgpu refused to build before entry 60; the last, every product's
# tile measured at every size, entry 71, which the defaults do on a GPU from 2^28
# multiply-adds, so not at these sizes).
VARIANTS=("" "--step-kernel blocked" "--step-kernel rowwise" "--gemm big --unchecked"
    "--gemm small" "--step-units 64" "--step-units 16" "--step-k-split 4"
    "--step-k-split 2 --step-units 64" "--step-k-split 1" "--step-chunk-rows 16" "--gemm tall"
    "--forward-sequences 16"
    "--precision f16 --step-kernel tiled"
    "--step-kernel gemv --unchecked"
    "--step-kernel tensor" "--step-kernel tensor --step-units 64" "--gemm tensor"
    "--precision f16" "--step-kernel tensor --step-units 32"
    "--step-kernel tensor --step-k-split 1" "--gemm tensor-split" "--step-kernel tensor-split"
    "--step-kernel tensor --step-weights f16"
    "--wavefront 4" "--precision f16 --wavefront 4" "--gemm measured")

check_variants() {
    # Ragged sizes that span several tiles of every kernel: 19 sequences of mixed lengths,
    # widths that are not multiples of the tiles ($LENGTHS instead where set).
    local lengths="${LENGTHS:-7,1,4,29,2,5,7,1,4,31,2,5,7,1,4,7,2,5,30}"
    local status=0
    for variant in "$@"; do
        for cell in "lstm" "lstm --bidirectional" "gru" "rnn-tanh" "lstm --peephole --proj 50"; do
            # shellcheck disable=SC2086
            if ! "$W" check --cell $cell --layers 2 --hidden 200 --input 136 --lengths "$lengths" \
                --steps 1 $variant > "$OUT/check.log.tmp" 2>&1; then
                echo "CHECK FAILED: --cell $cell $variant" | tee -a "$OUT/check.txt"
                cat "$OUT/check.log.tmp" >> "$OUT/check.txt"
                status=1
            else
                echo "ok: --cell $cell $variant" | tee -a "$OUT/check.txt"
            fi
        done
    done
    rm -f "$OUT/check.log.tmp"
    return $status
}

check() { check_variants "${VARIANTS[@]}"; }
check-new() {
    local status=0
    # "--step-units 32": the gated forwards in tiles of 16 units x 32 sequences (entry 56;
    # the defaults take 16-unit tiles at these sizes).
    check_variants "" "--gemm tall" "--step-units 32" "${VARIANTS[@]:14}" || status=1
    # The defaults at 3 sequences: the matrix-vector steps with the checks on, what batch1
    # runs since entry 45.
    LENGTHS=7,29,1 check_variants "" || status=1
    return $status
}

suite() {
    local status=0
    # H100 SXM peaks without tensor cores (fp32 67 TFLOP/s, HBM3 3350 GB/s) for the
    # per-kernel roofline column.
    "$W" bench --suite "$S" --roofline 67,3350 --json "$OUT/wgrnn.jsonl" \
        | tee "$OUT/wgrnn.txt" || status=1
    # shellcheck disable=SC2086
    $TORCH_BENCH | tee "$OUT/torch.jsonl" || status=1
    "$W" report --ours "$OUT/wgrnn.jsonl" --torch "$OUT/torch.jsonl" --kernels flagship \
        --roofline 67,3350 | tee "$OUT/table.md" || status=1
    return $status
}

before() {
    # The same suite with the build staged as the "before" of the latest kernel changes; a
    # run without one says so and is no failure.
    local old="${BEFORE:-.bin/wgrnn-before}"
    if [ ! -x "$old" ]; then
        echo "before: no $old staged" | tee -a "$OUT/skipped.txt"
        return 0
    fi
    # shellcheck disable=SC2086 # BEFORE_ARGS is a list of flags
    "$old" bench --suite "$S" --no-kernels ${BEFORE_ARGS:-} --json "$OUT/wgrnn-before.jsonl" \
        | tee "$OUT/wgrnn-before.txt"
}

products() {
    local status=0
    # The suite's large products one by one under each tile (64x64, 128x128, 256x128 and the
    # tensor-core tile): which tile is fastest for which shape, at what TFLOP/s.
    "$W" bench --suite "$S" --products --reps 10 --json "$OUT/products.jsonl" \
        | tee "$OUT/products.txt" || status=1
    "$W" report --products "$OUT/products.jsonl" | tee "$OUT/products.md" || status=1
    return $status
}

# One suite run under other kernel choices, without the per-kernel table, into
# $OUT/wgrnn-NAME.jsonl (what `wgrnn report --variant NAME=...` reads).
bench_variant() {
    local name="$1"
    shift
    "$W" bench --suite "$S" "$@" --no-kernels --json "$OUT/wgrnn-$name.jsonl"
}

variants() {
    local status=0
    bench_variant blocked --step-kernel blocked || status=1
    bench_variant unchecked --unchecked || status=1
    bench_variant gemm64 --gemm small || status=1
    bench_variant units64 --step-units 64 || status=1
    bench_variant units32 --step-units 32 || status=1
    bench_variant rowwise --step-kernel rowwise || status=1
    return $status
}

ksplit() {
    local status=0
    # First the products and the recurrent steps on the tensor cores at f32 accuracy
    # (--gemm tensor-split, --step-kernel tensor-split: each operand in two f16 halves,
    # three products; entries 52 and 53), with the per-kernel table: the other way to the
    # products' rate the flagship and wide need, predicted to take the f32 flagship from
    # ~1.1x to ~0.75x cuDNN fp32; then the split steps alone.
    "$W" bench --suite "$S" --gemm tensor-split --step-kernel tensor-split --roofline 67,3350 \
        --json "$OUT/wgrnn-tensor-split.jsonl" | tee "$OUT/wgrnn-tensor-split.txt" || status=1
    bench_variant split-steps --step-kernel tensor-split || status=1
    # The large products' tiles by the rules (entry 71's before): the defaults measure each
    # product shape's tiles on a GPU and take the fastest (the suite's lines name them).
    bench_variant gemm-rules --gemm rules || status=1
    # Every stack layer by layer (entry 72's before): the defaults time each stack shape's
    # first passes layer by layer and over 4 and 8 chunks on a GPU and keep the fastest
    # (the suite's lines say which, forward and backward).
    bench_variant layer-by-layer --wavefront off || status=1
    # The steps' K slices by the grid's rule (entry 73's before): the defaults time each
    # step shape's slice counts aside on a GPU and keep the fastest, forward and backward
    # apart (the suite's lines say which).
    bench_variant ksplit-rules --step-k-split rules || status=1
    # Then the rule's own before (entry 48): one K slice at every grid, the defaults before
    # it (the rule gives four for every suite config but wide, whose grid is busy at one,
    # and batch1, which keeps its matrix-vector steps); then four slices of 16-unit tiles in 64-row chunks, where the defaults take 32-unit
    # ones in 32-row chunks (a quarter less dgh restaged, twice the barriers).
    bench_variant ksplit1 --step-k-split 1 || status=1
    bench_variant ksplit4-units16 --step-k-split 4 --step-units 16 || status=1
    # The gated forwards in 16 sequences (entry 56's before): the defaults take tiles of
    # half the units x 32 sequences where the tiles are 32 units or wider (a third less L2
    # traffic for the flagship's forward at the same instructions a chunk).
    bench_variant fwdseqs16 --forward-sequences 16 || status=1
    # The layer pipeline over 4 chunks of time steps (entry 58; measured against layer by
    # layer and 8 chunks by default since entry 72): the stacks' forward in (4 + L - 1) x
    # T / 4 step dispatches instead of L x T (the flagship's 175 instead of 400), every
    # pass so, where the defaults may pick per pass. Then over 10 chunks: since entry 61 a phase's products are one dispatch, so more
    # chunks cost few dispatches (the flagship's step 386 at 4, 308 at 10), but each
    # chunk's products are smaller (640 rows of the flagship's 6400).
    bench_variant wavefront4 --wavefront 4 || status=1
    bench_variant wavefront10 --wavefront 10 || status=1
    # The plain loops in the 16-row chunks they had before entry 19 (Tuning::step_chunk_rows:
    # an LSTM's backward and the Elman forward in 4x the chunks and barriers of the default
    # 64).
    bench_variant chunkrows16 --step-chunk-rows 16 || status=1
    # The 256x128 GEMM tile (--gemm tall) with the per-kernel table: the products' rate is
    # the flagship's first lever (BENCHMARKS.md, "Where the time must go").
    "$W" bench --suite "$S" --gemm tall --roofline 67,3350 --json "$OUT/wgrnn-tall.jsonl" \
        | tee "$OUT/wgrnn-tall.txt" || status=1
    # Four and two K slices at every grid (wide too); four slices of 16-unit tiles in the
    # 16-row chunks they had before entry 34 (4x the chunks and barriers of the 64 rows the
    # H100's workgroup memory holds of them).
    bench_variant ksplit4 --step-k-split 4 || status=1
    bench_variant ksplit4-rows16 --step-k-split 4 --step-units 16 --step-chunk-rows 16 || status=1
    bench_variant ksplit2 --step-k-split 2 || status=1
    # Each training step recorded whole and submitted once (entry 21's before): the device
    # idles while the host records, instead of starting on the first pieces.
    bench_variant submit-whole --submit-first 0 || status=1
    # The recurrent products as matrix-vector products at every batch (entry 22; the
    # default at up to 4 sequences since entry 45): small against the tiles; slower where
    # the batch is large (each workgroup of 4 sequences reads all of W_hh). Then the f32
    # tiles at every batch: at batch1 what entry 45 replaced, now with the 4 K slices its
    # grid gives them (entry 48).
    bench_variant gemv --step-kernel gemv || status=1
    bench_variant tiled --step-kernel tiled || status=1
    return $status
}

f16() {
    local status=0
    # What --precision f16 does where the adapter has tensor cores (f16 caches, tensor-core
    # products and steps) with its per-kernel table, then each part alone: the tensor-core
    # steps, the tensor-core products, the f16 caches; and f16 without the tensor steps.
    "$W" bench --suite "$S" --precision f16 --roofline 989,3350 \
        --json "$OUT/wgrnn-f16.jsonl" | tee "$OUT/wgrnn-f16.txt" || status=1
    bench_variant tensor-steps --step-kernel tensor || status=1
    # The LSTM's tensor-core forward in 16 sequences: entry 57's before (the defaults take
    # tiles of half the units x 32 sequences, a fifth less L2 traffic with the f16 copy).
    bench_variant f16-fwdseqs16 --precision f16 --forward-sequences 16 || status=1
    # The layer pipeline under f16 (entry 58), where the dispatch gaps weigh most; over 8
    # chunks too (entry 61: 421 dispatches a flagship step at 4, 394 at 8).
    bench_variant f16-wavefront4 --precision f16 --wavefront 4 || status=1
    bench_variant f16-wavefront8 --precision f16 --wavefront 8 || status=1
    # The tensor-core steps on the f32 weights, not their f16 copy: entry 54's before.
    bench_variant f16-weights32 --precision f16 --step-weights f32 || status=1
    # The tensor-core steps at one K slice: entry 51's before, alone and under f16.
    bench_variant tensor-steps-ks1 --step-kernel tensor --step-k-split 1 || status=1
    bench_variant f16-ks1 --precision f16 --step-k-split 1 || status=1
    bench_variant tensor --gemm tensor || status=1
    bench_variant f16-caches --precision f16 --gemm big --step-kernel tiled || status=1
    bench_variant f16-f32-steps --precision f16 --step-kernel tiled || status=1
    return $status
}

first() {
    # One device call's worth, most needed first; each part runs in a process of its own
    # cut off at the budget's remainder, so whatever finished comes back.
    local budget="${BUDGET:-540}"
    local status=0
    for part in check-new suite before products ksplit f16 check variants; do
        local left=$((budget - SECONDS))
        if [ "$left" -lt 30 ]; then
            echo "first: no time left for $part" | tee -a "$OUT/skipped.txt"
            continue
        fi
        echo "== $part (${left}s left)"
        DEVICE_SH_PART=1 timeout "$left" bash "$0" "$part" || status=1
    done
    return $status
}

tune() {
    local status=0
    WGRNN_TUNING_FILE="$OUT/tuning.json" "$W" bench --suite "$S" --tune --warmup 2 --reps 5 \
        --json "$OUT/wgrnn-tune.jsonl" | tee "$OUT/tune.txt" || status=1
    # The suite again from the table just written: each configuration with its own shape's
    # choices (`--variant tuned=wgrnn-tuned.jsonl` in `wgrnn report`).
    WGRNN_TUNING_FILE="$OUT/tuning.json" "$W" bench --suite "$S" --no-kernels \
        --json "$OUT/wgrnn-tuned.jsonl" | tee "$OUT/wgrnn-tuned.txt" || status=1
    return $status
}

tune-f16() {
    local status=0
    WGRNN_TUNING_FILE="$OUT/tuning.json" "$W" bench --suite "$S" --tune --precision f16 \
        --warmup 2 --reps 5 --json "$OUT/wgrnn-tune-f16.jsonl" \
        | tee "$OUT/tune-f16.txt" || status=1
    return $status
}

status=0
for part in "$@"; do
    case "$part" in
        first | check | check-new | suite | before | products | ksplit | variants | f16 | tune \
            | tune-f16)
            "$part" || status=1 ;;
        *) echo "unknown part $part (first, check, check-new, suite, before, products, ksplit," \
            "variants, f16, tune, tune-f16)" >&2
            status=2 ;;
    esac
done
exit $status
