//! Per-route CORS: the headers on responses, and preflights the runtime answers itself.

use serde::{Deserialize, Serialize};

const ALLOW_ORIGIN: &str = "Access-Control-Allow-Origin";

/// A route's CORS policy, as in the manifest:
/// `{ "origins": ["*"], "methods": ["GET"], "headers": ["content-type"], "max_age": 600 }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    /// Allowed origins; `*` allows any.
    pub origins: Vec<String>,
    /// Methods a preflight allows; empty means the route's own methods.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Request headers a preflight allows; empty means whatever the preflight asks for.
    #[serde(default)]
    pub headers: Vec<String>,
    /// Seconds a browser may cache a preflight.
    #[serde(default)]
    pub max_age: Option<u64>,
}

impl Cors {
    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if allowed, and
    /// whether the answer depends on the origin (then `Vary: Origin` must go with it).
    pub fn allow_origin(&self, origin: Option<&str>) -> Option<(String, bool)> {
        if self.origins.iter().any(|o| o == "*") {
            return Some(("*".into(), false));
        }
        let origin = origin?;
        self.origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
            .then(|| (origin.into(), true))
    }

    /// The headers for an actual (non-preflight) response.
    /// A function that sets its own `Access-Control-Allow-Origin` keeps it: with two,
    /// browsers refuse the response.
    pub fn response_headers(&self, origin: Option<&str>, out: &mut Vec<(String, String)>) {
        let own = |(name, _): &(String, String)| name.eq_ignore_ascii_case(ALLOW_ORIGIN);
        if out.iter().any(own) {
            return;
        }
        if let Some((allow, vary)) = self.allow_origin(origin) {
            out.push((ALLOW_ORIGIN.into(), allow));
            if vary {
                out.push(("Vary".into(), "Origin".into()));
            }
        }
    }

    /// The headers of a `204` answer to a preflight, given the route's methods and the
    /// preflight's `Access-Control-Request-Headers`.
    pub fn preflight_headers(
        &self,
        origin: Option<&str>,
        route_methods: &[String],
        requested_headers: Option<&str>,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        self.response_headers(origin, &mut out);
        let methods = if self.methods.is_empty() {
            route_methods
        } else {
            &self.methods
        };
        let methods = if methods.is_empty() {
            "GET, HEAD, POST, PUT, PATCH, DELETE".to_string()
        } else {
            methods.join(", ")
        };
        out.push(("Access-Control-Allow-Methods".into(), methods));
        let headers = match (self.headers.is_empty(), requested_headers) {
            (false, _) => Some(self.headers.join(", ")),
            (true, Some(asked)) if !asked.is_empty() => Some(asked.to_string()),
            _ => None,
        };
        if let Some(headers) = headers {
            out.push(("Access-Control-Allow-Headers".into(), headers));
        }
        if let Some(age) = self.max_age {
            out.push(("Access-Control-Max-Age".into(), age.to_string()));
        }
        out
    }
}
