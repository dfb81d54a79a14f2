//! `wisp serve` and `wisp up`.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use lexopt::prelude::*;

use super::{Error, board, options};
use crate::config::Manifest;
use crate::server::{self, Options};

pub const SERVE_HELP: &str = concat!(
    "\
Start a Wisp server. It serves the functions deployed to it (kept in the data folder), takes
new ones over its admin API (/_wisp/, see the README), and stops gracefully on SIGTERM or SIGINT.

Usage: wisp serve [OPTIONS]

",
    "Options:\n  -h, --help                 Show this help\n\n"
);

pub const UP_HELP: &str = "\
Serve the functions a manifest lists, beside those deployed over HTTP. A manifest function
whose module or configuration changed is deployed as a new version; the data folder keeps them
all across restarts. Module paths and build commands are relative to the manifest's folder.

Usage: wisp up [OPTIONS] <MANIFEST>

Arguments:
  <MANIFEST>  The manifest, e.g. functions/wisp.json

Options:
      --build    Run each function's build command first; a function whose build made no
                 module (its toolchain is missing, say) is left out with a line saying so
  -h, --help     Show this help

";

fn help(text: &str) -> ExitCode {
    print!("{text}{}\n{}", options::SERVER_HELP, options::LIMIT_HELP);
    ExitCode::SUCCESS
}

pub fn serve(mut parser: lexopt::Parser) -> Result<ExitCode, Error> {
    let mut options = Options::default();
    let (mut chosen, mut given) = (None, Vec::new());
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(help(SERVE_HELP)),
            Long("board") => chosen = Some(parser.value()?.string()?),
            Long(name) => {
                let name = name.to_string();
                if !options::server(&name, &mut parser, &mut options)? {
                    return Err(options::unknown(&name));
                }
                given.push(name);
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    if !board::apply(chosen.as_deref(), &given, &mut options)? {
        return Ok(ExitCode::SUCCESS);
    }
    server::run(options, None)?;
    Ok(ExitCode::SUCCESS)
}

pub fn up(mut parser: lexopt::Parser) -> Result<ExitCode, Error> {
    let mut options = Options::default();
    let (mut chosen, mut given) = (None, Vec::new());
    let mut build = false;
    let mut manifest = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(help(UP_HELP)),
            Long("build") => build = true,
            Long("board") => chosen = Some(parser.value()?.string()?),
            Value(path) if manifest.is_none() => manifest = Some(PathBuf::from(path)),
            Long(name) => {
                let name = name.to_string();
                if !options::server(&name, &mut parser, &mut options)? {
                    return Err(options::unknown(&name));
                }
                given.push(name);
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    if !board::apply(chosen.as_deref(), &given, &mut options)? {
        return Ok(ExitCode::SUCCESS);
    }
    let manifest =
        manifest.ok_or_else(|| Error("up needs a manifest, e.g. functions/wisp.json".into()))?;
    let mut manifest = Manifest::load(&manifest)?;
    if build {
        run_builds(&manifest)?;
        skip_unbuilt(&mut manifest);
    }
    server::run(options, Some(&manifest))?;
    Ok(ExitCode::SUCCESS)
}

/// Leaves out, with a line each, the functions whose build succeeded without making their
/// module: a build skips an example whose toolchain is missing (`functions/build.sh` says which
/// and how to add it), and the others are served all the same.
fn skip_unbuilt(manifest: &mut Manifest) {
    let unbuilt: Vec<String> = manifest
        .functions
        .iter()
        .filter(|f| f.build.is_some() && !manifest.module_path(f).exists())
        .map(|f| {
            let path = manifest.module_path(f);
            eprintln!(
                "wisp: not serving `{}`: its build made no {}",
                f.name,
                path.display()
            );
            f.name.clone()
        })
        .collect();
    manifest.functions.retain(|f| !unbuilt.contains(&f.name));
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
