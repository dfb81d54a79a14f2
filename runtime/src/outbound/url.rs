//! The absolute `http://` and `https://` URLs a function may call, and the origins its
//! configuration allows (`allowed_hosts`).
//!
//! Deliberately narrow: no user info, no IDNA (a host is ASCII letters, digits, `-` and `.`, an
//! IPv4 address, or an IPv6 address in brackets), hosts compared lowercased. A URL this parser
//! refuses is never sent, so nothing a guest writes can be read one way here and another way by
//! the resolver or the peer.

use std::fmt;

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    fn parse(s: &str) -> Option<Scheme> {
        match s.to_ascii_lowercase().as_str() {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        })
    }
}

/// A URL a request can go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub scheme: Scheme,
    /// Lowercase; an IPv6 address without its brackets.
    pub host: String,
    pub port: u16,
    /// The path and query, starting with `/`; the fragment dropped.
    pub target: String,
}

impl Url {
    /// Parses an absolute URL.
    pub fn parse(s: &str) -> Result<Url, String> {
        let (scheme, rest) = s.split_once("://").ok_or("not an absolute URL")?;
        let scheme = Scheme::parse(scheme).ok_or("only http:// and https:// URLs")?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(end);
        let (host, port) = authority_parts(authority, scheme)?;
        let target = target.split('#').next().unwrap_or("");
        if target.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err("spaces or control characters in the URL's path".into());
        }
        let target = match target.strip_prefix('?') {
            Some(_) => format!("/{target}"),
            None if target.is_empty() => "/".into(),
            None => target.into(),
        };
        Ok(Url {
            scheme,
            host,
            port,
            target,
        })
    }

    /// Resolves a redirect's `Location` against this URL.
    pub fn join(&self, location: &str) -> Result<Url, String> {
        if location.contains("://") {
            return Url::parse(location);
        }
        if let Some(rest) = location.strip_prefix("//") {
            return Url::parse(&format!("{}://{rest}", self.scheme));
        }
        let mut joined = self.clone();
        if location.starts_with('/') {
            joined.target = location.into();
        } else {
            let path = self.target.split('?').next().unwrap_or("/");
            let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
            joined.target = format!("{dir}{location}");
        }
        Url::parse(&joined.to_string())
    }

    /// `host:port` as the `Host` header and a TLS name want it (the port only when it is not
    /// the scheme's own).
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == self.scheme.default_port() {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority(), self.target)
    }
}

/// Splits `host[:port]` and checks both.
fn authority_parts(authority: &str, scheme: Scheme) -> Result<(String, u16), String> {
    if authority.contains('@') {
        return Err("user info in a URL is not supported".into());
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or("an unclosed `[` in the host")?;
            host.parse::<std::net::Ipv6Addr>()
                .map_err(|_| format!("`{host}` is not an IPv6 address"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or("junk after an IPv6 host")?),
            };
            (host.to_ascii_lowercase(), port)
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_ascii_lowercase(), Some(port)),
            None => (authority.to_ascii_lowercase(), None),
        },
    };
    let valid = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'.';
    if !host.contains(':') && (host.is_empty() || !host.bytes().all(valid)) {
        return Err(format!("`{host}` is not a host name or address"));
    }
    let port = match port {
        None => scheme.default_port(),
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(format!("`{p}` is not a port")),
        },
    };
    Ok((host, port))
}

/// One entry of a function's `allowed_hosts`: a scheme, a host (or `*.` and a domain: any
/// subdomain of it, not the domain itself) and a port (the scheme's own when left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: Scheme,
    host: String,
    /// Whether `host` is a domain whose subdomains are allowed.
    subdomains: bool,
    port: u16,
}

impl AllowedHost {
    pub fn parse(s: &str) -> Result<AllowedHost, String> {
        let bad = |why: &str| format!("allowed host `{s}`: {why}");
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| bad("give the scheme: https://HOST or http://HOST[:PORT]"))?;
        let scheme = Scheme::parse(scheme).ok_or_else(|| bad("only http and https"))?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) {
            return Err(bad("a scheme, a host and a port only, no path"));
        }
        let (authority, subdomains) = match authority.strip_prefix("*.") {
            Some(domain) => (domain, true),
            None => (authority, false),
        };
        let (host, port) = authority_parts(authority, scheme).map_err(|e| bad(&e))?;
        if subdomains && (host.contains(':') || !host.contains('.')) {
            return Err(bad(
                "`*.` goes before a domain name with a dot, such as *.example.org",
            ));
        }
        Ok(AllowedHost {
            scheme,
            host,
            subdomains,
            port,
        })
    }

    pub fn allows(&self, url: &Url) -> bool {
        if url.scheme != self.scheme || url.port != self.port {
            return false;
        }
        if !self.subdomains {
            return url.host == self.host;
        }
        url.host
            .strip_suffix(self.host.as_str())
            .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_their_parts() {
        let u = Url::parse("HTTPS://API.Example.com/v1/x?q=1#frag").unwrap();
        assert_eq!(u.scheme, Scheme::Https);
        assert_eq!((u.host.as_str(), u.port), ("api.example.com", 443));
        assert_eq!(u.target, "/v1/x?q=1");
        let u = Url::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("127.0.0.1", 9000, "/")
        );
        assert_eq!(Url::parse("http://h?x").unwrap().target, "/?x");
        let u = Url::parse("http://[::1]:8080/a").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 8080));
        assert_eq!(u.to_string(), "http://[::1]:8080/a");
        assert_eq!(Url::parse("https://h:443/").unwrap().authority(), "h");
    }

    #[test]
    fn urls_that_could_be_read_two_ways_are_refused() {
        for bad in [
            "ftp://h/",
            "//h/",
            "http://user:pw@h/",
            "http://h:0/",
            "http://h:99999/",
            "http://h:+80/",
            "http:///x",
            "http://h h/",
            "http://h/a b",
            "http://h/a\r\nX: y",
            "http://h_x/",
            "http://[::1/",
            "http://[nope]/",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn redirects_resolve_against_the_url_they_came_from() {
        let base = Url::parse("https://a.example.com/v1/items?x=1").unwrap();
        let join = |l: &str| base.join(l).unwrap().to_string();
        assert_eq!(join("/v2"), "https://a.example.com/v2");
        assert_eq!(join("other?y"), "https://a.example.com/v1/other?y");
        assert_eq!(join("//b.example.com/z"), "https://b.example.com/z");
        assert_eq!(join("http://c:81/"), "http://c:81/");
    }

    #[test]
    fn an_allowed_host_admits_its_scheme_host_and_port_only() {
        let allowed = AllowedHost::parse("https://api.example.com").unwrap();
        let allows = |u: &str| allowed.allows(&Url::parse(u).unwrap());
        assert!(allows("https://api.example.com/x"));
        assert!(allows("https://API.example.com:443/"));
        assert!(!allows("http://api.example.com/"));
        assert!(!allows("https://api.example.com:8443/"));
        assert!(!allows("https://api.example.com.evil.org/"));
        assert!(!allows("https://evil-api.example.com/"));
        let local = AllowedHost::parse("http://127.0.0.1:9000/").unwrap();
        assert!(local.allows(&Url::parse("http://127.0.0.1:9000/a").unwrap()));
        assert!(!local.allows(&Url::parse("http://127.0.0.1/a").unwrap()));
    }

    #[test]
    fn a_wildcard_admits_subdomains_but_not_the_domain_or_lookalikes() {
        let allowed = AllowedHost::parse("https://*.example.org").unwrap();
        let allows = |u: &str| allowed.allows(&Url::parse(u).unwrap());
        assert!(allows("https://a.example.org/"));
        assert!(allows("https://a.b.example.org/"));
        assert!(!allows("https://example.org/"));
        assert!(!allows("https://badexample.org/"));
        assert!(!allows("https://a.example.org.evil/"));
    }

    #[test]
    fn allowed_hosts_that_mean_nothing_clear_are_refused() {
        for bad in [
            "api.example.com",
            "https://api.example.com/path",
            "https://*",
            "https://*.org",
            "https://*.[::1]",
            "ftp://x",
            "https://a:b:c",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad}");
        }
    }
}
