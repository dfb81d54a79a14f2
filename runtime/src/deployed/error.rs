//! Why a deploy, rollback or delete did not happen, and the checks that say so.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Function;
use crate::config::FunctionConfig;
use crate::engine::CompileError;
use crate::registry::RegistryError;

/// Why a deploy, rollback or delete did not happen. Nothing changed.
#[derive(Debug)]
pub enum DeployError {
    Config(String),
    Module(CompileError),
    /// Another function serves this route already.
    Conflict {
        route: String,
        function: String,
    },
    NotFound(String),
    Registry(RegistryError),
    /// The key-value backend failed.
    Store(String),
    /// The fleet's Redis cannot be reached: a change made now would reach this device only.
    FleetAway(String),
    /// The change is in the fleet's log, but this device has not applied it in time.
    NotApplied(String),
}

impl std::fmt::Display for DeployError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeployError::Config(why) => f.write_str(why),
            DeployError::Module(e) => e.fmt(f),
            DeployError::Conflict { route, function } => {
                write!(
                    f,
                    "route `{route}` is already served by function `{function}`"
                )
            }
            DeployError::NotFound(what) => f.write_str(what),
            DeployError::Registry(e) => e.fmt(f),
            DeployError::Store(why) => f.write_str(why),
            DeployError::FleetAway(why) | DeployError::NotApplied(why) => f.write_str(why),
        }
    }
}

impl From<RegistryError> for DeployError {
    fn from(e: RegistryError) -> Self {
        DeployError::Registry(e)
    }
}

/// The conflict if `config` takes a route another of `functions` serves.
pub(super) fn conflict(
    functions: &BTreeMap<String, Arc<Function>>,
    config: &FunctionConfig,
) -> Result<(), DeployError> {
    for route in &config.routes {
        let other = functions
            .values()
            .find(|f| f.name() != config.name && f.config.routes.contains(route));
        if let Some(other) = other {
            return Err(DeployError::Conflict {
                route: route.clone(),
                function: other.name().to_string(),
            });
        }
    }
    Ok(())
}

pub(super) fn not_found(name: &str) -> DeployError {
    DeployError::NotFound(format!("no function `{name}`"))
}
