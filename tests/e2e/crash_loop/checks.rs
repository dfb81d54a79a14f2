//! The checks after each restart: everything the previous cycle's clients were told is there
//! (the counters, the admin writes and `flip`'s deploys here; the publishes are followed to
//! their deliveries in `deliveries.rs`), and at the end, everything of every cycle once more.

use std::collections::HashSet;

use super::clients::{Client, deploy_tag, payload, write_key, write_value};
use super::server::Wisp;
use super::{Cycle, FLIP, Loop};

impl Loop {
    /// After the restart: everything `last` (the previous cycle) was told is there. Returns
    /// `flip`'s active version and tag.
    pub(super) fn check(&mut self, cycle: usize, wisp: &Wisp, last: Cycle) -> (u64, String) {
        let was = cycle - 1;
        self.check_counters(cycle, wisp, was, &last.incrementers);
        self.check_writes(cycle, wisp, was, &last.writers);
        for (k, publisher) in last.publishers.iter().enumerate() {
            for (i, id) in &publisher.acked {
                self.awaiting.insert(payload(was, k, *i), id.clone());
                self.figures.publishes_acked += 1;
            }
            for i in &publisher.doubt {
                self.in_doubt.insert(payload(was, k, *i));
                self.figures.publishes_doubt += 1;
            }
        }
        self.check_deliveries(cycle, wisp);
        self.check_deploys(cycle, wisp, &last.deployer, last.flip_before)
    }

    fn check_counters(&mut self, cycle: usize, wisp: &Wisp, was: usize, clients: &[Client]) {
        for (k, client) in clients.iter().enumerate() {
            let name = format!("c-{was}-{k}");
            let value = self.ask_json(cycle, wisp, &format!("/api/counter/{name}"))["count"]
                .as_u64()
                .unwrap_or_else(|| self.violation(cycle, format!("counter {name}: no count")));
            let (acked, doubt) = (client.acked.len() as u64, client.doubt.len() as u64);
            if value < acked {
                self.violation(
                    cycle,
                    format!(
                        "counter {name} holds {value} after the restart, but {acked} increments \
                         were acknowledged"
                    ),
                );
            }
            if value > acked + doubt {
                self.violation(
                    cycle,
                    format!(
                        "counter {name} holds {value}: more than the {acked} acknowledged and \
                         {doubt} unanswered increments sent (applied twice)"
                    ),
                );
            }
            self.figures.increments_acked += acked;
            self.figures.increments_doubt += doubt;
            self.figures.increments_landed += value - acked;
            self.counters.push((name, value));
        }
    }

    fn check_writes(&mut self, cycle: usize, wisp: &Wisp, was: usize, clients: &[Client]) {
        for (k, client) in clients.iter().enumerate() {
            let listed: HashSet<String> = self
                .list_keys(cycle, wisp, &format!("w-{was:05}-{k}-"))
                .into_iter()
                .collect();
            for (i, _) in &client.acked {
                let key = write_key(was, k, *i);
                if !listed.contains(&key) {
                    self.violation(cycle, format!("acknowledged write {key} is missing"));
                }
                let reply = self.ask(
                    cycle,
                    wisp,
                    "GET",
                    &format!("/_wisp/kv/default/writer/{key}"),
                    b"",
                );
                if reply.status != 200 || reply.body != write_value(&key) {
                    self.violation(
                        cycle,
                        format!("acknowledged write {key} reads back as {reply:?}"),
                    );
                }
            }
            let doubt: HashSet<String> =
                client.doubt.iter().map(|i| write_key(was, k, *i)).collect();
            for key in &listed {
                let acked = client
                    .acked
                    .iter()
                    .any(|(i, _)| write_key(was, k, *i) == *key);
                if !acked && !doubt.contains(key) {
                    self.violation(cycle, format!("key {key} is there but was never sent"));
                }
            }
            self.figures.writes_acked += client.acked.len() as u64;
            self.figures.writes_doubt += doubt.len() as u64;
            self.figures.writes_landed +=
                doubt.iter().filter(|k| listed.contains(*k)).count() as u64;
            self.keys.extend(listed);
        }
    }

    /// Every key of `writer` under `prefix`, page by page.
    fn list_keys(&self, cycle: usize, wisp: &Wisp, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut after = String::new();
        loop {
            let mut path = format!("/_wisp/kv/default/writer?prefix={prefix}&limit=1000");
            if !after.is_empty() {
                path.push_str(&format!("&after={after}"));
            }
            let page = self.ask_json(cycle, wisp, &path);
            let listed = page["keys"].as_array().unwrap();
            keys.extend(listed.iter().map(|k| k.as_str().unwrap().to_string()));
            match page["next"].as_str() {
                Some(next) => after = next.to_string(),
                None => return keys,
            }
        }
    }

    /// `flip`'s deploys: consecutive versions while they ran, and the newest acknowledged one
    /// (or the one in flight) active after the restart, serving its env.
    fn check_deploys(
        &mut self,
        cycle: usize,
        wisp: &Wisp,
        deployer: &Client,
        before: (u64, String),
    ) -> (u64, String) {
        let was = cycle - 1;
        let mut newest = before;
        for (i, said) in &deployer.acked {
            // The deployer checked each against the one before it.
            let version: u64 = said.parse().unwrap();
            newest = (version, deploy_tag(was, *i));
            self.tags.insert(version, newest.1.clone());
        }
        let last_acked = deployer.acked.last().map(|(i, _)| *i);
        // The deploys that may have landed unacknowledged: those sent after the last
        // acknowledged one (one in flight at the kill, or refused).
        let doubt: Vec<String> = deployer
            .doubt
            .iter()
            .filter(|i| last_acked.is_none_or(|last| **i > last))
            .map(|i| deploy_tag(was, *i))
            .collect();
        self.figures.deploys_acked += deployer.acked.len() as u64;
        self.figures.deploys_doubt += deployer.doubt.len() as u64;
        let versions = self.ask_json(cycle, wisp, &format!("/_wisp/functions/{FLIP}/versions"));
        let active = versions["active"].as_u64().unwrap();
        if active < newest.0 {
            self.violation(
                cycle,
                format!(
                    "{FLIP} is at version {active} after the restart, but version {} ({}) was \
                     acknowledged",
                    newest.0, newest.1
                ),
            );
        }
        if active > newest.0 + doubt.len() as u64 {
            self.violation(
                cycle,
                format!(
                    "{FLIP} is at version {active}: past the acknowledged {} and the deploys \
                     sent after it, {doubt:?}",
                    newest.0
                ),
            );
        }
        let info = self.ask_json(cycle, wisp, &format!("/_wisp/functions/{FLIP}"));
        let serving = info["env"]["DEPLOY"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let tag = if active == newest.0 {
            newest.1
        } else if doubt.contains(&serving) {
            self.figures.deploys_landed += active - newest.0;
            self.tags.insert(active, serving.clone());
            serving.clone()
        } else {
            self.violation(
                cycle,
                format!(
                    "{FLIP} v{active} serves DEPLOY={serving}, not one of the deploys sent after \
                     the last acknowledged: {doubt:?}"
                ),
            );
        };
        let numbers: Vec<u64> = versions["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_u64().unwrap())
            .collect();
        let kept = active.min(10);
        let want: Vec<u64> = (active + 1 - kept..=active).collect();
        if numbers != want {
            self.violation(
                cycle,
                format!("{FLIP} keeps versions {numbers:?}; expected {want:?}"),
            );
        }
        if info["version"] != active || serving != tag {
            self.violation(
                cycle,
                format!("{FLIP} serves {info}; expected version {active} with DEPLOY={tag}"),
            );
        }
        let echo = self.ask(cycle, wisp, "GET", &format!("/{FLIP}/echo"), b"");
        if echo.status != 200 || !echo.body.contains(&format!("\nDEPLOY={tag}\n")) {
            self.violation(cycle, format!("{FLIP} v{active} ({tag}) answers {echo:?}"));
        }
        (active, tag)
    }

    /// At the end: everything of every cycle is still there.
    pub(super) fn last_check(&mut self, cycle: usize, wisp: &Wisp) {
        let mut listed: Vec<String> = self.list_keys(cycle, wisp, "w-");
        listed.sort();
        let mut landed = self.keys.clone();
        landed.sort();
        if listed != landed {
            let listed_set: HashSet<&String> = listed.iter().collect();
            let landed_set: HashSet<&String> = landed.iter().collect();
            let gone: Vec<_> = landed_set.difference(&listed_set).take(5).collect();
            let extra: Vec<_> = listed_set.difference(&landed_set).take(5).collect();
            self.violation(
                cycle,
                format!("the writes changed since their cycles: gone {gone:?}, new {extra:?}"),
            );
        }
        for (name, value) in &self.counters {
            let now = self.ask_json(cycle, wisp, &format!("/api/counter/{name}"))["count"].clone();
            if now != *value {
                self.violation(cycle, format!("counter {name} was {value}, is now {now}"));
            }
        }
        // Every delivery recorded is still there, and no gap was filled.
        for n in 1..self.next_event {
            let there = self
                .sink_value(cycle, wisp, &format!("event%2F{n:010}"))
                .is_some();
            if there == self.gaps.contains(&n) {
                self.violation(
                    cycle,
                    format!("event/{n} there: {there}, when read: {}", !there),
                );
            }
        }
        let seq = self.sink_value(cycle, wisp, "seq").unwrap_or_default();
        if seq.trim() != (self.next_event - 1).to_string() {
            self.violation(
                cycle,
                format!("the sink's seq is {seq}, was {}", self.next_event - 1),
            );
        }
        let versions = self.ask_json(cycle, wisp, &format!("/_wisp/functions/{FLIP}/versions"));
        let active = versions["active"].as_u64().unwrap();
        if self.tags.keys().next_back() != Some(&active) {
            self.violation(cycle, format!("{FLIP}'s active version moved to {active}"));
        }
    }
}
