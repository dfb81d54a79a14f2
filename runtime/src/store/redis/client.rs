//! The client thread: the one connection to Redis, and the pipelines it sends.
//!
//! Callers hand the thread requests over a bounded channel. The thread takes every request
//! waiting (up to [`PIPELINE_BYTES`] of commands), writes them to Redis in one go, reads the
//! replies in order and answers each request; what arrives meanwhile goes into the next
//! pipeline. A request without a command (sync) is answered in its turn, after every request
//! before it.
//!
//! The connection is down from the moment a read or write fails or times out until a new one
//! is made and has loaded the scripts. Every request not answered by Redis is then answered
//! [`KvError::Unavailable`], and so is every request made while it is down, at once, on the
//! caller's thread: nothing is queued for later. The thread tries again after 100 ms, then
//! after twice as long each time, up to 5 s. While connected and idle, it sends a `PING` every
//! second, so that a Redis that went away (or came back: the old connection is dead) is noticed
//! before a request finds out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redis::{Cmd, Connection, ConnectionInfo, RedisError, ServerErrorKind, Value};

use super::scripts;
use crate::store::{Answer, KvError, Pending};

/// Requests waiting for the thread, at most; past that many, an operation fails at once with
/// `Unavailable` (Redis is not keeping up, and callers must not block).
const WAITING: usize = 1024;
/// Bytes of commands one pipeline carries, about; the rest go in the next.
const PIPELINE_BYTES: usize = 4 << 20;
/// How long making a connection (TCP, `AUTH`, `SELECT`) may take.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one read or write on the connection may block.
const IO_TIMEOUT: Duration = Duration::from_secs(3);
/// The wait before the first attempt to connect again, doubled after each failure up to
/// [`LAST_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);
/// How long the connection may be idle before a `PING` checks it.
const IDLE_PING: Duration = Duration::from_secs(1);

/// A request for the thread: the command to send, and how to answer its reply.
trait Request: Send {
    /// `None`: no command, answered in its turn (sync).
    fn command(&self) -> Option<&Cmd>;
    fn answer(self: Box<Self>, reply: Result<Value, KvError>);
}

struct Call<R, F> {
    command: Option<Cmd>,
    parse: F,
    answer: Answer<R>,
}

impl<R, F> Request for Call<R, F>
where
    R: Send,
    F: FnOnce(Value) -> Result<R, KvError> + Send,
{
    fn command(&self) -> Option<&Cmd> {
        self.command.as_ref()
    }

    fn answer(self: Box<Self>, reply: Result<Value, KvError>) {
        let Call { parse, answer, .. } = *self;
        answer.give(reply.and_then(parse));
    }
}

/// The caller's side: the channel to the thread, and whether it is connected.
pub(super) struct Client {
    // Dropped first: the thread sees the channel close and stops.
    requests: Option<SyncSender<Box<dyn Request>>>,
    link: Arc<Link>,
    thread: Option<JoinHandle<()>>,
}

/// Whether the thread has a connection, and why not when it has none.
struct Link {
    /// Redis's address, `HOST:PORT`, for the messages.
    address: String,
    up: AtomicBool,
    why: Mutex<String>,
}

impl Link {
    fn down(&self, e: &RedisError) {
        let why = if e.is_timeout() {
            format!(
                "{}: no answer within {} s",
                self.address,
                IO_TIMEOUT.as_secs()
            )
        } else {
            format!("{}: {e}", self.address)
        };
        *self.why.lock().unwrap_or_else(|e| e.into_inner()) = why;
        self.up.store(false, Ordering::SeqCst);
    }

    fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    fn unavailable(&self) -> KvError {
        KvError::Unavailable(self.why.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

impl Client {
    /// Connects to `info` on the caller's thread, then starts the client thread with the
    /// connection. A Redis that cannot be reached now (nobody answers, the network is down,
    /// it is loading its data) is no failure: the client starts disconnected, every request
    /// is answered [`KvError::Unavailable`] until the thread has connected, and the thread
    /// tries as it does after losing a connection. One that refuses the client (a wrong
    /// password, say) fails here.
    pub(super) fn connect(info: ConnectionInfo) -> Result<Client, RedisError> {
        let (con, away) = match open(&info) {
            Ok(con) => (Some(con), None),
            Err(e) if transient(&e) => (None, Some(e)),
            Err(e) => return Err(e),
        };
        let link = Arc::new(Link {
            address: info.addr().to_string(),
            up: AtomicBool::new(true),
            why: Mutex::default(),
        });
        if let Some(e) = away {
            link.down(&e);
        }
        let (requests, receiver) = mpsc::sync_channel(WAITING);
        let thread = std::thread::Builder::new()
            .name("wisp-redis".into())
            .spawn({
                let link = link.clone();
                move || run(con, &info, &receiver, &link)
            })
            .expect("spawn the Redis client thread");
        Ok(Client {
            requests: Some(requests),
            link,
            thread: Some(thread),
        })
    }

    /// Sends `command` (`None`: nothing, answered in turn) and answers with `parse` of its
    /// reply.
    pub(super) fn ask<R: Send + 'static>(
        &self,
        command: Option<Cmd>,
        parse: impl FnOnce(Value) -> Result<R, KvError> + Send + 'static,
    ) -> Pending<R> {
        if !self.link.up.load(Ordering::SeqCst) {
            return Pending::ready(Err(self.link.unavailable()));
        }
        let Some(requests) = &self.requests else {
            unreachable!("the channel lives as long as the client");
        };
        let (answer, pending) = Pending::later();
        let call = Call {
            command,
            parse,
            answer,
        };
        match requests.try_send(Box::new(call)) {
            Ok(()) => pending,
            Err(TrySendError::Full(_)) => Pending::ready(Err(KvError::Unavailable(format!(
                "{WAITING} requests are waiting for Redis"
            )))),
            Err(TrySendError::Disconnected(_)) => Pending::ready(Err(KvError::Failed(
                "the Redis client thread stopped".into(),
            ))),
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Whether `e` says that Redis cannot be reached now, rather than that it refuses this client.
pub(super) fn transient(e: &RedisError) -> bool {
    use ServerErrorKind::{BusyLoading, ClusterDown, MasterDown, TryAgain};
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || matches!(
            e.kind(),
            redis::ErrorKind::Server(BusyLoading | TryAgain | MasterDown | ClusterDown)
        )
}

/// A new connection, with its timeouts set and the scripts loaded.
fn open(info: &ConnectionInfo) -> Result<Connection, RedisError> {
    let client = redis::Client::open(info.clone())?;
    let mut con = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
    con.set_read_timeout(Some(IO_TIMEOUT))?;
    con.set_write_timeout(Some(IO_TIMEOUT))?;
    scripts::load(&mut con)?;
    Ok(con)
}

/// The thread: pipelines while connected; while not, answers what comes `Unavailable` and
/// connects again with backoff. It stops when the client is dropped.
fn run(
    mut con: Option<Connection>,
    info: &ConnectionInfo,
    requests: &Receiver<Box<dyn Request>>,
    link: &Link,
) {
    let mut retry = FIRST_RETRY;
    // Whether the last attempt was refused (not merely unanswered): said once.
    let mut refused = false;
    loop {
        if let Some(c) = con.as_mut() {
            let healthy = match requests.recv_timeout(IDLE_PING) {
                Ok(first) => pipeline(c, first, requests, link),
                Err(RecvTimeoutError::Timeout) => match redis::cmd("PING").query::<()>(c) {
                    Ok(()) => true,
                    Err(e) => {
                        link.down(&e);
                        false
                    }
                },
                Err(RecvTimeoutError::Disconnected) => return,
            };
            if !healthy {
                con = None;
            }
            continue;
        }
        // Down: whatever slipped in before callers saw it is answered at once.
        let deadline = Instant::now() + retry;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match requests.recv_timeout(wait) {
                Ok(request) => request.answer(Err(link.unavailable())),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        match open(info) {
            Ok(c) => {
                con = Some(c);
                retry = FIRST_RETRY;
                refused = false;
                link.up();
            }
            Err(e) => {
                if !transient(&e) && !std::mem::replace(&mut refused, true) {
                    eprintln!(
                        "wisp: warning: Redis at {} refuses this device: {e}",
                        link.address
                    );
                }
                link.down(&e);
                retry = (retry * 2).min(LAST_RETRY);
            }
        }
    }
}

/// Sends `first` and every request waiting behind it as one pipeline and answers them all.
/// False if the connection failed (then `link` is down, and the requests Redis did not answer
/// were answered `Unavailable`).
fn pipeline(
    con: &mut Connection,
    first: Box<dyn Request>,
    requests: &Receiver<Box<dyn Request>>,
    link: &Link,
) -> bool {
    let mut batch = vec![first];
    let mut packed = Vec::new();
    pack(batch[0].as_ref(), &mut packed);
    while packed.len() < PIPELINE_BYTES {
        let Ok(request) = requests.try_recv() else {
            break;
        };
        pack(request.as_ref(), &mut packed);
        batch.push(request);
    }
    let sent: Vec<usize> = (0..batch.len())
        .filter(|&i| batch[i].command().is_some())
        .collect();
    let (replies, mut failure) = exchange(con, &packed, sent.len());
    let mut answers: Vec<Option<Result<Value, KvError>>> = Vec::with_capacity(batch.len());
    answers.resize_with(batch.len(), || None);
    let mut forgotten = Vec::new();
    for (&i, value) in sent.iter().zip(replies) {
        match value {
            Value::ServerError(e) if e.kind() == Some(ServerErrorKind::NoScript) => {
                forgotten.push(i);
            }
            value => answers[i] = Some(reply(value)),
        }
    }
    // Redis forgot the scripts (and ran none of these): load them and send these again.
    if failure.is_none() && !forgotten.is_empty() {
        packed.clear();
        for &i in &forgotten {
            pack(batch[i].as_ref(), &mut packed);
        }
        let (replies, again) = match scripts::load(con) {
            Ok(()) => exchange(con, &packed, forgotten.len()),
            Err(e) => (Vec::new(), Some(e)),
        };
        failure = again;
        for (&i, value) in forgotten.iter().zip(replies) {
            answers[i] = Some(reply(value));
        }
    }
    if let Some(e) = &failure {
        // Down before anyone is answered: a caller that tries again at once fails at once.
        link.down(e);
    }
    for (request, answer) in batch.into_iter().zip(answers) {
        let answer = match (answer, &failure) {
            (Some(answer), _) => answer,
            (None, Some(_)) => Err(link.unavailable()),
            (None, None) => Ok(Value::Nil),
        };
        request.answer(answer);
    }
    failure.is_none()
}

fn pack(request: &dyn Request, packed: &mut Vec<u8>) {
    if let Some(command) = request.command() {
        command.write_packed_command(packed);
    }
}

/// Writes `packed` (`count` commands) and reads their replies: all of them, or those before
/// the connection failed, and the failure. Reading stops at the first failure, so that a
/// Redis that stopped answering costs one timeout, not one per command.
fn exchange(con: &mut Connection, packed: &[u8], count: usize) -> (Vec<Value>, Option<RedisError>) {
    let mut replies = Vec::with_capacity(count);
    if count == 0 {
        return (replies, None);
    }
    if let Err(e) = con.send_packed_command(packed) {
        return (replies, Some(e));
    }
    while replies.len() < count {
        match con.recv_response() {
            Ok(value) => replies.push(value),
            Err(e) => return (replies, Some(e)),
        }
    }
    (replies, None)
}

/// A reply as an answer: an error reply is the store's failure, or its unavailability when
/// Redis says to try again later (loading its data after a restart, a failover).
fn reply(value: Value) -> Result<Value, KvError> {
    let Value::ServerError(e) = value else {
        return Ok(value);
    };
    let why = match e.details() {
        Some(details) => format!("{} {details}", e.code()),
        None => e.code().to_string(),
    };
    use ServerErrorKind::{BusyLoading, ClusterDown, MasterDown, TryAgain};
    // A script's own refusal: a queue (a watcher's, a subscriber's) is at its depth cap, and
    // the script changed nothing.
    if e.code() == "QUEUE_FULL" {
        return Err(KvError::QueueFull);
    }
    match e.kind() {
        Some(BusyLoading | TryAgain | MasterDown | ClusterDown) => Err(KvError::Unavailable(why)),
        _ => Err(KvError::Failed(format!("Redis answered {why}"))),
    }
}
