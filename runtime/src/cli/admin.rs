//! The commands that manage a running server through its admin API (`/_wisp/...`, with the
//! admin token): `deploy`, `ls`, `show`, `rm`, `versions`, `rollback`, `logs`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use lexopt::prelude::*;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::remote::{Common, Syntax, call, json_help, parse, server_error, server_help};
use super::{Error, client, table};

pub const DEPLOY_HELP: &str = concat!(
    "\
Upload a function's module and configuration to a server, in one request. The first deploy of
a name creates the function; each later one adds a version and makes it the active one. A
deploy with no configuration options keeps the active version's configuration; one with any
gives the whole configuration anew.

Usage: wisp deploy [OPTIONS] <NAME> <MODULE>

Arguments:
  <NAME>    The function's name: 1 to 63 of a-z, 0-9, -, starting with a letter or digit
  <MODULE>  Its WebAssembly module (a WASI command, e.g. target/wasm32-wasip1/release/x.wasm)

Options:
      --route <ROUTE>        A path it serves, exact (/api/x) or a prefix (/x/...)
                             (repeatable; a new function needs one)
      --method <METHOD>      A method it takes (repeatable) [default: any]
      --cors <ORIGIN>        Let pages from ORIGIN (or *) call it (repeatable)
      --env <KEY=VALUE>      An environment variable it sees (repeatable)
      --store <NAME>         A key-value store it may use, in its own namespace (repeatable)
                             [default: default]
      --shared-store <NAME>  A store it shares with the functions that name it so (repeatable)
      --topic <TOPIC>        A topic it subscribes to (repeatable)
      --publish <TOPIC>      A topic it may publish to (repeatable)
      --allow-host <URL>     An origin it may send HTTP requests to: https://HOST,
                             http://HOST:PORT, https://*.DOMAIN (repeatable) [default: none]
      --timer <SCHEDULE>     A timer: `every 30s` or a cron expression, UTC (repeatable)
      --watch <STORE:PREFIX> Keys whose changes invoke it (repeatable)
      --fuel <N>             Its fuel (CPU) per request [default: the server's]
      --timeout-ms <MS>      Its wall-clock deadline per request [default: the server's]
      --memory-mb <MB>       Its linear memory cap [default: the server's]
      --max-depth <N>        Its deepest nesting of wasm calls [default: the server's]
      --stdout-kb <KB>       Its response (stdout) cap [default: the server's]
      --stderr-kb <KB>       Its log (stderr) cap per request [default: the server's]
",
    json_help!(),
    server_help!()
);

pub const LS_HELP: &str = concat!(
    "\
List the functions on a server.

Usage: wisp ls [OPTIONS]

Options:
",
    json_help!(),
    server_help!()
);

pub const SHOW_HELP: &str = concat!(
    "\
Show one function: its active version, routes, configuration and module.

Usage: wisp show [OPTIONS] <NAME>

Options:
",
    json_help!(),
    server_help!()
);

pub const RM_HELP: &str = concat!(
    "\
Delete a function, all its versions and its routes.

Usage: wisp rm [OPTIONS] <NAME>

Options:
",
    json_help!(),
    server_help!()
);

pub const VERSIONS_HELP: &str = concat!(
    "\
List a function's versions, oldest first; * marks the active one.

Usage: wisp versions [OPTIONS] <NAME>

Options:
",
    json_help!(),
    server_help!()
);

pub const ROLLBACK_HELP: &str = concat!(
    "\
Make one of a function's versions (see `wisp versions`) the active one.

Usage: wisp rollback [OPTIONS] <NAME> <VERSION>

Options:
",
    json_help!(),
    server_help!()
);

pub const LOGS_HELP: &str = concat!(
    "\
Print a function's recent log lines (its stderr, and why invocations failed), each after its
time in UTC.

Usage: wisp logs [OPTIONS] <NAME>

Options:
  -f, --follow               Keep printing new lines as they come, until interrupted
",
    server_help!()
);

/// Reads a JSON answer as `T`, or says the server sent something else.
pub(super) fn read<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|e| Error(format!("unexpected answer from the server: {e}")))
}

/// What most commands do: one call, then its answer printed as JSON with `--json`, else as
/// `human` puts it (from the status and the JSON text).
pub(super) fn one_call(
    common: &Common,
    method: &str,
    target: &str,
    body: Option<(&str, &[u8])>,
    human: impl FnOnce(u16, &str) -> Result<String, Error>,
) -> Result<ExitCode, Error> {
    let client = common.client(true)?;
    let (headers, body) = match body {
        Some((content_type, body)) => (
            vec![("Content-Type".to_string(), content_type.to_string())],
            body,
        ),
        None => (Vec::new(), &b""[..]),
    };
    let (status, text) = call(&client, method, target, &headers, body)?;
    let out = match common.json {
        true => format!("{}\n", table::pretty_json(&text)),
        false => human(status, &text)?,
    };
    emit(&out);
    Ok(ExitCode::SUCCESS)
}

/// Prints to stdout; a reader that went away (`wisp ls | head -1`) is not an error.
pub(super) fn emit(text: &str) {
    let _ = std::io::stdout().write_all(text.as_bytes());
}

fn function_path(name: &str) -> String {
    format!("/_wisp/functions/{}", client::encode(name, false))
}

#[derive(Deserialize)]
struct FunctionInfo {
    name: String,
    version: u64,
    #[serde(default)]
    hash: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    routes: Vec<String>,
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    cors: Option<Map<String, Value>>,
    #[serde(default)]
    limits: Map<String, Value>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Names only: the server never gives a value.
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default)]
    stores: Vec<String>,
    #[serde(default)]
    shared_stores: Vec<String>,
    #[serde(default)]
    deployed_at: Option<u64>,
    #[serde(default)]
    topics: Vec<Value>,
    #[serde(default)]
    publish: Vec<String>,
    #[serde(default)]
    allowed_hosts: Vec<String>,
    #[serde(default)]
    timers: Vec<Value>,
    #[serde(default)]
    watch: Vec<Value>,
}

impl FunctionInfo {
    /// What invokes it: its routes, then its topics, timers and watches.
    fn entry_points(&self) -> Vec<String> {
        let name = |v: &Value, key: &str| match v {
            Value::String(s) => s.clone(),
            other => plain(&other[key]),
        };
        let mut points = self.routes.clone();
        points.extend(
            self.topics
                .iter()
                .map(|t| format!("topic {}", name(t, "topic"))),
        );
        points.extend(self.timers.iter().map(|t| match t {
            Value::String(schedule) => format!("timer {schedule}"),
            other => format!(
                "timer {} ({})",
                plain(&other["schedule"]),
                plain(&other["scope"])
            ),
        }));
        points.extend(
            self.watch
                .iter()
                .map(|w| format!("watch {}:{}", plain(&w["store"]), plain(&w["prefix"]))),
        );
        points
    }
}

#[derive(Deserialize)]
struct FunctionList {
    functions: Vec<FunctionInfo>,
}

#[derive(Deserialize)]
struct VersionList {
    #[serde(default)]
    active: Option<u64>,
    versions: Vec<VersionInfo>,
}

#[derive(Deserialize)]
struct VersionInfo {
    version: u64,
    #[serde(default)]
    hash: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    deployed_at: Option<u64>,
    #[serde(default)]
    active: bool,
}

fn deployed(at: Option<u64>) -> String {
    at.map_or_else(|| "-".into(), table::date)
}

fn short_hash(hash: &str) -> String {
    hash.chars().take(12).collect()
}

/// `77.2 KiB, sha256 0123456789ab`: what identifies a module at a glance.
fn module_summary(size: u64, hash: &str) -> String {
    format!("{}, sha256 {}", table::size(size), short_hash(hash))
}

/// A JSON value as a person writes it: strings bare, lists comma-separated.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// `key=value` for each key set (not null, not an empty list), space-separated.
fn pairs(map: &Map<String, Value>) -> String {
    let set = map
        .iter()
        .filter(|(_, v)| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()));
    set.map(|(k, v)| format!("{k}={}", plain(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn number<T: std::str::FromStr>(parser: &mut lexopt::Parser, name: &str) -> Result<T, Error> {
    let value = parser.value()?.string()?;
    value
        .parse()
        .map_err(|_| Error(format!("--{name}: `{value}` is not a valid number")))
}

/// For a command with no options of its own.
pub(super) fn no_options(_: &str, _: &mut lexopt::Parser) -> Result<bool, Error> {
    Ok(false)
}

pub fn deploy(parser: lexopt::Parser) -> Result<ExitCode, Error> {
    let syntax = Syntax::admin("deploy", DEPLOY_HELP, &["NAME", "MODULE"]);
    let mut query = Vec::new();
    let parsed = parse(parser, &syntax, |name, parser| {
        let value = match name {
            "route" | "method" | "cors" | "store" | "shared-store" | "topic" | "publish"
            | "timer" | "allow-host" => parser.value()?.string()?,
            "watch" => {
                let watch = parser.value()?.string()?;
                if !watch.contains(':') {
                    return Err(Error(format!("--watch `{watch}`: expected STORE:PREFIX")));
                }
                watch
            }
            "env" => {
                let pair = parser.value()?.string()?;
                if !pair.contains('=') || pair.starts_with('=') {
                    return Err(Error(format!("--env `{pair}`: expected KEY=VALUE")));
                }
                pair
            }
            "fuel" | "timeout-ms" | "memory-mb" | "max-depth" | "stdout-kb" | "stderr-kb" => {
                number::<u64>(parser, name)?.to_string()
            }
            _ => return Ok(false),
        };
        // The API's parameter names are the manifest's.
        let key = match name {
            "max-depth" => "max_recursion_depth".to_string(),
            _ => name.replace('-', "_"),
        };
        query.push(format!("{key}={}", client::encode(&value, true)));
        Ok(true)
    })?;
    let Some((common, args)) = parsed else {
        return Ok(ExitCode::SUCCESS);
    };
    let path = PathBuf::from(&args[1]);
    let module =
        std::fs::read(&path).map_err(|e| Error(format!("cannot read {}: {e}", path.display())))?;
    let mut target = function_path(&args[0]);
    if !query.is_empty() {
        target = format!("{target}?{}", query.join("&"));
    }
    let body = Some(("application/wasm", module.as_slice()));
    one_call(&common, "PUT", &target, body, |status, text| {
        let f: FunctionInfo = read(text)?;
        let verb = if status == 201 { "created" } else { "updated" };
        let (version, module) = (f.version, module_summary(f.size, &f.hash));
        Ok(format!(
            "{verb} {} version {version} ({module}) on {}\n",
            f.name,
            f.entry_points().join(", ")
        ))
    })
}

pub fn ls(parser: lexopt::Parser) -> Result<ExitCode, Error> {
    let syntax = Syntax::admin("ls", LS_HELP, &[]);
    let Some((common, _)) = parse(parser, &syntax, no_options)? else {
        return Ok(ExitCode::SUCCESS);
    };
    one_call(&common, "GET", "/_wisp/functions", None, |_, text| {
        let list: FunctionList = read(text)?;
        let rows: Vec<Vec<String>> = list
            .functions
            .iter()
            .map(|f| {
                let (version, routes) = (f.version.to_string(), f.entry_points().join(","));
                vec![
                    f.name.clone(),
                    version,
                    routes,
                    table::size(f.size),
                    deployed(f.deployed_at),
                ]
            })
            .collect();
        Ok(table::render(
            &["NAME", "VERSION", "ROUTES", "SIZE", "DEPLOYED"],
            &rows,
        ))
    })
}

pub fn show(parser: lexopt::Parser) -> Result<ExitCode, Error> {
    let syntax = Syntax::admin("show", SHOW_HELP, &["NAME"]);
    let Some((common, args)) = parse(parser, &syntax, no_options)? else {
        return Ok(ExitCode::SUCCESS);
    };
    one_call(&common, "GET", &function_path(&args[0]), None, |_, text| {
        let f: FunctionInfo = read(text)?;
        let or = |text: String, none: &str| if text.is_empty() { none.into() } else { text };
        let mut env: Vec<String> = f.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if env.is_empty() {
            env.push("none".into());
        }
        let cors = f.cors.as_ref().map(pairs).unwrap_or_default();
        let fields = [
            ("name", vec![f.name.clone()]),
            ("version", vec![f.version.to_string()]),
            ("routes", vec![or(f.routes.join(", "), "none")]),
            (
                "triggers",
                vec![or(f.entry_points()[f.routes.len()..].join(", "), "none")],
            ),
            ("publishes", vec![or(f.publish.join(", "), "none")]),
            (
                "calls out to",
                vec![or(f.allowed_hosts.join(", "), "nothing")],
            ),
            ("methods", vec![or(f.methods.join(", "), "any")]),
            ("cors", vec![or(cors, "none")]),
            (
                "limits",
                vec![or(pairs(&f.limits), "the server's defaults")],
            ),
            ("env", env),
            ("secrets", vec![or(f.secrets.join(", "), "none")]),
            ("stores", vec![or(f.stores.join(", "), "none")]),
            (
                "shared stores",
                vec![or(f.shared_stores.join(", "), "none")],
            ),
            (
                "size",
                vec![format!("{} bytes ({})", f.size, table::size(f.size))],
            ),
            ("sha256", vec![f.hash.clone()]),
            ("deployed", vec![format!("{} UTC", deployed(f.deployed_at))]),
        ];
        let mut out = String::new();
        // The values start in one column, past the longest key.
        let width = fields
            .iter()
            .map(|(key, _)| key.len() + 2)
            .max()
            .unwrap_or(0);
        for (key, values) in fields {
            // A list's later items go under its first, in the value column.
            let keys = std::iter::once(format!("{key}:")).chain(std::iter::repeat(String::new()));
            for (key, value) in keys.zip(values) {
                out.push_str(&format!("{key:<width$}{value}\n"));
            }
        }
        Ok(out)
    })
}

pub fn rm(parser: lexopt::Parser) -> Result<ExitCode, Error> {
    let syntax = Syntax::admin("rm", RM_HELP, &["NAME"]);
    let Some((common, args)) = parse(parser, &syntax, no_options)? else {
        return Ok(ExitCode::SUCCESS);
    };
    one_call(&common, "DELETE", &function_path(&args[0]), None, |_, _| {
        Ok(format!("deleted {}\n", args[0]))
    })
}

pub fn versions(parser: lexopt::Parser) -> Result<ExitCode, Error> {
    let syntax = Syntax::admin("versions", VERSIONS_HELP, &["NAME"]);
    let Some((common, args)) = parse(parser, &syntax, no_options)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let target = format!("{}/versions", function_path(&args[0]));
    one_call(&common, "GET", &target, None, |_, text| {
        let list: VersionList = read(text)?;
        let rows: Vec<Vec<String>> = list
            .versions
            .iter()
            .map(|v| {
                let active = v.active || list.active == Some(v.version);
                vec![
                    v.version.to_string(),
                    short_hash(&v.hash),
                    table::size(v.size),
                    deployed(v.deployed_at),
                    if active { "*".into() } else { String::new() },
                ]
            })
            .collect();
        Ok(table::render(
            &["VERSION", "HASH", "SIZE", "DEPLOYED", "ACTIVE"],
            &rows,
        ))
    })
}

pub fn rollback(parser: lexopt::Parser) -> Result<ExitCode, Error> {
    let syntax = Syntax::admin("rollback", ROLLBACK_HELP, &["NAME", "VERSION"]);
    let Some((common, args)) = parse(parser, &syntax, no_options)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let version: u64 = args[1]
        .parse()
        .map_err(|_| Error(format!("VERSION `{}` is not a version number", args[1])))?;
    let target = format!("{}/rollback?version={version}", function_path(&args[0]));
    one_call(&common, "POST", &target, None, |_, text| {
        let f: FunctionInfo = read(text)?;
        let module = module_summary(f.size, &f.hash);
        Ok(format!(
            "{} is at version {} ({module})\n",
            f.name, f.version
        ))
    })
}

pub fn logs(parser: lexopt::Parser) -> Result<ExitCode, Error> {
    let syntax = Syntax {
        json: false,
        ..Syntax::admin("logs", LOGS_HELP, &["NAME"])
    };
    let mut follow = false;
    let parsed = parse(parser, &syntax, |name, _| {
        follow |= matches!(name, "f" | "follow");
        Ok(matches!(name, "f" | "follow"))
    })?;
    let Some((common, args)) = parsed else {
        return Ok(ExitCode::SUCCESS);
    };
    let mut client = common.client(true)?;
    let mut target = format!("{}/logs", function_path(&args[0]));
    if follow {
        target.push_str("?follow=1");
        // New lines may be minutes apart.
        client.read_timeout = None;
    }
    let response = client.send("GET", &target, &[], b"")?;
    if !(200..300).contains(&response.status) {
        return Err(server_error(response));
    }
    let mut stdout = std::io::stdout().lock();
    // Each piece is flushed at once so that followed lines show as they happen; a reader that
    // went away (`| head`) ends the stream quietly.
    response.stream(|bytes| {
        stdout
            .write_all(bytes)
            .and_then(|()| stdout.flush())
            .is_ok()
    })?;
    if follow {
        eprintln!("wisp: {} ended the log stream", client.url);
    }
    Ok(ExitCode::SUCCESS)
}
