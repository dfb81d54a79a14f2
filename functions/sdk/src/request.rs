//! The request side of the contract: CGI variables, argv and the body, read as asked for.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read};
use std::sync::OnceLock;

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
pub(crate) type LookupList = OnceLock<Box<Lookup>>;

pub(crate) struct Lookup {
    pub(crate) name: String,
    pub(crate) value: Option<String>,
    pub(crate) next: LookupList,
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
    pub(crate) fn from_process_env(body: Vec<u8>) -> Self {
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
pub(crate) fn read_body(
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

pub(crate) fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
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
pub(crate) fn percent_decode(s: &str) -> String {
    String::from_utf8_lossy(&percent_decode_bytes(s, true)).into_owned()
}

/// Decodes `%XX` escapes into bytes, and `+` into a space where asked (form encoding; a key
/// that the host percent-encodes keeps its `+`). A `%` without two hex digits stays as it is.
pub(crate) fn percent_decode_bytes(s: &str, plus_as_space: bool) -> Vec<u8> {
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
            (None, b'+') if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            (None, byte) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

fn hex_byte(digits: &[u8]) -> Option<u8> {
    let hi = (digits[0] as char).to_digit(16)?;
    let lo = (digits[1] as char).to_digit(16)?;
    Some((hi * 16 + lo) as u8)
}
