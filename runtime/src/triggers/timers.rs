//! Timers: a task per timer sleeps until its next tick and invokes the function.
//!
//! A tick that comes while the previous run is still going is skipped and counted, never
//! queued: a slow function runs at most once at a time and never piles up. Each run records
//! its tick, so that after downtime a timer that missed ticks runs once at start, for the
//! latest tick it missed (at most one catch-up run, however long the device was off); a timer
//! that never ran has nothing to catch up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use smol::Timer;

use super::schedule::Schedule;
use super::{Context, events};
use crate::invoke::Output;
use crate::logs::rfc3339;
use crate::metrics::TimerStats;
use crate::store::unix_ms;

/// Runs the timer `schedule` of `function` (known as `key`) until the task is dropped.
pub(super) async fn run(
    ctx: Arc<Context>,
    key: String,
    function: String,
    schedule: String,
    stats: Arc<TimerStats>,
) {
    let Ok(parsed) = Schedule::parse(&schedule) else {
        // Checked at deploy; a stored configuration that no longer parses serves no timer.
        return;
    };
    let timer = Arc::new(TimerRun {
        ctx,
        key,
        function,
        schedule,
        stats,
        running: AtomicBool::new(false),
    });
    let now = unix_ms();
    let last_run = {
        let (backend, key) = (timer.ctx.backend.clone(), timer.key.clone());
        smol::unblock(move || backend.timer_tick(&key)).await
    };
    if let (Ok(Some(last_run)), Some(missed)) = (last_run, parsed.last_at_or_before(now))
        && missed > last_run
    {
        timer.fire(missed);
    }
    let mut after = now;
    while let Some(tick) = parsed.next_after(after) {
        // The wall clock may move while we sleep (a Pi without a real-time clock sets it from
        // the network): sleep again until it has reached the tick.
        while unix_ms() < tick {
            let wait = Duration::from_millis(tick - unix_ms());
            Timer::at(Instant::now() + wait).await;
        }
        after = tick;
        if timer.running.load(Relaxed) {
            timer.stats.skipped.fetch_add(1, Relaxed);
            timer.log(&format!(
                "wisp: timer `{}` skipped the tick of {}: its previous run has not finished",
                timer.schedule,
                rfc3339(tick)
            ));
            continue;
        }
        timer.fire(tick);
    }
}

struct TimerRun {
    ctx: Arc<Context>,
    key: String,
    function: String,
    schedule: String,
    stats: Arc<TimerStats>,
    running: AtomicBool,
}

impl TimerRun {
    fn log(&self, line: &str) {
        if let Some(f) = self.ctx.deployed.get(&self.function) {
            f.stats.log.push(&self.function, line);
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
        let Some(function) = self.ctx.deployed.get(&self.function) else {
            return;
        };
        // Recorded when the run starts, not when it ends: a run that crashes the device is
        // not run again at the next start. Made durable by the next flush.
        let (backend, key) = (self.ctx.backend.clone(), self.key.clone());
        if let Err(e) = smol::unblock(move || backend.set_timer_tick(&key, tick)).await {
            self.log(&format!(
                "wisp: timer `{}`: cannot record its tick: {e}",
                self.schedule
            ));
        }
        let invocation = events::tick(&function, &self.schedule, tick);
        let invoked = self
            .ctx
            .invoker
            .invoke(&function, invocation, Output::Event, None)
            .await;
        match invoked {
            Ok(_) => {
                self.stats.runs.fetch_add(1, Relaxed);
            }
            Err(_) => {
                self.stats.skipped.fetch_add(1, Relaxed);
                self.log(&format!(
                    "wisp: timer `{}` skipped the tick of {}: the server is busy",
                    self.schedule,
                    rfc3339(tick)
                ));
            }
        }
    }
}
