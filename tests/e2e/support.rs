//! Starting the real `wisp` binary and talking to it over real sockets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub const WISP: &str = env!("CARGO_BIN_EXE_wisp");

/// The folder of the example functions' modules, built once per test run.
pub fn modules() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let functions = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions");
        let status = Command::new(functions.join("build.sh"))
            .stdout(Stdio::null())
            .status()
            .expect("run functions/build.sh");
        assert!(status.success(), "functions/build.sh failed");
        functions
            .join("target/wasm32-wasip1/release")
            .canonicalize()
            .unwrap()
    })
}

pub fn module(name: &str) -> PathBuf {
    modules().join(format!("{name}.wasm"))
}

/// `wasm` with a custom section appended: different bytes, and so a different module to the
/// registry and the engine, with the same code.
pub fn variant(wasm: &[u8], n: u64) -> Vec<u8> {
    let mut section = vec![4];
    section.extend_from_slice(b"wisp");
    section.extend_from_slice(&n.to_le_bytes());
    let mut out = wasm.to_vec();
    out.push(0);
    out.push(section.len() as u8);
    out.extend_from_slice(&section);
    out
}

/// A scratch folder, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("wisp-e2e-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The admin token test servers are started with.
pub const TOKEN: &str = "test-token-0123456789";

/// `wisp serve` on an ephemeral loopback port with the data folder `data`, nothing else set.
pub fn serve_command(data: &Path) -> Command {
    let mut command = Command::new(WISP);
    command
        .args([
            "serve",
            "--board",
            "none",
            "--listen",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(data);
    command
}

/// A running `wisp` process, killed when dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub child: Child,
    _dir: Option<TempDir>,
}

/// Everything a server started with [`Server::serve_captured`] printed, stdout and stderr.
#[derive(Clone, Default)]
pub struct Output(Arc<Mutex<Vec<u8>>>);

impl Output {
    fn push(&self, bytes: &[u8]) {
        self.0.lock().unwrap().extend_from_slice(bytes);
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Reads `from` to its end, into `output` if there is one.
fn drain(mut from: impl Read + Send + 'static, output: Option<Output>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            if let Some(output) = &output {
                output.push(&buf[..n]);
            }
        }
    });
}

/// The manifest entry of one test function.
pub fn function(name: &str, module_name: &str, routes: &[&str], extra: &str) -> String {
    let routes: Vec<String> = routes.iter().map(|r| format!("{r:?}")).collect();
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(", {extra}")
    };
    format!(
        r#"{{"name": {name:?}, "module": {:?}, "routes": [{}]{extra}}}"#,
        module(module_name),
        routes.join(", ")
    )
}

/// The example functions, as in functions/wisp.json, plus `hostile` under `/hostile/...`.
pub fn examples() -> Vec<String> {
    vec![
        function(
            "date",
            "date",
            &["/api/date"],
            r#""methods": ["GET"], "cors": {"origins": ["*"], "methods": ["GET"]}"#,
        ),
        function(
            "weather",
            "weather",
            &["/api/weather"],
            r#""methods": ["GET"]"#,
        ),
        function("hello-c", "hello-c", &["/hello-c/..."], ""),
        function("hostile", "hostile", &["/hostile/..."], ""),
    ]
}

impl Server {
    /// Starts `wisp up` on an ephemeral loopback port serving `functions`, with the admin token
    /// [`TOKEN`].
    pub fn start(functions: &[String], args: &[&str]) -> Server {
        let dir = TempDir::new();
        let manifest = dir.0.join("wisp.json");
        let body = format!(r#"{{"functions": [{}]}}"#, functions.join(",\n"));
        std::fs::write(&manifest, body).unwrap();
        let mut command = Command::new(WISP);
        command
            .arg("up")
            .args(["--board", "none", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.0.join("data"));
        command.args(args).arg(&manifest);
        command.env("WISP_TOKEN", TOKEN);
        Server::spawn(command, Some(dir))
    }

    /// Starts `wisp serve` on an ephemeral loopback port with the data folder `data` and the
    /// admin token [`TOKEN`].
    pub fn serve(data: &Path, args: &[&str]) -> Server {
        Server::serve_env(data, args, &[])
    }

    /// [`Server::serve`], with more environment variables.
    pub fn serve_env(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = serve_command(data);
        command.envs(env.iter().copied()).args(args);
        command.env("WISP_TOKEN", TOKEN);
        Server::spawn(command, None)
    }

    /// [`Server::serve`], keeping all it prints.
    pub fn serve_captured(data: &Path, args: &[&str]) -> (Server, Output) {
        let mut command = serve_command(data);
        command.args(args).env("WISP_TOKEN", TOKEN);
        let output = Output::default();
        let server = Server::spawn_with(command, None, Some(output.clone()));
        (server, output)
    }

    fn spawn(command: Command, dir: Option<TempDir>) -> Server {
        Server::spawn_with(command, dir, None)
    }

    fn spawn_with(mut command: Command, dir: Option<TempDir>, output: Option<Output>) -> Server {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wisp");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let addr = loop {
            line.clear();
            if stdout.read_line(&mut line).unwrap() == 0 {
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("wisp exited before listening: {err}");
            }
            if let Some(output) = &output {
                output.push(line.as_bytes());
            }
            if let Some(addr) = line.trim().strip_prefix("wisp: listening on http://") {
                break addr.parse().unwrap();
            }
        };
        // Keep draining both pipes so the server never blocks on a full one.
        drain(stdout, output.clone());
        drain(child.stderr.take().unwrap(), output);
        Server {
            addr,
            child,
            _dir: dir,
        }
    }

    /// An admin call with the token.
    pub fn admin(&self, method: &str, path: &str, body: &[u8]) -> Reply {
        let auth = format!("Bearer {TOKEN}");
        self.request(method, path, &[("Authorization", &auth)], body)
    }

    /// Deploys `module` as `name` with the query `config` (`route=/x&method=GET`).
    pub fn deploy(&self, name: &str, module: &str, config: &str) -> Reply {
        let wasm = std::fs::read(crate::support::module(module)).unwrap();
        self.admin("PUT", &format!("/_wisp/functions/{name}?{config}"), &wasm)
    }

    /// The server's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Kills the server the hard way, as a power cut would.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream
    }

    /// Sends raw bytes on a new connection and reads until the server closes it.
    pub fn raw(&self, request: &[u8]) -> String {
        let mut stream = self.connect();
        stream.write_all(request).unwrap();
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// One request with `Connection: close`; the parsed response.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut raw = head.into_bytes();
        raw.extend_from_slice(body);
        Reply::parse(&self.raw(&raw))
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], b"")
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn parse(raw: &str) -> Reply {
        let (head, body) = raw
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no head in {raw:?}"));
        let mut lines = head.lines();
        let status_line = lines.next().unwrap();
        let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let headers = lines
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.trim().to_ascii_lowercase(), v.trim().to_string())
            })
            .collect();
        Reply {
            status,
            headers,
            body: body.to_string(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Polls `check` every 20 ms until it returns something, for at most `seconds`; panics with
/// `what` if it never does. For what a server does in the background (deliveries, timers).
pub fn eventually<T>(seconds: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gave up after {seconds} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Server {
    /// Deploys `module` as `name` with its whole configuration as JSON (the manifest's keys).
    pub fn deploy_json(&self, name: &str, module: &str, config: &str) -> Reply {
        let wasm = std::fs::read(crate::support::module(module)).unwrap();
        let auth = format!("Bearer {TOKEN}");
        let headers = [("Authorization", auth.as_str()), ("Wisp-Config", config)];
        self.request("PUT", &format!("/_wisp/functions/{name}"), &headers, &wasm)
    }

    /// The lines the `events` test function deployed as `name` recorded, oldest first (its
    /// route must be `/{name}/...`).
    pub fn recorded(&self, name: &str) -> Vec<String> {
        let reply = self.get(&format!("/{name}/log"));
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.body.lines().map(str::to_string).collect()
    }

    /// A key's value in a store, as the operator reads it; `None` if missing.
    pub fn kv_get(&self, store: &str, namespace: &str, key: &str) -> Option<String> {
        let reply = self.admin("GET", &format!("/_wisp/kv/{store}/{namespace}/{key}"), b"");
        match reply.status {
            200 => Some(reply.body),
            404 => None,
            _ => panic!("kv get {key}: {reply:?}"),
        }
    }

    /// The value of one metric line, by its name and labels as printed (`name{labels}`).
    pub fn metric(&self, series: &str) -> Option<f64> {
        let reply = self.admin("GET", "/_wisp/metrics", b"");
        reply.body.lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().unwrap())
        })
    }
}
