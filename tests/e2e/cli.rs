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
