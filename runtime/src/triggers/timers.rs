//! Timers: a task per timer sleeps until its next tick and invokes the function.
//!
//! A tick that comes while the previous run is still going is skipped and counted, never
//! queued: a slow function runs at most once at a time and never piles up. Each run records
//! its tick, so that after downtime a timer that missed ticks runs once at start, for the
//! latest tick it missed (at most one catch-up run, however long the device was off); a timer
//! that never ran has nothing to catch up.
//!
//! A tick is claimed from the backend before it runs ([`Queues::claim_tick`]). On a device
//! alone that only records it, when the run starts (a run that crashed the device is not run
//! again). In a fleet, a timer runs once per tick across the devices (unless its scope is
//! `device`): every device wakes for the tick, one claims it with a lease in Redis, and the
//! others leave it; the claimer renews the lease while the run goes on and records the tick
//! when it ends. A claimer that dies mid-run stops renewing, and once its lease (the
//! visibility timeout) runs out, the next device to look runs the latest tick instead: ticks
//! in between are skipped, as when a run overruns.
//!
//! [`Queues::claim_tick`]: crate::store::Queues::claim_tick

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use smol::Timer;
use smol::future::FutureExt as _;

use super::schedule::Schedule;
use super::{Context, events};
use crate::invoke::Output;
use crate::logs::rfc3339;
use crate::metrics::TimerStats;
use crate::store::queues::Tick;
use crate::store::unix_ms;

/// One timer of one function: what its task needs.
pub(super) struct TimerSpec {
    /// `function schedule`: the name its ticks are recorded under.
    pub key: String,
    pub function: String,
    pub schedule: String,
    /// Once per tick across the fleet (rather than on every device).
    pub fleet: bool,
}

/// Runs a timer until the task is dropped.
pub(super) async fn run(ctx: Arc<Context>, spec: TimerSpec, stats: Arc<TimerStats>) {
    let Ok(parsed) = Schedule::parse(&spec.schedule) else {
        // Checked at deploy; a stored configuration that no longer parses serves no timer.
        return;
    };
    let timer = Arc::new(TimerRun {
        ctx,
        spec,
        stats,
        running: AtomicBool::new(false),
        paused: AtomicBool::new(false),
    });
    let now = unix_ms();
    let last_run = {
        let (backend, key) = (timer.ctx.backend.clone(), timer.spec.key.clone());
        let fleet = timer.spec.fleet;
        smol::unblock(move || backend.timer_tick(&key, fleet)).await
    };
    // When to look again at a tick another device holds, in case it went silent.
    let mut recheck = None;
    if let (Ok(Some(last_run)), Some(missed)) = (last_run, parsed.last_at_or_before(now))
        && missed > last_run
    {
        recheck = timer.claim(missed).await;
    }
    let mut after = now;
    while let Some(tick) = parsed.next_after(after) {
        let wake = recheck.map_or(tick, |at: u64| at.min(tick));
        // The wall clock may move while we sleep (a Pi without a real-time clock sets it from
        // the network): sleep again until it has reached the time.
        while unix_ms() < wake {
            let wait = Duration::from_millis(wake - unix_ms());
            Timer::at(Instant::now() + wait).await;
        }
        if wake < tick {
            // The latest tick, if nobody ran it: its claimer may have died.
            recheck = None;
            if let Some(latest) = parsed.last_at_or_before(unix_ms())
                && !timer.running.load(Relaxed)
            {
                recheck = timer.claim(latest).await;
            }
            continue;
        }
        after = tick;
        if timer.running.load(Relaxed) {
            timer.skipped(tick, "its previous run has not finished");
            continue;
        }
        recheck = timer.claim(tick).await;
    }
}

struct TimerRun {
    ctx: Arc<Context>,
    spec: TimerSpec,
    stats: Arc<TimerStats>,
    running: AtomicBool,
    /// The backend could not be asked for the last tick: said once, not at every tick.
    paused: AtomicBool,
}

impl TimerRun {
    fn log(&self, line: &str) {
        if let Some(f) = self.ctx.deployed.get(&self.spec.function) {
            f.stats.log.push(&self.spec.function, line);
        }
    }

    fn skipped(&self, tick: u64, why: &str) {
        self.stats.skipped.fetch_add(1, Relaxed);
        self.log(&format!(
            "wisp: timer `{}` skipped the tick of {}: {why}",
            self.spec.schedule,
            rfc3339(tick)
        ));
    }

    /// Claims `tick` and runs it if this device got it; returns when to look again if another
    /// device holds the timer.
    async fn claim(self: &Arc<Self>, tick: u64) -> Option<u64> {
        let spec = &self.spec;
        let claimed = self.ctx.backend.claim_tick(&spec.key, tick, spec.fleet);
        let claimed = claimed.get().await;
        if claimed.is_ok() && self.paused.swap(false, Relaxed) {
            self.log(&format!("wisp: timer `{}` runs again", spec.schedule));
        }
        match claimed {
            Ok(Tick::Run) => {
                self.fire(tick);
                None
            }
            Ok(Tick::Done) => None,
            Ok(Tick::Busy { older, retry_at }) => {
                if older {
                    self.skipped(
                        tick,
                        "its previous run, on another device, has not finished",
                    );
                }
                Some(retry_at)
            }
            Err(e) => {
                self.stats.skipped.fetch_add(1, Relaxed);
                if !self.paused.swap(true, Relaxed) {
                    self.log(&format!(
                        "wisp: timer `{}` paused: cannot claim the tick of {}: {e}",
                        spec.schedule,
                        rfc3339(tick)
                    ));
                }
                None
            }
        }
    }

    /// Starts the run for `tick` beside the timer's own task, so the task keeps counting
    /// ticks while it runs.
    fn fire(self: &Arc<Self>, tick: u64) {
        self.running.store(true, Relaxed);
        let timer = self.clone();
        let run = async move {
            timer.run_once(tick).await;
            timer.running.store(false, Relaxed);
        };
        self.ctx.ex.spawn(run).detach();
    }

    async fn run_once(&self, tick: u64) {
        let Some(function) = self.ctx.deployed.get(&self.spec.function) else {
            return;
        };
        let invocation = events::tick(&function, &self.spec.schedule, tick);
        let run = self
            .ctx
            .invoker
            .invoke(&function, invocation, Output::Event, None);
        let backend = &self.ctx.backend;
        let (key, fleet) = (&self.spec.key, self.spec.fleet);
        let invoked = match backend.visibility() {
            // Renews the lease on the tick while the function runs.
            Some(visibility) => {
                let keep_alive = async {
                    loop {
                        Timer::after(visibility / 3).await;
                        let _ = backend.claim_tick(key, tick, fleet).get().await;
                    }
                };
                run.or(keep_alive).await
            }
            None => run.await,
        };
        if let Err(e) = backend.finish_tick(key, tick, fleet).get().await {
            self.log(&format!(
                "wisp: timer `{}`: cannot record the end of the tick of {}: {e}",
                self.spec.schedule,
                rfc3339(tick)
            ));
        }
        match invoked {
            Ok(_) => {
                self.stats.runs.fetch_add(1, Relaxed);
            }
            Err(_) => self.skipped(tick, "the server is busy"),
        }
    }
}
