//! The command line: `--version`, `run`, and refusing bad modules at load.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::{TempDir, WISP, module};

fn wisp(args: &[&str]) -> std::process::Output {
    Command::new(WISP).args(args).output().unwrap()
}

#[test]
fn version_and_help() {
    let out = wisp(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("wisp {}\n", env!("CARGO_PKG_VERSION"))
    );
    for command in ["serve", "up", "run"] {
        let out = wisp(&[command, "--help"]);
        assert!(out.status.success(), "{command} --help");
        assert!(
            String::from_utf8(out.stdout)
                .unwrap()
                .contains("Usage: wisp")
        );
    }
    let out = wisp(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8(out.stderr).unwrap().lines().count(), 1);
}

#[test]
fn run_passes_argv_env_stdin_and_the_exit_status() {
    let hostile = module("hostile");
    let mut child = Command::new(WISP)
        .args([
            "run",
            "--env",
            "PATH_INFO=/echo",
            "--env",
            "REQUEST_METHOD=PUT",
        ])
        .arg(&hostile)
        .args(["first", "--second"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from stdin")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for line in [
        "method=PUT",
        "0=hostile.wasm",
        "1=first",
        "2=--second",
        "body_len=10",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in {text}");
    }
    // Nothing of the host's environment leaks in.
    assert!(!text.contains("HOME="), "{text}");

    let out = Command::new(WISP)
        .args(["run", "--env", "PATH_INFO=/exit"])
        .arg(&hostile)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let out = Command::new(WISP)
        .args(["run", "--fuel", "1000000", "--env", "PATH_INFO=/loop"])
        .arg(&hostile)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(134));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fuel limit"));
}

/// Writes "first\n", sleeps 300 ms in `poll_oneoff`, writes "second\n"; never reads stdin.
const PRINT_WAIT_PRINT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "first\nsecond\n")
  ;; iovecs at 16 and 24; a relative clock subscription at 64 (300 ms); its event at 128
  (data (i32.const 16) "\00\00\00\00\06\00\00\00\06\00\00\00\07\00\00\00")
  (data (i32.const 88) "\00\a3\e1\11\00\00\00\00")
  (func (export "_start")
    (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 200)))
    (drop (call $poll (i32.const 64) (i32.const 128) (i32.const 1) (i32.const 200)))
    (drop (call $write (i32.const 1) (i32.const 24) (i32.const 1) (i32.const 200)))))"#;

/// Copies stdin to stdout a read at a time until stdin ends.
const ECHO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 256))
    (i32.store (i32.const 4) (i32.const 1024))
    (block $end
      (loop $again
        (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (br_if $end (i32.eqz (i32.load (i32.const 8))))
        (i32.store (i32.const 16) (i32.const 256))
        (i32.store (i32.const 20) (i32.load (i32.const 8)))
        (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 12)))
        (br $again)))))"#;

fn wat_module(dir: &TempDir, name: &str, wat: &str) -> std::path::PathBuf {
    let path = dir.0.join(name);
    std::fs::write(&path, wat::parse_str(wat).unwrap()).unwrap();
    path
}

/// `wisp run MODULE` with its stdin and stdout piped to this test.
fn run_piped(module: &std::path::Path) -> std::process::Child {
    Command::new(WISP)
        .arg("run")
        .arg(module)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `wisp run` writes what the guest writes as it writes it, and does not wait for stdin
/// unless the guest reads it: a pipe held open and never written does not hold it up.
#[test]
fn run_streams_output_and_leaves_stdin_alone_until_read() {
    use std::io::{BufRead, BufReader};
    let dir = TempDir::new();
    let path = wat_module(&dir, "print-wait-print.wasm", PRINT_WAIT_PRINT);
    let mut child = run_piped(&path);
    // Held open, never written, until the end.
    let stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "first\n");
    // The first line came while the guest still sleeps before its second.
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first line came only at the end"
    );
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "second\n");
    assert!(child.wait().unwrap().success());
    drop(stdin);
}

/// Stdin is read when the guest reads it: each line written is echoed back before the next
/// is sent.
#[test]
fn run_reads_stdin_as_the_guest_reads_it() {
    use std::io::{BufRead, BufReader};
    let dir = TempDir::new();
    let path = wat_module(&dir, "echo.wasm", ECHO);
    let mut child = run_piped(&path);
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    for text in ["one\n", "two\n", "three\n"] {
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, text);
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn bad_modules_are_refused_with_the_reason() {
    let dir = TempDir::new();
    let cases = [
        ("not-wasm", b"hello".to_vec(), "not a WebAssembly module"),
        (
            "no-start",
            wat::parse_str("(module)").unwrap(),
            "no `_start`",
        ),
        (
            "bad-import",
            wat::parse_str(
                r#"(module (import "env" "launch_missiles" (func)) (func (export "_start")))"#,
            )
            .unwrap(),
            "imports `env::launch_missiles`",
        ),
    ];
    for (name, bytes, reason) in cases {
        let path = dir.0.join(format!("{name}.wasm"));
        std::fs::write(&path, bytes).unwrap();
        let out = wisp(&["run", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(reason), "{name}: {err}");

        let manifest = dir.0.join(format!("{name}.json"));
        let entry = format!(
            r#"{{"functions":[{{"name":"{name}","module":"{name}.wasm","routes":["/x"]}}]}}"#
        );
        std::fs::write(&manifest, entry).unwrap();
        let data = dir.0.join("data");
        let args = [
            "up",
            "--listen",
            "127.0.0.1:0",
            "--data",
            data.to_str().unwrap(),
        ];
        let out = wisp(&[&args[..], &[manifest.to_str().unwrap()]].concat());
        assert!(!out.status.success(), "{name}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.contains(reason) && err.contains(&format!("function `{name}`")),
            "{err}"
        );
    }
}
