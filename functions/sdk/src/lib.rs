//! Write Wisp functions: HTTP handlers that run as WebAssembly on the Wisp runtime.
//!
//! A Wisp function is a WASI preview1 command module. For every request the host starts a fresh
//! instance and speaks the WAGI contract to it, which is CGI: the request body on stdin, the
//! request line, headers and route data in environment variables, and the response on stdout as
//! CGI header lines, a blank line and the body. This crate does that plumbing so a handler is a
//! closure from [`Request`] to [`Response`]:
//!
//! ```no_run
//! use wisp_sdk::{Request, Response};
//!
//! fn main() {
//!     wisp_sdk::serve(|req: Request| {
//!         let name = req.query("name").unwrap_or_else(|| "world".to_string());
//!         wisp_sdk::log(format_args!("greeting {name}"));
//!         Response::text(200, format!("Hello, {name}!\n"))
//!     })
//! }
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip1`, with the link settings that
//! `functions/.cargo/config.toml` holds (a 64 KiB stack keeps instantiation cheap).
//!
//! [`kv`] is the key-value store the host keeps for functions: `kv::Store::default_store()`,
//! then `get`, `set`, `increment`, `compare_and_swap`, `keys` and so on.
//!
//! The crate uses std only. Its parsing works on explicit inputs ([`Request::new`],
//! [`Response::to_cgi`]), so handlers can be unit-tested natively without a host.
//!
//! Every request pays for what the SDK does, so it does little: a [`Request`] reads a variable
//! only when the handler asks for it, and on wasm32 the default feature `arena` installs a
//! small bump arena in front of the system allocator as the global allocator, since wasmi
//! charges each `malloc` and `free` far more than the few bytes they usually serve are worth.
//! A function that needs another global allocator turns the default features off.

#![warn(missing_docs)]

pub mod kv;

#[cfg(any(
    test,
    all(
        feature = "arena",
        target_arch = "wasm32",
        not(target_feature = "atomics")
    )
))]
mod arena;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read, Write};
use std::sync::OnceLock;

/// See [`arena`]: without it, allocations are most of a small function's fuel.
#[cfg(all(
    feature = "arena",
    target_arch = "wasm32",
    not(target_feature = "atomics")
))]
#[global_allocator]
static ALLOCATOR: arena::Arena = arena::Arena::new(std::alloc::System);

/// Runs `handler` on this instance's request and writes its response to stdout.
///
/// The request is this instance's ([`Request::from_env`]); if stdin cannot be read the handler
/// is not called and the answer is a 500. The response goes out in a single write, so the
/// handler itself should not print to stdout: use [`log`].
pub fn serve(handler: impl FnOnce(Request) -> Response) {
    let response = match Request::from_env() {
        Ok(request) => handler(request),
        Err(err) => {
            log(format_args!(
                "wisp-sdk: cannot read the request body: {err}"
            ));
            Response::text(500, "cannot read the request body\n")
        }
    };
    if let Err(err) = write_stdout(&response.to_cgi()) {
        log(format_args!("wisp-sdk: cannot write the response: {err}"));
    }
}

fn write_stdout(bytes: &[u8]) -> io::Result<()> {
    // Whatever the handler printed anyway must come before the response.
    io::stdout().flush()?;
    // std's stdout is line buffered: it would hand the host one write up to the last newline and
    // another for the rest. Writing fd 1 directly sends the whole response in one call.
    #[cfg(any(unix, target_os = "wasi"))]
    {
        use std::os::fd::FromRawFd;
        // SAFETY: fd 1 is open for the whole run, and ManuallyDrop keeps it from being closed.
        let mut stdout = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(1) });
        stdout.write_all(bytes)
    }
    #[cfg(not(any(unix, target_os = "wasi")))]
    {
        let mut stdout = io::stdout().lock();
        stdout.write_all(bytes)?;
        stdout.flush()
    }
}

/// Writes `message` and a newline to stderr, which the host keeps as the function's log.
///
/// Errors are ignored: a function should not fail because its log is full.
pub fn log(message: impl fmt::Display) {
    let line = format!("{message}\n");
    let _ = io::stderr().write_all(line.as_bytes());
}

/// Quotes and escapes `s` as a JSON string, for building JSON bodies by hand.
///
/// ```
/// assert_eq!(wisp_sdk::json_string("say \"hi\"\n"), r#""say \"hi\"\n""#);
/// ```
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    // Copies the runs between escapes whole: a push per `char` costs several times more, and
    // most strings have nothing to escape. Only ASCII needs escaping, so bytes can be searched.
    let mut rest = s;
    while let Some(at) = rest
        .bytes()
        .position(|b| b == b'"' || b == b'\\' || b < b' ')
    {
        // `get` rather than indexing: `at` is at an ASCII byte, always a char boundary, and
        // indexing would link the code of a panic that cannot happen.
        out.push_str(rest.get(..at).unwrap_or_default());
        let byte = rest.as_bytes()[at];
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(HEX[usize::from(byte >> 4)].into());
                out.push(HEX[usize::from(byte & 0xf)].into());
            }
        }
        rest = rest.get(at + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    out.push('"');
    out
}

/// An HTTP request as the host hands it to a function: CGI variables, argv and the body.
///
/// A request from [`Request::from_env`] reads each variable from the environment the first time
/// it is asked for, and argv when [`Request::args`] is first called: most handlers look at a few
/// variables, and copying all of them up front was most of a small function's cost.
#[derive(Clone)]
pub struct Request {
    vars: Vars,
    // OnceLock rather than OnceCell keeps the request Sync, as it was when it held plain maps.
    args: OnceLock<Vec<String>>,
    body: Vec<u8>,
}

#[derive(Clone)]
enum Vars {
    /// The variables given to [`Request::new`].
    Given(BTreeMap<String, String>),
    /// This instance's environment, read on demand.
    Process(ProcessVars),
}

/// The variables of the process environment read so far.
#[derive(Default)]
struct ProcessVars {
    looked_up: LookupList,
    /// Every variable, read only if a handler enumerates them ([`Request::vars`]).
    all: OnceLock<BTreeMap<String, String>>,
}

impl Clone for ProcessVars {
    /// A clone reads the environment again on demand: what was read is only a cache of it.
    fn clone(&self) -> Self {
        ProcessVars::default()
    }
}

/// A list that only grows, with an entry per variable looked up: `var` returns `&str` borrowed
/// from `&self`, so a value must never move or change once handed out. Each entry sits in a
/// cell that is set once, and a new one goes into the last entry's empty `next`, which keeps
/// that true without unsafe code. Handlers ask for a few variables, so a linear search is
/// cheaper than any map.
type LookupList = OnceLock<Box<Lookup>>;

struct Lookup {
    name: String,
    value: Option<String>,
    next: LookupList,
}

impl Drop for Lookup {
    /// Drops the rest of the list in a loop: the recursive drop glue would nest a call per
    /// entry, and a wasm engine limits the call depth.
    fn drop(&mut self) {
        let mut next = self.next.take();
        while let Some(mut entry) = next {
            next = entry.next.take();
        }
    }
}

impl ProcessVars {
    fn get(&self, name: &str) -> Option<&str> {
        let mut cell = &self.looked_up;
        loop {
            // Only the empty cell at the end runs the closure.
            let entry = cell.get_or_init(|| {
                Box::new(Lookup {
                    name: name.to_string(),
                    value: env_var(name),
                    next: OnceLock::new(),
                })
            });
            if entry.name == name {
                return entry.value.as_deref();
            }
            cell = &entry.next;
        }
    }

    fn all(&self) -> &BTreeMap<String, String> {
        self.all.get_or_init(|| {
            std::env::vars_os()
                .map(|(name, value)| (into_string_lossy(name), into_string_lossy(value)))
                .collect()
        })
    }
}

/// The variable `name` of the process environment (wasi-libc's `getenv`), converted lossily if
/// it is not UTF-8.
fn env_var(name: &str) -> Option<String> {
    // getenv matches `name` up to the first `=`, so `A=B` would find `A`'s value if it starts
    // with `B=`; a name with `=` (or an empty one) names no variable.
    if name.is_empty() || name.contains('=') {
        return None;
    }
    std::env::var_os(name).map(into_string_lossy)
}

/// `s` as a `String`, reusing its buffer when it is UTF-8, as it nearly always is.
fn into_string_lossy(s: OsString) -> String {
    s.into_string()
        .unwrap_or_else(|s| s.to_string_lossy().into_owned())
}

impl Default for Request {
    /// A request without variables, arguments or body.
    fn default() -> Self {
        Request::new(Vec::<(String, String)>::new(), Vec::new(), Vec::new())
    }
}

impl PartialEq for Request {
    /// Requests are equal when their variables, arguments and bodies are, whether they were
    /// given or read from the environment (which reads all of it).
    fn eq(&self, other: &Self) -> bool {
        self.args() == other.args() && self.body == other.body && self.vars().eq(other.vars())
    }
}

impl Eq for Request {}

impl fmt::Debug for Request {
    /// Shows every variable, which reads all of them from the environment.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("env", &self.vars_map())
            .field("args", &self.args())
            .field("body", &self.body)
            .finish()
    }
}

impl Request {
    /// Builds a request from explicit parts: the environment variables, argv and the body.
    ///
    /// [`Request::from_env`] builds the real one; tests can build any other.
    ///
    /// ```
    /// let req = wisp_sdk::Request::new([("REQUEST_METHOD", "GET")], vec![], b"hi".to_vec());
    /// assert_eq!(req.method(), "GET");
    /// ```
    pub fn new<K, V>(
        env: impl IntoIterator<Item = (K, V)>,
        args: Vec<String>,
        body: Vec<u8>,
    ) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        let env = env.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        Request {
            vars: Vars::Given(env),
            args: OnceLock::from(args),
            body,
        }
    }

    /// This instance's request: its environment and argv, read when asked for, and its body,
    /// all of stdin, read now.
    ///
    /// Names, values and arguments that are not UTF-8 are converted lossily.
    pub fn from_env() -> io::Result<Self> {
        let body = read_body(raw_stdin(), || env_var("CONTENT_LENGTH"))?;
        Ok(Request::from_process_env(body))
    }

    /// A request with this body whose variables and argv are the process's.
    fn from_process_env(body: Vec<u8>) -> Self {
        Request {
            vars: Vars::Process(ProcessVars::default()),
            args: OnceLock::new(),
            body,
        }
    }

    /// The request method, such as `GET` (`REQUEST_METHOD`); empty if the host set none.
    pub fn method(&self) -> &str {
        self.var("REQUEST_METHOD").unwrap_or("")
    }

    /// The path below the route that matched (`PATH_INFO`, as in CGI and WAGI): `/x/y` for a
    /// request to `/api/x/y` on the route `/api/...`; empty for an exact route. Percent-decoded.
    pub fn path(&self) -> &str {
        self.var("PATH_INFO").unwrap_or("")
    }

    /// The part of the path the route names (`SCRIPT_NAME`): `/api` for the route `/api/...`,
    /// the whole path for an exact route. `script_name()` then `path()` is the full path.
    pub fn script_name(&self) -> &str {
        self.var("SCRIPT_NAME").unwrap_or("")
    }

    /// The raw query string, without the `?` (`QUERY_STRING`); empty if there is none.
    pub fn query_string(&self) -> &str {
        self.var("QUERY_STRING").unwrap_or("")
    }

    /// The percent-decoded value of the first query parameter called `name`.
    ///
    /// `+` decodes to a space, as in HTML forms; a parameter without `=` has the value `""`.
    ///
    /// ```
    /// let req = wisp_sdk::Request::new([("QUERY_STRING", "city=New+York&x=%31")], vec![], vec![]);
    /// assert_eq!(req.query("city").as_deref(), Some("New York"));
    /// assert_eq!(req.query("x").as_deref(), Some("1"));
    /// assert_eq!(req.query("y"), None);
    /// ```
    pub fn query(&self, name: &str) -> Option<String> {
        self.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// All query parameters in order, percent-decoded as [`Request::query`] does.
    pub fn query_pairs(&self) -> impl Iterator<Item = (String, String)> + '_ {
        query_pairs(self.query_string())
    }

    /// The value of the request header `name`, matched case-insensitively.
    ///
    /// CGI passes headers as `HTTP_<NAME>` variables (uppercased, `-` turned into `_`), except
    /// `Content-Type` and `Content-Length`, which are `CONTENT_TYPE` and `CONTENT_LENGTH`.
    ///
    /// ```
    /// let req = wisp_sdk::Request::new([("HTTP_USER_AGENT", "curl/8")], vec![], vec![]);
    /// assert_eq!(req.header("user-agent"), Some("curl/8"));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        if name.eq_ignore_ascii_case("content-type") {
            return self.var("CONTENT_TYPE");
        }
        if name.eq_ignore_ascii_case("content-length") {
            return self.var("CONTENT_LENGTH");
        }
        let mut cgi_name = String::with_capacity("HTTP_".len() + name.len());
        cgi_name.push_str("HTTP_");
        cgi_name.extend(name.chars().map(|c| match c {
            '-' => '_',
            c => c.to_ascii_uppercase(),
        }));
        self.var(&cgi_name)
    }

    /// The request's `Content-Type`, if it has one (`CONTENT_TYPE`).
    pub fn content_type(&self) -> Option<&str> {
        self.var("CONTENT_TYPE").filter(|v| !v.is_empty())
    }

    /// The route pattern that matched this request, such as `/hello-c/...` (`X_MATCHED_ROUTE`).
    pub fn matched_route(&self) -> Option<&str> {
        self.var("X_MATCHED_ROUTE")
    }

    /// The request body: all of stdin.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The request body as UTF-8 text, or `None` if it is not valid UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }

    /// Takes the body out of the request without copying it.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The environment variable `name`: any CGI variable, `WISP_FUNCTION`, or one the
    /// function's manifest entry sets.
    pub fn var(&self, name: &str) -> Option<&str> {
        match &self.vars {
            Vars::Given(vars) => vars.get(name).map(String::as_str),
            Vars::Process(vars) => vars.get(name),
        }
    }

    /// All environment variables, sorted by name.
    ///
    /// The first call on a request from [`Request::from_env`] reads the whole environment.
    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars_map()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    fn vars_map(&self) -> &BTreeMap<String, String> {
        match &self.vars {
            Vars::Given(vars) => vars,
            Vars::Process(vars) => vars.all(),
        }
    }

    /// The command line: the module name, then the query parameters as WAGI passes them.
    ///
    /// Arguments that are not UTF-8 are converted lossily.
    pub fn args(&self) -> &[String] {
        self.args
            .get_or_init(|| std::env::args_os().map(into_string_lossy).collect())
    }
}

/// All of `stdin`, in a buffer sized by `content_length` (`CONTENT_LENGTH`) if there is a body.
///
/// Most requests have none. One read into the stack finds that out without allocating, and
/// without looking up a variable: the first lookup makes wasi-libc copy in the whole
/// environment, which costs far more than the read (measured on `trivial`: 16,400 fuel with
/// the lookup first, 9,400 without). Whatever the variable says, the body is all of stdin.
fn read_body(
    mut stdin: impl Read,
    content_length: impl FnOnce() -> Option<String>,
) -> io::Result<Vec<u8>> {
    let mut start = [0u8; 64];
    let read = loop {
        match stdin.read(&mut start) {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            read => break read?,
        }
    };
    if read == 0 {
        return Ok(Vec::new());
    }
    let expected = content_length()
        .and_then(|len| len.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = Vec::new();
    // Sized up front, a big body is read in place, not copied as the buffer doubles (which
    // also needs twice its size at the end). A length this memory cannot hold is wrong or
    // would fail the read anyway: then the buffer grows as it goes.
    let _ = body.try_reserve_exact(expected.max(read));
    body.extend_from_slice(&start[..read]);
    stdin.read_to_end(&mut body)?;
    Ok(body)
}

/// Stdin, read as it is: `io::stdin()` would first set up an 8 KiB buffer to copy through, and
/// `File::read_to_end` would ask the host for the size and position of a stream that has none.
#[cfg(any(unix, target_os = "wasi"))]
fn raw_stdin() -> impl Read {
    use std::os::fd::FromRawFd;
    struct Fd0(std::mem::ManuallyDrop<std::fs::File>);
    impl Read for Fd0 {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read(buf)
        }
    }
    // SAFETY: fd 0 is open for the whole run, and ManuallyDrop keeps it from being closed.
    Fd0(std::mem::ManuallyDrop::new(unsafe {
        std::fs::File::from_raw_fd(0)
    }))
}

#[cfg(not(any(unix, target_os = "wasi")))]
fn raw_stdin() -> impl Read {
    io::stdin()
}

fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
}

/// Decodes `%XX` escapes and `+` (a space in form encoding). A `%` that is not followed by two
/// hex digits stays as it is; bytes that do not make UTF-8 become U+FFFD.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes[i] {
            b'%' => bytes.get(i + 1..i + 3).and_then(hex_byte),
            _ => None,
        };
        match (escaped, bytes[i]) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, byte) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_byte(digits: &[u8]) -> Option<u8> {
    let hi = (digits[0] as char).to_digit(16)?;
    let lo = (digits[1] as char).to_digit(16)?;
    Some((hi * 16 + lo) as u8)
}

/// An HTTP response: a status code, headers and a body.
///
/// ```
/// use wisp_sdk::Response;
/// let res = Response::new(303).header("Location", "/done");
/// let created = Response::json(201, r#"{"id":7}"#).header("X-Trace", "abc");
/// assert_eq!(created.status(), 201);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// The `Content-Type` written when a response sets none: CGI requires one.
pub const DEFAULT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

impl Response {
    /// A response with status `status` (100 to 599), no headers and an empty body.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body.into())
    }

    /// An `application/json` response; `body` must already be JSON (see [`json_string`]).
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Response::new(status)
            .header("Content-Type", "application/json")
            .body(body.into())
    }

    /// A plain-text `404 Not Found`.
    pub fn not_found() -> Self {
        Response::text(404, "not found\n")
    }

    /// Adds a header. `Content-Type` replaces the one set before; other names add a line each,
    /// so `Set-Cookie` can repeat.
    ///
    /// Line breaks in `name` or `value` become spaces, since one would end the header block. A
    /// `Status` header is ignored when the response is written: the status code is the one.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = without_line_breaks(name.into());
        let value = without_line_breaks(value.into());
        if name.eq_ignore_ascii_case("content-type") {
            self.headers
                .retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
        }
        self.headers.push((name, value));
        self
    }

    /// Replaces the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The headers in the order they were added.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The body.
    pub fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    /// The response as a CGI script writes it: `Status: <code> <reason>`, `Content-Type` (by
    /// default [`DEFAULT_CONTENT_TYPE`]), the other headers, a blank line, then the body. Lines
    /// end with `\n`.
    ///
    /// ```
    /// let out = wisp_sdk::Response::json(200, "{}").to_cgi();
    /// assert_eq!(out, b"Status: 200 OK\nContent-Type: application/json\n\n{}");
    /// ```
    pub fn to_cgi(&self) -> Vec<u8> {
        let is = |name: &str, wanted: &str| name.eq_ignore_ascii_case(wanted);
        let content_type = self
            .headers
            .iter()
            .find(|(n, _)| is(n, "content-type"))
            .map_or(DEFAULT_CONTENT_TYPE, |(_, v)| v.as_str());
        let reason = reason_phrase(self.status);
        // An upper bound (the headers left out are counted too), so the buffer never grows.
        let headers_len: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 3)
            .sum();
        let capacity = "Status: 65535 \nContent-Type: \n\n".len()
            + reason.len()
            + content_type.len()
            + headers_len
            + self.body.len();
        let mut out = Vec::with_capacity(capacity);
        out.extend_from_slice(b"Status: ");
        push_decimal(&mut out, self.status);
        out.push(b' ');
        out.extend_from_slice(reason.as_bytes());
        out.extend_from_slice(b"\nContent-Type: ");
        out.extend_from_slice(content_type.as_bytes());
        out.push(b'\n');
        for (name, value) in &self.headers {
            if !is(name, "content-type") && !is(name, "status") {
                for part in [name.as_bytes(), b": ", value.as_bytes(), b"\n"] {
                    out.extend_from_slice(part);
                }
            }
        }
        out.push(b'\n');
        out.extend_from_slice(&self.body);
        out
    }
}

/// Appends `n` in decimal, without the formatting machinery that `write!` would go through
/// (about 500 fuel more per response).
fn push_decimal(out: &mut Vec<u8>, mut n: u16) {
    let mut digits = [0u8; 5];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// `s` with every `\r` and `\n` turned into a space; `s` itself, not a copy, when it has none,
/// as header names and values nearly always do.
fn without_line_breaks(s: String) -> String {
    // Both are ASCII, so a byte scan finds them (and is cheaper than a `char` pattern).
    if s.bytes().any(|b| b == b'\r' || b == b'\n') {
        s.replace(['\r', '\n'], " ")
    } else {
        s
    }
}

/// The standard reason phrase of `status`, or `""` for a code without one.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests;
