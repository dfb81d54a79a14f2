//! Timer schedules: `every 30s` (an interval: `ms`, `s`, `m`, `h`) or a cron expression of 5
//! fields (minute first) or 6 (second first), in UTC.
//!
//! Intervals tick at whole multiples of their period since the Unix epoch, so `every 30s`
//! fires at :00 and :30 of each minute, on every device and after every restart alike.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// The shortest interval: below it a device would do little but run the timer.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// When a timer ticks.
#[derive(Clone)]
pub enum Schedule {
    Every(Duration),
    Cron(Box<Cron>),
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(period) => write!(f, "every {period:?}"),
            Schedule::Cron(cron) => write!(f, "cron {}", cron.as_str()),
        }
    }
}

impl Schedule {
    /// Parses a schedule as the configuration writes it.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let text = text.trim();
        if let Some(interval) = text.strip_prefix("every ") {
            return parse_interval(interval.trim())
                .map(Schedule::Every)
                .map_err(|why| {
                    format!("timer `{text}`: {why} (write `every 30s`; units ms, s, m, h)")
                });
        }
        let fields = text.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(format!(
                "timer `{text}`: expected `every <interval>` or a cron expression of 5 fields \
                 (minute hour day month weekday) or 6 (second first)"
            ));
        }
        let parser = CronParser::builder().seconds(Seconds::Optional).build();
        let cron = parser
            .parse(text)
            .map_err(|e| format!("timer `{text}`: {e}"))?;
        Ok(Schedule::Cron(Box::new(cron)))
    }

    /// The first tick strictly after `after` (Unix ms), if there is one.
    pub fn next_after(&self, after: u64) -> Option<u64> {
        match self {
            Schedule::Every(period) => {
                let p = period.as_millis() as u64;
                (after / p).checked_add(1)?.checked_mul(p)
            }
            Schedule::Cron(cron) => {
                // Cron works in whole seconds: from the second `after` falls in.
                let start = DateTime::<Utc>::from_timestamp_millis((after / 1000 * 1000) as i64)?;
                let next = cron.find_next_occurrence(&start, false).ok()?;
                u64::try_from(next.timestamp_millis()).ok()
            }
        }
    }

    /// The last tick at or before `at` (Unix ms), if there is one.
    pub fn last_at_or_before(&self, at: u64) -> Option<u64> {
        match self {
            Schedule::Every(period) => {
                let p = period.as_millis() as u64;
                Some(at / p * p)
            }
            Schedule::Cron(cron) => {
                let start = DateTime::<Utc>::from_timestamp_millis((at / 1000 * 1000) as i64)?;
                let last = cron.find_previous_occurrence(&start, true).ok()?;
                u64::try_from(last.timestamp_millis()).ok()
            }
        }
    }
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or("the interval has no unit")?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| "the interval is not a number")?;
    let ms = match unit.trim() {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        other => return Err(format!("unknown unit `{other}`")),
    }
    .ok_or("the interval is too long")?;
    let period = Duration::from_millis(ms);
    if period < MIN_INTERVAL {
        return Err(format!(
            "the interval is shorter than {} ms",
            MIN_INTERVAL.as_millis()
        ));
    }
    Ok(period)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-30T00:00:00Z, a Monday.
    const MONDAY: u64 = 1_796_601_600_000 - 7 * 86_400_000;

    #[test]
    fn intervals_tick_on_multiples_of_their_period() {
        let s = Schedule::parse("every 30s").unwrap();
        assert_eq!(s.next_after(MONDAY), Some(MONDAY + 30_000));
        assert_eq!(s.next_after(MONDAY + 29_999), Some(MONDAY + 30_000));
        assert_eq!(s.last_at_or_before(MONDAY + 61_000), Some(MONDAY + 60_000));
        assert_eq!(
            Schedule::parse("every 250ms").unwrap().next_after(1),
            Some(250)
        );
        for (text, ms) in [("every 2m", 120_000), ("every 1h", 3_600_000)] {
            match Schedule::parse(text).unwrap() {
                Schedule::Every(d) => assert_eq!(d.as_millis() as u64, ms),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn cron_with_five_or_six_fields_in_utc() {
        let five = Schedule::parse("*/5 * * * *").unwrap();
        assert_eq!(five.next_after(MONDAY + 1), Some(MONDAY + 300_000));
        assert_eq!(
            five.last_at_or_before(MONDAY + 301_000),
            Some(MONDAY + 300_000)
        );
        // Seconds first: 03:30:00 every day.
        let six = Schedule::parse("0 30 3 * * *").unwrap();
        assert_eq!(
            six.next_after(MONDAY),
            Some(MONDAY + 3_600_000 * 3 + 1_800_000)
        );
        // Unix weekdays: 1 is Monday, so the next Monday midnight is a week on.
        let monday = Schedule::parse("0 0 * * 1").unwrap();
        assert_eq!(monday.next_after(MONDAY), Some(MONDAY + 7 * 86_400_000));
        assert_eq!(monday.last_at_or_before(MONDAY), Some(MONDAY));
    }

    #[test]
    fn bad_schedules_say_why() {
        for bad in [
            "every",
            "every 10",
            "every 10 parsecs",
            "every 10ms",
            "every s",
            "* * * *",
            "* * * * * * *",
            "61 * * * *",
            "often",
        ] {
            let err = Schedule::parse(bad).unwrap_err();
            assert!(err.contains("timer"), "{bad}: {err}");
        }
    }
}
