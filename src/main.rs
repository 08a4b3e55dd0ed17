//! The `dtbridge` command: `run`, `record`, `check`, `demo`, `repair` and the benchmarks. The
//! command line, the demo and the benchmarks live in this binary, not in the library.

mod bench;
mod cli;
mod demo;

use std::process::ExitCode;

fn main() -> ExitCode {
    dtbridge::util::reuse_large_buffers();
    cli::main()
}
