//! Board profiles (`--board`) and `wisp install`, on the real binary. The device binaries
//! themselves are tested under qemu by tests/emulated.sh.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::{Server, TOKEN, TempDir, WISP};

fn wisp(args: &[&str]) -> std::process::Output {
    Command::new(WISP).args(args).output().unwrap()
}

#[test]
fn board_help_lists_the_profiles_and_an_unknown_board_is_refused() {
    let out = wisp(&["serve", "--board", "help"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for name in [
        "pi-zero-2w",
        "pi-2",
        "pi-3",
        "pi-4",
        "pi-5",
        "x86-64",
        "none",
    ] {
        assert!(
            text.contains(&format!("\n  {name} ")),
            "{name} missing in {text}"
        );
    }
    let out = wisp(&["serve", "--board", "pi-9"]);
    assert_eq!(out.status.code(), Some(2));
    let error = String::from_utf8(out.stderr).unwrap();
    assert!(error.contains("no board `pi-9`"), "{error}");
}

/// The first lines `wisp serve ARGS` prints, up to the one that says it listens.
fn start_lines(args: &[&str]) -> Vec<String> {
    let data = TempDir::new();
    let mut child = Command::new(WISP)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data.0)
        .args(args)
        .env("WISP_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.starts_with("wisp: listening on");
        lines.push(line);
        if done {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    lines
}

#[test]
fn the_profile_is_printed_at_start_with_the_options_given_winning_wherever_they_stand() {
    for args in [
        ["--fuel", "1000", "--board", "pi-zero-2w"],
        ["--board", "pi-zero-2w", "--fuel", "1000"],
    ] {
        let lines = start_lines(&args);
        let board: Vec<&String> = lines.iter().filter(|l| l.contains("board")).collect();
        assert_eq!(board.len(), 1, "{lines:?}");
        assert!(
            board[0].starts_with("wisp: board pi-zero-2w (--board): --workers 4 "),
            "{board:?}"
        );
        assert!(board[0].contains(" --fuel 1000 "), "{board:?}");
        assert!(board[0].contains(" --memory-mb 16 "), "{board:?}");
    }
    // `none`, and no --board on a machine that is no known board (like this one): no profile.
    for args in [&["--board", "none"][..], &[]] {
        let lines = start_lines(args);
        assert!(!lines.iter().any(|l| l.contains("board")), "{lines:?}");
    }
}

#[test]
fn a_profile_sets_the_limits_functions_run_under() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &["--board", "pi-zero-2w", "--fuel", "100000000"]);
    let reply = server.deploy("hostile", "hostile", "route=/hostile/...");
    assert_eq!(reply.status, 201, "{}", reply.body);
    // The profile's 16 MiB, not the built-in 64.
    let reply = server.get("/hostile/memory");
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert!(
        reply.body.contains("memory limit of 16384 KiB reached"),
        "{}",
        reply.body
    );
    // The fuel given on the command line, not the profile's.
    let reply = server.get("/hostile/loop");
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert!(
        reply.body.contains("fuel limit of 100000000 exhausted"),
        "{}",
        reply.body
    );
}

#[test]
fn install_dry_run_prints_the_steps_and_embeds_the_unit() {
    let out = wisp(&["install", "--dry-run"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    for step in [
        "/usr/local/bin/wisp",
        "/etc/systemd/system/wisp.service",
        "would run: systemctl enable wisp",
        "/var/lib/wisp/admin.token",
        "/var/lib/wisp/tls/cert.pem",
        "--fingerprint",
    ] {
        assert!(text.contains(step), "{step} missing in {text}");
    }
    assert!(
        text.contains("would run: useradd --system") || text.contains("the user wisp exists"),
        "{text}"
    );

    let out = wisp(&["install", "--print-unit"]);
    assert!(out.status.success());
    let unit = String::from_utf8(out.stdout).unwrap();
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../boards/wisp.service");
    assert_eq!(unit, std::fs::read_to_string(file).unwrap());
    for line in [
        "User=wisp",
        "ExecStart=/usr/local/bin/wisp serve --listen-tls 0.0.0.0:8443",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "StateDirectory=wisp",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "{line} missing in the unit"
        );
    }
    // systemd's own check of the unit, where systemd-analyze is installed (it needs no running
    // systemd); only what it says about this unit counts.
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let dir = TempDir::new();
        let path = dir.0.join("wisp.service");
        std::fs::write(&path, unit.replace("/usr/local/bin/wisp", WISP)).unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        let about_it: Vec<&str> = said
            .lines()
            .filter(|l| l.contains("wisp.service"))
            .collect();
        assert!(about_it.is_empty(), "systemd-analyze verify: {said}");
    }
}
