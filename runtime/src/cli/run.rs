//! `wisp run`: one module, here, with stdio passed through.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use lexopt::prelude::*;

use super::{Error, options};
use crate::engine::{self, Console, Invocation, Limits, Module};

pub const HELP: &str = "\
Run a WASI command module here, like `wasmtime run`: its stdin, stdout and stderr are this
process's (stdin is read when the module reads it, and what it writes goes out at once), its
exit status this process's. Its argv is
the module's name then ARGS; its environment is exactly the --env pairs. It runs under the same
limits as a served function; a stopped run exits with status 134.

Usage: wisp run [OPTIONS] <MODULE> [ARGS]...

Options:
      --env <KEY=VALUE>      Set an environment variable (repeatable)
  -h, --help                 Show this help

";

pub fn run(mut parser: lexopt::Parser) -> Result<ExitCode, Error> {
    let mut limits = Limits::default();
    let mut env = Vec::new();
    let mut module = None;
    let mut args = Vec::new();
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => {
                print!("{HELP}{}", options::LIMIT_HELP);
                return Ok(ExitCode::SUCCESS);
            }
            Long("env") => {
                let pair = parser.value()?.string()?;
                if !pair.contains('=') || pair.starts_with('=') {
                    return Err(Error(format!("--env `{pair}`: expected KEY=VALUE")));
                }
                env.push(pair);
            }
            Value(path) if module.is_none() => {
                module = Some(PathBuf::from(path));
                // Everything after the module is the guest's, flags included.
                for rest in parser.raw_args()? {
                    args.push(rest.string()?);
                }
            }
            Long(name) => {
                let name = name.to_string();
                if !options::limit(&name, &mut parser, &mut limits)? {
                    return Err(options::unknown(&name));
                }
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    let path = module.ok_or_else(|| Error("run needs a module (see wisp run --help)".into()))?;
    let wasm =
        std::fs::read(&path).map_err(|e| Error(format!("cannot read {}: {e}", path.display())))?;
    let module =
        Module::compile(&wasm, limits).map_err(|e| Error(format!("{}: {e}", path.display())))?;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut argv = vec![name];
    argv.extend(args);
    let outcome = engine::run_here(
        module,
        Invocation {
            args: argv,
            env,
            stdin: Vec::new(),
            kv: None,
            outbound: None,
            // Admitted and shown, never delivered: there is no server here.
            topics: Some(engine::any_topic()),
            console: Some(Arc::new(Stdio)),
        },
    );
    for message in &outcome.published {
        eprintln!(
            "wisp: published {} bytes to topic `{}` (not delivered: wisp run has no subscribers)",
            message.payload.len(),
            message.topic
        );
    }
    match outcome.result {
        Ok(code) => Ok(ExitCode::from(code as u8)),
        Err(stop) => {
            eprintln!("wisp: {}: {stop}", path.display());
            Ok(ExitCode::from(134))
        }
    }
}

/// This process's stdio, for the guest to read and write as it runs.
struct Stdio;

impl Console for Stdio {
    fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        std::io::stdin().lock().read(buf)
    }

    fn write(&self, fd: i32, bytes: &[u8]) -> std::io::Result<()> {
        if fd == 1 {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)?;
            out.flush()
        } else {
            // Unbuffered already.
            std::io::stderr().lock().write_all(bytes)
        }
    }
}
