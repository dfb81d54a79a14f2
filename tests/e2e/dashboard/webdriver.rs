//! Headless Chromium through `chromedriver`, over the W3C WebDriver protocol: JSON over HTTP on
//! loopback. The few commands the dashboard's test needs, blocking, on std's sockets: the
//! WebDriver crates (fantoccini, thirtyfour) would bring tokio and hyper into the tests for
//! what is a dozen requests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// The key of an element reference in WebDriver's answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A `chromedriver` and one browser session, both ended when dropped.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
}

/// Debian's packages; `.ci/run` installs them.
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

impl Browser {
    /// Starts `chromedriver` on a free loopback port and a headless Chromium of `width` ×
    /// `height` CSS pixels.
    pub fn start(width: u32, height: u32) -> Browser {
        for path in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: the dashboard's test drives a real browser \
                 (apt-get install chromium chromium-driver; .ci/run does)"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while browser.call("GET", "/status", None).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                // Root in a container has no user namespaces for Chromium's sandbox.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--no-first-run",
                    format!("--window-size={width},{height}")],
            },
        }}});
        let session = browser
            .call("POST", "/session", Some(capabilities))
            .expect("start a browser session");
        browser.session = session["sessionId"].as_str().unwrap().to_string();
        browser
    }

    /// One WebDriver command: its `value`, or the error WebDriver gave.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let mut stream = TcpStream::connect(self.addr).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            body.len()
        );
        stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body.as_bytes()))
            .map_err(|e| e.to_string())?;
        // chromedriver keeps the connection open whatever the request says: read by length.
        let mut raw = Vec::new();
        let mut buf = [0u8; 65536];
        let (head, length) = loop {
            let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("chromedriver closed the connection".into());
            }
            raw.extend_from_slice(&buf[..n]);
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..end]).into_owned();
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .ok_or("no Content-Length")?;
                raw.drain(..end + 4);
                break (head, length);
            }
        };
        while raw.len() < length {
            let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("chromedriver closed the connection early".into());
            }
            raw.extend_from_slice(&buf[..n]);
        }
        let body = String::from_utf8_lossy(&raw);
        let ok = head.starts_with("HTTP/1.1 200");
        let value: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        match ok {
            true => Ok(value["value"].clone()),
            false => Err(format!("{method} {path}: {}", value["value"])),
        }
    }

    fn session(&self, method: &str, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let body = (method == "POST").then_some(body);
        self.call(method, &path, body)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn goto(&self, url: &str) {
        self.session("POST", "/url", json!({ "url": url }));
    }

    pub fn url(&self) -> String {
        self.session("GET", "/url", json!({}))
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Resizes the window so that its viewport is about `width` × `height` CSS pixels.
    pub fn resize(&self, width: u32, height: u32) {
        self.session(
            "POST",
            "/window/rect",
            json!({ "width": width, "height": height }),
        );
    }

    /// Runs `script` (a function body: `return ...`) in the page with `args`.
    pub fn script(&self, script: &str, args: Value) -> Value {
        self.session(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
    }

    /// The element `selector` matches, waiting for it to be there.
    fn find(&self, selector: &str) -> String {
        let path = format!("/session/{}/element", self.session);
        let body = json!({ "using": "css selector", "value": selector });
        let found = eventually(10, &format!("an element {selector}"), || {
            self.call("POST", &path, Some(body.clone())).ok()
        });
        found[ELEMENT].as_str().unwrap().to_string()
    }

    /// Clicks `selector` as a user would, once it is there and can be clicked.
    pub fn click(&self, selector: &str) {
        let element = self.find(selector);
        let path = format!("/session/{}/element/{element}/click", self.session);
        eventually(10, &format!("a click on {selector}"), || {
            self.call("POST", &path, Some(json!({}))).ok()
        });
    }

    /// Types `text` into `selector` (for a file input: the file's path), after clearing it.
    pub fn type_into(&self, selector: &str, text: &str) {
        let element = self.find(selector);
        let is_file = self.script(
            "return arguments[0].type === 'file'",
            json!([{ ELEMENT: element }]),
        );
        if is_file != json!(true) {
            self.session("POST", &format!("/element/{element}/clear"), json!({}));
        }
        self.session(
            "POST",
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        );
    }

    /// The text of `selector` as a user sees it, once it satisfies `check`.
    pub fn wait_text(&self, selector: &str, check: impl Fn(&str) -> bool) -> String {
        let script = "const e = document.querySelector(arguments[0]); \
                      return e ? e.innerText : null";
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = self.script(script, json!([selector]));
            if let Some(text) = text.as_str().filter(|t| check(t)) {
                return text.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting for the text of {selector}; it is {text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Saves a PNG of the viewport to `path`.
    pub fn screenshot(&self, path: &Path) {
        let encoded = self.session("GET", "/screenshot", json!({}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `check`'s first `Some`, polled for up to `seconds`.
fn eventually<T>(seconds: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
