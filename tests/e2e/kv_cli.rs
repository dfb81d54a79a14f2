//! `wisp kv` (`ls`, `get`, `set`, `rm`), run as the real `wisp` binary against a real
//! `wisp serve`.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::{Server, TOKEN, TempDir, WISP};

/// What a `wisp` command did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    /// Asserts it succeeded; its stdout.
    fn ok(&self) -> &[u8] {
        assert_eq!(self.code, Some(0), "{self:?}");
        assert_eq!(self.stderr, "", "{self:?}");
        &self.stdout
    }

    /// Asserts it succeeded; its stdout's lines.
    fn lines(&self) -> Vec<String> {
        let text = String::from_utf8(self.ok().to_vec()).unwrap();
        text.lines().map(str::to_string).collect()
    }

    /// Asserts it failed with exit status 2 and printed the one line `wisp: <line>`.
    fn fails(&self, line: &str) {
        assert_eq!(self.code, Some(2), "{self:?}");
        assert_eq!(self.stderr, format!("wisp: {line}\n"), "{self:?}");
        assert!(self.stdout.is_empty(), "{self:?}");
    }
}

/// Runs `wisp ARGS --server ... --token ...` against `server`, with `stdin` as its stdin.
fn wisp_in(server: &Server, args: &[&str], stdin: &[u8]) -> Run {
    let url = format!("http://{}", server.addr);
    let mut child = Command::new(WISP)
        .args(args)
        .args(["--server", &url, "--token", TOKEN])
        .env_remove("WISP_SERVER")
        .env_remove("WISP_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn wisp(server: &Server, args: &[&str]) -> Run {
    wisp_in(server, args, b"")
}

#[test]
fn keys_from_set_to_rm() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &[]);

    let out = wisp(&server, &["kv", "set", "tester", "greeting", "hello"]);
    assert_eq!(out.ok(), b"set `greeting` in default/tester (5 bytes)\n");
    assert_eq!(
        wisp(&server, &["kv", "get", "tester", "greeting"]).ok(),
        b"hello"
    );

    // A key with a slash, spaces and a non-ASCII character: one key, not a path.
    let odd = "dir/sub key é";
    wisp(&server, &["kv", "set", "tester", odd, "a value\n"]).ok();
    assert_eq!(
        wisp(&server, &["kv", "get", "tester", odd]).ok(),
        b"a value\n"
    );
    wisp(&server, &["kv", "get", "tester", "dir"])
        .fails("no key `dir` in default/tester (HTTP 404)");

    // Every byte value, from a file and from stdin.
    let binary: Vec<u8> = (0..=255).chain((0..=255).rev()).collect();
    let file = data.0.join("value.bin");
    std::fs::write(&file, &binary).unwrap();
    let args = [
        "kv",
        "set",
        "tester",
        "bin",
        "--file",
        file.to_str().unwrap(),
    ];
    assert_eq!(
        wisp(&server, &args).ok(),
        b"set `bin` in default/tester (512 bytes)\n"
    );
    assert_eq!(wisp(&server, &["kv", "get", "tester", "bin"]).ok(), binary);
    let args = [
        "kv", "set", "tester", "piped", "--file", "-", "--store", "default",
    ];
    wisp_in(&server, &args, &binary[..100]).ok();
    let args = ["kv", "get", "--store", "default", "tester", "piped"];
    assert_eq!(wisp(&server, &args).ok(), &binary[..100]);

    // A new value replaces the old; an empty one is a value too.
    wisp(&server, &["kv", "set", "tester", "greeting", "hi"]).ok();
    assert_eq!(
        wisp(&server, &["kv", "get", "tester", "greeting"]).ok(),
        b"hi"
    );
    wisp(&server, &["kv", "set", "tester", "empty", ""]).ok();
    assert_eq!(wisp(&server, &["kv", "get", "tester", "empty"]).ok(), b"");

    // In byte order.
    let all = ["bin", "dir/sub key é", "empty", "greeting", "piped"];
    assert_eq!(wisp(&server, &["kv", "ls", "tester"]).lines(), all);
    let out = wisp(&server, &["kv", "ls", "tester", "--prefix", "dir/"]);
    assert_eq!(out.lines(), ["dir/sub key é"]);
    let out = wisp(&server, &["kv", "ls", "tester", "--prefix", "nothing"]);
    assert_eq!(out.ok(), b"");
    let out = wisp(&server, &["kv", "ls", "tester", "--limit", "2"]);
    assert_eq!(out.lines(), ["bin", "dir/sub key é"]);
    let out = wisp(&server, &["kv", "ls", "tester", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(out.ok()).unwrap();
    assert_eq!(json, serde_json::json!({ "keys": all }));

    let out = wisp(&server, &["kv", "rm", "tester", "greeting"]);
    assert_eq!(out.ok(), b"deleted `greeting` from default/tester\n");
    let missing = "no key `greeting` in default/tester (HTTP 404)";
    wisp(&server, &["kv", "get", "tester", "greeting"]).fails(missing);
    wisp(&server, &["kv", "rm", "tester", "greeting"]).fails(missing);
    wisp(&server, &["kv", "rm", "tester", odd]).ok();
    let out = wisp(&server, &["kv", "ls", "tester"]);
    assert_eq!(out.lines(), ["bin", "empty", "piped"]);
}

#[test]
fn namespaces_are_apart() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &[]);
    wisp(&server, &["kv", "set", "tester", "k", "private"]).ok();
    let out = wisp(&server, &["kv", "set", "_shared", "k", "shared"]);
    assert_eq!(out.ok(), b"set `k` in default/_shared (6 bytes)\n");
    wisp(&server, &["kv", "set", "_shared", "only-shared", "1"]).ok();
    wisp(&server, &["kv", "set", "other", "k2", "other's"]).ok();

    assert_eq!(
        wisp(&server, &["kv", "get", "tester", "k"]).ok(),
        b"private"
    );
    assert_eq!(
        wisp(&server, &["kv", "get", "_shared", "k"]).ok(),
        b"shared"
    );
    assert_eq!(wisp(&server, &["kv", "ls", "tester"]).lines(), ["k"]);
    assert_eq!(
        wisp(&server, &["kv", "ls", "_shared"]).lines(),
        ["k", "only-shared"]
    );
    assert_eq!(wisp(&server, &["kv", "ls", "other"]).lines(), ["k2"]);
    wisp(&server, &["kv", "get", "tester", "only-shared"])
        .fails("no key `only-shared` in default/tester (HTTP 404)");

    wisp(&server, &["kv", "rm", "_shared", "k"]).ok();
    wisp(&server, &["kv", "get", "_shared", "k"]).fails("no key `k` in default/_shared (HTTP 404)");
    assert_eq!(
        wisp(&server, &["kv", "get", "tester", "k"]).ok(),
        b"private"
    );
}

/// More keys than one answer holds (1000): `ls` pages through them all.
#[test]
fn ls_pages_through_many_keys() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &[]);
    let keys: Vec<String> = (0..2100).map(|i| format!("key/{i:05}")).collect();
    // Straight through the API, a few at a time, to be quick.
    std::thread::scope(|s| {
        for chunk in keys.chunks(300) {
            let server = &server;
            s.spawn(move || {
                for key in chunk {
                    let path = format!("/_wisp/kv/default/tester/{}", key.replace('/', "%2F"));
                    let reply = server.admin("PUT", &path, key.as_bytes());
                    assert_eq!(reply.status, 204, "{reply:?}");
                }
            });
        }
    });
    wisp(&server, &["kv", "set", "tester", "other", "x"]).ok();

    let out = wisp(&server, &["kv", "ls", "tester"]);
    let mut all = keys.clone();
    all.push("other".into());
    assert_eq!(out.lines(), all);
    let out = wisp(&server, &["kv", "ls", "tester", "--prefix", "key/"]);
    assert_eq!(out.lines(), keys);
    let out = wisp(&server, &["kv", "ls", "tester", "--prefix", "key/010"]);
    assert_eq!(out.lines(), keys[1000..1100]);
    let out = wisp(&server, &["kv", "ls", "tester", "--limit", "1500"]);
    assert_eq!(out.lines(), keys[..1500]);
    let out = wisp(
        &server,
        &["kv", "ls", "tester", "--json", "--limit", "1000"],
    );
    let json: serde_json::Value = serde_json::from_slice(out.ok()).unwrap();
    assert_eq!(json, serde_json::json!({ "keys": keys[..1000] }));
    let out = wisp(&server, &["kv", "get", "tester", "key/02099"]);
    assert_eq!(out.ok(), b"key/02099");
}

#[test]
fn kv_errors_and_help() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &[]);
    let url = format!("http://{}", server.addr);
    let out = Command::new(WISP)
        .args(["kv", "ls", "tester", "--server", &url, "--token", "wrong"])
        .env_remove("WISP_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("wisp: ") && stderr.ends_with("(HTTP 401)\n"),
        "{stderr}"
    );

    wisp(&server, &["kv", "set", "tester", "k"])
        .fails("kv set needs NAMESPACE and KEY and VALUE (see wisp kv set --help)");
    wisp(&server, &["kv", "set", "tester", "k", "v", "--file", "-"])
        .fails("kv set takes VALUE or --file, not both");
    wisp(&server, &["kv", "get", "tester"])
        .fails("kv get needs NAMESPACE and KEY (see wisp kv get --help)");
    wisp(&server, &["kv", "get", "tester", ""]).fails("KEY is empty");
    wisp(&server, &["kv", "frob"]).fails("no command `kv frob` (see wisp kv --help)");
    wisp(&server, &["kv", "ls", "tester", "--limit", "0"])
        .fails("--limit: `0` is not a number above 0");

    for args in [
        &["kv", "--help"][..],
        &["help", "kv"],
        &["kv", "ls", "--help"],
        &["kv", "get", "--help"],
        &["kv", "set", "--help"],
        &["kv", "rm", "--help"],
    ] {
        let out = Command::new(WISP).args(args).output().unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        let usage = match args {
            ["kv", command, _] => format!("Usage: wisp kv {command} "),
            _ => "Usage: wisp kv ".into(),
        };
        assert!(
            out.status.success() && help.contains(&usage),
            "{args:?}: {help}"
        );
    }
    let out = Command::new(WISP).arg("--help").output().unwrap();
    assert!(String::from_utf8(out.stdout).unwrap().contains("\n  kv  "));
}
