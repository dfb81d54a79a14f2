//! The JSON side: which order a message names, and an order marked paid.

use serde_json::Value;

/// The order id of a message `{"id": "<id>", ...}` (a number is taken as its decimal text);
/// `None` if the message is not such an object or the id is empty.
pub fn id_of(message: &[u8]) -> Option<String> {
    let Ok(Value::Object(fields)) = serde_json::from_slice(message) else {
        return None;
    };
    let id = match fields.get("id")? {
        Value::String(id) => id.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!id.is_empty()).then_some(id)
}

/// What to do with a stored order.
#[derive(Debug, PartialEq)]
pub enum Payment {
    /// Swap in this JSON: the order with `"status":"paid"` and `"paid_at"`.
    Pay(String),
    /// It is paid already: nothing to do.
    AlreadyPaid,
    /// It cannot be paid, for this reason.
    Skip(String),
}

/// Marks the stored order `stored` paid at `now_ms`, if it is pending. Its other fields stay as
/// they are (in serde_json's order, which sorts them by name).
pub fn pay(stored: &[u8], now_ms: u64) -> Payment {
    let Ok(Value::Object(mut order)) = serde_json::from_slice::<Value>(stored) else {
        return Payment::Skip("the stored order is not a JSON object".into());
    };
    match order.get("status").and_then(Value::as_str) {
        Some("pending") => {}
        Some("paid") => return Payment::AlreadyPaid,
        Some(status) => return Payment::Skip(format!("its status is {status:?}")),
        None => return Payment::Skip("it has no status".into()),
    }
    order.insert("status".into(), "paid".into());
    order.insert("paid_at".into(), now_ms.into());
    Payment::Pay(Value::Object(order).to_string())
}
