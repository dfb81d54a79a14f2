//! The server under soak: `wisp up` on `functions/wisp.json` as it stands, so that a new example
//! there is soaked too (or fails the soak until its routes are called), with its stderr reduced
//! to counts and a few lines for the report.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::Value;

use super::{EXAMPLES, ROTATION};
use crate::support::{TOKEN, TempDir, WISP, modules};

/// What the server wrote on stderr, in short.
#[derive(Default)]
pub(super) struct ServerLog {
    pub(super) lines: u64,
    /// `[payment] paid order N`: one per order, expected.
    pub(super) paid_lines: u64,
    /// Every other line, counted; the first ones kept.
    pub(super) notable: u64,
    pub(super) first_notable: Vec<String>,
    pub(super) panics: u64,
}

/// `wisp up` on the examples, on an ephemeral loopback port; killed when dropped.
pub(super) struct Soaked {
    pub(super) addr: SocketAddr,
    pub(super) child: Child,
    pub(super) log: Arc<Mutex<ServerLog>>,
    _dir: TempDir,
}

impl Soaked {
    pub(super) fn start() -> Soaked {
        let dir = TempDir::new();
        let manifest = dir.0.join("wisp.json");
        std::fs::write(&manifest, examples_manifest()).unwrap();
        // Another build of the same version can be soaked instead: the static musl binary, say,
        // whose allocator gives memory back where glibc's keeps it.
        let binary = std::env::var_os("WISP_SOAK_BINARY").unwrap_or(WISP.into());
        let mut child = Command::new(binary)
            .arg("up")
            .args(["--board", "none", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.0.join("data"))
            .arg(&manifest)
            .env("WISP_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wisp");
        let log = Arc::new(Mutex::new(ServerLog::default()));
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let log_for_thread = log.clone();
        thread::spawn(move || {
            for line in stderr.lines() {
                let Ok(line) = line else { break };
                let mut log = log_for_thread.lock().unwrap();
                log.lines += 1;
                if line.contains("panicked") {
                    log.panics += 1;
                }
                if line.starts_with("[payment] paid order ") {
                    log.paid_lines += 1;
                } else {
                    log.notable += 1;
                    if log.first_notable.len() < 20 {
                        log.first_notable.push(line);
                    }
                }
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let addr = loop {
            line.clear();
            if stdout.read_line(&mut line).unwrap() == 0 {
                let _ = child.wait();
                thread::sleep(Duration::from_millis(100));
                let said = log.lock().unwrap().first_notable.join("\n");
                panic!("wisp exited before listening:\n{said}");
            }
            if let Some(addr) = line.trim().strip_prefix("wisp: listening on http://") {
                break addr.parse().unwrap();
            }
        };
        thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Soaked {
            addr,
            child,
            log,
            _dir: dir,
        }
    }

    /// `VmRSS` and `VmHWM`, in KiB.
    pub(super) fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server is running");
        let field = |name: &str| -> u64 {
            let line = status.lines().find(|l| l.starts_with(name)).unwrap();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Soaked {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `functions/wisp.json` with each module's absolute path, no build commands, and the
/// heartbeat's timer every second. Checks that every example listed there was built.
fn examples_manifest() -> String {
    let built = modules();
    let functions = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions");
    let text = std::fs::read_to_string(functions.join("wisp.json")).unwrap();
    let mut manifest: Value = serde_json::from_str(&text).unwrap();
    let mut names = Vec::new();
    for function in manifest["functions"].as_array_mut().unwrap() {
        let name = function["name"].as_str().unwrap().to_string();
        let module = functions.join(function["module"].as_str().unwrap());
        assert!(
            module.exists(),
            "{} was not built: functions/build.sh builds hello-c with clang and wasi-libc and \
             go-seed with Go, and says what it lacked (README: \"A fresh machine\")",
            module.display()
        );
        assert_eq!(module.parent().unwrap().canonicalize().unwrap(), built);
        function["module"] = module.to_str().unwrap().into();
        function.as_object_mut().unwrap().remove("build");
        if name == "heartbeat" {
            function["timers"] = serde_json::json!(["every 1s"]);
        }
        names.push(name);
    }
    names.sort();
    let mut rotation = ROTATION;
    rotation.sort();
    assert_eq!(
        rotation, EXAMPLES,
        "the deployer goes through every example"
    );
    assert_eq!(
        names, EXAMPLES,
        "functions/wisp.json's examples changed: call the new ones' routes in the soak"
    );
    manifest.to_string()
}
