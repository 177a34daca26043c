//! The verbs of the `wgrnn` binary that use the run module: `train` and the ones that put a
//! trained run to use (`eval`, `generate`, `tag`, `classify`).

pub mod train;
pub mod use_model;
