//! `wisp install`: this binary as a systemd service on this machine.
//!
//! Idempotent: every step checks first, so running it again does only what changed; run with a
//! newer binary, it is the upgrade (the data folder is systemd's, untouched).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use lexopt::prelude::*;

use super::Error;
use crate::tls::Fingerprint;

pub const HELP: &str = "\
Install this binary as a systemd service: create the system user `wisp`, copy the binary to
/usr/local/bin/wisp, write /etc/systemd/system/wisp.service, enable it and (re)start it. The
service serves HTTP on port 8080 and HTTPS on 8443 (its own certificate, made at first start:
install prints its fingerprint, which the CLI pins), with the data folder /var/lib/wisp. Run
again with a newer binary to upgrade: deployed functions and data stay.

Usage: sudo wisp install [OPTIONS]

Options:
      --dry-run      Print the steps, change nothing
      --print-unit   Print the systemd unit (boards/wisp.service) and exit
  -h, --help         Show this help
";

/// The unit: the same file as boards/wisp.service.
pub const UNIT: &str = include_str!("../../../boards/wisp.service");
const BINARY: &str = "/usr/local/bin/wisp";
const UNIT_FILE: &str = "/etc/systemd/system/wisp.service";
const USER: &str = "wisp";
const TOKEN: &str = "/var/lib/wisp/admin.token";
const CERTIFICATE: &str = "/var/lib/wisp/tls/cert.pem";
/// The HTTPS port of the unit's `--listen-tls`.
const TLS_PORT: u16 = 8443;

enum Step {
    /// A command that must succeed.
    Run(Vec<&'static str>),
    /// `bytes` become `path` with `mode`: written beside it, synced, then renamed over it, so
    /// a running binary is never overwritten in place.
    Write {
        path: &'static str,
        bytes: Vec<u8>,
        mode: u32,
    },
    /// Nothing to do; says why.
    Skip(String),
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Run(args) => write!(f, "run: {}", args.join(" ")),
            Step::Write { path, bytes, mode } => {
                write!(f, "write {path} ({} bytes, mode {mode:o})", bytes.len())
            }
            Step::Skip(why) => write!(f, "skip: {why}"),
        }
    }
}

pub fn install(mut parser: lexopt::Parser) -> Result<ExitCode, Error> {
    let mut dry_run = false;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => {
                print!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            Long("print-unit") => {
                print!("{UNIT}");
                return Ok(ExitCode::SUCCESS);
            }
            Long("dry-run") => dry_run = true,
            _ => return Err(arg.unexpected().into()),
        }
    }
    let systemd = Path::new("/run/systemd/system").is_dir();
    if !dry_run {
        if !systemd {
            return Err(Error(
                "systemd is not running here: start `wisp serve` another way (see the README)"
                    .into(),
            ));
        }
        if effective_uid() != Some(0) {
            return Err(Error(
                "install needs root: sudo wisp install (--dry-run shows the steps)".into(),
            ));
        }
    }
    let steps = plan()?;
    if dry_run {
        if !systemd {
            println!("note: systemd is not running here, so install would stop at once");
        }
        for step in &steps {
            println!("would {step}");
        }
        println!("then: the admin token is in {TOKEN} (sudo cat {TOKEN})");
        println!(
            "then: HTTPS on port {TLS_PORT}, with the certificate in {CERTIFICATE}; deploy with \
             --server https://HOST:{TLS_PORT} --fingerprint and the SHA256 fingerprint it prints"
        );
        return Ok(ExitCode::SUCCESS);
    }
    for step in &steps {
        println!("wisp install: {step}");
        run(step)?;
    }
    // The service creates the token and the certificate on its first start.
    let start = Instant::now();
    let made = || Path::new(TOKEN).exists() && Path::new(CERTIFICATE).exists();
    while !made() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("wisp install: done; `systemctl status wisp` and `journalctl -u wisp` show it");
    if Path::new(TOKEN).exists() {
        println!("wisp install: the admin token is in {TOKEN} (sudo cat {TOKEN})");
    } else {
        println!("wisp install: the admin token will be in {TOKEN} once it has started");
    }
    match Fingerprint::of_pem_file(Path::new(CERTIFICATE)) {
        Ok(print) => {
            println!(
                "wisp install: HTTPS on port {TLS_PORT}; certificate SHA256 fingerprint: {print}"
            );
            println!(
                "wisp install: from another machine: wisp ls --server https://HOST:{TLS_PORT} \
                 --fingerprint {print} (with WISP_TOKEN set to the admin token)"
            );
        }
        Err(_) => println!(
            "wisp install: HTTPS on port {TLS_PORT}; `journalctl -u wisp` shows the certificate's \
             SHA256 fingerprint once it has started"
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// What installing takes on this machine now. Reads, never changes anything.
fn plan() -> Result<Vec<Step>, Error> {
    let mut steps = Vec::new();
    let user_exists = Command::new("id")
        .args(["-u", USER])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    steps.push(if user_exists {
        Step::Skip(format!("the user {USER} exists"))
    } else {
        Step::Run(vec![
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/var/lib/wisp",
            "--shell",
            "/usr/sbin/nologin",
            USER,
        ])
    });

    let exe = std::env::current_exe().map_err(|e| Error(format!("where am I? {e}")))?;
    let exe_bytes = std::fs::read(&exe)
        .map_err(|e| Error(format!("cannot read this binary {}: {e}", exe.display())))?;
    let binary_changed = std::fs::read(BINARY).ok().as_deref() != Some(&exe_bytes[..]);
    steps.push(if binary_changed {
        Step::Write {
            path: BINARY,
            bytes: exe_bytes,
            mode: 0o755,
        }
    } else {
        Step::Skip(format!("{BINARY} is this binary"))
    });

    let unit_changed = std::fs::read(UNIT_FILE).ok().as_deref() != Some(UNIT.as_bytes());
    steps.push(if unit_changed {
        Step::Write {
            path: UNIT_FILE,
            bytes: UNIT.as_bytes().to_vec(),
            mode: 0o644,
        }
    } else {
        Step::Skip(format!("{UNIT_FILE} is up to date"))
    });
    if unit_changed {
        steps.push(Step::Run(vec!["systemctl", "daemon-reload"]));
    }
    steps.push(Step::Run(vec!["systemctl", "enable", "wisp"]));
    // A new binary or unit takes effect on restart; otherwise only make sure it runs.
    let start = if binary_changed || unit_changed {
        "restart"
    } else {
        "start"
    };
    steps.push(Step::Run(vec!["systemctl", start, "wisp"]));
    Ok(steps)
}

fn run(step: &Step) -> Result<(), Error> {
    match step {
        Step::Skip(_) => Ok(()),
        Step::Run(args) => {
            let status = Command::new(args[0])
                .args(&args[1..])
                .status()
                .map_err(|e| Error(format!("cannot run {}: {e}", args[0])))?;
            if status.success() {
                Ok(())
            } else {
                Err(Error(format!("`{}` failed ({status})", args.join(" "))))
            }
        }
        Step::Write { path, bytes, mode } => write_atomically(Path::new(path), bytes, *mode)
            .map_err(|e| Error(format!("cannot write {path}: {e}"))),
    }
}

fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = dir.join(format!(".{name}.new"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temporary)?;
    file.write_all(bytes)?;
    // The mode given at open is masked by the umask; this one is not.
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// The effective user id, from /proc (std does not expose geteuid).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}
