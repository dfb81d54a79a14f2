//! `/_wisp/functions/NAME/secrets[/SECRET]`: a function's secrets. `PUT` sets one to the body,
//! `DELETE` forgets it, `GET` on the folder lists the names. No call ever answers a value, and
//! no error repeats one. Secrets stay on this device: a fleet's log never carries them.

use serde_json::json;

use super::{Admin, error, json_response};
use crate::http::{Request, Response};
use crate::registry::SecretError;

fn secret_error(e: SecretError) -> Response {
    let status = match &e {
        SecretError::Name(_) | SecretError::NotText | SecretError::TooMany(_) => 400,
        SecretError::TooLarge(_) => 413,
        SecretError::NoFunction(_) | SecretError::NoSecret { .. } => 404,
        SecretError::Registry(_) => 500,
    };
    error(status, e.to_string())
}

/// Answers `METHOD /_wisp/functions/{function}/secrets/{rest}`.
pub async fn handle(admin: &Admin, request: Request, function: &str, rest: &[&str]) -> Response {
    let function = function.to_string();
    match (request.method.as_str(), rest) {
        ("GET", []) => {
            let names = admin.blocking({
                let function = function.clone();
                move |d| d.secret_names(&function)
            });
            match names.await {
                Ok(Some(names)) => json_response(200, &json!({ "secrets": names })),
                Ok(None) => error(404, format!("no function `{function}`")),
                Err(e) => error(500, e.to_string()),
            }
        }
        ("PUT", [secret]) => {
            let (secret, value) = (secret.to_string(), request.body);
            let set = admin.blocking(move |d| d.set_secret(&function, &secret, &value));
            match set.await {
                Ok(()) => Response::new(204),
                Err(e) => secret_error(e),
            }
        }
        ("DELETE", [secret]) => {
            let secret = secret.to_string();
            let delete = admin.blocking(move |d| d.delete_secret(&function, &secret));
            match delete.await {
                Ok(()) => Response::new(204),
                Err(e) => secret_error(e),
            }
        }
        ("GET", [_]) => error(
            405,
            "a secret's value is never given back; GET .../secrets lists the names",
        ),
        (method, [] | [_]) => error(405, format!("{method} is not allowed on {}", request.path)),
        _ => error(404, format!("no admin endpoint {}", request.path)),
    }
}
