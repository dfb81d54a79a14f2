//! Output for people: aligned tables, UTC dates, sizes, and JSON indented without reordering.

/// Columns left-aligned, three spaces apart, like `docker ps`; no trailing spaces.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', width - cell.chars().count() + 3));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, from seconds since the Unix epoch.
pub fn date(unix: u64) -> String {
    let Ok(secs) = i64::try_from(unix) else {
        return unix.to_string();
    };
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = crate::logs::civil_from_days(days);
    let (h, min, s) = (rest / 3600, rest / 60 % 60, rest % 60);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{min:02}:{s:02}")
}

/// `512 B`, `77.2 KiB`, `3.0 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Indents valid JSON text the way `serde_json::to_string_pretty` does, but keeps the keys in
/// the server's order (a `serde_json::Value` would sort them).
pub fn pretty_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len() * 2);
    let mut depth = 0;
    let (mut in_string, mut escaped) = (false, false);
    let mut chars = json.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
                // An empty container stays `{}` or `[]`.
                if let Some(close) = chars.next_if(|&n| n == '}' || n == ']') {
                    out.push(close);
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_without_trailing_spaces() {
        let rows = vec![
            vec!["date".to_string(), "3".to_string(), "/api/date".to_string()],
            vec!["weather-long".to_string(), "12".to_string(), "".to_string()],
        ];
        assert_eq!(
            render(&["NAME", "VERSION", "ROUTES"], &rows),
            "NAME           VERSION   ROUTES\n\
             date           3         /api/date\n\
             weather-long   12\n"
        );
        assert_eq!(render(&["A", "B"], &[]), "A   B\n");
    }

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01 00:00:00");
        assert_eq!(date(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(date(1_795_813_999), "2026-11-27 21:13:19");
        assert_eq!(date(4_107_542_399), "2100-02-28 23:59:59");
        assert_eq!(date(4_107_542_400), "2100-03-01 00:00:00");
        assert_eq!(date(u64::MAX), u64::MAX.to_string());
        // Every day for 1000 years round-trips through its date and is one after the last.
        let mut last = (1969, 12, 31);
        for days in 0..365_250 {
            let (y, m, d) = crate::logs::civil_from_days(days);
            let next = if d == 1 {
                last.0 * 12 + i64::from(last.1) == y * 12 + i64::from(m) - 1
            } else {
                (last.0, last.1, last.2 + 1) == (y, m, d)
            };
            assert!(
                next && (1..=31).contains(&d),
                "{days}: {y}-{m}-{d} after {last:?}"
            );
            last = (y, m, d);
        }
        assert_eq!(last, (2970, 1, 7));
    }

    #[test]
    fn sizes() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(79_018), "77.2 KiB");
        assert_eq!(size(3 << 20), "3.0 MiB");
        assert_eq!(size(u64::MAX), "16777216.0 TiB");
    }

    #[test]
    fn json_is_indented_in_order() {
        let json = r#"{"z": 1, "a": [ ], "s": "a,b:{\"[\\", "o": {"k": [1, {}]}}"#;
        let expected = r#"{
  "z": 1,
  "a": [],
  "s": "a,b:{\"[\\",
  "o": {
    "k": [
      1,
      {}
    ]
  }
}"#;
        assert_eq!(pretty_json(json), expected);
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        let sorted = serde_json::to_string_pretty(&value).unwrap();
        let reparsed: serde_json::Value = serde_json::from_str(&pretty_json(json)).unwrap();
        assert_eq!(serde_json::to_string_pretty(&reparsed).unwrap(), sorted);
    }
}
