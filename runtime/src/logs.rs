//! Recent log lines of each function, in a bounded ring buffer, mirrored to the server's stderr.

use std::sync::Mutex;
use std::time::SystemTime;

use heapless::HistoryBuf;
use smol::channel::{Receiver, Sender, TrySendError};

/// How many lines a function's log keeps.
pub const LOG_LINES: usize = 256;
/// Longest line kept; longer ones are cut.
const MAX_LINE: usize = 1024;

/// Lines a follower may fall behind by before it misses some.
const FOLLOW_BACKLOG: usize = 256;

/// One function's recent log lines, and whoever follows them.
#[derive(Default)]
pub struct FunctionLog {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Allocated with the first line: most functions never log, and the ring is 8 KiB.
    lines: Option<Box<HistoryBuf<LogLine, LOG_LINES>>>,
    /// Each gets every new line, rendered.
    followers: Vec<Sender<Vec<u8>>>,
}

impl Inner {
    fn oldest_first(&self) -> impl Iterator<Item = &LogLine> {
        self.lines.iter().flat_map(|lines| lines.oldest_ordered())
    }
}

/// A log line with the time it was written, in milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub at_ms: u64,
    pub text: String,
}

impl FunctionLog {
    /// Records each line of a guest's stderr, and a copy on the server's stderr.
    pub fn guest_output(&self, function: &str, stderr: &[u8]) {
        for line in String::from_utf8_lossy(stderr).lines() {
            self.push(function, line);
        }
    }

    /// Records one line, and a copy on the server's stderr.
    pub fn push(&self, function: &str, line: &str) {
        self.record(function, line, true);
    }

    /// Records one line in the function's log only: for the lines of routine success (a
    /// delivered message), which at thousands a second would flood the device's journal.
    pub fn note(&self, function: &str, line: &str) {
        self.record(function, line, false);
    }

    fn record(&self, function: &str, line: &str, mirror: bool) {
        let mut text = line.trim_end().to_string();
        if text.len() > MAX_LINE {
            let cut = (0..=MAX_LINE)
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            text.truncate(cut);
            text.push('…');
        }
        if mirror {
            eprintln!("[{function}] {text}");
        }
        let at_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let line = LogLine { at_ms, text };
        let mut inner = self.lock();
        if !inner.followers.is_empty() {
            let rendered = line.render().into_bytes();
            // A follower that is gone is dropped; one that is behind misses this line.
            inner
                .followers
                .retain(|f| !matches!(f.try_send(rendered.clone()), Err(TrySendError::Closed(_))));
        }
        inner
            .lines
            .get_or_insert_with(|| Box::new(HistoryBuf::new()))
            .write(line);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lines kept, oldest first.
    pub fn recent(&self) -> Vec<LogLine> {
        self.lock().oldest_first().cloned().collect()
    }

    /// The lines kept, then every line from now on, rendered; the stream ends when the log
    /// is dropped.
    pub fn follow(&self) -> Receiver<Vec<u8>> {
        let (sender, receiver) = smol::channel::bounded(FOLLOW_BACKLOG);
        let mut inner = self.lock();
        let recent: String = inner.oldest_first().map(LogLine::render).collect();
        if !recent.is_empty() {
            sender
                .try_send(recent.into_bytes())
                .expect("a new channel has room");
        }
        inner.followers.push(sender);
        receiver
    }
}

impl LogLine {
    /// `2026-11-27T21:13:19.123Z text`: the line as the log API shows it.
    pub fn render(&self) -> String {
        format!("{} {}\n", rfc3339(self.at_ms), self.text)
    }
}

/// A Unix time in milliseconds as an RFC 3339 UTC timestamp.
pub fn rfc3339(ms: u64) -> String {
    let (days, rest) = ((ms / 86_400_000) as i64, ms % 86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, min, sec, milli) = (
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{sec:02}.{milli:03}Z")
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day): Howard Hinnant's
/// `civil_from_days`, which counts in 400-year eras of 146,097 days, each year starting on
/// March 1 so that the leap day falls at its end.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_in_order() {
        let log = FunctionLog::default();
        for i in 0..LOG_LINES + 10 {
            log.push("t", &format!("line {i}"));
        }
        let recent = log.recent();
        assert_eq!(recent.len(), LOG_LINES);
        assert_eq!(recent[0].text, "line 10");
        assert_eq!(
            recent.last().unwrap().text,
            format!("line {}", LOG_LINES + 9)
        );
    }

    #[test]
    fn followers_get_new_lines() {
        let log = FunctionLog::default();
        log.push("t", "before");
        let live = log.follow();
        assert!(
            String::from_utf8(live.try_recv().unwrap())
                .unwrap()
                .ends_with(" before\n")
        );
        log.push("t", "after");
        assert!(
            String::from_utf8(live.try_recv().unwrap())
                .unwrap()
                .ends_with(" after\n")
        );
        drop(live);
        log.push("t", "nobody listens");
        assert!(log.lock().followers.is_empty());
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_795_813_999_645), "2026-11-27T21:13:19.645Z");
    }

    #[test]
    fn splits_and_cuts_lines() {
        let log = FunctionLog::default();
        log.guest_output("t", format!("a\nb\n{}", "é".repeat(MAX_LINE)).as_bytes());
        let recent = log.recent();
        assert_eq!(recent[0].text, "a");
        assert_eq!(recent[1].text, "b");
        assert!(recent[2].text.len() <= MAX_LINE + '…'.len_utf8());
    }
}
