//! Function configuration and the manifest (`wisp.json`) that lists a folder's functions.

mod events;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::Limits;
use crate::router::{Cors, parse_pattern};

pub use events::{
    Delivery, Events, MAX_ATTEMPTS, MAX_BACKOFF_MS, MAX_CONCURRENCY, Subscription, TimerConfig,
    TimerScope, WatchConfig,
};

/// How one function is served: its routes, methods, CORS, limits and environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionConfig {
    pub name: String,
    /// The module file, relative to the manifest (manifests only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<PathBuf>,
    /// A shell command that builds the module, run in the manifest's folder by `wisp up --build`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// The HTTP routes it serves; none for a function that only handles events.
    #[serde(default)]
    pub routes: Vec<String>,
    /// Methods the routes take; empty means any.
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Extra environment variables the function sees.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Key-value stores the function may use, each in its own namespace. Default: `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stores: Option<Vec<String>>,
    /// Key-value stores shared with every function that names them here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_stores: Vec<String>,
    /// Topics it subscribes to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<Subscription>,
    /// Topics it may publish to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<String>,
    /// Its timers: `every 30s`, or cron expressions of 5 or 6 fields, in UTC; in a fleet,
    /// each runs once per tick across the devices unless its scope is `device`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timers: Vec<TimerConfig>,
    /// Key-value prefixes whose changes invoke it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watch: Vec<WatchConfig>,
    /// How its `Prefer: respond-async` calls are delivered.
    #[serde(default, rename = "async", skip_serializing_if = "Option::is_none")]
    pub async_calls: Option<Delivery>,
    /// The origins it may send HTTP requests to (`https://api.example.com`,
    /// `http://127.0.0.1:9000`, `https://*.example.org`); none by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
}

/// Per-function limits; each one left out takes the server's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_recursion_depth: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_kb: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_kb: Option<usize>,
}

impl LimitsConfig {
    /// These limits over `defaults`.
    pub fn apply(&self, defaults: &Limits) -> Limits {
        Limits {
            fuel: self.fuel.unwrap_or(defaults.fuel),
            timeout: self
                .timeout_ms
                .map_or(defaults.timeout, Duration::from_millis),
            memory_bytes: self.memory_mb.map_or(defaults.memory_bytes, |mb| mb << 20),
            max_recursion_depth: self
                .max_recursion_depth
                .unwrap_or(defaults.max_recursion_depth),
            stdout_bytes: self.stdout_kb.map_or(defaults.stdout_bytes, |kb| kb << 10),
            stderr_bytes: self.stderr_kb.map_or(defaults.stderr_bytes, |kb| kb << 10),
        }
    }
}

/// Checks a function name: `[a-z0-9][a-z0-9-]{0,62}`, so that it is safe in paths and URLs.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

impl FunctionConfig {
    /// Checks what serde cannot: the name, the routes, the methods.
    pub fn validate(&self) -> Result<(), String> {
        if !valid_name(&self.name) {
            return Err(format!(
                "invalid function name `{}`: use 1 to 63 of a-z, 0-9 and -, starting with a \
                 letter or digit",
                self.name
            ));
        }
        let private = self.private_stores();
        let events = self.events(&private);
        if self.routes.is_empty() && !events.any() {
            return Err(format!(
                "function `{}` has no routes and no triggers: give it a route, topics, timers or \
                 watch",
                self.name
            ));
        }
        events.validate()?;
        for (i, route) in self.routes.iter().enumerate() {
            if self.routes[..i].contains(route) {
                return Err(format!(
                    "function `{}`: route `{route}` is given twice",
                    self.name
                ));
            }
            parse_pattern(route).map_err(|e| format!("function `{}`: {e}", self.name))?;
            if route.starts_with("/_wisp/") || route == "/_wisp/..." || route == "/healthz" {
                return Err(format!(
                    "function `{}`: route `{route}` is reserved",
                    self.name
                ));
            }
        }
        for allowed in &self.allowed_hosts {
            crate::outbound::AllowedHost::parse(allowed)
                .map_err(|e| format!("function `{}`: {e}", self.name))?;
        }
        for store in private.iter().chain(&self.shared_stores) {
            if !valid_name(store) {
                return Err(format!(
                    "function `{}`: invalid store name `{store}` (use a-z, 0-9 and -)",
                    self.name
                ));
            }
        }
        if let Some(both) = private.iter().find(|s| self.shared_stores.contains(s)) {
            return Err(format!(
                "function `{}`: store `{both}` is listed both as its own and as shared",
                self.name
            ));
        }
        for method in &self.methods {
            if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(format!(
                    "function `{}`: method `{method}` must be an upper-case token like GET",
                    self.name
                ));
            }
        }
        Ok(())
    }

    /// Its event triggers, with `private` its [`private_stores`](Self::private_stores).
    pub fn events<'a>(&'a self, private: &'a [String]) -> Events<'a> {
        Events {
            function: &self.name,
            topics: &self.topics,
            publish: &self.publish,
            timers: &self.timers,
            watch: &self.watch,
            async_calls: self.async_calls.as_ref(),
            granted: private
                .iter()
                .chain(&self.shared_stores)
                .map(String::as_str)
                .collect(),
        }
    }

    /// The stores granted in the function's own namespace.
    pub fn private_stores(&self) -> Vec<String> {
        self.stores
            .clone()
            .unwrap_or_else(|| vec!["default".to_string()])
    }

    /// The environment the function sees beyond the CGI variables.
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        self.env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// A folder's functions, as listed in its `wisp.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub functions: Vec<FunctionConfig>,
    /// The folder the manifest is in; module paths and builds are relative to it.
    #[serde(skip)]
    pub dir: PathBuf,
}

impl Manifest {
    /// Reads and checks a manifest.
    pub fn load(path: &Path) -> Result<Manifest, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Manifest::parse(&text, path)
    }

    /// Parses and checks the text of the manifest at `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, String> {
        let mut manifest: Manifest =
            serde_json::from_str(text).map_err(|e| format!("{}: {e}", path.display()))?;
        manifest.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if manifest.dir.as_os_str().is_empty() {
            manifest.dir = PathBuf::from(".");
        }
        let mut names = std::collections::HashSet::new();
        for function in &manifest.functions {
            function
                .validate()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if function.module.is_none() {
                return Err(format!(
                    "{}: function `{}` has no `module`",
                    path.display(),
                    function.name
                ));
            }
            if !names.insert(function.name.as_str()) {
                return Err(format!(
                    "{}: function `{}` is listed twice",
                    path.display(),
                    function.name
                ));
            }
        }
        Ok(manifest)
    }

    /// The module file of `function`, resolved against the manifest's folder.
    pub fn module_path(&self, function: &FunctionConfig) -> PathBuf {
        self.dir
            .join(function.module.as_deref().unwrap_or(Path::new("")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["date", "a", "hello-c", "0x", &"a".repeat(63)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-a", "A", "a_b", "a/b", "..", &"a".repeat(64), "é"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn manifest_entry_parses_and_validates() {
        let f: FunctionConfig = serde_json::from_str(
            r#"{"name":"date","module":"d.wasm","routes":["/api/date"],"methods":["GET"],
                "cors":{"origins":["*"],"methods":["GET"]},"limits":{"timeout_ms":50}}"#,
        )
        .unwrap();
        f.validate().unwrap();
        let limits = f.limits.apply(&Limits::default());
        assert_eq!(limits.timeout, Duration::from_millis(50));
        assert_eq!(limits.fuel, Limits::default().fuel);
        let typo = serde_json::from_str::<FunctionConfig>(r#"{"name":"a","route":["/a"]}"#);
        assert!(
            typo.unwrap_err()
                .to_string()
                .contains("unknown field `route`")
        );
        let reserved: FunctionConfig =
            serde_json::from_str(r#"{"name":"a","routes":["/_wisp/x"]}"#).unwrap();
        assert!(reserved.validate().is_err());
    }
}
