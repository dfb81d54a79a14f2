//! The triggers: each turns its kind of event into an invocation on the one invocation path
//! ([`crate::invoke`]) and its outcome into a response, an acknowledgement, a retry or a dead
//! letter.
//!
//! - [`http`]: a request on a function's route (and `Prefer: respond-async`, which queues it);
//! - [`queue`]: the dispatcher of a durable queue: a topic's subscriber, a key-value watcher, a
//!   function's asynchronous calls;
//! - [`timers`]: intervals and cron schedules.
//!
//! [`Triggers`] keeps a dispatcher running for every queue the deployed functions subscribe to
//! and a task for every timer, and starts and stops them as deploys change what is subscribed
//! (it waits on [`Deployed::changed`]). Beside them it runs two chores: a flush that makes
//! acknowledgements durable within a second (an invocation that wrote or published is durable
//! before it answers; a plain acknowledgement can wait), and the expiry of old call results.

pub mod events;
pub mod http;
pub mod queue;
pub mod schedule;
pub mod timers;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use smol::future::FutureExt as _;
use smol::{Executor, Task, Timer};

use crate::config::{Delivery, TimerScope};
use crate::deployed::Deployed;
use crate::invoke::Invoker;
use crate::metrics::TimerStats;
use crate::store::queues::{QueueKey, Source};
use crate::store::{Backend, unix_ms};
use crate::topics::Topics;

pub use queue::QueueState;

/// How long the result of an asynchronous call is kept once it is done.
pub const RESULT_TTL: Duration = Duration::from_secs(3600);
/// Most results kept; past it, the oldest go first.
pub const MAX_RESULTS: usize = 10_000;
/// Attempts a topic message or a key-value change gets unless configured.
pub const DEFAULT_ATTEMPTS: u32 = 4;
/// Attempts an asynchronous call gets unless configured: a call is not retried by default.
pub const DEFAULT_CALL_ATTEMPTS: u32 = 1;

/// What every trigger works with.
pub struct Context {
    pub deployed: Arc<Deployed>,
    pub invoker: Arc<Invoker>,
    pub backend: Arc<dyn Backend>,
    pub topics: Arc<Topics>,
    pub ex: Arc<Executor<'static>>,
    /// Per queue: its stats and its deliveries in flight, kept across restarts of its
    /// dispatcher so that a redeploy never delivers a message twice at once.
    queues: Mutex<BTreeMap<QueueKey, Arc<QueueState>>>,
    timers: Mutex<BTreeMap<String, Arc<TimerStats>>>,
    /// Asynchronous calls running now, by id.
    pub(crate) running_calls: Mutex<HashSet<String>>,
    /// Fires when a function's queue of asynchronous calls gets its first call: most functions
    /// never get one, so their dispatcher runs only while they have calls.
    calls_waiting: event_listener::Event,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A timer the deployed functions call for: its function, its schedule, and whether it runs
/// once per tick across the fleet.
type WantedTimer = (String, String, bool);

/// How one queue is delivered, its configuration's defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub max_attempts: u32,
    pub backoff_ms: u64,
    pub concurrency: u32,
}

impl Settings {
    fn of(delivery: &Delivery, default_attempts: u32) -> Settings {
        Settings {
            max_attempts: delivery.max_attempts(default_attempts),
            backoff_ms: delivery.backoff_ms(),
            concurrency: delivery.concurrency(),
        }
    }
}

impl Context {
    pub fn new(
        deployed: Arc<Deployed>,
        invoker: Arc<Invoker>,
        backend: Arc<dyn Backend>,
        topics: Arc<Topics>,
        ex: Arc<Executor<'static>>,
    ) -> Arc<Context> {
        Arc::new(Context {
            deployed,
            invoker,
            backend,
            topics,
            ex,
            queues: Mutex::default(),
            timers: Mutex::default(),
            running_calls: Mutex::default(),
            calls_waiting: event_listener::Event::new(),
        })
    }

    /// Says that an asynchronous call was queued, so that its function's dispatcher runs.
    pub fn call_queued(&self) {
        self.calls_waiting.notify(usize::MAX);
    }

    /// The state of `queue`, made on first use.
    pub fn queue_state(&self, queue: &QueueKey) -> Arc<QueueState> {
        lock(&self.queues).entry(queue.clone()).or_default().clone()
    }

    /// Every queue with state, and its state.
    pub fn queue_states(&self) -> Vec<(QueueKey, Arc<QueueState>)> {
        lock(&self.queues)
            .iter()
            .map(|(q, s)| (q.clone(), s.clone()))
            .collect()
    }

    fn timer_stats(&self, key: &str) -> Arc<TimerStats> {
        lock(&self.timers)
            .entry(key.to_string())
            .or_default()
            .clone()
    }

    /// Every timer's stats, by `function schedule`.
    pub fn timer_states(&self) -> Vec<(String, Arc<TimerStats>)> {
        lock(&self.timers)
            .iter()
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect()
    }

    /// Whether the asynchronous call `id` is running now.
    pub fn call_running(&self, id: &str) -> bool {
        lock(&self.running_calls).contains(id)
    }

    /// The queues and timers the deployed functions call for now.
    fn wanted(&self) -> (HashMap<QueueKey, Settings>, HashMap<String, WantedTimer>) {
        let mut queues = HashMap::new();
        let mut timers = HashMap::new();
        for f in self.deployed.functions() {
            let name = f.name();
            let c = &f.config;
            for s in &c.topics {
                let queue = QueueKey::new(name, Source::Topic(s.topic.clone()));
                queues.insert(queue, Settings::of(&s.delivery, DEFAULT_ATTEMPTS));
            }
            for w in &c.watch {
                let source = Source::Kv {
                    store: w.store.clone(),
                    prefix: w.prefix.clone(),
                };
                let settings = Settings::of(&w.delivery(), DEFAULT_ATTEMPTS);
                queues.insert(QueueKey::new(name, source), settings);
            }
            let calls = QueueKey::new(name, Source::Async);
            if !c.routes.is_empty() && self.backend.counts(&calls).pending > 0 {
                let delivery = c.async_calls.clone().unwrap_or_default();
                let settings = Settings::of(&delivery, DEFAULT_CALL_ATTEMPTS);
                queues.insert(calls, settings);
            }
            for timer in &c.timers {
                let key = format!("{name} {}", timer.schedule);
                let fleet = timer.scope == TimerScope::Fleet;
                timers.insert(key, (name.to_string(), timer.schedule.clone(), fleet));
            }
        }
        (queues, timers)
    }
}

/// The running dispatchers and timers. Dropping it stops them all.
pub struct Triggers {
    ctx: Arc<Context>,
    _tasks: Vec<Task<()>>,
}

/// The tasks the reconciler keeps: dropping one stops it.
#[derive(Default)]
struct Running {
    queues: HashMap<QueueKey, (Settings, Task<()>)>,
    /// By key, with whether each runs once across the fleet.
    timers: HashMap<String, (bool, Task<()>)>,
}

impl Triggers {
    /// Starts the triggers of what is deployed now, and keeps them in step with every change.
    pub fn start(ctx: Arc<Context>) -> Triggers {
        let reconciler = ctx.ex.spawn(reconcile(ctx.clone()));
        let flush = ctx.ex.spawn(flush(ctx.backend.clone()));
        let expire = ctx.ex.spawn(expire(ctx.backend.clone()));
        // Not a trigger, but the same kind of housekeeping: each function's recent history.
        let history = ctx.ex.spawn(crate::history::roll(ctx.deployed.clone()));
        Triggers {
            ctx,
            _tasks: vec![reconciler, flush, expire, history],
        }
    }

    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }
}

/// Starts and stops dispatchers and timers so they match what is deployed, after each change
/// (and each asynchronous call queued, here or on another device of the fleet: a function's
/// queue of calls has a dispatcher only while it holds calls).
async fn reconcile(ctx: Arc<Context>) {
    let mut running = Running::default();
    // On a backend a fleet shares, another device may queue a call here.
    let activity = ctx.backend.activity();
    loop {
        let elsewhere = async {
            match &activity {
                Some(activity) => activity.listen().await,
                None => std::future::pending().await,
            }
        };
        let changed = ctx
            .deployed
            .changed()
            .or(ctx.calls_waiting.listen())
            .or(elsewhere);
        let (queues, timers) = ctx.wanted();
        running
            .queues
            .retain(|queue, (settings, _)| queues.get(queue) == Some(settings));
        for (queue, settings) in queues {
            if running.queues.contains_key(&queue) {
                continue;
            }
            let task = ctx
                .ex
                .spawn(queue::dispatch(ctx.clone(), queue.clone(), settings));
            running.queues.insert(queue, (settings, task));
        }
        running
            .timers
            .retain(|key, (fleet, _)| timers.get(key).is_some_and(|t| t.2 == *fleet));
        for (key, (function, schedule, fleet)) in timers {
            if running.timers.contains_key(&key) {
                continue;
            }
            let stats = ctx.timer_stats(&key);
            let spec = timers::TimerSpec {
                key: key.clone(),
                function,
                schedule,
                fleet,
            };
            let task = ctx.ex.spawn(timers::run(ctx.clone(), spec, stats));
            running.timers.insert(key, (fleet, task));
        }
        changed.await;
    }
}

/// Makes the commits of the last second durable: acknowledgements and retries, which nothing
/// waits for. After a crash, what was delivered in the last second may be delivered again.
async fn flush(backend: Arc<dyn Backend>) {
    // Said once while it lasts: a fleet's Redis may be away for a while.
    let mut failing = false;
    loop {
        Timer::after(Duration::from_secs(1)).await;
        match backend.sync().get().await {
            Ok(()) => failing = false,
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    eprintln!("wisp: warning: cannot make the queues durable: {e}");
                }
            }
        }
    }
}

/// Forgets the results of asynchronous calls past their time, every minute.
async fn expire(backend: Arc<dyn Backend>) {
    loop {
        Timer::after(Duration::from_secs(60)).await;
        let backend = backend.clone();
        let before = unix_ms().saturating_sub(RESULT_TTL.as_millis() as u64);
        let expired = smol::unblock(move || backend.expire_results(before, MAX_RESULTS));
        match expired.await {
            // The fleet's Redis is away: the next round expires them.
            Ok(_) | Err(crate::store::KvError::Unavailable(_)) => {}
            Err(e) => eprintln!("wisp: warning: cannot expire call results: {e}"),
        }
    }
}
