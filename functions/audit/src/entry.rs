//! One entry of the audit log, as JSON.

use serde_json::Value;
use wisp_sdk::events::{KvChange, KvOp};
use wisp_sdk::json_string;

/// `{"key":...,"op":"set"|"delete","value":...}` for `change`, whose new value is `value`.
///
/// A key that is not UTF-8 is shown with U+FFFD in place of what is not. The value is
/// re-encoded compactly when it is JSON, a JSON string when it is not (empty included), and
/// `null` for a delete.
pub fn to_json(change: &KvChange, value: &[u8]) -> String {
    let key = json_string(&String::from_utf8_lossy(&change.key));
    let value = match change.op {
        KvOp::Delete => "null".to_string(),
        KvOp::Set => match serde_json::from_slice::<Value>(value) {
            Ok(json) => json.to_string(),
            Err(_) => json_string(&String::from_utf8_lossy(value)),
        },
    };
    format!(r#"{{"key":{key},"op":"{}","value":{value}}}"#, change.op)
}
