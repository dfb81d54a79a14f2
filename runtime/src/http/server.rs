//! Accepting connections and running each one: the connection cap, TLS handshakes and
//! graceful shutdown.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::Poll;
use std::time::Duration;

use smol::channel::{self, Receiver, Sender};
use smol::future::{self, FutureExt as _};
use smol::lock::{Semaphore, SemaphoreGuardArc};
use smol::{Async, Executor, Timer};

use super::connection::{Connection, ReadError, Reply};
use super::stream::Stream;
use super::{Handler, Limits, Response};

/// A socket to accept connections on, and whether they speak TLS.
pub struct Listener {
    socket: Async<TcpListener>,
    /// The TLS settings of its connections, read at each handshake: a certificate resolver in
    /// them may change the certificate between handshakes.
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Listener {
    pub fn plain(socket: Async<TcpListener>) -> Listener {
        Listener { socket, tls: None }
    }

    pub fn tls(socket: Async<TcpListener>, config: Arc<rustls::ServerConfig>) -> Listener {
        Listener {
            socket,
            tls: Some(config),
        }
    }
}

/// Counters for metrics. Relaxed atomics: each is read on its own, never against another.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted so far.
    pub connections: AtomicU64,
    /// Connections open now.
    pub open_connections: AtomicU64,
    /// Requests handed to the handler.
    pub requests: AtomicU64,
    /// Requests the front end answered itself with an error (400, 408, 413, 431, 505).
    pub rejected: AtomicU64,
}

/// What every connection task shares.
struct Shared<H> {
    limits: Limits,
    handler: Arc<H>,
    stats: Arc<Stats>,
}

/// What a connection task holds and gives back when it ends, however it ends.
struct Slot {
    _permit: SemaphoreGuardArc,
    _done: Sender<()>,
    stats: Arc<Stats>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.stats.open_connections.fetch_sub(1, Relaxed);
    }
}

/// Serves HTTP/1.1 on `listeners` until `shutdown` completes, spawning one task per connection
/// on `ex` (which must be running). Every listener shares the connection cap and the limits.
///
/// On shutdown it stops accepting, closes idle connections, lets requests in flight finish
/// (their responses say `Connection: close`), and returns once every connection is closed, or
/// after [`Limits::shutdown_grace`], dropping whatever is still open. It returns an error only
/// if the listener itself is unusable; failures of single connections never end it.
pub async fn serve<H: Handler>(
    ex: Arc<Executor<'static>>,
    listeners: Vec<Listener>,
    limits: Limits,
    handler: Arc<H>,
    stats: Arc<Stats>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let grace = limits.shutdown_grace;
    // A cap of 0 would accept nothing, ever.
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let shared = Arc::new(Shared {
        limits,
        handler,
        stats,
    });
    // Nothing is ever sent on these channels: a closed channel is the signal, seen by every
    // receiver at once. Dropping `stop` asks connections to finish; dropping `abort` ends them.
    // `done` closes when the last connection task drops its sender.
    let (stop, stopped) = channel::bounded::<()>(1);
    let (abort, aborted) = channel::bounded::<()>(1);
    let (done, all_done) = channel::bounded::<()>(1);

    let accepting = async {
        let mut turn = 0usize;
        loop {
            turn = turn.wrapping_add(1);
            // The permit is taken before accepting: at the cap, clients wait in the backlog
            // rather than being accepted and then starved.
            let permit = permits.acquire_arc().await;
            let (which, accepted) = accept(&listeners, turn).await;
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => return Err(e),
                Err(e) if is_per_connection(&e) => continue,
                // Most likely out of file descriptors: back off instead of spinning.
                Err(_) => {
                    Timer::after(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(local) = stream.get_ref().local_addr() else {
                continue;
            };
            // Responses go out in one write each; Nagle would only delay them.
            let _ = stream.get_ref().set_nodelay(true);

            shared.stats.connections.fetch_add(1, Relaxed);
            shared.stats.open_connections.fetch_add(1, Relaxed);
            let slot = Slot {
                _permit: permit,
                _done: done.clone(),
                stats: shared.stats.clone(),
            };
            let tls = listeners[which].tls.clone();
            let (shared, stopped, aborted) = (shared.clone(), stopped.clone(), aborted.clone());
            ex.spawn(async move {
                let _slot = slot;
                let aborted = async {
                    let _ = aborted.recv().await;
                };
                let serving = async {
                    let stream = match tls {
                        None => Stream::Plain(stream),
                        Some(config) => {
                            let timeout = shared.limits.handshake_timeout;
                            let handshake = Stream::handshake(stream, config, timeout);
                            let stop = async {
                                let _ = stopped.recv().await;
                                None
                            };
                            match handshake.or(stop).await {
                                Some(stream) => stream,
                                None => return,
                            }
                        }
                    };
                    let conn = Connection::new(stream, peer, local, &shared.limits);
                    run(conn, &shared, stopped).await;
                };
                serving.or(aborted).await;
            })
            .detach();
            // While clients keep coming, `accept` is always ready: let the new connections and
            // the shutdown check have their turn.
            future::yield_now().await;
        }
    };
    // Polled first, so shutdown wins over a backlog of clients.
    let stopping = async {
        shutdown.await;
        Ok(())
    };
    let result = stopping.or(accepting).await;

    // Refuse new clients right away rather than leaving them in the backlog.
    drop(listeners);
    drop((stop, done));
    let finished = async {
        let _ = all_done.recv().await;
    };
    let out_of_time = async {
        Timer::after(grace).await;
    };
    finished.or(out_of_time).await;
    // Tasks still running end at their next poll.
    drop(abort);
    result
}

/// Accepts the next connection on whichever listener has one, and says which. `turn` rotates
/// the listener looked at first, so that a busy one cannot starve another.
async fn accept(
    listeners: &[Listener],
    turn: usize,
) -> (usize, io::Result<(Async<TcpStream>, SocketAddr)>) {
    if let [only] = listeners {
        return (0, only.socket.accept().await);
    }
    let mut accepts: Vec<_> = listeners
        .iter()
        .map(|l| Box::pin(l.socket.accept()))
        .collect();
    future::poll_fn(|cx| {
        let n = accepts.len();
        for i in (0..n).map(|i| (i + turn) % n) {
            if let Poll::Ready(accepted) = accepts[i].as_mut().poll(cx) {
                return Poll::Ready((i, accepted));
            }
        }
        Poll::Pending
    })
    .await
}

/// Errors from `accept` that are about one connection, not the listener.
fn is_per_connection(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    )
}

/// Answers requests on one connection until it closes.
async fn run<H: Handler>(mut conn: Connection, shared: &Shared<H>, stopped: Receiver<()>) {
    let Shared {
        limits,
        handler,
        stats,
    } = shared;
    loop {
        let stop = async {
            let _ = stopped.recv().await;
        };
        let body_limit = |method: &str, path: &str| {
            handler
                .body_limit(method, path)
                .unwrap_or(limits.max_body_bytes)
        };
        let (request, mut reply) = match conn.read_request(stop, body_limit).await {
            Ok(incoming) => (incoming.request, incoming.reply),
            Err(ReadError::Closed) => return,
            Err(ReadError::Reject(status, why)) => {
                stats.rejected.fetch_add(1, Relaxed);
                let response = Response::text(status, format!("{why}\n"));
                // The rest of the request may still be on its way.
                if conn.write_response(response, Reply::CLOSE).await.is_ok() {
                    conn.close(true).await;
                }
                return;
            }
        };
        stats.requests.fetch_add(1, Relaxed);
        // A panicking handler costs its own request, not the thread running other connections.
        let response = match AssertUnwindSafe(handler.handle(request))
            .catch_unwind()
            .await
        {
            Ok(response) => response,
            Err(_) => {
                reply.keep_alive = false;
                Response::text(500, "internal error\n")
            }
        };
        reply.keep_alive &= !stopped.is_closed();
        match conn.write_response(response, reply).await {
            Ok(true) => {}
            Ok(false) => return conn.close(false).await,
            Err(_) => return,
        }
    }
}
