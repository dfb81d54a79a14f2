//! Recent log lines of each function, in a bounded ring buffer, mirrored to the server's stderr.

use std::sync::Mutex;
use std::time::SystemTime;

use heapless::HistoryBuf;

/// How many lines a function's log keeps.
pub const LOG_LINES: usize = 256;
/// Longest line kept; longer ones are cut.
const MAX_LINE: usize = 1024;

/// One function's recent log lines.
#[derive(Default)]
pub struct FunctionLog {
    lines: Mutex<HistoryBuf<LogLine, LOG_LINES>>,
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

    /// Records one line.
    pub fn push(&self, function: &str, line: &str) {
        let mut text = line.trim_end().to_string();
        if text.len() > MAX_LINE {
            let cut = (0..=MAX_LINE)
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            text.truncate(cut);
            text.push('…');
        }
        eprintln!("[{function}] {text}");
        let at_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write(LogLine { at_ms, text });
    }

    /// The lines kept, oldest first.
    pub fn recent(&self) -> Vec<LogLine> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.oldest_ordered().cloned().collect()
    }
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
    fn splits_and_cuts_lines() {
        let log = FunctionLog::default();
        log.guest_output("t", format!("a\nb\n{}", "é".repeat(MAX_LINE)).as_bytes());
        let recent = log.recent();
        assert_eq!(recent[0].text, "a");
        assert_eq!(recent[1].text, "b");
        assert!(recent[2].text.len() <= MAX_LINE + '…'.len_utf8());
    }
}
