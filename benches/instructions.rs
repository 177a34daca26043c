//! Instruction counts of the kernels' hot loops as a GPU driver gets them
//! (`wgrnn::backend::wgpu::instructions`): each kernel of the flagship's, gru4's, tanh4's and
//! batch1's training steps, with the pipeline constants the host gives it on the H100, under
//! each set of runtime checks, after `spirv-opt -O`. Prints BENCHMARKS.md's table.
//!
//!     apt-get install -y spirv-tools     # spirv-opt
//!     cargo bench --bench instructions   # no GPU needed

use std::collections::HashMap;

use wgrnn::backend::wgpu::instructions::{Checks, hot_loop, optimize, spirv};
use wgrnn::backend::wgpu::module_sources;

/// A kernel to count: the module's name (`module_sources`), the entry point and the values of
/// its pipeline constants, as the host sets them for `what`.
struct Case {
    module: &'static str,
    entry: &'static str,
    constants: &'static [(&'static str, f64)],
    what: &'static str,
}

/// LSTM gate activation codes (sigmoid, tanh, tanh; `layer::act_code`).
const LSTM: [(&str, f64); 4] = [("OPT0", 3.0), ("OPT1", 0.0), ("OPT2", 0.0), ("OPT3", 0.0)];

/// The kernels of the flagship's and batch1's training steps on the H100, with the constants
/// the host gives them (`Call::tile_units`, `Call::plain_chunks`, `Call::gemv_shape`).
const CASES: &[Case] = &[
    Case {
        module: "gemm128",
        entry: "gemm128",
        constants: &[("A_K_CONTIGUOUS", 1.0), ("B_N_CONTIGUOUS", 0.0)],
        what: "128x128 tile, x W^T (input projections)",
    },
    Case {
        module: "gemm128",
        entry: "gemm128",
        constants: &[("A_K_CONTIGUOUS", 0.0), ("B_N_CONTIGUOUS", 1.0)],
        what: "128x128 tile, dG^T H (weight gradients)",
    },
    Case {
        module: "gemm256",
        entry: "gemm256",
        constants: &[("A_K_CONTIGUOUS", 1.0), ("B_N_CONTIGUOUS", 0.0)],
        what: "256x128 tile, x W^T",
    },
    Case {
        module: "lstm_cell",
        entry: "fwd_step_tiled",
        constants: &[
            LSTM[0],
            LSTM[1],
            LSTM[2],
            LSTM[3],
            ("TU", 32.0),
            ("KS", 1.0),
            ("TB", 16.0),
            ("STEP_BLOCKED", 0.0),
            ("BR", 64.0),
            ("FK", 16.0),
        ],
        what: "flagship forward step, TU 32, KS 1",
    },
    Case {
        module: "lstm_cell",
        entry: "bwd_step_tiled",
        constants: &[
            LSTM[0],
            LSTM[1],
            LSTM[2],
            LSTM[3],
            ("TU", 32.0),
            ("KS", 1.0),
            ("TB", 16.0),
            ("STEP_BLOCKED", 0.0),
            ("BR", 64.0),
            ("FK", 16.0),
        ],
        what: "flagship backward step, TU 32, KS 1",
    },
    Case {
        module: "lstm_cell",
        entry: "fwd_step_tiled",
        constants: &[
            LSTM[0],
            LSTM[1],
            LSTM[2],
            LSTM[3],
            ("TU", 32.0),
            ("KS", 1.0),
            ("TB", 16.0),
            ("STEP_BLOCKED", 1.0),
            ("BR", 64.0),
            ("FK", 16.0),
        ],
        what: "flagship forward step, blocked loops",
    },
    Case {
        module: "lstm_cell",
        entry: "bwd_step_tiled",
        constants: &[
            LSTM[0],
            LSTM[1],
            LSTM[2],
            LSTM[3],
            ("TU", 32.0),
            ("KS", 1.0),
            ("TB", 16.0),
            ("STEP_BLOCKED", 1.0),
            ("BR", 64.0),
            ("FK", 16.0),
        ],
        what: "flagship backward step, blocked loops",
    },
    Case {
        module: "gru_cell",
        entry: "fwd_step_tiled",
        constants: &[
            ("OPT0", 0.0),
            ("TU", 32.0),
            ("KS", 1.0),
            ("TB", 16.0),
            ("STEP_BLOCKED", 0.0),
            ("BR", 64.0),
            ("FK", 16.0),
        ],
        what: "gru4 forward step, TU 32, KS 1",
    },
    Case {
        module: "gru_cell",
        entry: "bwd_step_tiled",
        constants: &[
            ("OPT0", 0.0),
            ("TU", 32.0),
            ("KS", 1.0),
            ("TB", 16.0),
            ("STEP_BLOCKED", 0.0),
            ("BR", 64.0),
            ("FK", 16.0),
        ],
        what: "gru4 backward step, TU 32, KS 1",
    },
    Case {
        module: "elman_cell",
        entry: "fwd_step_tiled",
        constants: &[
            ("OPT0", 0.0),
            ("TU", 32.0),
            ("KS", 1.0),
            ("TB", 16.0),
            ("STEP_BLOCKED", 0.0),
            ("BR", 64.0),
            ("FK", 64.0),
        ],
        what: "tanh4 forward step, TU 32, KS 1",
    },
    Case {
        module: "lstm_cell",
        entry: "bwd_step_tiled",
        constants: &[
            LSTM[0],
            LSTM[1],
            LSTM[2],
            LSTM[3],
            ("TU", 16.0),
            ("KS", 4.0),
            ("TB", 16.0),
            ("STEP_BLOCKED", 0.0),
            ("BR", 16.0),
            ("FK", 16.0),
        ],
        what: "flagship backward step, TU 16, KS 4",
    },
    Case {
        module: "lstm_cell_gemv",
        entry: "fwd_step_tiled",
        constants: &[
            LSTM[0],
            LSTM[1],
            LSTM[2],
            LSTM[3],
            ("TU", 8.0),
            ("KS", 16.0),
            ("TB", 4.0),
        ],
        what: "batch1 forward step, matrix-vector",
    },
    Case {
        module: "lstm_cell_gemv",
        entry: "bwd_step_tiled",
        constants: &[
            LSTM[0],
            LSTM[1],
            LSTM[2],
            LSTM[3],
            ("TU", 8.0),
            ("KS", 16.0),
            ("TB", 4.0),
        ],
        what: "batch1 backward step, matrix-vector",
    },
];

fn main() {
    let sources: HashMap<&str, String> = module_sources().into_iter().collect();
    println!(
        "Instructions per pass through each kernel's hot loop (its innermost loop with the \
         most multiply-adds), SPIR-V from naga after spirv-opt -O; benches/instructions.rs\n"
    );
    println!(
        "| kernel | checks | multiply-adds | other float | integer | shared | global | branches | issued | multiply-add share |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (c, case) in CASES.iter().enumerate() {
        let src = &sources[case.module];
        for checks in Checks::ALL {
            let tag = format!("{c}-{}", checks.name());
            let words =
                spirv(src, case.entry, case.constants, checks).and_then(|w| optimize(&w, &tag));
            let hot = match words {
                Ok(w) => hot_loop(&w).unwrap_or_default(),
                Err(why) => {
                    eprintln!("{}: {why}", case.what);
                    std::process::exit(1);
                }
            };
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0}% |",
                case.what,
                checks.name(),
                hot.fma,
                hot.float,
                hot.int,
                hot.shared,
                hot.global,
                hot.branches,
                hot.issued(),
                100.0 * hot.fma as f64 / hot.issued().max(1) as f64
            );
        }
    }
}
