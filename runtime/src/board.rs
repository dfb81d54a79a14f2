//! Board profiles: server defaults sized for each class of device Wisp runs on.
//!
//! A profile is `boards/NAME.json`, embedded in the binary (people copy only the binary onto
//! the device). Its `options` are `wisp serve` options under their command-line names, so a
//! profile value means exactly what the option means. `wisp serve --board NAME` chooses one;
//! without `--board`, the profile whose model prefix matches this machine's device-tree model
//! is used, and a machine with no matching model (a desktop, most x86 boxes) keeps the
//! built-in defaults.

use std::sync::OnceLock;

use serde::Deserialize;

use crate::server::Options;

/// The embedded profiles, in the order `--board help` lists them.
const SOURCES: [&str; 7] = [
    include_str!("../../boards/pi-1.json"),
    include_str!("../../boards/pi-zero-2w.json"),
    include_str!("../../boards/pi-2.json"),
    include_str!("../../boards/pi-3.json"),
    include_str!("../../boards/pi-4.json"),
    include_str!("../../boards/pi-5.json"),
    include_str!("../../boards/x86-64.json"),
];

/// One device class.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// What `--board` takes.
    pub name: String,
    pub description: String,
    /// Model-name prefixes, as the device tree says them (`Raspberry Pi 4` matches
    /// `Raspberry Pi 4 Model B Rev 1.4`); the longest matching prefix of all profiles wins.
    pub models: Vec<String>,
    /// The Rust targets whose binaries run on it; the first is the one to use.
    pub targets: Vec<String>,
    pub options: BoardOptions,
}

/// The server options a profile may set; each is the `wisp serve` option of the same name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BoardOptions {
    pub workers: Option<u64>,
    pub max_running: Option<u64>,
    pub queue: Option<u64>,
    pub slice_fuel: Option<u64>,
    pub fuel: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub memory_mb: Option<u64>,
    pub max_connections: Option<u64>,
    pub store_cache_mb: Option<u64>,
}

impl BoardOptions {
    /// The options the profile sets, as (command-line name, value), `workers` first: setting
    /// `--workers` rescales `--max-running`, so a profile's own `max-running` must come after.
    pub fn list(&self) -> Vec<(&'static str, u64)> {
        [
            ("workers", self.workers),
            ("max-running", self.max_running),
            ("queue", self.queue),
            ("slice-fuel", self.slice_fuel),
            ("fuel", self.fuel),
            ("timeout-ms", self.timeout_ms),
            ("memory-mb", self.memory_mb),
            ("max-connections", self.max_connections),
            ("store-cache-mb", self.store_cache_mb),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect()
    }
}

/// Every embedded profile.
pub fn all() -> &'static [Board] {
    static BOARDS: OnceLock<Vec<Board>> = OnceLock::new();
    BOARDS.get_or_init(|| {
        SOURCES
            .iter()
            // A unit test parses every profile, so this cannot fail in a built binary.
            .map(|json| serde_json::from_str(json).expect("an embedded board profile parses"))
            .collect()
    })
}

/// The profile called `name`.
pub fn named(name: &str) -> Option<&'static Board> {
    all().iter().find(|b| b.name == name)
}

/// The profile for a machine whose model is `model`: the longest matching prefix wins.
pub fn for_model(model: &str) -> Option<&'static Board> {
    all()
        .iter()
        .flat_map(|b| b.models.iter().map(move |m| (b, m)))
        .filter(|(_, prefix)| model.starts_with(prefix.as_str()))
        .max_by_key(|(_, prefix)| prefix.len())
        .map(|(b, _)| b)
}

/// This machine's model: the device tree's (`/proc/device-tree/model`, any ARM board with a
/// device tree), else the `Model` line Raspberry Pi kernels add to `/proc/cpuinfo`. None on a
/// machine with neither, such as a PC.
pub fn model() -> Option<String> {
    model_from(
        std::fs::read("/proc/device-tree/model").ok().as_deref(),
        std::fs::read_to_string("/proc/cpuinfo").ok().as_deref(),
    )
}

/// [`model`] from the two files' contents.
pub fn model_from(device_tree: Option<&[u8]>, cpuinfo: Option<&str>) -> Option<String> {
    let from_tree = device_tree.map(|bytes| {
        // The device tree's strings end with a NUL.
        let text = String::from_utf8_lossy(bytes);
        text.trim_end_matches('\0').trim().to_string()
    });
    // `Model` with a capital M: x86's cpuinfo has a numeric `model` line on every core.
    let from_cpuinfo = || {
        cpuinfo?.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == "Model").then(|| value.trim().to_string())
        })
    };
    from_tree
        .filter(|m| !m.is_empty())
        .or_else(from_cpuinfo)
        .filter(|m| !m.is_empty())
}

/// The values of the options a profile can set, as `options` has them: the line printed at
/// start, with what the command line changed.
pub fn describe(options: &Options) -> String {
    let values = [
        ("workers", options.workers as u64),
        ("max-running", options.scheduler.max_running as u64),
        ("queue", options.scheduler.queue as u64),
        ("slice-fuel", options.scheduler.slice_fuel),
        ("fuel", options.limits.fuel),
        ("timeout-ms", options.limits.timeout.as_millis() as u64),
        ("memory-mb", options.limits.memory_bytes >> 20),
        ("max-connections", options.http.max_connections as u64),
        ("store-cache-mb", (options.store_cache_bytes >> 20) as u64),
    ];
    let parts: Vec<String> = values.iter().map(|(k, v)| format!("--{k} {v}")).collect();
    parts.join(" ")
}

/// The table `--board help` prints.
pub fn table() -> String {
    let mut out =
        String::from("Board profiles (wisp serve --board NAME; detected when not given):\n");
    for b in all() {
        out += &format!("\n  {:<12} {}\n", b.name, b.description);
        out += &format!("  {:<12} binary: {}\n", "", b.targets.join(" or "));
        let options: Vec<String> = b
            .options
            .list()
            .iter()
            .map(|(k, v)| format!("--{k} {v}"))
            .collect();
        out += &format!("  {:<12} {}\n", "", options.join(" "));
    }
    out += "\n  none         no profile: the built-in defaults, even on a known board\n";
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_parses_and_names_are_unique() {
        assert_eq!(all().len(), SOURCES.len());
        for b in all() {
            assert_eq!(
                named(&b.name).unwrap().name,
                b.name,
                "duplicate name {}",
                b.name
            );
            assert!(!b.targets.is_empty(), "{} has no target", b.name);
            assert!(!b.options.list().is_empty(), "{} sets nothing", b.name);
            // The names are file names, command-line values, and `none` is taken.
            assert!(
                b.name
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
            );
            assert_ne!(b.name, "none");
        }
    }

    #[test]
    fn raspberry_pi_models_find_their_profile() {
        let cases = [
            // ARMv6: the Pi 1 family, the Zero and Zero W, the first Compute Module.
            ("Raspberry Pi Zero W Rev 1.1", Some("pi-1")),
            ("Raspberry Pi Zero Rev 1.3", Some("pi-1")),
            ("Raspberry Pi Model B Rev 2", Some("pi-1")),
            ("Raspberry Pi Model B Plus Rev 1.2", Some("pi-1")),
            ("Raspberry Pi Model A Plus Rev 1.1", Some("pi-1")),
            ("Raspberry Pi Compute Module Rev 1.0", Some("pi-1")),
            ("Raspberry Pi Zero 2 W Rev 1.0", Some("pi-zero-2w")),
            ("Raspberry Pi 2 Model B Rev 1.1", Some("pi-2")),
            ("Raspberry Pi 3 Model B Plus Rev 1.3", Some("pi-3")),
            ("Raspberry Pi Compute Module 3 Plus Rev 1.0", Some("pi-3")),
            ("Raspberry Pi 4 Model B Rev 1.4", Some("pi-4")),
            ("Raspberry Pi 400 Rev 1.0", Some("pi-4")),
            ("Raspberry Pi Compute Module 4 Rev 1.0", Some("pi-4")),
            ("Raspberry Pi 5 Model B Rev 1.0", Some("pi-5")),
            ("Raspberry Pi Compute Module 5 Rev 1.0", Some("pi-5")),
            ("Raspberry Pi Compute Module 4S Rev 1.0", Some("pi-4")),
            ("Pine64 RockPro64 v2.1", None),
        ];
        for (model, expected) in cases {
            assert_eq!(
                for_model(model).map(|b| b.name.as_str()),
                expected,
                "{model}"
            );
        }
    }

    #[test]
    fn the_model_comes_from_the_device_tree_else_from_cpuinfo() {
        let pi_cpuinfo =
            "processor\t: 0\nHardware\t: BCM2835\nModel\t\t: Raspberry Pi 3 Model B Rev 1.2\n";
        let x86_cpuinfo = "processor\t: 0\nmodel\t\t: 85\nmodel name\t: Intel(R) Xeon(R)\n";
        assert_eq!(
            model_from(Some(b"Raspberry Pi 5 Model B Rev 1.0\0"), Some(pi_cpuinfo)).as_deref(),
            Some("Raspberry Pi 5 Model B Rev 1.0")
        );
        assert_eq!(
            model_from(None, Some(pi_cpuinfo)).as_deref(),
            Some("Raspberry Pi 3 Model B Rev 1.2")
        );
        assert_eq!(model_from(Some(b"\0"), Some(x86_cpuinfo)), None);
        assert_eq!(model_from(None, Some(x86_cpuinfo)), None);
        assert_eq!(model_from(None, None), None);
    }

    #[test]
    fn workers_come_first_so_max_running_is_the_profiles() {
        let list = named("pi-4").unwrap().options.list();
        assert_eq!(list[0].0, "workers");
        assert!(list.iter().any(|(k, _)| *k == "max-running"));
    }
}
