//! The `dbagent` binary: everything lives in the library; this only turns its outcome into an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    dbagent::cli::main()
}
