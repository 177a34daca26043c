//! The `wgrnn` command line.

fn main() {
    println!("wgrnn {}", env!("CARGO_PKG_VERSION"));
}
