//! `wisp secret`: set, list and delete a function's secrets through the admin API
//! (`/_wisp/functions/NAME/secrets[/SECRET]`, with the admin token). A value comes from stdin,
//! never from the command line, where `ps` and the shell's history would show it.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use serde::Deserialize;

use super::Error;
use super::admin::{emit, no_options, one_call, read};
use super::client;
use super::remote::{Common, Syntax, json_help, parse, server_error, server_help};
use crate::registry::MAX_SECRET_BYTES;

pub const HELP: &str = "\
Set, list and delete a function's secrets: environment variables it sees beside its `env`,
kept on the device apart from its configuration (in the data folder, readable by Wisp's user
only), and never shown again. A secret wins over an `env` entry of the same name.

Usage: wisp secret <COMMAND> [OPTIONS]

Commands:
  set     Set a secret, its value read from stdin
  list    List the names of a function's secrets
  delete  Delete a secret

Run `wisp secret <COMMAND> --help` for a command's options.
";

pub const SET_HELP: &str = concat!(
    "\
Set a function's secret to the value read from stdin, without one trailing newline (so that
`echo VALUE | wisp secret set ...` sets VALUE). The value is never an argument: `ps` and the
shell's history would show it. In a terminal, type it and end with Ctrl-D; what you type is
not hidden, so pipe it in or redirect a file where others can see the screen. The function's
next invocation sees it, without a redeploy.

Usage: wisp secret set [OPTIONS] <FUNCTION> <NAME>

Arguments:
  <FUNCTION>  The function's name
  <NAME>      The variable's name: A-Z, a-z, 0-9 and _, not starting with a digit, at most 128
              bytes; not a CGI variable nor one starting with HTTP_ or WISP_ (the host's)

Options:
",
    server_help!()
);

pub const LIST_HELP: &str = concat!(
    "\
List the names of a function's secrets, one a line, sorted. Values are never shown.

Usage: wisp secret list [OPTIONS] <FUNCTION>

Options:
",
    json_help!(),
    server_help!()
);

pub const DELETE_HELP: &str = concat!(
    "\
Delete a function's secret; its next invocation is without it.

Usage: wisp secret delete [OPTIONS] <FUNCTION> <NAME>

Options:
",
    server_help!()
);

/// Runs `wisp secret COMMAND`.
pub fn secret(mut parser: lexopt::Parser) -> Result<ExitCode, Error> {
    let Some(command) = super::subcommand(&mut parser, HELP)? else {
        return Ok(ExitCode::SUCCESS);
    };
    match command.as_str() {
        "set" => set(parser),
        "list" => list(parser),
        "delete" => delete(parser),
        other => Err(Error(format!(
            "no command `secret {other}` (see wisp secret --help)"
        ))),
    }
}

/// `/_wisp/functions/FUNCTION/secrets[/NAME]`, each part percent-encoded.
fn path(function: &str, name: Option<&str>) -> String {
    let mut path = format!(
        "/_wisp/functions/{}/secrets",
        client::encode(function, false)
    );
    if let Some(name) = name {
        path = format!("{path}/{}", client::encode(name, false));
    }
    path
}

/// The value on stdin, less one trailing line ending.
fn read_value(mut stdin: impl Read, name: &str) -> Result<Vec<u8>, Error> {
    let mut value = Vec::new();
    // Two bytes more than the cap for the line ending, one more to tell that it is over.
    let most = MAX_SECRET_BYTES as u64 + 3;
    stdin
        .by_ref()
        .take(most)
        .read_to_end(&mut value)
        .map_err(|e| Error(format!("cannot read the value of {name} from stdin: {e}")))?;
    if value.ends_with(b"\n") {
        value.pop();
        if value.ends_with(b"\r") {
            value.pop();
        }
    }
    if value.len() > MAX_SECRET_BYTES {
        return Err(Error(format!(
            "the value of {name} on stdin is over the limit of {MAX_SECRET_BYTES} bytes"
        )));
    }
    Ok(value)
}

/// Sends one call whose answer is empty (`204`).
fn send(common: &Common, method: &str, target: &str, body: &[u8]) -> Result<(), Error> {
    let headers = match method {
        "PUT" => vec![(
            "Content-Type".to_string(),
            "application/octet-stream".to_string(),
        )],
        _ => Vec::new(),
    };
    let response = common.client(true)?.send(method, target, &headers, body)?;
    if !(200..300).contains(&response.status) {
        return Err(server_error(response));
    }
    Ok(())
}

/// A command that takes no `--json`: its answer has nothing in it.
fn syntax(command: &'static str, help: &'static str, args: &'static [&'static str]) -> Syntax {
    Syntax {
        json: false,
        ..Syntax::admin(command, help, args)
    }
}

pub fn set(parser: lexopt::Parser) -> Result<ExitCode, Error> {
    let syntax = syntax("secret set", SET_HELP, &["FUNCTION", "NAME"]);
    let Some((common, args)) = parse(parser, &syntax, no_options)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let (function, name) = (&args[0], &args[1]);
    // Checked first, so that a typo never waits for a value.
    crate::registry::check_secret_name(name).map_err(|e| Error(e.to_string()))?;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("wisp: type the value of {name}, then Ctrl-D (it shows as you type)");
    }
    let value = read_value(stdin.lock(), name)?;
    send(&common, "PUT", &path(function, Some(name)), &value)?;
    emit(&format!("set secret {name} of {function}\n"));
    Ok(ExitCode::SUCCESS)
}

#[derive(Deserialize)]
struct Names {
    secrets: Vec<String>,
}

pub fn list(parser: lexopt::Parser) -> Result<ExitCode, Error> {
    let syntax = Syntax::admin("secret list", LIST_HELP, &["FUNCTION"]);
    let Some((common, args)) = parse(parser, &syntax, no_options)? else {
        return Ok(ExitCode::SUCCESS);
    };
    one_call(&common, "GET", &path(&args[0], None), None, |_, text| {
        let names: Names = read(text)?;
        Ok(names.secrets.iter().map(|n| format!("{n}\n")).collect())
    })
}

pub fn delete(parser: lexopt::Parser) -> Result<ExitCode, Error> {
    let syntax = syntax("secret delete", DELETE_HELP, &["FUNCTION", "NAME"]);
    let Some((common, args)) = parse(parser, &syntax, no_options)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let (function, name) = (&args[0], &args[1]);
    send(&common, "DELETE", &path(function, Some(name)), b"")?;
    emit(&format!("deleted secret {name} of {function}\n"));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_ending_goes() {
        let value = |input: &[u8]| read_value(input, "K").unwrap();
        assert_eq!(value(b"x\n"), b"x");
        assert_eq!(value(b"x\r\n"), b"x");
        assert_eq!(value(b"x\n\n"), b"x\n");
        assert_eq!(value(b"x"), b"x");
        assert_eq!(value(b"\n"), b"");
        assert_eq!(value(b""), b"");
    }

    #[test]
    fn a_value_over_the_cap_is_refused_without_being_shown() {
        let at_cap = vec![b'v'; MAX_SECRET_BYTES];
        assert_eq!(
            read_value(&at_cap[..], "K").unwrap().len(),
            MAX_SECRET_BYTES
        );
        let mut with_newline = at_cap.clone();
        with_newline.push(b'\n');
        assert!(read_value(&with_newline[..], "K").is_ok());
        let over = vec![b'v'; MAX_SECRET_BYTES + 1];
        let e = read_value(&over[..], "K").unwrap_err().0;
        assert!(e.contains("over the limit") && !e.contains("vvv"), "{e}");
    }

    #[test]
    fn paths_encode_their_parts() {
        assert_eq!(path("f", None), "/_wisp/functions/f/secrets");
        assert_eq!(
            path("f", Some("API_KEY")),
            "/_wisp/functions/f/secrets/API_KEY"
        );
        assert_eq!(
            path("a/b", Some("c d")),
            "/_wisp/functions/a%2Fb/secrets/c%20d"
        );
    }
}
