//! `wisp serve` and `wisp up`.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::Arc;

use lexopt::prelude::*;

use super::{Error, options};
use crate::config::Manifest;
use crate::engine::Module;
use crate::server::{self, Options};
use crate::service::Function;

pub const SERVE_HELP: &str = concat!(
    "\
Start a Wisp server. It stops gracefully on SIGTERM or SIGINT.

Usage: wisp serve [OPTIONS]

",
    "Options:\n  -h, --help                 Show this help\n\n"
);

pub const UP_HELP: &str = "\
Serve the functions a manifest lists. Module paths and build commands are relative to the
manifest's folder.

Usage: wisp up [OPTIONS] <MANIFEST>

Arguments:
  <MANIFEST>  The manifest, e.g. functions/wisp.json

Options:
      --build    Run each function's build command first
  -h, --help     Show this help

";

fn help(text: &str) -> ExitCode {
    print!("{text}{}\n{}", options::SERVER_HELP, options::LIMIT_HELP);
    ExitCode::SUCCESS
}

pub fn serve(mut parser: lexopt::Parser) -> Result<ExitCode, Error> {
    let mut options = Options::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(help(SERVE_HELP)),
            Long(name) => {
                let name = name.to_string();
                if !options::server(&name, &mut parser, &mut options)? {
                    return Err(options::unknown(&name));
                }
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    server::run(options, &[])?;
    Ok(ExitCode::SUCCESS)
}

pub fn up(mut parser: lexopt::Parser) -> Result<ExitCode, Error> {
    let mut options = Options::default();
    let mut build = false;
    let mut manifest = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(help(UP_HELP)),
            Long("build") => build = true,
            Value(path) if manifest.is_none() => manifest = Some(PathBuf::from(path)),
            Long(name) => {
                let name = name.to_string();
                if !options::server(&name, &mut parser, &mut options)? {
                    return Err(options::unknown(&name));
                }
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    let manifest =
        manifest.ok_or_else(|| Error("up needs a manifest, e.g. functions/wisp.json".into()))?;
    let manifest = Manifest::load(&manifest)?;
    if build {
        run_builds(&manifest)?;
    }
    let functions = load(&manifest, &options)?;
    server::run(options, &functions)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs each distinct build command once, in the manifest's folder.
fn run_builds(manifest: &Manifest) -> Result<(), Error> {
    let mut done: Vec<&str> = Vec::new();
    for command in manifest.functions.iter().filter_map(|f| f.build.as_deref()) {
        if done.contains(&command) {
            continue;
        }
        done.push(command);
        eprintln!("wisp: building: {command}");
        let status = Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(&manifest.dir)
            .status()
            .map_err(|e| Error(format!("cannot run build `{command}`: {e}")))?;
        if !status.success() {
            return Err(Error(format!("build `{command}` failed ({status})")));
        }
    }
    Ok(())
}

/// Reads and compiles every module the manifest lists.
fn load(manifest: &Manifest, options: &Options) -> Result<Vec<Arc<Function>>, Error> {
    manifest
        .functions
        .iter()
        .map(|config| {
            let path = manifest.module_path(config);
            let wasm = std::fs::read(&path).map_err(|e| {
                let hint = if config.build.is_some() {
                    " (did you mean `wisp up --build`?)"
                } else {
                    ""
                };
                Error(format!(
                    "function `{}`: cannot read {}: {e}{hint}",
                    config.name,
                    path.display()
                ))
            })?;
            let limits = config.limits.apply(&options.limits);
            let module = Module::compile(&wasm, limits).map_err(|e| {
                Error(format!(
                    "function `{}` ({}): {e}",
                    config.name,
                    path.display()
                ))
            })?;
            Ok(Arc::new(Function::new(config.clone(), module)))
        })
        .collect()
}
