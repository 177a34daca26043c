//! Standard output for a reader that may go away: `wgrnn bench | head`, `wgrnn report | less`
//! quit early and close the pipe. `println!` panics then; the [`outln!`](crate::outln) and
//! [`out!`](crate::out) macros go through [`write`] instead, which ends a command that only
//! prints (exit status 0, nothing on stderr) and lets a command whose work lives elsewhere
//! (training, whose results are its run directory) finish it without its progress lines.

use std::fmt;
use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by [`keep_working`]: a closed stdout stops the output, not the command.
static KEEP_WORKING: AtomicBool = AtomicBool::new(false);
/// Set once a write has failed under [`keep_working`]: later writes are dropped.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Asks that a closed or failing stdout stop only the printing: for commands whose results
/// are files (a training run's checkpoints), which exiting early would lose.
pub fn keep_working() {
    KEEP_WORKING.store(true, Ordering::Relaxed);
}

/// Writes `args` to stdout. When stdout has gone away (a closed pipe) the process exits with
/// status 0, or under [`keep_working`] this and later output is dropped; any other write error
/// is named once on stderr and exits with status 1, or likewise drops the output.
pub fn write(args: fmt::Arguments) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let Err(e) = out.write_fmt(args) else {
        return;
    };
    let broken = e.kind() == ErrorKind::BrokenPipe;
    if !broken {
        eprintln!("wgrnn: cannot write to standard output: {e}");
    }
    if KEEP_WORKING.load(Ordering::Relaxed) {
        CLOSED.store(true, Ordering::Relaxed);
        return;
    }
    std::process::exit(if broken { 0 } else { 1 });
}

/// `println!` through [`write`](crate::stdout::write): safe when stdout is closed early.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::stdout::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` through [`write`](crate::stdout::write): safe when stdout is closed early.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!($($arg)*))
    };
}
