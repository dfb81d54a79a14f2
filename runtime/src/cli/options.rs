//! Options shared by commands: server settings and function limits.

use std::time::Duration;

use lexopt::ValueExt;

use super::Error;
use crate::engine::Limits;
use crate::server::Options;

pub const LIMIT_HELP: &str = "\
Function limits (defaults for functions that set none):
      --fuel <N>             Fuel (CPU) per invocation [default: 1000000000]
      --timeout-ms <MS>      Wall-clock deadline per invocation [default: 10000]
      --memory-mb <MB>       Linear memory cap per invocation [default: 64]
      --max-depth <N>        Deepest nesting of wasm calls [default: 1024]
      --stdout-kb <KB>       Response (stdout) cap [default: 4096]
      --stderr-kb <KB>       Log (stderr) cap per invocation [default: 64]
";

pub const SERVER_HELP: &str = "\
Server options:
      --board <NAME>         Defaults sized for a device: pi-1, pi-zero-2w, pi-2, pi-3, pi-4,
                             pi-5, x86-64, or none; `--board help` lists them. Options given here win
                             [default: detected from the device's model, else none]
      --listen <ADDR>        Address to listen on [default: 0.0.0.0:8080]
      --listen-tls <ADDR>    Address to listen on with HTTPS, the same routes (e.g. 0.0.0.0:8443).
                             Its certificate is made at first start in DIR/tls/ (key mode 0600),
                             and its SHA256 fingerprint printed at each start [default: none]
      --tls-cert <PATH>      Serve this certificate (PEM, the chain) instead; read again on SIGHUP
      --tls-key <PATH>       The certificate's private key (PEM); read again on SIGHUP
      --insecure-admin       Take the admin token over plain HTTP from other machines too. By
                             default plain HTTP takes it only from 127.0.0.1 and ::1 (every other
                             address, 127.0.0.2 included, is another machine): 403 otherwise
      --data <DIR>           Data folder [default: $STATE_DIRECTORY, else ./wisp-data]
      --token-file <PATH>    Admin token file [default: DIR/admin.token; WISP_TOKEN overrides]
      --max-module-mb <MB>   Largest module a deploy may upload [default: 64]
      --store-cache-mb <MB>  Key-value store cache [default: 16]
      --workers <N>          Threads that serve HTTP and run wasm [default: one per core]
      --queue <N>            Invocations that may wait for a worker; past it, 503 [default: 256]
      --max-running <N>      Invocations started and not finished, at most [default: 8 per worker]
      --slice-fuel <N>       Fuel per scheduling slice [default: 100000]
      --max-connections <N>  Open connections at most [default: 1024]
      --max-body-kb <KB>     Largest request body [default: 1024]
      --max-head-kb <KB>     Largest request head [default: 16]
      --head-timeout-ms <MS> Time to send a request head, and to finish a TLS handshake
                             [default: 10000]
      --max-queue-depth <N>  Messages each subscriber's queue (topic, watch, async calls) holds
                             at most; past it, publishing fails [default: 10000]

Fleet options (devices that name one Redis share every deploy; see the README, Fleet):
      --redis <URL>          Join the fleet in this Redis: redis://[:PASSWORD@]HOST:PORT/DB
                             [default: $WISP_REDIS; without it, the device stands alone]
      --fleet <NAME>         The fleet's name: one Redis holds fleets apart
                             [default: $WISP_FLEET, else default]
      --device <NAME>        This device's name in the fleet [default: $WISP_DEVICE, else the
                             host name]
      --visibility-timeout <S>
                             Seconds a device may go silent before the fleet takes over the
                             messages it was delivering and the timer ticks it was running
                             [default: $WISP_VISIBILITY_TIMEOUT, else 30]
";

fn number<T: std::str::FromStr>(parser: &mut lexopt::Parser, name: &str) -> Result<T, Error> {
    let value = parser.value()?.string()?;
    value
        .parse()
        .map_err(|_| Error(format!("--{name}: `{value}` is not a valid number")))
}

/// Parses the function-limit option `--name` into `limits`; false if it is not one.
pub fn limit(name: &str, parser: &mut lexopt::Parser, limits: &mut Limits) -> Result<bool, Error> {
    match name {
        "fuel" => limits.fuel = number(parser, "fuel")?,
        "timeout-ms" => {
            limits.timeout = Duration::from_millis(number(parser, "timeout-ms")?);
        }
        "memory-mb" => limits.memory_bytes = number::<u64>(parser, "memory-mb")? << 20,
        "max-depth" => limits.max_recursion_depth = number(parser, "max-depth")?,
        "stdout-kb" => limits.stdout_bytes = number::<usize>(parser, "stdout-kb")? << 10,
        "stderr-kb" => limits.stderr_bytes = number::<usize>(parser, "stderr-kb")? << 10,
        _ => return Ok(false),
    }
    Ok(true)
}

/// Parses the server option (or function limit) `--name` into `options`; false if it is
/// neither.
pub fn server(
    name: &str,
    parser: &mut lexopt::Parser,
    options: &mut Options,
) -> Result<bool, Error> {
    match name {
        "listen" => options.listen = parser.value()?.string()?,
        "listen-tls" => options.listen_tls = Some(parser.value()?.string()?),
        "tls-cert" => options.tls_cert = Some(parser.value()?.into()),
        "tls-key" => options.tls_key = Some(parser.value()?.into()),
        "insecure-admin" => options.insecure_admin = true,
        "data" => options.data = parser.value()?.into(),
        "token-file" => options.token_file = Some(parser.value()?.into()),
        "max-module-mb" => {
            options.max_module_bytes = number::<usize>(parser, "max-module-mb")? << 20;
        }
        "workers" => {
            let workers: usize = number(parser, "workers")?;
            if workers == 0 {
                return Err(Error("--workers must be at least 1".into()));
            }
            options.scheduler.max_running =
                options.scheduler.max_running / options.workers * workers;
            options.workers = workers;
        }
        "queue" => options.scheduler.queue = number(parser, "queue")?,
        "max-running" => {
            options.scheduler.max_running = number::<usize>(parser, "max-running")?.max(1)
        }
        "slice-fuel" => options.scheduler.slice_fuel = number::<u64>(parser, "slice-fuel")?.max(1),
        "store-cache-mb" => {
            options.store_cache_bytes = number::<usize>(parser, "store-cache-mb")? << 20;
        }
        "max-connections" => {
            options.http.max_connections = number::<usize>(parser, "max-connections")?.max(1);
        }
        "max-body-kb" => {
            options.http.max_body_bytes = number::<usize>(parser, "max-body-kb")? << 10
        }
        "max-head-kb" => {
            options.http.max_head_bytes = number::<usize>(parser, "max-head-kb")? << 10
        }
        "head-timeout-ms" => {
            let timeout = Duration::from_millis(number(parser, "head-timeout-ms")?);
            options.http.head_timeout = timeout;
            options.http.handshake_timeout = timeout;
        }
        "redis" => options.redis = Some(parser.value()?.string()?),
        "fleet" => {
            let fleet = parser.value()?.string()?;
            crate::fleet::check_name("--fleet", &fleet)?;
            options.fleet = fleet;
        }
        "device" => {
            let device = parser.value()?.string()?;
            crate::fleet::check_name("--device", &device)?;
            options.device = Some(device);
        }
        "visibility-timeout" => {
            let seconds: u64 = number(parser, "visibility-timeout")?;
            if seconds == 0 {
                return Err(Error("--visibility-timeout must be at least 1".into()));
            }
            options.visibility_timeout = Duration::from_secs(seconds);
        }
        "max-queue-depth" => {
            options.max_queue_depth = number::<u64>(parser, "max-queue-depth")?.max(1);
        }
        _ => return limit(name, parser, &mut options.limits),
    }
    Ok(true)
}

/// The error for an option no one knows.
pub fn unknown(name: &str) -> Error {
    Error(format!("unknown option --{name} (see --help)"))
}
