//! The commands that talk to a server (`deploy`, `ls`, `show`, `versions`, `rollback`, `logs`,
//! `rm`, `invoke`), run as the real `wisp` binary against a real `wisp serve`.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::{Server, TOKEN, TempDir, WISP, module};

/// What a `wisp` command did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts it succeeded; its stdout.
    fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "{self:?}");
        &self.stdout
    }

    /// Asserts it failed with `code` and one line on stderr that contains `text`.
    fn fails(&self, code: i32, text: &str) {
        assert_eq!(self.code, Some(code), "{self:?}");
        assert_eq!(self.stderr.lines().count(), 1, "{self:?}");
        assert!(self.stderr.starts_with("wisp: "), "{self:?}");
        assert!(self.stderr.contains(text), "expected {text:?}: {self:?}");
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
}

/// A `wisp` command with nothing of the test's environment: `WISP_SERVER` and `WISP_TOKEN`
/// are the `server`'s, when there is one.
fn command(server: Option<&Server>, args: &[&str]) -> Command {
    let mut command = Command::new(WISP);
    command
        .args(args)
        .env_remove("WISP_SERVER")
        .env_remove("WISP_TOKEN");
    if let Some(server) = server {
        command
            .env("WISP_SERVER", format!("http://{}", server.addr))
            .env("WISP_TOKEN", TOKEN);
    }
    command
}

fn run(mut command: Command) -> Run {
    let out = command.stdin(Stdio::null()).output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn wisp(server: &Server, args: &[&str]) -> Run {
    run(command(Some(server), args))
}

/// The table's rows (header first), each split into its columns.
fn rows(table: &str) -> Vec<Vec<&str>> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect()
}

#[test]
fn a_function_from_deploy_to_rm() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &[]);
    let date = module("date");
    let date = date.to_str().unwrap();

    let out = wisp(
        &server,
        &[
            "deploy",
            "date",
            date,
            "--route",
            "/api/date",
            "--method",
            "GET",
        ],
    );
    assert!(out.ok().starts_with("created date version 1 ("), "{out:?}");

    let out = wisp(&server, &["invoke", "/api/date"]);
    assert!(
        out.json()["now"].as_u64().unwrap() > 1_700_000_000_000,
        "{out:?}"
    );

    let out = wisp(&server, &["ls"]);
    let table = rows(out.ok());
    assert_eq!(
        table[0],
        ["NAME", "VERSION", "ROUTES", "SIZE", "DEPLOYED"],
        "{out:?}"
    );
    assert_eq!(table[1][..3], ["date", "1", "/api/date"], "{out:?}");
    let out = wisp(&server, &["ls", "--json"]);
    assert_eq!(out.json()["functions"][0]["name"], "date");

    let out = wisp(&server, &["show", "date"]);
    for line in [
        "name:          date",
        "routes:        /api/date",
        "methods:       GET",
    ] {
        assert!(out.ok().lines().any(|l| l == line), "no {line:?}: {out:?}");
    }

    // A new version, with values that must be percent-encoded in the query.
    let out = wisp(
        &server,
        &[
            "deploy",
            "date",
            date,
            "--route",
            "/api/date",
            "--method",
            "GET",
            "--env",
            "Q=a&b=c d+é%",
            "--timeout-ms",
            "2000",
            "--json",
        ],
    );
    let info = out.json();
    assert_eq!(info["version"], 2);
    assert_eq!(info["env"]["Q"], "a&b=c d+é%");
    assert_eq!(info["limits"]["timeout_ms"], 2000);

    let out = wisp(&server, &["versions", "date"]);
    let table = rows(out.ok());
    assert_eq!(
        table[0],
        ["VERSION", "HASH", "SIZE", "DEPLOYED", "ACTIVE"],
        "{out:?}"
    );
    assert_eq!(table.len(), 3, "{out:?}");
    assert_eq!(table[1][0], "1", "{out:?}");
    assert_ne!(table[1].last(), Some(&"*"), "{out:?}");
    assert_eq!((table[2][0], table[2].last()), ("2", Some(&"*")), "{out:?}");

    let out = wisp(&server, &["rollback", "date", "1"]);
    assert!(out.ok().starts_with("date is at version 1 ("), "{out:?}");
    let out = wisp(&server, &["versions", "date"]);
    let table = rows(out.ok());
    assert_eq!(table[1].last(), Some(&"*"), "{out:?}");
    let out = wisp(&server, &["show", "date", "--json"]);
    assert_eq!(out.json()["version"], 1);
    assert_eq!(out.json()["env"], serde_json::json!({}));
    wisp(&server, &["rollback", "date", "7"]).fails(2, "(HTTP 404)");
    // With no configuration options, a new version keeps the active one's.
    let out = wisp(&server, &["deploy", "date", date]);
    assert!(out.ok().starts_with("updated date version 3 ("), "{out:?}");
    assert!(out.ok().ends_with(") on /api/date\n"), "{out:?}");

    wisp(&server, &["logs", "date"]).ok();

    let out = wisp(&server, &["rm", "date"]);
    assert_eq!(out.ok(), "deleted date\n");
    let out = wisp(&server, &["invoke", "/api/date"]);
    out.fails(1, "404");
    let out = wisp(&server, &["ls"]);
    assert_eq!(rows(out.ok()).len(), 1, "{out:?}");
    wisp(&server, &["show", "date"]).fails(2, "no function `date` (HTTP 404)");
    wisp(&server, &["rm", "date"]).fails(2, "(HTTP 404)");
}

#[test]
fn logs_print_recent_lines_and_follow_new_ones() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &[]);
    let hostile = module("hostile");
    let args = ["deploy", "hostile", hostile.to_str().unwrap()];
    wisp(&server, &[&args[..], &["--route", "/hostile/..."]].concat()).ok();
    wisp(&server, &["invoke", "/hostile/panic"]).fails(1, "HTTP 500");

    let out = wisp(&server, &["logs", "hostile"]);
    assert!(out.ok().contains("hostile: deliberate panic\n"), "{out:?}");
    for line in out.ok().lines() {
        let time = line.split(' ').next().unwrap();
        assert!(time.len() >= 20 && time.ends_with('Z'), "{line:?}");
    }

    let mut follow = command(Some(&server), &["logs", "-f", "hostile"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, received) = mpsc::channel();
    let stdout = BufReader::new(follow.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |text: &str| loop {
        match received.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line.contains(text) => break,
            Ok(_) => {}
            Err(e) => panic!("no log line with {text:?}: {e}"),
        }
    };
    // The recent lines come first; after them, lines as they are written.
    wait_for("deliberate panic");
    wisp(&server, &["invoke", "/hostile/exit"]).fails(1, "HTTP 500");
    wait_for("exited with status 3");
    follow.kill().unwrap();
    follow.wait().unwrap();
}

#[test]
fn invoke_sends_methods_headers_and_bodies() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &[]);
    let hostile = module("hostile");
    let args = ["deploy", "hostile", hostile.to_str().unwrap()];
    wisp(&server, &[&args[..], &["--route", "/hostile/..."]].concat()).ok();

    let out = wisp(
        &server,
        &[
            "invoke",
            "/hostile/echo?a=1",
            "-d",
            "hello",
            "-H",
            "X-Thing: yes",
        ],
    );
    let text = out.ok();
    for line in ["method=POST", "query=a=1", "HTTP_X_THING=yes", "body_len=5"] {
        assert!(text.lines().any(|l| l == line), "no {line}: {text}");
    }
    // Functions never see the admin token.
    assert!(!text.contains(TOKEN), "{text}");

    let file = data.0.join("body");
    std::fs::write(&file, b"0123456789").unwrap();
    let file = file.to_str().unwrap();
    let out = wisp(
        &server,
        &[
            "invoke",
            "/hostile/echo",
            "--method",
            "put",
            "--data-file",
            file,
        ],
    );
    let text = out.ok();
    assert!(text.lines().any(|l| l == "method=PUT"), "{text}");
    assert!(text.lines().any(|l| l == "body_len=10"), "{text}");

    let out = wisp(&server, &["invoke", "/hostile/status"]);
    assert_eq!(out.ok(), "created\n");
    let out = wisp(&server, &["invoke", "/hostile/nothing-here"]);
    out.fails(1, "HTTP 404");
}

#[test]
fn errors_are_one_line() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &[]);
    let url = format!("http://{}", server.addr);

    let out = run(command(None, &["ls", "--server", &url, "--token", "wrong"]));
    out.fails(2, "(HTTP 401)");
    let out = run(command(None, &["ls", "--server", &url]));
    out.fails(2, "WISP_TOKEN");
    assert!(out.stderr.contains("--token-file"), "{out:?}");

    let file = data.0.join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let args = [
        "ls",
        "--server",
        &url,
        "--token-file",
        file.to_str().unwrap(),
    ];
    run(command(None, &args)).ok();

    // A port nothing listens on: taken, then given back.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = format!("http://127.0.0.1:{port}");
    wisp(&server, &["ls", "--server", &closed]).fails(2, &format!("cannot reach {closed}: "));
    wisp(&server, &["invoke", "/x", "--server", &closed]).fails(2, "cannot reach");
    wisp(&server, &["ls", "--server", "ftp://pi.local"]).fails(2, "`ftp` is not http or https");
    // A TLS handshake with a plain HTTP server fails, in one line.
    let plain = format!("https://{}", server.addr);
    wisp(
        &server,
        &["ls", "--server", &plain, "--fingerprint", &"ab".repeat(32)],
    )
    .fails(2, "TLS handshake with");

    let junk = data.0.join("junk.wasm");
    std::fs::write(&junk, b"not wasm").unwrap();
    let args = ["deploy", "junk", junk.to_str().unwrap(), "--route", "/junk"];
    wisp(&server, &args).fails(2, "(HTTP 400)");
    let args = [
        "deploy",
        "Bad_Name",
        junk.to_str().unwrap(),
        "--route",
        "/junk",
    ];
    wisp(&server, &args).fails(2, "invalid function name");
    wisp(&server, &["deploy", "x", "/no/such/file.wasm"]).fails(2, "cannot read");
    wisp(&server, &["show"]).fails(2, "show needs NAME");
    wisp(&server, &["ls", "--frobnicate"]).fails(2, "unknown option --frobnicate");
    wisp(&server, &["invoke", "/x", "--token", TOKEN]).fails(2, "unknown option --token");
}

#[test]
fn every_command_has_help() {
    for command in [
        "deploy",
        "ls",
        "show",
        "rm",
        "versions",
        "rollback",
        "logs",
        "invoke",
        "topics",
        "publish",
        "dead-letters",
    ] {
        for args in [vec![command, "--help"], vec!["help", command]] {
            let out = run(self::command(None, &args));
            let usage = format!("Usage: wisp {command} ");
            assert!(out.ok().contains(&usage), "{args:?}: {out:?}");
        }
    }
    let out = run(command(None, &["--help"]));
    assert!(out.ok().contains("  rollback  "), "{out:?}");
}

#[test]
fn topics_publish_and_dead_letters_from_the_cli() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &[]);
    let events = module("events");
    let events = events.to_str().unwrap();
    let deployed = wisp(
        &server,
        &[
            "deploy",
            "all",
            events,
            "--topic",
            "jobs",
            "--publish",
            "jobs",
            "--timer",
            "every 1h",
            "--watch",
            "default:x/",
        ],
    );
    let line = deployed.ok();
    assert!(
        line.contains("on topic jobs, timer every 1h, watch default:x/"),
        "{line}"
    );
    let shown = wisp(&server, &["show", "all"]);
    assert!(shown.ok().contains("publishes:     jobs"), "{shown:?}");
    let config = r#"{"routes": ["/sub/..."], "topics": [{"topic": "jobs", "max_attempts": 2, "backoff_ms": 10}]}"#;
    assert_eq!(server.deploy_json("sub", "events", config).status, 201);
    let published = wisp(&server, &["publish", "jobs", "fail"]);
    assert!(
        published.ok().contains(" to jobs (2 subscribers)"),
        "{published:?}"
    );
    let mut piped = command(Some(&server), &["publish", "jobs", "-"]);
    piped.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = piped.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from stdin")
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    crate::support::eventually(10, "the failing message to be buried", || {
        let listed = wisp(&server, &["dead-letters", "--function", "sub"]);
        (rows(listed.ok()).len() == 2).then_some(())
    });
    let listed = wisp(&server, &["dead-letters", "--topic", "jobs"]);
    let table = rows(listed.ok());
    assert_eq!(
        table[0],
        [
            "FUNCTION", "SOURCE", "ID", "ATTEMPTS", "SIZE", "DIED", "ERROR"
        ]
    );
    assert_eq!(table[1][..2], ["sub", "topic:jobs"]);
    assert_eq!(table[1][3], "2");
    let topics = wisp(&server, &["topics"]);
    let topics = rows(topics.ok());
    assert_eq!(
        topics[0],
        [
            "TOPIC",
            "SUBSCRIBER",
            "DEPTH",
            "IN",
            "FLIGHT",
            "DEAD",
            "DELIVERED"
        ]
    );
    let sub = topics.iter().find(|r| r[1] == "sub").unwrap();
    assert_eq!(sub[..5], ["jobs", "sub", "0", "0", "1"]);
    let replayed = wisp(&server, &["dead-letters", "--replay", "--function", "sub"]);
    assert_eq!(replayed.ok(), "replayed 1 dead letter\n");
    crate::support::eventually(10, "the replayed message to be buried again", || {
        let listed = wisp(&server, &["dead-letters", "--json"]).json();
        (listed["dead_letters"].as_array().unwrap().len() == 1).then_some(())
    });
    let purged = wisp(&server, &["dead-letters", "--purge"]);
    assert_eq!(purged.ok(), "purged 1 dead letter\n");
    let none = wisp(&server, &["dead-letters"]);
    assert_eq!(rows(none.ok()).len(), 1);
    wisp(&server, &["publish", "Bad", "x"]).fails(2, "invalid topic name `Bad` (HTTP 400)");
}
