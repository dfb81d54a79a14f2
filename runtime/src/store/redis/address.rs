//! The Redis URL, `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`, as redis-rs's connection
//! settings.
//!
//! Parsed here rather than by redis-rs, whose URL parser brings the `url` crate and, through it,
//! Unicode tables for internationalized host names: about 0.25 MB of a 5 MB binary, for a host
//! that is an address or a plain name on the local network.

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

use super::KvError;
use crate::wagi::percent_decode;

const DEFAULT_PORT: u16 = 6379;

pub(crate) fn connection_info(url: &str) -> Result<ConnectionInfo, KvError> {
    let invalid = || {
        KvError::Failed(
            "the Redis URL is not of the form redis://[:PASSWORD@]HOST[:PORT][/DB]".into(),
        )
    };
    let rest = url.strip_prefix("redis://").ok_or_else(invalid)?;
    let (authority, db) = rest.split_once('/').unwrap_or((rest, ""));
    let db = match db {
        "" => 0,
        db => db.parse::<u16>().map_err(|_| invalid())?,
    };
    let (credentials, host_port) = match authority.rsplit_once('@') {
        Some((credentials, host_port)) => (Some(credentials), host_port),
        None => (None, authority),
    };
    // `[IPv6 address]:PORT`, or `HOST:PORT`; the port may be left out.
    let (host, port) = match host_port.strip_prefix('[') {
        Some(bracketed) => {
            let (host, port) = bracketed.split_once(']').ok_or_else(invalid)?;
            host.parse::<std::net::Ipv6Addr>().map_err(|_| invalid())?;
            match port {
                "" => (host, None),
                port => (host, Some(port.strip_prefix(':').ok_or_else(invalid)?)),
            }
        }
        None => {
            let (host, port) = match host_port.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (host_port, None),
            };
            if host.is_empty() || host.contains(['[', ']', '?', '#']) {
                return Err(invalid());
            }
            (host, port)
        }
    };
    let port = match port {
        Some(port) => port.parse().map_err(|_| invalid())?,
        None => DEFAULT_PORT,
    };
    let mut redis = RedisConnectionInfo::default().set_db(db.into());
    if let Some(credentials) = credentials {
        let (user, password) = credentials.split_once(':').ok_or_else(invalid)?;
        if !user.is_empty() {
            redis = redis.set_username(percent_decode(user, false));
        }
        redis = redis.set_password(percent_decode(password, false));
    }
    let info = ConnectionAddr::Tcp(host.to_string(), port)
        .into_connection_info()
        .map_err(|_| invalid())?;
    // TCP_NODELAY: a pipeline is one write, and its answer should not wait for an ACK.
    let tcp = info.tcp_settings().clone().set_nodelay(true);
    Ok(info.set_redis_settings(redis).set_tcp_settings(tcp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(url: &str) -> (String, u16, Option<String>, Option<String>, i64) {
        let info = connection_info(url).unwrap();
        let ConnectionAddr::Tcp(host, port) = info.addr().clone() else {
            panic!("not TCP");
        };
        let redis = info.redis_settings();
        let user = redis.username().map(str::to_string);
        (
            host,
            port,
            user,
            redis.password().map(str::to_string),
            redis.db(),
        )
    }

    #[test]
    fn urls_name_host_port_password_and_database() {
        assert_eq!(
            parts("redis://pi.local"),
            ("pi.local".into(), 6379, None, None, 0)
        );
        assert_eq!(
            parts("redis://10.0.0.2:6380/3"),
            ("10.0.0.2".into(), 6380, None, None, 3)
        );
        assert_eq!(
            parts("redis://:s%40cr%3At@h:1/"),
            ("h".into(), 1, None, Some("s@cr:t".into()), 0)
        );
        assert_eq!(
            parts("redis://wisp:pw@h/2"),
            ("h".into(), 6379, Some("wisp".into()), Some("pw".into()), 2)
        );
        assert_eq!(parts("redis://[::1]:7000/1").0, "::1");
        assert_eq!(parts("redis://[::1]").1, 6379);
        // A password may hold `@` and `:` as they are: the host is after the last `@`.
        assert_eq!(parts("redis://:a@b:c@h").3.as_deref(), Some("a@b:c"));
    }

    #[test]
    fn other_urls_are_refused() {
        for url in [
            "",
            "rediss://h",
            "http://h",
            "unix:///tmp/redis.sock",
            "redis://",
            "redis://:6379",
            "redis://h:port",
            "redis://h:70000",
            "redis://h/db",
            "redis://h/-1",
            "redis://h/1/2",
            "redis://pw@h",
            "redis://[::1",
            "redis://::1",
            "redis://h?db=1",
        ] {
            assert!(
                matches!(connection_info(url), Err(KvError::Failed(_))),
                "{url}"
            );
        }
    }
}
