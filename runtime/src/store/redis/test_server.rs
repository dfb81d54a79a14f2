//! A real `redis-server` for tests: on a free loopback port, in a temporary folder, with every
//! write `fsync`ed before Redis answers it (`appendfsync always`), killed on drop.
//!
//! Without `redis-server` installed, [`TestServer::start`] panics with how to install it: the
//! tests of the Redis backend fail rather than pass without running.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{RedisOptions, RedisStore};

pub(crate) struct TestServer {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
}

impl TestServer {
    pub(crate) fn start() -> TestServer {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("wisp-redis-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // Another process may take the port between our look and Redis's bind: try others.
        for _ in 0..10 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .unwrap()
                .port();
            let mut server = TestServer {
                child: None,
                dir: dir.clone(),
                port,
            };
            if server.run() {
                return server;
            }
        }
        panic!(
            "redis-server did not start; see {}",
            dir.join("redis.log").display()
        );
    }

    /// `redis://127.0.0.1:PORT/0`
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// A store of `fleet` on this server.
    pub(crate) fn store(&self, fleet: &str) -> RedisStore {
        RedisStore::connect(&self.url(), fleet).unwrap()
    }

    /// The store of the device `device` of `fleet`, whose claims go to another device after
    /// `visibility` of silence.
    pub(crate) fn device(&self, fleet: &str, device: &str, visibility: Duration) -> RedisStore {
        let options = RedisOptions {
            device: device.into(),
            visibility,
        };
        RedisStore::open(&self.url(), fleet, options).unwrap()
    }

    /// A command straight to the server, on a connection of its own.
    pub(crate) fn command(&self, args: &[&str]) -> redis::Value {
        let client = redis::Client::open(self.url()).unwrap();
        let mut con = client.get_connection().unwrap();
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query(&mut con).unwrap()
    }

    /// Kills the server at once (`SIGKILL`), as a crash or power cut would.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again, on the same port and folder (its append-only file).
    pub(crate) fn restart(&mut self) {
        self.kill();
        assert!(self.run(), "redis-server did not start again");
    }

    /// Stops (`SIGSTOP`) or continues (`SIGCONT`) the server: a server that hangs.
    pub(crate) fn pause(&self, paused: bool) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let signal = if paused { "-STOP" } else { "-CONT" };
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success());
    }

    /// Starts `redis-server` on `self.port` and waits until it answers; false if it exited
    /// (the port was taken).
    fn run(&mut self) -> bool {
        std::fs::create_dir_all(&self.dir).unwrap();
        let spawned = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--logfile", "redis.log", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "the Redis backend's tests need redis-server: apt-get install redis-server \
                 (.ci/run installs it)"
            ),
            Err(e) => panic!("cannot run redis-server: {e}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                return false;
            }
            if ping(self.port) {
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-server did not answer PING within 10 s");
    }
}

/// Whether a Redis on `port` answers `PING` (and is done loading its data).
fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
