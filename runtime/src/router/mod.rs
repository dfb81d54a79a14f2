//! The route table: path and method to function.
//!
//! A route is an exact path (`/api/date`) or a prefix written with a trailing `/...`
//! (`/api/...` matches `/api` and everything under it), as in WAGI and Spin. Exact routes win;
//! among prefixes the longest wins. A route lists the methods it takes (none listed: any);
//! `GET` implies `HEAD`.

mod cors;

use std::collections::HashMap;

pub use cors::Cors;

/// One route to a target (in the server, a deployed function).
#[derive(Debug, Clone)]
pub struct Route<T> {
    /// The pattern as written: `/api/date`, `/api/...`.
    pub pattern: String,
    /// Upper-case method names; empty means any.
    pub methods: Vec<String>,
    pub cors: Option<Cors>,
    pub target: T,
}

/// A route that matched a path.
#[derive(Debug)]
pub struct Match<'a, T> {
    pub route: &'a Route<T>,
    /// Where the part of the path the route names ends: `path[..split]` is `/api` for
    /// `/api/x/y` on `/api/...`, and `path[split..]` is the rest, `/x/y`. For exact routes,
    /// the whole path.
    pub split: usize,
}

/// What the table says of a request.
#[derive(Debug)]
pub enum Lookup<'a, T> {
    Found(Match<'a, T>),
    /// The path has a route, the method is not on its list: the value for `Allow`.
    MethodNotAllowed(Match<'a, T>, String),
    NotFound,
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    Invalid(String),
    /// Two routes with the same pattern.
    Duplicate(String),
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteError::Invalid(p) => write!(
                f,
                "invalid route `{p}`: a route is a path starting with `/`, optionally ending \
                 in `/...` for a prefix, with no spaces, `?` or `#`"
            ),
            RouteError::Duplicate(p) => write!(f, "route `{p}` is given twice"),
        }
    }
}

impl std::error::Error for RouteError {}

/// An immutable route table; the server swaps whole tables.
#[derive(Debug, Clone)]
pub struct RouteTable<T> {
    routes: Vec<Route<T>>,
    exact: HashMap<String, usize>,
    /// `(base, index)`, longest base first.
    prefixes: Vec<(String, usize)>,
}

impl<T> Default for RouteTable<T> {
    fn default() -> Self {
        Self {
            routes: Vec::new(),
            exact: HashMap::new(),
            prefixes: Vec::new(),
        }
    }
}

/// Splits a pattern into its base and whether it is a prefix, or refuses it.
pub fn parse_pattern(pattern: &str) -> Result<(&str, bool), RouteError> {
    let invalid = || RouteError::Invalid(pattern.to_string());
    if !pattern.starts_with('/')
        || pattern
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
    {
        return Err(invalid());
    }
    match pattern.strip_suffix("/...") {
        Some(base) if base.contains("...") => Err(invalid()),
        Some(base) => Ok((base, true)),
        None if pattern.contains("...") => Err(invalid()),
        None => Ok((pattern, false)),
    }
}

impl<T> RouteTable<T> {
    /// Builds a table, refusing invalid or duplicate patterns.
    pub fn new(routes: Vec<Route<T>>) -> Result<Self, RouteError> {
        let mut table = RouteTable {
            routes: Vec::new(),
            ..Default::default()
        };
        for (i, route) in routes.iter().enumerate() {
            let (base, prefix) = parse_pattern(&route.pattern)?;
            let fresh = if prefix {
                let dup = table.prefixes.iter().any(|(b, _)| b == base);
                table.prefixes.push((base.to_string(), i));
                !dup
            } else {
                table.exact.insert(base.to_string(), i).is_none()
            };
            if !fresh {
                return Err(RouteError::Duplicate(route.pattern.clone()));
            }
        }
        table
            .prefixes
            .sort_by_key(|(base, _)| std::cmp::Reverse(base.len()));
        table.routes = routes;
        Ok(table)
    }

    pub fn routes(&self) -> &[Route<T>] {
        &self.routes
    }

    /// Finds the route for `path`, then checks `method` against it.
    pub fn lookup(&self, method: &str, path: &str) -> Lookup<'_, T> {
        let found = match self.exact.get(path) {
            Some(&i) => Some(Match {
                route: &self.routes[i],
                split: path.len(),
            }),
            None => self.prefixes.iter().find_map(|(base, i)| {
                let rest = path.strip_prefix(base.as_str())?;
                (rest.is_empty() || rest.starts_with('/') || base.ends_with('/')).then_some(Match {
                    route: &self.routes[*i],
                    split: base.len(),
                })
            }),
        };
        let Some(found) = found else {
            return Lookup::NotFound;
        };
        if allows(&found.route.methods, method) {
            Lookup::Found(found)
        } else {
            let allow = allow_header(found.route);
            Lookup::MethodNotAllowed(found, allow)
        }
    }
}

fn allows(methods: &[String], method: &str) -> bool {
    methods.is_empty()
        || methods
            .iter()
            .any(|m| m == method || (m == "GET" && method == "HEAD"))
}

fn allow_header<T>(route: &Route<T>) -> String {
    let mut allow = route.methods.clone();
    if allow.iter().any(|m| m == "GET") && !allow.iter().any(|m| m == "HEAD") {
        allow.push("HEAD".into());
    }
    if route.cors.is_some() && !allow.iter().any(|m| m == "OPTIONS") {
        allow.push("OPTIONS".into());
    }
    allow.join(", ")
}

#[cfg(test)]
mod tests;
