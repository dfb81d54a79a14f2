//! `--board` for `serve` and `up`: a board profile goes under the options given on the
//! command line.

use super::{Error, options};
use crate::board;
use crate::server::Options;

/// Applies the profile `choice` names (`--board NAME`; `none` for no profile; detection from
/// the device's model when not given) to `options`, except the options named in `given`: those
/// were set on the command line and win, wherever `--board` stands. Prints the applied profile
/// in one line. False when `--board help` only asked for the list, which it printed.
pub fn apply(choice: Option<&str>, given: &[String], options: &mut Options) -> Result<bool, Error> {
    let (board, why) = match choice {
        Some("help" | "list") => {
            print!("{}", board::table());
            return Ok(false);
        }
        Some("none") => return Ok(true),
        Some(name) => match board::named(name) {
            Some(board) => (board, "--board".to_string()),
            None => {
                let names: Vec<&str> = board::all().iter().map(|b| b.name.as_str()).collect();
                return Err(Error(format!(
                    "no board `{name}` (boards: {}, none; see --board help)",
                    names.join(", ")
                )));
            }
        },
        None => {
            let Some(model) = board::model() else {
                return Ok(true);
            };
            match board::for_model(&model) {
                Some(board) => (board, format!("detected {model}")),
                None => {
                    println!("wisp: no board profile for `{model}`; built-in defaults");
                    return Ok(true);
                }
            }
        }
    };
    for (name, value) in board.options.list() {
        if given.iter().any(|g| g == name) {
            continue;
        }
        // Through the option parser, so a profile value means exactly what the option means.
        let mut parser = lexopt::Parser::from_args([format!("--{name}={value}")]);
        parser.next()?;
        if !options::server(name, &mut parser, options)? {
            return Err(Error(format!("board {}: no option --{name}", board.name)));
        }
    }
    options.board = Some(board.name.clone());
    println!(
        "wisp: board {} ({why}): {}",
        board.name,
        board::describe(options)
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_applies_through_the_option_parser() {
        for b in board::all() {
            let mut options = Options::default();
            assert!(apply(Some(&b.name), &[], &mut options).unwrap());
            let o = &b.options;
            let check = |set: Option<u64>, got: u64| set.is_none_or(|v| v == got);
            assert!(check(o.workers, options.workers as u64), "{}", b.name);
            assert!(
                check(o.max_running, options.scheduler.max_running as u64),
                "{}",
                b.name
            );
            assert!(check(o.queue, options.scheduler.queue as u64), "{}", b.name);
            assert!(
                check(o.slice_fuel, options.scheduler.slice_fuel),
                "{}",
                b.name
            );
            assert!(check(o.fuel, options.limits.fuel), "{}", b.name);
            let timeout = options.limits.timeout.as_millis() as u64;
            assert!(check(o.timeout_ms, timeout), "{}", b.name);
            assert!(
                check(o.memory_mb, options.limits.memory_bytes >> 20),
                "{}",
                b.name
            );
            let connections = options.http.max_connections as u64;
            assert!(check(o.max_connections, connections), "{}", b.name);
            let cache = (options.store_cache_bytes >> 20) as u64;
            assert!(check(o.store_cache_mb, cache), "{}", b.name);
        }
    }

    #[test]
    fn options_given_on_the_command_line_win() {
        let mut options = Options::default();
        options.limits.fuel = 7;
        options.workers = 1;
        let given = ["fuel".to_string(), "workers".to_string()];
        apply(Some("pi-zero-2w"), &given, &mut options).unwrap();
        assert_eq!(options.limits.fuel, 7);
        assert_eq!(options.workers, 1);
        assert_eq!(options.limits.memory_bytes, 16 << 20);
        assert_eq!(options.scheduler.max_running, 8);
    }

    #[test]
    fn none_keeps_the_defaults_and_an_unknown_name_is_an_error() {
        let mut options = Options::default();
        assert!(apply(Some("none"), &[], &mut options).unwrap());
        assert_eq!(options.limits.fuel, Options::default().limits.fuel);
        let error = apply(Some("pi-9"), &[], &mut options).unwrap_err();
        assert!(error.0.contains("pi-zero-2w"), "{error}");
    }
}
