//! Secrets: set through the API or with `wisp secret set` (the value on stdin), a secret reaches
//! its function as an environment variable at its next invocation, wins over an `env` entry of
//! its name, survives `kill -9`, and goes with its function. Its value appears nowhere but in
//! the function's environment and its file: not in any API answer, the server's output, the
//! function's log, the metrics, a CLI's output, or another file of the data folder.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::support::{Reply, Server, TOKEN, TempDir, WISP, eventually, module};

/// A value no other test has, made now: whatever holds it got it from this test.
fn fresh(what: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{what}-{}-{nanos:x}", std::process::id())
}

/// Every admin answer and CLI output the test got, to look for the values in at the end.
#[derive(Default)]
struct Seen(Vec<String>);

impl Seen {
    fn admin(&mut self, server: &Server, method: &str, path: &str, body: &[u8]) -> Reply {
        let reply = server.admin(method, path, body);
        self.0.push(format!("{method} {path}: {reply:?}"));
        reply
    }

    /// Runs `wisp ARGS` against `server`, with `stdin` on its stdin.
    fn wisp(&mut self, server: &Server, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = Command::new(WISP)
            .args(args)
            .env("WISP_SERVER", format!("http://{}", server.addr))
            .env("WISP_TOKEN", TOKEN)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A command that fails before it reads stdin closes it.
        let _ = child.stdin.take().unwrap().write_all(stdin);
        let out = child.wait_with_output().unwrap();
        self.0.push(format!("wisp {args:?}: {out:?}"));
        out
    }

    fn holding(&self, value: &str) -> Vec<&String> {
        self.0.iter().filter(|s| s.contains(value)).collect()
    }
}

/// The environment `hostile`'s `echo` saw, one `NAME=value` a line.
fn env_of(server: &Server) -> Vec<String> {
    let reply = server.get("/vault/echo");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let (_, rest) = reply.body.split_once("env:\n").unwrap();
    let (env, _) = rest.split_once("argv:\n").unwrap();
    env.lines().map(str::to_string).collect()
}

fn var<'a>(env: &'a [String], name: &str) -> Option<&'a str> {
    let prefix = format!("{name}=");
    env.iter().find_map(|line| line.strip_prefix(&prefix))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            match path.is_dir() {
                true => stack.push(path),
                false => files.push(path),
            }
        }
    }
    files
}

/// The files of `data` that hold `value`.
fn files_holding(data: &Path, value: &str) -> Vec<PathBuf> {
    files_under(data)
        .into_iter()
        .filter(|file| {
            let bytes = std::fs::read(file).unwrap_or_default();
            bytes.windows(value.len()).any(|w| w == value.as_bytes())
        })
        .collect()
}

#[test]
fn secrets_reach_the_function_and_appear_nowhere_else() {
    let dir = TempDir::new();
    let data = dir.0.join("data");
    let (server, printed) = Server::serve_captured(&data, &[]);
    let mut seen = Seen::default();
    let (api_key, password) = (fresh("api-key"), fresh("db-password"));
    let wasm = std::fs::read(module("hostile")).unwrap();
    let deploy = "/_wisp/functions/vault?route=/vault/...&env=GREETING%3Dhello&env=API_KEY%3Dplain";
    assert_eq!(seen.admin(&server, "PUT", deploy, &wasm).status, 201);
    assert_eq!(var(&env_of(&server), "API_KEY"), Some("plain"));

    // By the API: at the next invocation, without a redeploy; it wins over `env`.
    let set = seen.admin(
        &server,
        "PUT",
        "/_wisp/functions/vault/secrets/API_KEY",
        api_key.as_bytes(),
    );
    assert_eq!((set.status, set.body.as_str()), (204, ""));
    let env = env_of(&server);
    assert_eq!(var(&env, "API_KEY"), Some(api_key.as_str()));
    assert_eq!(var(&env, "GREETING"), Some("hello"));
    assert_eq!(env.iter().filter(|l| l.starts_with("API_KEY=")).count(), 1);

    // By the CLI, from stdin, less the newline `echo` adds.
    let out = seen.wisp(
        &server,
        &["secret", "set", "vault", "DB_PASSWORD"],
        format!("{password}\n").as_bytes(),
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "set secret DB_PASSWORD of vault\n"
    );
    assert_eq!(
        var(&env_of(&server), "DB_PASSWORD"),
        Some(password.as_str())
    );

    // Names only, wherever the API or the CLI speaks of them.
    let list = seen.admin(&server, "GET", "/_wisp/functions/vault/secrets", b"");
    let list: serde_json::Value = serde_json::from_str(&list.body).unwrap();
    assert_eq!(
        list,
        serde_json::json!({"secrets": ["API_KEY", "DB_PASSWORD"]})
    );
    let info = seen.admin(&server, "GET", "/_wisp/functions/vault", b"");
    let info: serde_json::Value = serde_json::from_str(&info.body).unwrap();
    assert_eq!(
        info["secrets"],
        serde_json::json!(["API_KEY", "DB_PASSWORD"])
    );
    assert_eq!(info["env"]["API_KEY"], "plain");
    let out = seen.wisp(&server, &["secret", "list", "vault"], b"");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "API_KEY\nDB_PASSWORD\n"
    );
    let out = seen.wisp(&server, &["show", "vault"], b"");
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(shown.contains("API_KEY, DB_PASSWORD"), "{shown}");
    for path in [
        "/_wisp/functions",
        "/_wisp/functions/vault/versions",
        "/_wisp/metrics",
    ] {
        assert_eq!(seen.admin(&server, "GET", path, b"").status, 200, "{path}");
    }

    // Refusals name the rule, never the value.
    let big = api_key.repeat(64 * 1024 / api_key.len() + 1);
    let with_nul = format!("{api_key}\0");
    let refusals: [(&str, &str, &[u8], u16); 10] = [
        ("PUT", "vault/secrets/1X", api_key.as_bytes(), 400),
        ("PUT", "vault/secrets/A-B", api_key.as_bytes(), 400),
        (
            "PUT",
            "vault/secrets/WISP_FUNCTION",
            api_key.as_bytes(),
            400,
        ),
        ("PUT", "vault/secrets/PATH_INFO", api_key.as_bytes(), 400),
        ("PUT", "vault/secrets/HTTP_PROXY", api_key.as_bytes(), 400),
        ("PUT", "vault/secrets/BIG", big.as_bytes(), 413),
        ("PUT", "vault/secrets/NUL", with_nul.as_bytes(), 400),
        ("PUT", "nobody/secrets/API_KEY", api_key.as_bytes(), 404),
        ("GET", "vault/secrets/API_KEY", b"", 405),
        ("GET", "nobody/secrets", b"", 404),
    ];
    for (method, path, body, status) in refusals {
        let path = format!("/_wisp/functions/{path}");
        let reply = seen.admin(&server, method, &path, body);
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
        assert!(
            reply.body.contains("\"error\""),
            "{method} {path}: {}",
            reply.body
        );
    }
    let out = seen.wisp(
        &server,
        &["secret", "set", "vault", "WISP_X"],
        api_key.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let list = seen.admin(&server, "GET", "/_wisp/functions/vault/secrets", b"");
    let list: serde_json::Value = serde_json::from_str(&list.body).unwrap();
    assert_eq!(
        list["secrets"],
        serde_json::json!(["API_KEY", "DB_PASSWORD"])
    );

    // An asynchronous call is stored without them, and still runs with them.
    let accepted = server.request("POST", "/vault/status", &[("Prefer", "respond-async")], b"");
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let location = accepted.header("location").unwrap().to_string();
    let done = eventually(10, "the asynchronous call", || {
        let reply = server.get(&location);
        (reply.status != 202).then_some(reply)
    });
    assert_eq!(done.status, 201, "{}", done.body);
    // Lines in the function's log: a failure, and its own stderr.
    assert_eq!(server.get("/vault/trap").status, 500);
    let logs = seen.admin(&server, "GET", "/_wisp/functions/vault/logs", b"");
    assert!(logs.body.contains("trapped"), "{}", logs.body);

    // On disk: its own file, 0600 in a 0700 folder, and no other file holds a value.
    let file = data.join("secrets/vault.json");
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&data.join("secrets")), 0o700);
    for value in [&api_key, &password] {
        assert_eq!(files_holding(&data, value), vec![file.clone()], "{value}");
    }

    // Acknowledged, then killed: they are there after the restart.
    server.kill9();
    let (server, printed_again) = Server::serve_captured(&data, &[]);
    let env = env_of(&server);
    assert_eq!(var(&env, "API_KEY"), Some(api_key.as_str()));
    assert_eq!(var(&env, "DB_PASSWORD"), Some(password.as_str()));

    // Deleted: the `env` entry of its name is back; a second delete finds nothing.
    let path = "/_wisp/functions/vault/secrets/API_KEY";
    assert_eq!(seen.admin(&server, "DELETE", path, b"").status, 204);
    assert_eq!(var(&env_of(&server), "API_KEY"), Some("plain"));
    assert_eq!(seen.admin(&server, "DELETE", path, b"").status, 404);
    let out = seen.wisp(&server, &["secret", "delete", "vault", "DB_PASSWORD"], b"");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(var(&env_of(&server), "DB_PASSWORD"), None);
    let list = seen.admin(&server, "GET", "/_wisp/functions/vault/secrets", b"");
    assert_eq!(
        list.body.split_whitespace().collect::<String>(),
        r#"{"secrets":[]}"#
    );
    assert!(!file.exists());

    // A deleted function's secrets go with it: one deployed again under its name has none.
    let path = "/_wisp/functions/vault/secrets/TOKEN";
    assert_eq!(
        seen.admin(&server, "PUT", path, api_key.as_bytes()).status,
        204
    );
    assert!(file.exists());
    assert_eq!(
        seen.admin(&server, "DELETE", "/_wisp/functions/vault", b"")
            .status,
        200
    );
    assert!(!file.exists());
    assert_eq!(seen.admin(&server, "PUT", deploy, &wasm).status, 201);
    assert_eq!(var(&env_of(&server), "TOKEN"), None);
    assert_eq!(
        seen.admin(&server, "GET", "/_wisp/metrics", b"").status,
        200
    );

    assert!(server.terminate().success());
    for value in [&api_key, &password] {
        let printed = printed.text() + &printed_again.text();
        assert!(
            !printed.contains(value.as_str()),
            "the server printed it: {printed}"
        );
        assert!(seen.holding(value).is_empty(), "{:?}", seen.holding(value));
        assert!(files_holding(&data, value).is_empty(), "{value}");
    }
}

#[test]
fn every_secret_command_has_help() {
    for args in [
        &["secret", "--help"][..],
        &["help", "secret"],
        &["secret", "set", "--help"],
        &["secret", "list", "--help"],
        &["secret", "delete", "--help"],
    ] {
        let out = Command::new(WISP).args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}: {out:?}");
        assert!(text.contains("Usage: wisp secret"), "{args:?}: {text}");
    }
    let out = Command::new(WISP)
        .args(["secret", "set", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("stdin"));
}
