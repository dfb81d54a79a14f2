//! The dispatcher of one durable queue: it delivers the entries, oldest first, each as an
//! invocation of the queue's function, at most `concurrency` at once, and settles each one:
//! acknowledged with the invocation's own commit when it succeeds, tried again after a backoff
//! that doubles when it fails, moved to the dead letters after `max_attempts`.
//!
//! The dispatcher claims entries from its backend ([`Queues::claim`]): those of the queue's
//! first `concurrency` entries (its window) that are due and not yet being delivered; an
//! entry waiting out its backoff keeps its place. With a concurrency of 1 the queue is
//! therefore delivered strictly in order: a failing message holds back the ones behind it
//! until it succeeds or is buried. On a backend a fleet shares, the window is the fleet's:
//! `concurrency` deliveries at once across every device, so order holds there too; while a
//! delivery runs, the dispatcher keeps its claim alive ([`Queues::touch`]), and entries held
//! by a device that went silent are claimed by another once the backend's visibility timeout
//! has passed.
//!
//! [`Queues::claim`]: crate::store::Queues::claim
//! [`Queues::touch`]: crate::store::Queues::touch

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smol::Timer;
use smol::future::FutureExt as _;

use super::{Context, Settings, events, lock};
use crate::config::MAX_BACKOFF_MS;
use crate::deployed::Function;
use crate::http::Body as HttpBody;
use crate::invoke::{Invoked, Output};
use crate::metrics::QueueStats;
use crate::store::queues::{CallResult, Claim, Entry, Finished, QueueKey, QueueOp, Source};
use crate::store::{KvError, unix_ms};

/// How long a delivery that found the pool full waits before it is tried again. It is not
/// counted as an attempt: nothing ran.
const BUSY_WAIT: Duration = Duration::from_millis(50);
/// How long the dispatcher waits after the backend failed to give it entries.
const READ_FAILED_WAIT: Duration = Duration::from_secs(1);

/// What a queue keeps across restarts of its dispatcher.
#[derive(Default)]
pub struct QueueState {
    pub stats: QueueStats,
    /// The entries being delivered now, by sequence number.
    in_flight: Mutex<HashSet<u64>>,
    /// Fires when a delivery ends.
    done: event_listener::Event,
}

/// Delivers `queue` until the task is dropped.
pub(super) async fn dispatch(ctx: Arc<Context>, queue: QueueKey, settings: Settings) {
    let signal = ctx.backend.signal(&queue);
    let state = ctx.queue_state(&queue);
    // Whether the last claim failed: a backend that is away is said once, not every second.
    let mut failing = false;
    loop {
        // Listening first: a push or a finished delivery between the claim and the wait
        // still wakes this loop.
        let pushed = signal.listen();
        let finished = state.done.listen();
        let held: Vec<u64> = lock(&state.in_flight).iter().copied().collect();
        let want = (settings.concurrency as usize).saturating_sub(held.len());
        let mut wake_at = None;
        if want > 0 {
            let claim = Claim {
                want,
                window: settings.concurrency as usize,
                held,
            };
            let claimed = match ctx.backend.claim(&queue, claim).get().await {
                Ok(claimed) => claimed,
                Err(e) => {
                    if !failing || !matches!(e, KvError::Unavailable(_)) {
                        eprintln!("wisp: warning: cannot read the queue {queue}: {e}");
                    }
                    failing = true;
                    Timer::after(READ_FAILED_WAIT).await;
                    continue;
                }
            };
            if std::mem::take(&mut failing) {
                eprintln!("wisp: the queue {queue} is delivered again");
            }
            wake_at = claimed.wake_at;
            for entry in claimed.entries {
                if !lock(&state.in_flight).insert(entry.seq) {
                    continue;
                }
                state.stats.in_flight.fetch_add(1, Relaxed);
                let delivery = deliver(ctx.clone(), queue.clone(), settings, entry, state.clone());
                ctx.ex.spawn(delivery).detach();
            }
        }
        let due = async {
            match wake_at {
                Some(at) => {
                    let wait = Duration::from_millis(at.saturating_sub(unix_ms()));
                    Timer::at(Instant::now() + wait).await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        pushed.or(finished).or(due).await;
    }
}

/// Delivers one entry and settles it; the entry is in `state`'s in-flight set until then.
async fn deliver(
    ctx: Arc<Context>,
    queue: QueueKey,
    settings: Settings,
    entry: Entry,
    state: Arc<QueueState>,
) {
    let seq = entry.seq;
    let delivery = deliver_once(&ctx, &queue, settings, entry, &state.stats);
    let busy = match ctx.backend.visibility() {
        // Keeps the claim alive while the function runs, however long it takes.
        Some(visibility) => {
            let keep_alive = async {
                loop {
                    Timer::after(visibility / 3).await;
                    if let Err(e) = ctx.backend.touch(&queue, &[seq]).get().await {
                        eprintln!("wisp: warning: cannot keep a delivery of {queue} claimed: {e}");
                    }
                }
            };
            delivery.or(keep_alive).await
        }
        None => delivery.await,
    };
    if busy {
        Timer::after(BUSY_WAIT).await;
    }
    lock(&state.in_flight).remove(&seq);
    state.stats.in_flight.fetch_sub(1, Relaxed);
    state.done.notify(usize::MAX);
}

/// Returns true if nothing ran: the pool was full, or the function is gone.
async fn deliver_once(
    ctx: &Context,
    queue: &QueueKey,
    settings: Settings,
    entry: Entry,
    stats: &QueueStats,
) -> bool {
    // The serving version: a redeploy takes over the queue from its next delivery. A function
    // that is gone has had its queues dropped, and its dispatcher is about to stop: wait, as
    // for a full pool, rather than spin until it does.
    let Some(function) = ctx.deployed.get(&queue.function) else {
        return true;
    };
    let delivery = Delivery {
        queue,
        settings,
        entry: &entry,
        attempt: entry.attempts + 1,
        call: queue.source == Source::Async,
        function: &function,
        stats,
    };
    let invocation = events::delivery(&function, &queue.source, &entry);
    let output = if delivery.call {
        Output::Response
    } else {
        Output::Event
    };
    // Logged and counted before its settlement is committed: whoever sees the queue change
    // sees the log line and the counts that go with it.
    let settle = Box::new(|invoked: &Invoked| {
        delivery.record(invoked);
        delivery.ops(invoked)
    });
    if delivery.call {
        lock(&ctx.running_calls).insert(entry.id.clone());
    }
    let invoked = ctx
        .invoker
        .invoke(&function, invocation, output, Some(settle))
        .await;
    if queue.source == Source::Async {
        lock(&ctx.running_calls).remove(&entry.id);
    }
    invoked.is_err()
}

/// One delivery of one entry, and how it settles.
struct Delivery<'a> {
    queue: &'a QueueKey,
    settings: Settings,
    entry: &'a Entry,
    /// 1 for the first delivery.
    attempt: u32,
    /// An asynchronous call: its outcome is its result, not a reason to retry.
    call: bool,
    function: &'a Function,
    stats: &'a QueueStats,
}

impl Delivery<'_> {
    fn last(&self) -> bool {
        self.attempt >= self.settings.max_attempts
    }

    /// The queue ops that settle the delivery, given how the invocation ended.
    fn ops(&self, invoked: &Invoked) -> Vec<QueueOp> {
        let (queue, seq) = (self.queue.clone(), self.entry.seq);
        let ack = QueueOp::Ack {
            queue: queue.clone(),
            seq,
        };
        match (&invoked.failure, self.call) {
            (None, true) => vec![finished(self.entry, &queue, invoked), ack],
            (Some(_), true) if self.last() => vec![finished(self.entry, &queue, invoked), ack],
            (None, false) => vec![ack],
            (Some(why), false) if self.last() => vec![QueueOp::Bury {
                queue,
                seq,
                attempts: self.attempt,
                error: why.clone(),
            }],
            (Some(_), _) => vec![QueueOp::Retry {
                queue,
                seq,
                attempts: self.attempt,
                not_before: unix_ms() + backoff(self.settings.backoff_ms, self.attempt),
            }],
        }
    }

    /// Logs the delivery in the function's log, and counts it.
    fn record(&self, invoked: &Invoked) {
        let (name, attempt) = (self.function.name(), self.attempt);
        let what = match &self.queue.source {
            Source::Async => "an async call".to_string(),
            source => format!("{source} message {}", self.entry.id),
        };
        let log = &self.function.stats.log;
        let line = match &invoked.failure {
            None => {
                let latency = unix_ms().saturating_sub(self.entry.pushed_at);
                self.stats.delivered_after(Duration::from_millis(latency));
                let line = format!("wisp: delivered {what} (attempt {attempt})");
                return log.note(name, &line);
            }
            Some(why) if self.last() && self.call => {
                format!("wisp: {what} failed ({why}); that is its result")
            }
            Some(why) if self.last() => {
                self.stats.dead_lettered.fetch_add(1, Relaxed);
                format!("wisp: {what} failed {attempt} times ({why}); moved to dead letters")
            }
            Some(why) => {
                self.stats.retried.fetch_add(1, Relaxed);
                let wait = backoff(self.settings.backoff_ms, attempt);
                format!("wisp: {what} attempt {attempt} failed ({why}); retry in {wait} ms")
            }
        };
        log.push(name, &line);
    }
}

/// The wait after the `attempt`th failure: `first`, doubled for each further one, at most a
/// day.
fn backoff(first: u64, attempt: u32) -> u64 {
    let doublings = attempt.saturating_sub(1).min(40);
    first.saturating_mul(1 << doublings).min(MAX_BACKOFF_MS)
}

/// The op that records an asynchronous call's response as its result.
fn finished(entry: &Entry, queue: &QueueKey, invoked: &Invoked) -> QueueOp {
    let response = &invoked.response;
    let body = match &response.body {
        HttpBody::Bytes(bytes) => bytes.clone(),
        HttpBody::Stream(_) => Vec::new(),
    };
    QueueOp::SetResult {
        id: entry.id.clone(),
        result: CallResult {
            function: queue.function.clone(),
            accepted_at: entry.pushed_at,
            done: Some(Finished {
                at: unix_ms(),
                status: response.status,
                headers: response.headers.clone(),
                body,
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_doubles_up_to_a_day() {
        assert_eq!(backoff(1000, 1), 1000);
        assert_eq!(backoff(1000, 2), 2000);
        assert_eq!(backoff(1000, 4), 8000);
        assert_eq!(backoff(0, 9), 0);
        assert_eq!(backoff(1000, 99), 86_400_000);
    }
}
