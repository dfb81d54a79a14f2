//! `PUT /_wisp/functions/{name}`: the module is the body; the configuration comes in the query
//! (`?route=/api/x&method=GET&cors=*&env=K%3DV&timeout_ms=500&topic=orders&publish=orders&
//! timer=every%2030s&watch=orders:order/`) or, whole, as JSON in a `Wisp-Config` header. With
//! neither, a redeploy keeps the serving version's configuration.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Admin;
use super::{deploy_error, error, function_info, json_response};
use crate::config::{
    FunctionConfig, LimitsConfig, Subscription, TimerConfig, WatchConfig, valid_name,
};
use crate::http::{Request, Response};
use crate::router::Cors;
use crate::wagi::percent_decode;

pub async fn deploy(admin: &Admin, name: &str, request: Request) -> Response {
    if !valid_name(name) {
        return error(
            400,
            format!(
                "invalid function name `{name}`: use 1 to 63 of a-z, 0-9 and -, starting with a \
                 letter or digit"
            ),
        );
    }
    if request.body.is_empty() {
        return error(
            400,
            "the request body must be the module (curl -T module.wasm ...)",
        );
    }
    let config = match configuration(admin, name, &request) {
        Ok(config) => config,
        Err(why) => return error(400, why),
    };
    let wasm = request.body;
    match admin.deploy(config, wasm).await {
        Ok((function, created)) => {
            json_response(if created { 201 } else { 200 }, &function_info(&function))
        }
        Err(e) => deploy_error(e),
    }
}

fn configuration(admin: &Admin, name: &str, request: &Request) -> Result<FunctionConfig, String> {
    let header = request.header("wisp-config");
    let params: Vec<(String, String)> = request
        .query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect();
    let config = match (header, params.is_empty()) {
        (Some(_), false) => {
            return Err(
                "give the configuration either in Wisp-Config or in the query, not both".into(),
            );
        }
        (Some(json), true) => from_json(name, json)?,
        (None, false) => from_params(name, &params)?,
        (None, true) => match admin.deployed().get(name) {
            Some(current) => current.config.clone(),
            None => {
                return Err(format!(
                    "function `{name}` is new: give it at least one route (?route=/path)"
                ));
            }
        },
    };
    Ok(config)
}

fn from_json(name: &str, json: &[u8]) -> Result<FunctionConfig, String> {
    let mut value: Value =
        serde_json::from_slice(json).map_err(|e| format!("Wisp-Config is not JSON: {e}"))?;
    let object = value
        .as_object_mut()
        .ok_or("Wisp-Config must be a JSON object")?;
    match object.get("name") {
        Some(Value::String(n)) if n != name => {
            return Err(format!(
                "Wisp-Config names `{n}` but the path names `{name}`"
            ));
        }
        _ => {}
    }
    object.insert("name".into(), Value::String(name.into()));
    let config: FunctionConfig =
        serde_json::from_value(value).map_err(|e| format!("Wisp-Config: {e}"))?;
    if config.module.is_some() || config.build.is_some() {
        return Err(
            "Wisp-Config: `module` and `build` belong in manifests; the body is the module".into(),
        );
    }
    Ok(config)
}

fn number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("`{key}={value}`: not a valid number"))
}

fn from_params(name: &str, params: &[(String, String)]) -> Result<FunctionConfig, String> {
    let mut routes = Vec::new();
    let mut methods = Vec::new();
    let mut origins = Vec::new();
    let mut env = BTreeMap::new();
    let mut limits = LimitsConfig::default();
    let mut stores: Option<Vec<String>> = None;
    let mut shared_stores = Vec::new();
    let (mut topics, mut publish, mut timers, mut watch) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut allowed_hosts = Vec::new();
    for (key, value) in params {
        match key.as_str() {
            "route" => routes.push(value.clone()),
            "method" => methods.push(value.to_ascii_uppercase()),
            "cors" => origins.push(value.clone()),
            "store" => stores.get_or_insert_with(Vec::new).push(value.clone()),
            "shared_store" => shared_stores.push(value.clone()),
            "topic" => topics.push(Subscription {
                topic: value.clone(),
                delivery: Default::default(),
            }),
            "publish" => publish.push(value.clone()),
            "allow_host" => allowed_hosts.push(value.clone()),
            "timer" => timers.push(TimerConfig::new(value)),
            "watch" => {
                let (store, prefix) = value
                    .split_once(':')
                    .ok_or_else(|| format!("`watch={value}`: expected watch=STORE:PREFIX"))?;
                watch.push(WatchConfig {
                    store: store.to_string(),
                    prefix: prefix.to_string(),
                    max_attempts: None,
                    backoff_ms: None,
                    concurrency: None,
                });
            }
            "env" => {
                let (k, v) = value
                    .split_once('=')
                    .filter(|(k, _)| !k.is_empty())
                    .ok_or_else(|| {
                        format!("`env={value}`: expected env=KEY=VALUE (encode = as %3D)")
                    })?;
                env.insert(k.to_string(), v.to_string());
            }
            "fuel" => limits.fuel = Some(number(key, value)?),
            "timeout_ms" => limits.timeout_ms = Some(number(key, value)?),
            "memory_mb" => limits.memory_mb = Some(number(key, value)?),
            "max_recursion_depth" => limits.max_recursion_depth = Some(number(key, value)?),
            "stdout_kb" => limits.stdout_kb = Some(number(key, value)?),
            "stderr_kb" => limits.stderr_kb = Some(number(key, value)?),
            other => return Err(format!("unknown parameter `{other}`")),
        }
    }
    let cors = (!origins.is_empty()).then(|| Cors {
        origins,
        methods: Vec::new(),
        headers: Vec::new(),
        max_age: None,
    });
    Ok(FunctionConfig {
        name: name.into(),
        module: None,
        build: None,
        routes,
        methods,
        cors,
        limits,
        env,
        stores,
        shared_stores,
        topics,
        publish,
        timers,
        watch,
        async_calls: None,
        allowed_hosts,
    })
}
