//! Starting and stopping a server: bind, run the front end and the wasm on one executor served
//! by a thread per core, stop gracefully on SIGTERM or SIGINT.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smol::future::FutureExt as _;
use smol::stream::StreamExt;
use smol::{Async, Executor};

use crate::admin::{self, Token};
use crate::config::Manifest;
use crate::deployed::{Deployed, Function};
use crate::engine::{Limits, Scheduler, SchedulerConfig};
use crate::fleet::{self, Fleet};
use crate::http;
use crate::invoke::Invoker;
use crate::registry::{self, Registry};
use crate::service::Service;
use crate::store::{Backend, DEFAULT_VISIBILITY, Embedded, RedisOptions, RedisStore};
use crate::tls::{self, Certificate};
use crate::topics::{self, Topics};
use crate::triggers::{Context, Triggers};

/// Native stack of a worker thread: virtual memory, touched only as deep as a run goes.
const WORKER_STACK: usize = 8 << 20;
/// How long `wisp up` in a fleet waits to catch up with the log before deploying its manifest.
const MANIFEST_CATCH_UP: Duration = Duration::from_secs(10);

/// Everything a server is started with.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to listen on. Default `0.0.0.0:8080`.
    pub listen: String,
    /// Address to listen on with HTTPS, the same routes. Default: none.
    pub listen_tls: Option<String>,
    /// The operator's certificate (PEM, the chain) and key for HTTPS, read again on `SIGHUP`.
    /// Default: the device's own, made at first start in `DATA/tls/`.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Take the admin token over plain HTTP from other machines too. Default: only over HTTPS,
    /// or from 127.0.0.1 and ::1.
    pub insecure_admin: bool,
    pub http: http::Limits,
    /// Threads that serve connections and run the invocations of their requests. Default: one
    /// per core.
    pub workers: usize,
    pub scheduler: SchedulerConfig,
    /// The limits of functions that do not set their own.
    pub limits: Limits,
    /// The data folder: registry, modules, admin token. Default: `$STATE_DIRECTORY` (set by
    /// systemd's `StateDirectory=`), else `wisp-data` in the working folder.
    pub data: PathBuf,
    /// Where the admin token is kept. Default: `admin.token` in the data folder. The
    /// `WISP_TOKEN` environment variable, when set, overrides both.
    pub token_file: Option<PathBuf>,
    /// Largest module a deploy may upload. Default 64 MiB.
    pub max_module_bytes: usize,
    /// The key-value store's page cache. Default 16 MiB.
    pub store_cache_bytes: usize,
    /// Entries each queue (a topic's subscriber, a watcher, a function's asynchronous calls)
    /// holds at most; past it, publishing fails with `QUEUE_FULL`. Default 10,000.
    pub max_queue_depth: u64,
    /// The fleet's Redis, `redis://[:password@]host:port/db`. Default: `$WISP_REDIS`; without
    /// it, the device stands alone.
    pub redis: Option<String>,
    /// The fleet's name. Default: `$WISP_FLEET`, else `default`.
    pub fleet: String,
    /// This device's name in the fleet. Default: `$WISP_DEVICE`, else the host name.
    pub device: Option<String>,
    /// How long a device of the fleet may go silent before the others take over the messages
    /// it was delivering and the timer ticks it was running. Default:
    /// `$WISP_VISIBILITY_TIMEOUT` (seconds), else 30 s.
    pub visibility_timeout: Duration,
    /// The board profile applied (`--board`, or detected), which the dashboard shows.
    pub board: Option<String>,
}

/// An environment variable's value, if set and not blank.
fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: "0.0.0.0:8080".into(),
            listen_tls: None,
            tls_cert: None,
            tls_key: None,
            insecure_admin: false,
            http: http::Limits::default(),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            scheduler: SchedulerConfig::default(),
            limits: Limits::default(),
            data: std::env::var_os("STATE_DIRECTORY")
                .map_or_else(|| PathBuf::from("wisp-data"), PathBuf::from),
            token_file: None,
            max_module_bytes: 64 << 20,
            store_cache_bytes: 16 << 20,
            max_queue_depth: topics::DEFAULT_DEPTH,
            redis: env("WISP_REDIS"),
            fleet: env("WISP_FLEET").unwrap_or_else(|| "default".into()),
            device: env("WISP_DEVICE"),
            visibility_timeout: env("WISP_VISIBILITY_TIMEOUT")
                .and_then(|s| s.parse().ok())
                .filter(|&s: &u64| s > 0)
                .map_or(DEFAULT_VISIBILITY, Duration::from_secs),
            board: None,
        }
    }
}

/// The admin token: from `WISP_TOKEN`, else from the token file, created with a fresh random
/// 256-bit token (mode 0600) on first start. Says where it is; never prints the token.
fn admin_token(options: &Options) -> Result<Token, String> {
    if let Ok(token) = std::env::var("WISP_TOKEN")
        && !token.trim().is_empty()
    {
        println!("wisp: admin token from WISP_TOKEN");
        return Ok(Token::new(token.trim().to_string()));
    }
    let path = options
        .token_file
        .clone()
        .unwrap_or_else(|| options.data.join("admin.token"));
    match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => {
            println!("wisp: admin token in {}", path.display());
            Ok(Token::new(token.trim().to_string()))
        }
        Ok(_) => Err(format!("the token file {} is empty", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a token: {e}"))?;
            let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            write_new_file(&path, format!("{token}\n").as_bytes())
                .map_err(|e| format!("cannot create the token file {}: {e}", path.display()))?;
            println!("wisp: created an admin token in {}", path.display());
            Ok(Token::new(token))
        }
        Err(e) => Err(format!(
            "cannot read the token file {}: {e}",
            path.display()
        )),
    }
}

/// The HTTPS listener's certificate, if there is one: the operator's, or the device's own
/// (made at first start). Says where it is and its fingerprint, which users pin.
fn certificate(options: &Options) -> Result<Option<Certificate>, String> {
    let source = match (&options.tls_cert, &options.tls_key) {
        (Some(cert), Some(key)) => tls::Source::Operator {
            cert: cert.clone(),
            key: key.clone(),
        },
        (None, None) => tls::Source::Device(options.data.join("tls")),
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    let Some(listen) = &options.listen_tls else {
        return match source {
            tls::Source::Operator { .. } => {
                Err("--tls-cert and --tls-key need --listen-tls".into())
            }
            tls::Source::Device(_) => Ok(None),
        };
    };
    let ip = listen.parse::<SocketAddr>().ok().map(|a| a.ip());
    let certificate = Certificate::open(source, &tls::names(&fleet::host_name(), ip))?;
    let path = certificate.path();
    if certificate.created {
        println!("wisp: created a TLS certificate in {}", path.display());
    } else {
        println!("wisp: TLS certificate in {}", path.display());
    }
    println!(
        "wisp: TLS certificate SHA256 fingerprint: {}",
        certificate.fingerprint()
    );
    Ok(Some(certificate))
}

/// Creates `path` readable by its owner only, durably.
fn write_new_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    registry::sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Deploys the manifest's functions whose module or configuration differ from what serves:
/// through the fleet, when the device is in one, so that every device gets them.
fn deploy_manifest(
    deployed: &Deployed,
    fleet: Option<&Fleet>,
    manifest: &Manifest,
) -> Result<(), String> {
    for entry in &manifest.functions {
        let path = manifest.module_path(entry);
        let wasm = std::fs::read(&path).map_err(|e| {
            let hint = if entry.build.is_some() {
                " (did you mean `wisp up --build`?)"
            } else {
                ""
            };
            format!(
                "function `{}`: cannot read {}: {e}{hint}",
                entry.name,
                path.display()
            )
        })?;
        let config = crate::config::FunctionConfig {
            module: None,
            build: None,
            ..entry.clone()
        };
        let same = deployed
            .get(&config.name)
            .is_some_and(|f| f.config == config && f.hash == registry::hash(&wasm));
        if !same {
            match fleet {
                Some(fleet) => fleet.deploy(config, wasm).map(drop),
                None => deployed.deploy(config, &wasm).map(drop),
            }
            .map_err(|e| format!("function `{}` ({}): {e}", entry.name, path.display()))?;
        }
    }
    Ok(())
}

/// The key-value data and the queues: in the fleet's Redis with `--redis` (the device starts
/// even while Redis is away, and connects when it can), else in the data folder's `kv.redb`.
fn open_backend(options: &Options) -> Result<Arc<dyn Backend>, String> {
    let Some(url) = &options.redis else {
        let store = Embedded::open(&options.data.join("kv.redb"), options.store_cache_bytes)
            .map_err(|e| format!("cannot open the key-value store: {e}"))?;
        return Ok(Arc::new(store));
    };
    let redis = RedisOptions {
        device: options.device.clone().unwrap_or_else(fleet::host_name),
        visibility: options.visibility_timeout,
    };
    let store =
        RedisStore::open(url, &options.fleet, redis).map_err(|e| format!("--redis: {e}"))?;
    Ok(Arc::new(store))
}

/// Serves the data folder's functions, and the manifest's if given, until SIGTERM or SIGINT;
/// then finishes in-flight requests and returns.
pub fn run(options: Options, manifest: Option<&Manifest>) -> Result<(), String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&options.data)
        .map_err(|e| {
            format!(
                "cannot create the data folder {}: {e}",
                options.data.display()
            )
        })?;
    let token = admin_token(&options)?.insecure(options.insecure_admin);
    let certificate = certificate(&options)?;
    let registry = Registry::open(&options.data).map_err(|e| {
        format!(
            "cannot open the data folder {}: {e}",
            options.data.display()
        )
    })?;
    let backend = open_backend(&options)?;
    let topics = Topics::new(backend.clone(), options.max_queue_depth);
    let deployed = Arc::new(Deployed::new(
        registry,
        backend.clone(),
        topics.clone(),
        options.limits.clone(),
    ));
    let invoker = Invoker::new(
        Scheduler::new(options.scheduler.clone()),
        backend.clone(),
        topics.clone(),
    );
    for problem in deployed.load().map_err(|e| e.to_string())? {
        eprintln!("wisp: warning: not serving {problem}");
    }
    let listener = TcpListener::bind(&options.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
    let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    let tls_listener = match &options.listen_tls {
        Some(listen) => {
            let listener =
                TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            Some((listener, addr))
        }
        None => None,
    };
    let fleet = match &options.redis {
        Some(redis) => {
            let fleet_options = fleet::Options {
                redis: redis.clone(),
                fleet: options.fleet.clone(),
                device: options.device.clone().unwrap_or_else(fleet::host_name),
                log_len: env("WISP_FLEET_LOG_LEN")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(fleet::DEFAULT_LOG_LEN),
            };
            Some(Arc::new(Fleet::start(
                &fleet_options,
                deployed.clone(),
                addr,
            )?))
        }
        None => None,
    };
    if let Some(manifest) = manifest {
        if let Some(fleet) = &fleet
            && !fleet.catch_up(MANIFEST_CATCH_UP)
        {
            eprintln!(
                "wisp: warning: fleet {}: not caught up with its log; deploying the manifest \
                 anyway",
                fleet.name()
            );
        }
        deploy_manifest(&deployed, fleet.as_deref(), manifest)?;
    }
    let ex = Arc::new(Executor::new());
    let ctx = Context::new(
        deployed.clone(),
        Arc::new(invoker),
        backend.clone(),
        topics,
        ex.clone(),
    );
    let device = admin::Device {
        board: options.board.clone(),
        workers: options.workers,
        store: if options.redis.is_some() {
            "redis"
        } else {
            "embedded"
        },
        started: std::time::SystemTime::now(),
    };
    let service = Arc::new(Service::new(
        ctx.clone(),
        token,
        options.max_module_bytes,
        fleet.clone(),
        device,
    ));
    let mut listeners = vec![http::Listener::plain(
        Async::new(listener).map_err(|e| e.to_string())?,
    )];
    let functions = deployed.functions();
    use async_signal::Signal;
    // SIGHUP reloads the certificate; without one it keeps its usual meaning.
    let watched = match &certificate {
        Some(_) => &[Signal::Term, Signal::Int, Signal::Hup][..],
        None => &[Signal::Term, Signal::Int][..],
    };
    let signals = async_signal::Signals::new(watched.iter().copied())
        .map_err(|e| format!("cannot watch signals: {e}"))?;

    println!("wisp: data in {}", options.data.display());
    for f in &functions {
        println!(
            "wisp: {} -> {} (version {})",
            entry_points(f).join(", "),
            f.name(),
            f.version
        );
    }
    if let (Some((listener, tls_addr)), Some(certificate)) = (tls_listener, &certificate) {
        let listener = Async::new(listener).map_err(|e| e.to_string())?;
        listeners.push(http::Listener::tls(listener, certificate.config()));
        println!("wisp: listening on https://{tls_addr}");
    }
    // Tests and scripts wait for this line, so it goes out at once.
    println!("wisp: listening on http://{addr}");
    let _ = std::io::stdout().flush();

    let triggers = Triggers::start(ctx);
    // This thread and `workers - 1` more run the executor: each serves connections and runs
    // the invocations of their requests itself.
    let (stop_threads, threads_stopped) = smol::channel::bounded::<()>(1);
    let threads: Vec<_> = (1..options.workers.max(1))
        .map(|i| {
            let (ex, stopped) = (ex.clone(), threads_stopped.clone());
            std::thread::Builder::new()
                .name(format!("wisp-{i}"))
                // wasmi's executor keeps deep native frames, deeper still in debug builds; the
                // main thread has as much.
                .stack_size(WORKER_STACK)
                .spawn(move || smol::block_on(run_tasks(&ex, stopped.recv())))
                .expect("spawn a worker thread")
        })
        .collect();
    let shutdown = async move {
        let mut signals = signals;
        while let Some(Ok(signal)) = signals.next().await {
            if let (Signal::Hup, Some(certificate)) = (signal, &certificate) {
                reload(certificate);
                continue;
            }
            eprintln!("wisp: {signal:?} received; finishing in-flight requests");
            break;
        }
    };
    let served = smol::block_on(run_tasks(
        &ex,
        http::serve(
            ex.clone(),
            listeners,
            options.http.clone(),
            service.clone(),
            service.http_stats(),
            shutdown,
        ),
    ));
    // No new deliveries or ticks; what was acknowledged is made durable. Deliveries still
    // running are abandoned, and delivered again at the next start.
    drop(triggers);
    if let Some(fleet) = &fleet {
        fleet.stop();
    }
    drop(stop_threads);
    for thread in threads {
        let _ = thread.join();
    }
    if let Err(e) = backend.sync().wait() {
        eprintln!("wisp: warning: cannot make the store durable: {e}");
    }
    served.map_err(|e| e.to_string())?;
    eprintln!("wisp: stopped");
    Ok(())
}

/// Reads the certificate and key again (`SIGHUP`): new connections get the new pair; a pair
/// that does not load leaves the old one serving.
fn reload(certificate: &Certificate) {
    match certificate.reload() {
        Ok(fingerprint) => eprintln!(
            "wisp: SIGHUP: serving the TLS certificate in {}, SHA256 fingerprint {fingerprint}",
            certificate.path().display()
        ),
        Err(why) => eprintln!(
            "wisp: SIGHUP: still serving the TLS certificate with SHA256 fingerprint {}: {why}",
            certificate.fingerprint()
        ),
    }
}

/// What invokes a function: its routes, topics, timers and watches, for the start-up listing.
fn entry_points(f: &Function) -> Vec<String> {
    let c = &f.config;
    let mut points = c.routes.clone();
    points.extend(c.topics.iter().map(|s| format!("topic {}", s.topic)));
    points.extend(c.timers.iter().map(|t| format!("timer {t}")));
    points.extend(
        c.watch
            .iter()
            .map(|w| format!("watch {}:{}", w.store, w.prefix)),
    );
    points
}

/// How long a thread runs tasks before it looks for I/O again, at most.
const IO_CHECK: Duration = Duration::from_millis(1);

/// Runs `ex`'s tasks on this thread until `main` completes. `Executor::run` looks for new I/O
/// (connections, requests) only after every 200 tasks, or when it has nothing to run: 200
/// slices of a CPU-bound function are 20 ms on a desktop core and more on a Pi, and a short
/// request arriving meanwhile would wait that long. This loop looks after at most 1 ms of tasks.
async fn run_tasks<T>(ex: &Executor<'static>, main: impl std::future::Future<Output = T>) -> T {
    let tasks = async {
        loop {
            let until = Instant::now() + IO_CHECK;
            let mut ran = false;
            while ex.try_tick() {
                ran = true;
                if Instant::now() >= until {
                    break;
                }
            }
            if ran {
                // Back to `block_on`, which looks for I/O without waiting, then goes on.
                smol::future::yield_now().await;
            } else {
                // Nothing to run: wait for a task, and for I/O, in `block_on`.
                ex.tick().await;
            }
        }
    };
    main.or(tasks).await
}
