//! The event side of a function's configuration: the topics it subscribes to and publishes to,
//! its timers, the key-value prefixes it watches, and how each kind of event is delivered.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::valid_name;
use crate::store::MAX_KEY;
use crate::triggers::schedule::Schedule;

/// Most deliveries of one queue running at once.
pub const MAX_CONCURRENCY: u32 = 64;
/// Most attempts a message may be given.
pub const MAX_ATTEMPTS: u32 = 100;
/// The longest first backoff: a day.
pub const MAX_BACKOFF_MS: u64 = 86_400_000;

/// How the events of one queue are delivered; each setting left out takes its default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// Deliveries before a message goes to the dead letters. Default 4 (1 for asynchronous
    /// calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// The wait before the first retry, doubled for each further one. Default 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<u64>,
    /// Deliveries at once. Default 1, which keeps publish order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
}

impl Delivery {
    pub fn max_attempts(&self, default: u32) -> u32 {
        self.max_attempts.unwrap_or(default)
    }

    pub fn backoff_ms(&self) -> u64 {
        self.backoff_ms.unwrap_or(1000)
    }

    pub fn concurrency(&self) -> u32 {
        self.concurrency.unwrap_or(1)
    }

    fn validate(&self, what: &str) -> Result<(), String> {
        if self
            .max_attempts
            .is_some_and(|n| n == 0 || n > MAX_ATTEMPTS)
        {
            return Err(format!("{what}: max_attempts is 1 to {MAX_ATTEMPTS}"));
        }
        if self.backoff_ms.is_some_and(|ms| ms > MAX_BACKOFF_MS) {
            return Err(format!(
                "{what}: backoff_ms is at most {MAX_BACKOFF_MS} (a day)"
            ));
        }
        if self
            .concurrency
            .is_some_and(|n| n == 0 || n > MAX_CONCURRENCY)
        {
            return Err(format!("{what}: concurrency is 1 to {MAX_CONCURRENCY}"));
        }
        Ok(())
    }
}

/// A topic a function subscribes to: `"orders"`, or
/// `{"topic": "orders", "max_attempts": 4, "backoff_ms": 1000, "concurrency": 1}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscription {
    pub topic: String,
    #[serde(flatten)]
    pub delivery: Delivery,
}

impl<'de> Deserialize<'de> for Subscription {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            Value::String(topic) => Ok(Subscription {
                topic,
                delivery: Delivery::default(),
            }),
            Value::Object(mut object) => {
                let topic = match object.remove("topic") {
                    Some(Value::String(topic)) => topic,
                    _ => return Err(D::Error::custom("a subscription needs a \"topic\" string")),
                };
                let delivery = serde_json::from_value(Value::Object(object))
                    .map_err(|e| D::Error::custom(format!("topic `{topic}`: {e}")))?;
                Ok(Subscription { topic, delivery })
            }
            _ => Err(D::Error::custom(
                "a subscription is a topic name or an object with \"topic\"",
            )),
        }
    }
}

/// Where a timer runs when its device is in a fleet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimerScope {
    /// Once per tick across the fleet, on whichever device claims the tick first (on a
    /// device alone, on that device).
    #[default]
    Fleet,
    /// On every device, each tick.
    Device,
}

/// A timer: `"every 30s"` (a schedule, run once per tick across a fleet), or
/// `{"schedule": "every 30s", "scope": "device"}` to run it on every device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerConfig {
    /// `every 30s`, or a cron expression of 5 or 6 fields, in UTC.
    pub schedule: String,
    pub scope: TimerScope,
}

impl TimerConfig {
    /// A timer of the fleet.
    pub fn new(schedule: &str) -> TimerConfig {
        TimerConfig {
            schedule: schedule.to_string(),
            scope: TimerScope::Fleet,
        }
    }
}

impl std::fmt::Display for TimerConfig {
    /// The schedule, and `(each device)` for a device's timer.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.scope {
            TimerScope::Fleet => f.write_str(&self.schedule),
            TimerScope::Device => write!(f, "{} (each device)", self.schedule),
        }
    }
}

/// A fleet's timer is written as its schedule alone, as before scopes were.
impl Serialize for TimerConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Scoped<'a> {
            schedule: &'a str,
            scope: TimerScope,
        }
        match self.scope {
            TimerScope::Fleet => s.serialize_str(&self.schedule),
            scope => Scoped {
                schedule: &self.schedule,
                scope,
            }
            .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for TimerConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Scoped {
            schedule: String,
            #[serde(default)]
            scope: TimerScope,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Schedule(String),
            Scoped(Scoped),
        }
        match Either::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "a timer is a schedule (\"every 30s\") or {\"schedule\": ..., \"scope\": \"fleet\" \
                 or \"device\"}",
            )
        })? {
            Either::Schedule(schedule) => Ok(TimerConfig::new(&schedule)),
            Either::Scoped(Scoped { schedule, scope }) => Ok(TimerConfig { schedule, scope }),
        }
    }
}

/// A key-value prefix a function watches: `{"store": "orders", "prefix": "order/"}`, and
/// optionally the [`Delivery`] settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {
    pub store: String,
    #[serde(default)]
    pub prefix: String,
    // Spelled out rather than a flattened `Delivery`: serde cannot deny unknown fields
    // through `flatten`, and a typo here must not pass silently.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
}

impl WatchConfig {
    pub fn delivery(&self) -> Delivery {
        Delivery {
            max_attempts: self.max_attempts,
            backoff_ms: self.backoff_ms,
            concurrency: self.concurrency,
        }
    }
}

/// The event triggers of one function, as they appear in its configuration.
pub struct Events<'a> {
    pub function: &'a str,
    pub topics: &'a [Subscription],
    pub publish: &'a [String],
    pub timers: &'a [TimerConfig],
    pub watch: &'a [WatchConfig],
    pub async_calls: Option<&'a Delivery>,
    /// The stores the function is granted, private and shared.
    pub granted: Vec<&'a str>,
}

impl Events<'_> {
    pub fn any(&self) -> bool {
        !self.topics.is_empty() || !self.timers.is_empty() || !self.watch.is_empty()
    }

    pub fn validate(&self) -> Result<(), String> {
        let f = self.function;
        for (i, s) in self.topics.iter().enumerate() {
            check_topic(f, &s.topic)?;
            if self.topics[..i].iter().any(|t| t.topic == s.topic) {
                return Err(format!(
                    "function `{f}`: topic `{}` is given twice",
                    s.topic
                ));
            }
            s.delivery
                .validate(&format!("function `{f}`, topic `{}`", s.topic))?;
        }
        for topic in self.publish {
            check_topic(f, topic)?;
        }
        for (i, timer) in self.timers.iter().enumerate() {
            let schedule = &timer.schedule;
            Schedule::parse(schedule).map_err(|e| format!("function `{f}`: {e}"))?;
            if self.timers[..i].iter().any(|t| t.schedule == *schedule) {
                return Err(format!("function `{f}`: timer `{schedule}` is given twice"));
            }
        }
        for (i, w) in self.watch.iter().enumerate() {
            if !self.granted.contains(&w.store.as_str()) {
                return Err(format!(
                    "function `{f}` watches store `{}`, which it is not granted (add it to \
                     \"stores\" or \"shared_stores\")",
                    w.store
                ));
            }
            if w.prefix.len() > MAX_KEY {
                return Err(format!(
                    "function `{f}`: a watched prefix is at most {MAX_KEY} bytes"
                ));
            }
            if self.watch[..i]
                .iter()
                .any(|o| o.store == w.store && o.prefix == w.prefix)
            {
                return Err(format!(
                    "function `{f}`: store `{}` prefix `{}` is watched twice",
                    w.store, w.prefix
                ));
            }
            w.delivery()
                .validate(&format!("function `{f}`, watch of `{}`", w.store))?;
        }
        if let Some(delivery) = self.async_calls {
            delivery.validate(&format!("function `{f}`, async"))?;
        }
        Ok(())
    }
}

fn check_topic(function: &str, topic: &str) -> Result<(), String> {
    if valid_name(topic) {
        Ok(())
    } else {
        Err(format!(
            "function `{function}`: invalid topic name `{topic}`: use 1 to 63 of a-z, 0-9 and -, \
             starting with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_are_schedules_or_scoped_objects() {
        let timers: Vec<TimerConfig> = serde_json::from_str(
            r#"["every 10s", {"schedule": "*/5 * * * *", "scope": "device"},
                {"schedule": "every 1m", "scope": "fleet"}, {"schedule": "every 2s"}]"#,
        )
        .unwrap();
        let scopes: Vec<(&str, TimerScope)> = timers
            .iter()
            .map(|t| (t.schedule.as_str(), t.scope))
            .collect();
        assert_eq!(
            scopes,
            [
                ("every 10s", TimerScope::Fleet),
                ("*/5 * * * *", TimerScope::Device),
                ("every 1m", TimerScope::Fleet),
                ("every 2s", TimerScope::Fleet),
            ]
        );
        // A fleet's timer is written as before scopes were; a device's names its scope.
        assert_eq!(
            serde_json::to_string(&timers).unwrap(),
            r#"["every 10s",{"schedule":"*/5 * * * *","scope":"device"},"every 1m","every 2s"]"#
        );
        assert_eq!(timers[1].to_string(), "*/5 * * * * (each device)");
        for bad in [
            r#"{"schedule": "every 1s", "scope": "everywhere"}"#,
            r#"{"schedule": "every 1s", "scop": "device"}"#,
            r#"{"scope": "device"}"#,
            "7",
        ] {
            let parsed = serde_json::from_str::<TimerConfig>(bad);
            assert!(
                parsed.unwrap_err().to_string().contains("a timer is"),
                "{bad}"
            );
        }
    }
}
