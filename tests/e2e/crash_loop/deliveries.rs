//! The publishes' deliveries after each restart: once the sink's queue is empty, every
//! acknowledged publish has arrived under the id its `202` named, none arrived as two messages,
//! and a message delivered again is counted (delivery is at least once).

use std::thread;
use std::time::{Duration, Instant};

use super::server::Wisp;
use super::{Loop, SINK, TOPIC};

impl Loop {
    /// Waits for the sink's queue to empty, reads the new deliveries, and checks every
    /// acknowledged publish arrived under its id, once as a message.
    pub(super) fn check_deliveries(&mut self, cycle: usize, wisp: &Wisp) {
        let began = Instant::now();
        let duplicates = self.figures.duplicate_deliveries;
        loop {
            let topics = self.ask_json(cycle, wisp, "/_wisp/topics");
            let sink = topics["topics"]
                .as_array()
                .and_then(|t| t.iter().find(|t| t["name"] == TOPIC))
                .and_then(|t| t["subscribers"].as_array())
                .and_then(|s| s.iter().find(|s| s["function"] == SINK))
                .cloned()
                .unwrap_or_else(|| {
                    self.violation(cycle, format!("no subscriber {SINK}: {topics}"))
                });
            if sink["dead_letters"] != 0 {
                let letters = self
                    .ask(cycle, wisp, "GET", "/_wisp/dead-letters", b"")
                    .body;
                self.violation(cycle, format!("messages were buried: {letters}"));
            }
            if sink["depth"] == 0 && sink["in_flight"] == 0 {
                break;
            }
            if began.elapsed() > Duration::from_secs(120) {
                self.violation(cycle, format!("the queue did not empty in 120 s: {sink}"));
            }
            thread::sleep(Duration::from_millis(10));
        }
        self.figures.drains.push(wisp.ready.elapsed());
        let seq = self.sink_value(cycle, wisp, "seq").map_or(0, |s| {
            s.trim()
                .parse::<u64>()
                .unwrap_or_else(|_| self.violation(cycle, format!("sink seq is {s:?}")))
        });
        if seq + 1 < self.next_event {
            self.violation(
                cycle,
                format!(
                    "the sink's seq went back to {seq}: deliveries up to {} were recorded",
                    self.next_event - 1
                ),
            );
        }
        for n in self.next_event..=seq {
            let Some(line) = self.sink_value(cycle, wisp, &format!("event%2F{n:010}")) else {
                // A delivery killed between its two writes: it is delivered again.
                self.figures.delivery_gaps += 1;
                self.gaps.insert(n);
                continue;
            };
            let parsed = line
                .strip_prefix(&format!("trigger=topic topic={TOPIC} id="))
                .and_then(|rest| rest.split_once(" attempt="))
                .and_then(|(id, rest)| {
                    let (attempt, payload) = rest.split_once(" payload=")?;
                    Some((
                        id.to_string(),
                        attempt.parse::<u64>().ok()?,
                        payload.to_string(),
                    ))
                });
            let Some((id, attempt, payload)) = parsed else {
                self.violation(cycle, format!("event/{n} is not a delivery: {line:?}"));
            };
            self.delivery(cycle, n, id, attempt, payload);
        }
        self.next_event = seq + 1;
        let again = self.figures.duplicate_deliveries - duplicates;
        self.figures.most_duplicates_per_kill = self.figures.most_duplicates_per_kill.max(again);
        // The queue is empty: every acknowledged publish has arrived, and what was in doubt
        // has arrived or never will.
        if let Some((payload, id)) = self.awaiting.iter().next() {
            self.violation(
                cycle,
                format!(
                    "acknowledged publish {payload} (message {id}) was not delivered; {} in all",
                    self.awaiting.len()
                ),
            );
        }
        self.never.extend(self.in_doubt.drain());
    }

    fn delivery(&mut self, cycle: usize, n: u64, id: String, attempt: u64, payload: String) {
        self.figures.deliveries += 1;
        self.figures.max_attempt = self.figures.max_attempt.max(attempt);
        if let Some(first) = self.delivered.get(&payload) {
            if *first != id {
                self.violation(
                    cycle,
                    format!(
                        "publish {payload} arrived as two messages, {first} and {id} (event/{n})"
                    ),
                );
            }
            self.figures.duplicate_deliveries += 1;
            return;
        }
        if let Some(acked) = self.awaiting.remove(&payload) {
            if acked != id {
                self.violation(
                    cycle,
                    format!("publish {payload} was acknowledged as {acked}, delivered as {id}"),
                );
            }
        } else if self.in_doubt.remove(&payload) {
            self.figures.publishes_landed += 1;
        } else if self.never.contains(&payload) {
            self.violation(
                cycle,
                format!("publish {payload} arrived after its queue had been empty (event/{n})"),
            );
        } else {
            self.violation(
                cycle,
                format!("event/{n} delivered {payload:?}, which was never published"),
            );
        }
        self.delivered.insert(payload, id);
    }

    /// A value in the sink's store, as the operator reads it.
    pub(super) fn sink_value(&self, cycle: usize, wisp: &Wisp, key: &str) -> Option<String> {
        let path = format!("/_wisp/kv/default/{SINK}/{key}");
        let reply = self.ask(cycle, wisp, "GET", &path, b"");
        match reply.status {
            200 => Some(reply.body),
            404 => None,
            _ => self.violation(cycle, format!("GET {path}: {reply:?}")),
        }
    }
}
