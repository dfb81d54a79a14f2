//! The `wisp` command line: `serve`, `up`, `run`, and the commands that talk to a server
//! (`deploy`, `ls`, `show`, `rm`, `versions`, `rollback`, `logs`, `invoke`, `kv`, `topics`,
//! `publish`, `dead-letters`, `fleet`, `secret`). Each command
//! parses its own options and prints its own `--help`; errors come back as one line for `main`
//! to print.

mod admin;
mod board;
mod client;
mod fleet;
mod install;
mod invoke;
mod kv;
mod options;
mod pin;
mod remote;
mod run;
mod secret;
mod serve;
mod table;
mod topics;

use std::ffi::OsString;
use std::process::ExitCode;

const VERSION: &str = concat!("wisp ", env!("CARGO_PKG_VERSION"));

const HELP: &str = "\
wisp: a serverless runtime for edge devices; runs WebAssembly functions over HTTP

Usage: wisp <COMMAND> [OPTIONS]

Commands:
  serve     Start a server (functions are deployed to it over HTTP)
  up        Serve the functions a manifest (wisp.json) lists, building them first with --build
  run       Run a WASI command module here, like `wasmtime run`
  install   Install this binary as a systemd service (sudo wisp install)
  help      Show this help, or a command's: wisp help <COMMAND>

Commands that talk to a server (--server URL, --token TOKEN; see each one's --help):
  deploy    Upload a function's module and configuration; a new version if it exists
  ls        List the functions
  show      Show one function
  rm        Delete a function
  versions  List a function's versions
  rollback  Make another of a function's versions the active one
  logs      Print a function's recent log lines; with -f, keep following them
  invoke    Call a function's route and print the response body
  kv        List, get, set and delete the keys in the server's key-value stores
  topics    List the topics, their subscribers and how far behind each one is
  publish   Publish a message to a topic
  dead-letters  List, replay or purge the messages that used up their attempts
  fleet     List the devices of the server's fleet and the functions each one serves
  secret    Set (from stdin), list and delete a function's secrets

Options:
  -h, --help       Show help
  -V, --version    Show the version

Run `wisp <COMMAND> --help` for a command's options.
";

/// A command-line error: one line, shown as `wisp: <message>`.
#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<lexopt::Error> for Error {
    fn from(e: lexopt::Error) -> Self {
        Error(format!("{e} (see --help)"))
    }
}

impl From<String> for Error {
    fn from(e: String) -> Self {
        Error(e)
    }
}

/// The command under `wisp kv`, `wisp secret`: the next argument, or `None` once `help` is
/// printed, when there is none or it asks for help.
fn subcommand(parser: &mut lexopt::Parser, help: &str) -> Result<Option<String>, Error> {
    use lexopt::prelude::*;
    match parser.next()? {
        Some(Value(command)) => Ok(Some(command.string()?)),
        Some(Short('h') | Long("help")) | None => {
            print!("{help}");
            Ok(None)
        }
        Some(other) => Err(other.unexpected().into()),
    }
}

/// Runs the command `args` (without the program name) names.
pub fn main(args: Vec<OsString>) -> Result<ExitCode, Error> {
    let mut parser = lexopt::Parser::from_args(args);
    use lexopt::prelude::*;
    let command = match parser.next()? {
        Some(Value(command)) => command.string()?,
        Some(Short('h') | Long("help")) | None => {
            print!("{HELP}");
            return Ok(ExitCode::SUCCESS);
        }
        Some(Short('V') | Long("version")) => {
            println!("{VERSION}");
            return Ok(ExitCode::SUCCESS);
        }
        Some(other) => return Err(other.unexpected().into()),
    };
    match command.as_str() {
        "serve" => serve::serve(parser),
        "up" => serve::up(parser),
        "run" => run::run(parser),
        "install" => install::install(parser),
        "deploy" => admin::deploy(parser),
        "ls" => admin::ls(parser),
        "show" => admin::show(parser),
        "rm" => admin::rm(parser),
        "versions" => admin::versions(parser),
        "rollback" => admin::rollback(parser),
        "logs" => admin::logs(parser),
        "invoke" => invoke::invoke(parser),
        "kv" => kv::kv(parser),
        "topics" => topics::topics(parser),
        "publish" => topics::publish(parser),
        "dead-letters" => topics::dead_letters(parser),
        "fleet" => fleet::fleet(parser),
        "secret" => secret::secret(parser),
        "help" => {
            let topic = parser.next()?;
            let text = match topic {
                Some(Value(v)) => match v.string()?.as_str() {
                    "serve" => serve::SERVE_HELP,
                    "up" => serve::UP_HELP,
                    "run" => run::HELP,
                    "install" => install::HELP,
                    "deploy" => admin::DEPLOY_HELP,
                    "ls" => admin::LS_HELP,
                    "show" => admin::SHOW_HELP,
                    "rm" => admin::RM_HELP,
                    "versions" => admin::VERSIONS_HELP,
                    "rollback" => admin::ROLLBACK_HELP,
                    "logs" => admin::LOGS_HELP,
                    "invoke" => invoke::HELP,
                    "kv" => kv::HELP,
                    "topics" => topics::TOPICS_HELP,
                    "publish" => topics::PUBLISH_HELP,
                    "dead-letters" => topics::DEAD_LETTERS_HELP,
                    "fleet" => fleet::HELP,
                    "secret" => secret::HELP,
                    other => return Err(Error(format!("no command `{other}`"))),
                },
                _ => HELP,
            };
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        "version" => {
            println!("{VERSION}");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(Error(format!("no command `{other}` (see wisp --help)"))),
    }
}
