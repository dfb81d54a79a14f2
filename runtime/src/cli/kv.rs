//! `wisp kv`: read and write a server's key-value stores through its admin API
//! (`/_wisp/kv/STORE/NAMESPACE[/KEY]`, with the admin token): `ls`, `get`, `set`, `rm`.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use lexopt::prelude::*;
use serde::Deserialize;

use super::Error;
use super::client::{self, Client, Response};
use super::remote::{Common, Syntax, call, parse, server_error, server_help};

/// The `--store` line, then the options every command that talks to a server takes.
macro_rules! kv_options_help {
    () => {
        concat!(
            "      --store <STORE>        The store [default: default]\n",
            server_help!()
        )
    };
}

pub const HELP: &str = "\
Read and write the key-value stores on a server. Each store has a namespace for each function,
named after it, and one its functions share, `_shared`.

Usage: wisp kv <COMMAND> [OPTIONS]

Commands:
  ls     List the keys in a namespace
  get    Print a key's value
  set    Set a key's value
  rm     Delete a key

Run `wisp kv <COMMAND> --help` for a command's options.
";

pub const LS_HELP: &str = concat!(
    "\
List the keys in a namespace, in byte order, one a line.

Usage: wisp kv ls [OPTIONS] <NAMESPACE>

Arguments:
  <NAMESPACE>  A function's name, or _shared

Options:
      --prefix <PREFIX>      Only the keys that start with PREFIX
      --limit <N>            At most N keys [default: all]
      --json                 Print {\"keys\": [...]} instead
",
    kv_options_help!()
);

pub const GET_HELP: &str = concat!(
    "\
Print a key's value to stdout, byte for byte (no newline is added).

Usage: wisp kv get [OPTIONS] <NAMESPACE> <KEY>

Arguments:
  <NAMESPACE>  A function's name, or _shared
  <KEY>        The key

Options:
",
    kv_options_help!()
);

pub const SET_HELP: &str = concat!(
    "\
Set a key's value: VALUE, or the bytes of a file.

Usage: wisp kv set [OPTIONS] <NAMESPACE> <KEY> [VALUE]

Arguments:
  <NAMESPACE>  A function's name, or _shared
  <KEY>        The key
  [VALUE]      The value, unless --file gives it

Options:
      --file <PATH>          Take the value from PATH (- for stdin)
",
    kv_options_help!()
);

pub const RM_HELP: &str = concat!(
    "\
Delete a key.

Usage: wisp kv rm [OPTIONS] <NAMESPACE> <KEY>

Arguments:
  <NAMESPACE>  A function's name, or _shared
  <KEY>        The key

Options:
",
    kv_options_help!()
);

/// The most keys the API gives in one answer.
const MAX_PAGE: u64 = 1000;

/// Runs `wisp kv COMMAND`.
pub fn kv(mut parser: lexopt::Parser) -> Result<ExitCode, Error> {
    let Some(command) = super::subcommand(&mut parser, HELP)? else {
        return Ok(ExitCode::SUCCESS);
    };
    match command.as_str() {
        "ls" => ls(parser),
        "get" => get(parser),
        "set" => set(parser),
        "rm" => rm(parser),
        other => Err(Error(format!(
            "no command `kv {other}` (see wisp kv --help)"
        ))),
    }
}

/// A `kv` command's syntax: no `--json` but for `ls`.
fn syntax(command: &'static str, help: &'static str, args: &'static [&'static str]) -> Syntax {
    Syntax {
        json: false,
        ..Syntax::admin(command, help, args)
    }
}

/// The store and namespace, and the key if there is one, checked and ready for a path.
struct Place {
    store: String,
    namespace: String,
    key: Option<String>,
}

impl Place {
    fn new(store: String, namespace: &str, key: Option<&str>) -> Result<Place, Error> {
        // An empty one would make another path (`/kv/S/N/` is not a key's).
        let parts = [("--store", store.as_str()), ("NAMESPACE", namespace)];
        for (what, part) in parts.into_iter().chain(key.map(|k| ("KEY", k))) {
            if part.is_empty() {
                return Err(Error(format!("{what} is empty")));
            }
        }
        Ok(Place {
            store,
            namespace: namespace.into(),
            key: key.map(str::to_string),
        })
    }

    /// `/_wisp/kv/STORE/NAMESPACE[/KEY]`, each part percent-encoded.
    fn path(&self) -> String {
        let mut path = format!(
            "/_wisp/kv/{}/{}",
            client::encode(&self.store, false),
            client::encode(&self.namespace, false)
        );
        if let Some(key) = &self.key {
            path = format!("{path}/{}", client::encode(key, false));
        }
        path
    }

    /// The one-line error for a missing key.
    fn missing(&self) -> Error {
        let key = self.key.as_deref().unwrap_or("");
        Error(format!(
            "no key `{key}` in {}/{} (HTTP 404)",
            self.store, self.namespace
        ))
    }

    /// One call on the key: the response if 2xx, else its one-line error (a `GET` or `DELETE`
    /// answered 404 found no key).
    fn send(&self, client: &Client, method: &str, body: &[u8]) -> Result<Response, Error> {
        let headers = match method {
            "PUT" => vec![(
                "Content-Type".to_string(),
                "application/octet-stream".to_string(),
            )],
            _ => Vec::new(),
        };
        let response = client.send(method, &self.path(), &headers, body)?;
        match (response.status, method) {
            (200..300, _) => Ok(response),
            (404, "GET" | "DELETE") => Err(self.missing()),
            _ => Err(server_error(response)),
        }
    }
}

/// Parses a command's line with `--store` and the command's own options (`own`).
fn parse_kv(
    parser: lexopt::Parser,
    syntax: &Syntax,
    store: &mut String,
    mut own: impl FnMut(&str, &mut lexopt::Parser) -> Result<bool, Error>,
) -> Result<Option<(Common, Vec<String>)>, Error> {
    parse(parser, syntax, |name, parser| match name {
        "store" => {
            *store = parser.value()?.string()?;
            Ok(true)
        }
        _ => own(name, parser),
    })
}

/// Prints to stdout; a reader that went away (`wisp kv ls x | head -1`) is not an error.
fn emit(bytes: &[u8]) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(bytes).and_then(|()| stdout.flush());
}

#[derive(Deserialize)]
struct Page {
    keys: Vec<String>,
    #[serde(default)]
    next: Option<String>,
}

pub fn ls(parser: lexopt::Parser) -> Result<ExitCode, Error> {
    let syntax = Syntax::admin("kv ls", LS_HELP, &["NAMESPACE"]);
    let (mut store, mut prefix, mut limit) = ("default".to_string(), None, None);
    let parsed = parse_kv(parser, &syntax, &mut store, |name, parser| {
        match name {
            "prefix" => prefix = Some(parser.value()?.string()?),
            "limit" => {
                let value = parser.value()?.string()?;
                match value.parse::<u64>() {
                    Ok(n) if n > 0 => limit = Some(n),
                    _ => return Err(Error(format!("--limit: `{value}` is not a number above 0"))),
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    let Some((common, args)) = parsed else {
        return Ok(ExitCode::SUCCESS);
    };
    let place = Place::new(store, &args[0], None)?;
    let client = common.client(true)?;
    let mut keys = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let left = limit.map_or(MAX_PAGE, |n| n - keys.len() as u64);
        let mut query = vec![format!("limit={}", left.min(MAX_PAGE))];
        for (name, value) in [("prefix", &prefix), ("after", &after)] {
            if let Some(value) = value {
                query.push(format!("{name}={}", client::encode(value, false)));
            }
        }
        let target = format!("{}?{}", place.path(), query.join("&"));
        let (_, text) = call(&client, "GET", &target, &[], b"")?;
        let page: Page = serde_json::from_str(&text)
            .map_err(|e| Error(format!("unexpected answer from the server: {e}")))?;
        let done = page.keys.is_empty() || page.next.is_none();
        keys.extend(page.keys);
        if done || limit.is_some_and(|n| keys.len() as u64 >= n) {
            break;
        }
        after = page.next;
    }
    if let Some(n) = limit {
        keys.truncate(usize::try_from(n).unwrap_or(usize::MAX));
    }
    let out = match common.json {
        true => {
            let json = serde_json::json!({ "keys": keys });
            format!(
                "{}\n",
                serde_json::to_string_pretty(&json).expect("JSON values serialize")
            )
        }
        false => keys.iter().map(|k| format!("{k}\n")).collect(),
    };
    emit(out.as_bytes());
    Ok(ExitCode::SUCCESS)
}

pub fn get(parser: lexopt::Parser) -> Result<ExitCode, Error> {
    let syntax = syntax("kv get", GET_HELP, &["NAMESPACE", "KEY"]);
    let mut store = "default".to_string();
    let Some((common, args)) = parse_kv(parser, &syntax, &mut store, |_, _| Ok(false))? else {
        return Ok(ExitCode::SUCCESS);
    };
    let place = Place::new(store, &args[0], Some(&args[1]))?;
    let response = place.send(&common.client(true)?, "GET", b"")?;
    let mut stdout = std::io::stdout().lock();
    response.stream(|bytes| stdout.write_all(bytes).is_ok())?;
    let _ = stdout.flush();
    Ok(ExitCode::SUCCESS)
}

pub fn set(mut parser: lexopt::Parser) -> Result<ExitCode, Error> {
    // VALUE is there unless --file is: look for it before parsing for real.
    let line: Vec<OsString> = parser.raw_args()?.collect();
    let (from_file, values) = scan_set(&line);
    if from_file && values > 2 {
        return Err(Error("kv set takes VALUE or --file, not both".into()));
    }
    let args: &'static [&'static str] = match from_file {
        true => &["NAMESPACE", "KEY"],
        false => &["NAMESPACE", "KEY", "VALUE"],
    };
    let syntax = syntax("kv set", SET_HELP, args);
    let (mut store, mut file) = ("default".to_string(), None);
    let parser = lexopt::Parser::from_args(line);
    let parsed = parse_kv(parser, &syntax, &mut store, |name, parser| match name {
        "file" if file.is_some() => Err(Error("give one --file".into())),
        "file" => {
            file = Some(parser.value()?.string()?);
            Ok(true)
        }
        _ => Ok(false),
    })?;
    let Some((common, args)) = parsed else {
        return Ok(ExitCode::SUCCESS);
    };
    let value = match &file {
        Some(path) => super::remote::read_file(path)?,
        None => args[2].clone().into_bytes(),
    };
    let place = Place::new(store, &args[0], Some(&args[1]))?;
    place.send(&common.client(true)?, "PUT", &value)?;
    let (store, namespace, n) = (&place.store, &place.namespace, value.len());
    let bytes = if n == 1 { "byte" } else { "bytes" };
    emit(format!("set `{}` in {store}/{namespace} ({n} {bytes})\n", args[1]).as_bytes());
    Ok(ExitCode::SUCCESS)
}

/// Whether a `kv set` line has `--file`, and how many positional arguments it has. Errors are
/// left for the real parse to report.
fn scan_set(line: &[OsString]) -> (bool, usize) {
    let mut parser = lexopt::Parser::from_args(line.iter().cloned());
    let (mut file, mut values) = (false, 0);
    while let Ok(Some(arg)) = parser.next() {
        match arg {
            Value(_) => values += 1,
            Long(name) => {
                file |= name == "file";
                // The options that take a value, which must not count as positional.
                if matches!(name, "file" | "store" | "server" | "token" | "token-file") {
                    let _ = parser.value();
                }
            }
            Short(_) => {}
        }
    }
    (file, values)
}

pub fn rm(parser: lexopt::Parser) -> Result<ExitCode, Error> {
    let syntax = syntax("kv rm", RM_HELP, &["NAMESPACE", "KEY"]);
    let mut store = "default".to_string();
    let Some((common, args)) = parse_kv(parser, &syntax, &mut store, |_, _| Ok(false))? else {
        return Ok(ExitCode::SUCCESS);
    };
    let place = Place::new(store, &args[0], Some(&args[1]))?;
    place.send(&common.client(true)?, "DELETE", b"")?;
    let (store, namespace) = (&place.store, &place.namespace);
    emit(format!("deleted `{}` from {store}/{namespace}\n", args[1]).as_bytes());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_every_part() {
        let place = Place::new("default".into(), "_shared", Some("a/b c?é%")).unwrap();
        assert_eq!(
            place.path(),
            "/_wisp/kv/default/_shared/a%2Fb%20c%3F%C3%A9%25"
        );
        let place = Place::new("s".into(), "f-1", None).unwrap();
        assert_eq!(place.path(), "/_wisp/kv/s/f-1");
        assert!(Place::new("s".into(), "f", Some("")).is_err());
        assert!(Place::new("s".into(), "", Some("k")).is_err());
        assert!(Place::new(String::new(), "f", None).is_err());
        let place = Place::new("default".into(), "tester", Some("k")).unwrap();
        assert_eq!(place.missing().0, "no key `k` in default/tester (HTTP 404)");
    }

    #[test]
    fn set_finds_file_and_value() {
        let scan = |line: &[&str]| scan_set(&line.iter().map(OsString::from).collect::<Vec<_>>());
        assert_eq!(scan(&["ns", "k", "v"]), (false, 3));
        assert_eq!(scan(&["ns", "k", "--file", "-"]), (true, 2));
        assert_eq!(scan(&["--file=x", "ns", "k"]), (true, 2));
        assert_eq!(
            scan(&["--store", "s", "ns", "k", "--token", "t", "v"]),
            (false, 3)
        );
        assert_eq!(scan(&["ns", "k", "--", "--file"]), (false, 3));
        assert_eq!(scan(&["ns", "k", "--file", "p", "v"]), (true, 3));
    }
}
