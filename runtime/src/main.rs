//! The `wisp` binary: parse, then execute (see `wisp::cli`).

use std::process::ExitCode;

fn main() -> ExitCode {
    match wisp::cli::main(std::env::args_os().skip(1).collect()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("wisp: {error}");
            ExitCode::from(2)
        }
    }
}
