//! What the commands that talk to a server share: `--server`, `--fingerprint` and the admin
//! token, parsing their command lines, and turning the server's error answers into one line.

use std::io::Read;
use std::path::PathBuf;

use lexopt::prelude::*;
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::Error;
use super::client::{self, Client, Response, Url};
use crate::tls::Fingerprint;

const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";
/// Largest JSON answer held in memory; the real ones are a few KiB.
const MAX_JSON: u64 = 16 << 20;

/// Where to send requests, and with which token.
#[derive(Default)]
pub struct Common {
    server: Option<String>,
    fingerprint: Option<String>,
    token: Option<Token>,
    pub json: bool,
}

enum Token {
    Value(String),
    File(PathBuf),
}

/// A command's syntax: its name, its help, its positional arguments (all required).
#[derive(Clone, Copy)]
pub struct Syntax {
    pub command: &'static str,
    pub help: &'static str,
    pub args: &'static [&'static str],
    /// Whether it takes the admin token.
    pub admin: bool,
    /// Whether it takes `--json`.
    pub json: bool,
}

impl Syntax {
    /// An admin command's, with `--json`.
    pub const fn admin(
        command: &'static str,
        help: &'static str,
        args: &'static [&'static str],
    ) -> Self {
        Syntax {
            command,
            help,
            args,
            admin: true,
            json: true,
        }
    }
}

/// Parses a command line: `--help`, the server options, the command's own options (`own`
/// gets each one's name, a short one's as its letter, and says whether it knew it), and the
/// positional arguments. None when it printed the help.
pub fn parse(
    mut parser: lexopt::Parser,
    syntax: &Syntax,
    mut own: impl FnMut(&str, &mut lexopt::Parser) -> Result<bool, Error>,
) -> Result<Option<(Common, Vec<String>)>, Error> {
    let mut common = Common::default();
    let mut args = Vec::new();
    while let Some(arg) = parser.next()? {
        let (name, dashes) = match arg {
            Short('h') | Long("help") => {
                print!("{}", syntax.help);
                return Ok(None);
            }
            Value(value) if args.len() < syntax.args.len() => {
                args.push(value.string()?);
                continue;
            }
            Value(_) => return Err(arg.unexpected().into()),
            Short(c) => (c.to_string(), "-"),
            Long(name) => (name.to_string(), "--"),
        };
        match (name.as_str(), syntax.admin) {
            ("server", _) => common.server = Some(parser.value()?.string()?),
            ("fingerprint", _) => common.fingerprint = Some(parser.value()?.string()?),
            ("token", true) => common.token = Some(Token::Value(parser.value()?.string()?)),
            ("token-file", true) => common.token = Some(Token::File(parser.value()?.into())),
            ("json", _) if syntax.json => common.json = true,
            _ if own(&name, &mut parser)? => {}
            _ => return Err(Error(format!("unknown option {dashes}{name} (see --help)"))),
        }
    }
    if args.len() < syntax.args.len() {
        let (command, needs) = (syntax.command, syntax.args.join(" and "));
        return Err(Error(format!(
            "{command} needs {needs} (see wisp {command} --help)"
        )));
    }
    Ok(Some((common, args)))
}

impl Common {
    /// A client for the server, with the admin token if `admin`.
    pub fn client(&self, admin: bool) -> Result<Client, Error> {
        let server = match &self.server {
            Some(server) => server.clone(),
            None => std::env::var("WISP_SERVER")
                .ok()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_SERVER.into()),
        };
        let url = Url::parse(server.trim())?;
        Ok(Client {
            fingerprint: self.fingerprint(&url)?,
            url,
            token: if admin { Some(self.token()?) } else { None },
            read_timeout: Some(client::READ_TIMEOUT),
        })
    }

    /// `--fingerprint`, else `$WISP_FINGERPRINT`: the certificate an https server must show.
    fn fingerprint(&self, url: &Url) -> Result<Option<Fingerprint>, Error> {
        let (text, given) = match &self.fingerprint {
            Some(text) => (text.clone(), "--fingerprint"),
            None => match std::env::var("WISP_FINGERPRINT") {
                Ok(text) if !text.trim().is_empty() => (text, "WISP_FINGERPRINT"),
                _ => return Ok(None),
            },
        };
        if !url.tls {
            return Err(Error(format!(
                "{given} pins an https:// server's certificate; {url} is plain http"
            )));
        }
        let print = Fingerprint::parse(&text).ok_or_else(|| {
            Error(format!(
                "{given} `{}` is not a SHA256 fingerprint (64 hex digits, colons optional)",
                text.trim()
            ))
        })?;
        Ok(Some(print))
    }

    fn token(&self) -> Result<String, Error> {
        let token = match &self.token {
            Some(Token::Value(token)) => token.trim().to_string(),
            Some(Token::File(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Error(format!("cannot read token file {}: {e}", path.display()))
                })?;
                let token = text.trim().to_string();
                if token.is_empty() {
                    return Err(Error(format!("token file {} is empty", path.display())));
                }
                token
            }
            None => std::env::var("WISP_TOKEN")
                .unwrap_or_default()
                .trim()
                .to_string(),
        };
        if token.is_empty() {
            return Err(Error(
                "no admin token: pass --token TOKEN or --token-file PATH (the server keeps it in \
                 DATA/admin.token and says where when it starts), or set WISP_TOKEN"
                    .into(),
            ));
        }
        // It goes into a header line.
        if token.contains(|c: char| c.is_control()) {
            return Err(Error(
                "the admin token has a control character in it".into(),
            ));
        }
        Ok(token)
    }
}

/// The one-line error for a non-2xx answer: the server's `{"error": ...}` message if it sent
/// one, else the first line of its body, else the status's reason.
pub fn server_error(response: Response) -> Error {
    #[derive(Deserialize)]
    struct Message {
        error: String,
    }
    let (status, reason) = (response.status, response.reason.clone());
    let body = response.read_all(64 << 10).unwrap_or_default();
    let message = match serde_json::from_slice::<Message>(&body) {
        Ok(m) => m.error,
        Err(_) => String::from_utf8_lossy(&body)
            .lines()
            .next()
            .unwrap_or("")
            .into(),
    };
    let mut message: String = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if message.chars().count() > 300 {
        message = message.chars().take(300).chain(['…']).collect();
    }
    if message.is_empty() {
        message = if reason.is_empty() {
            "request failed".into()
        } else {
            reason
        };
    }
    Error(format!("{message} (HTTP {status})"))
}

/// One admin call that answers JSON: the status and the body of a 2xx answer.
pub fn call(
    client: &Client,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<(u16, String), Error> {
    let response = client.send(method, target, headers, body)?;
    if !(200..300).contains(&response.status) {
        return Err(server_error(response));
    }
    let status = response.status;
    let body = response.read_all(MAX_JSON)?;
    let text = String::from_utf8(body)
        .map_err(|_| Error(format!("bad response from {}: not UTF-8", client.url)))?;
    // Checked here so that `--json` never prints something that is not JSON.
    serde_json::from_str::<IgnoredAny>(&text)
        .map_err(|e| Error(format!("bad response from {}: not JSON: {e}", client.url)))?;
    Ok((status, text))
}

/// The `--json` line of the commands that have it.
macro_rules! json_help {
    () => {
        "      --json                 Print the server's JSON answer instead\n"
    };
}
pub(crate) use json_help;

/// The options every command that talks to a server takes (`invoke` has no token ones).
macro_rules! server_help {
    () => {
        "
Server options:
      --server <URL>         The server [default: $WISP_SERVER, else http://127.0.0.1:8080]
      --fingerprint <SHA256> The certificate an https:// server must show, as the server prints
                             it at start [default: $WISP_FINGERPRINT, else the one pinned in
                             ~/.config/wisp/known_devices, else the first one seen, then pinned]
      --token <TOKEN>        The admin token [default: $WISP_TOKEN]
      --token-file <PATH>    Read the admin token from PATH (the server's DATA/admin.token;
                             it says where when it starts)
  -h, --help                 Show this help
"
    };
}
pub(crate) use server_help;

/// The bytes of the file at `path`, or of stdin for `-`.
pub fn read_file(path: &str) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::new();
    let read = match path {
        "-" => std::io::stdin().read_to_end(&mut bytes).map(drop),
        _ => std::fs::read(path).map(|b| bytes = b),
    };
    read.map_err(|e| Error(format!("cannot read {path}: {e}")))?;
    Ok(bytes)
}
