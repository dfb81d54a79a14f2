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
    pub timers: &'a [String],
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
            Schedule::parse(timer).map_err(|e| format!("function `{f}`: {e}"))?;
            if self.timers[..i].contains(timer) {
                return Err(format!("function `{f}`: timer `{timer}` is given twice"));
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
