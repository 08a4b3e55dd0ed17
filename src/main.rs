use std::process::ExitCode;

fn main() -> ExitCode {
    dtbridge::cli::main()
}
