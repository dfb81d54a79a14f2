//! `wisp fleet`: the devices of the fleet the server is in.

use std::collections::BTreeMap;
use std::process::ExitCode;

use serde::Deserialize;

use super::admin::{no_options, one_call, read};
use super::remote::{Syntax, json_help, parse, server_help};
use super::{Error, table};

pub const HELP: &str = concat!(
    "\
List the devices of the fleet the server is in (started with --redis): each one's state (up,
away when not heard of for 10 s, stopped), address, Wisp version, the functions it serves
with their versions, and when it was last heard of. Entries of the fleet's log a device could
not apply (a module over its memory limit, say) are listed under the table.

Usage: wisp fleet [OPTIONS]

Options:
",
    json_help!(),
    server_help!()
);

#[derive(Deserialize)]
struct FleetInfo {
    fleet: String,
    device: String,
    connected: bool,
    #[serde(default)]
    error: Option<String>,
    devices: Vec<DeviceInfo>,
}

#[derive(Deserialize)]
struct DeviceInfo {
    name: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    functions: BTreeMap<String, u64>,
    #[serde(default)]
    seen_ago: u64,
    #[serde(default)]
    skipped: Vec<SkipInfo>,
}

#[derive(Deserialize)]
struct SkipInfo {
    op: String,
    function: String,
    version: u64,
    error: String,
}

fn ago(seconds: u64) -> String {
    match seconds {
        0..=119 => format!("{seconds} s ago"),
        120..=7199 => format!("{} min ago", seconds / 60),
        _ => format!("{} h ago", seconds / 3600),
    }
}

pub fn fleet(parser: lexopt::Parser) -> Result<ExitCode, Error> {
    let syntax = Syntax::admin("fleet", HELP, &[]);
    let Some((common, _)) = parse(parser, &syntax, no_options)? else {
        return Ok(ExitCode::SUCCESS);
    };
    one_call(&common, "GET", "/_wisp/fleet", None, |_, text| {
        let info: FleetInfo = read(text)?;
        let mut out = match (&info.error, info.connected) {
            (Some(error), _) => format!(
                "fleet {}: {} cannot reach Redis ({error}); it alone is listed\n",
                info.fleet, info.device
            ),
            (None, _) => format!("fleet {}, asked {}\n", info.fleet, info.device),
        };
        let rows: Vec<Vec<String>> = info
            .devices
            .iter()
            .map(|d| {
                let functions: Vec<String> = d
                    .functions
                    .iter()
                    .map(|(name, version)| format!("{name}@{version}"))
                    .collect();
                vec![
                    d.name.clone(),
                    d.state.clone(),
                    d.address.clone(),
                    d.version.clone(),
                    match functions.is_empty() {
                        true => "-".into(),
                        false => functions.join(","),
                    },
                    ago(d.seen_ago),
                ]
            })
            .collect();
        out += &table::render(
            &[
                "DEVICE",
                "STATE",
                "ADDRESS",
                "VERSION",
                "FUNCTIONS",
                "LAST SEEN",
            ],
            &rows,
        );
        for d in &info.devices {
            for s in &d.skipped {
                out += &format!(
                    "{} did not apply the {} of {} version {}: {}\n",
                    d.name, s.op, s.function, s.version, s.error
                );
            }
        }
        Ok(out)
    })
}
