//! Starting and stopping a server: bind, run the front end on a small executor and the wasm
//! on the worker pool, stop gracefully on SIGTERM or SIGINT.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use smol::stream::StreamExt;
use smol::{Async, Executor};

use crate::engine::{Limits, Pool, PoolConfig};
use crate::http::{self, Stats};
use crate::service::{Function, Service};

/// Everything a server is started with.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to listen on. Default `0.0.0.0:8080`.
    pub listen: String,
    pub http: http::Limits,
    pub pool: PoolConfig,
    /// Threads for HTTP I/O. Default 1: parsing is cheap next to running wasm.
    pub io_threads: usize,
    /// The limits of functions that do not set their own.
    pub limits: Limits,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: "0.0.0.0:8080".into(),
            http: http::Limits::default(),
            pool: PoolConfig::default(),
            io_threads: 1,
            limits: Limits::default(),
        }
    }
}

/// Serves `functions` until SIGTERM or SIGINT, then finishes in-flight requests and returns.
pub fn run(options: Options, functions: &[Arc<Function>]) -> Result<(), String> {
    let listener = TcpListener::bind(&options.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
    let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    let listener = Async::new(listener).map_err(|e| e.to_string())?;
    let service = Arc::new(Service::new(Pool::new(options.pool.clone())));
    service.install(functions).map_err(|e| e.to_string())?;
    let signals =
        async_signal::Signals::new([async_signal::Signal::Term, async_signal::Signal::Int])
            .map_err(|e| format!("cannot watch signals: {e}"))?;

    for f in functions {
        println!("wisp: {} -> {}", f.config.routes.join(", "), f.name());
    }
    // Tests and scripts wait for this line, so it goes out at once.
    println!("wisp: listening on http://{addr}");
    let _ = std::io::stdout().flush();

    let ex = Arc::new(Executor::new());
    let (stop_io, io_stopped) = smol::channel::bounded::<()>(1);
    let io_threads: Vec<_> = (1..options.io_threads.max(1))
        .map(|i| {
            let (ex, io_stopped) = (ex.clone(), io_stopped.clone());
            std::thread::Builder::new()
                .name(format!("wisp-io-{i}"))
                .spawn(move || smol::block_on(ex.run(io_stopped.recv())))
                .expect("spawn an I/O thread")
        })
        .collect();
    let stats = Arc::new(Stats::default());
    let shutdown = async move {
        let mut signals = signals;
        if let Some(Ok(signal)) = signals.next().await {
            eprintln!("wisp: {signal:?} received; finishing in-flight requests");
        }
    };
    let served = smol::block_on(ex.run(http::serve(
        ex.clone(),
        listener,
        options.http.clone(),
        service.clone(),
        stats,
        shutdown,
    )));
    drop(stop_io);
    for thread in io_threads {
        let _ = thread.join();
    }
    served.map_err(|e| e.to_string())?;
    eprintln!("wisp: stopped");
    Ok(())
}
