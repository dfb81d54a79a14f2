//! The guest SDK's own unit tests, run natively, so that `cargo test` covers `functions/` too
//! (it is a separate workspace that builds for wasm32-wasip1).

use std::path::Path;
use std::process::Command;

#[test]
fn sdk_unit_tests_pass() {
    let functions = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions");
    let host = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let out = Command::new(env!("CARGO"))
        .args(["test", "--quiet", "-p", "wisp-sdk", "--target", &host])
        .current_dir(&functions)
        .output()
        .expect("run cargo test for the SDK");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("test result: ok"), "{report}");
}
