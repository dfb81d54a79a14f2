//! A new order: what a checkout body must hold, and the JSON the order is stored and
//! published as.

use serde_json::{Number, Value};
use wisp_sdk::json_string;

/// The fields a client gives: what to buy and for how much.
#[derive(Debug, PartialEq)]
pub struct NewOrder {
    item: String,
    amount: Number,
}

impl NewOrder {
    /// Reads a body such as `{"item": "book", "amount": 12}`: `item` a string that is not
    /// blank, `amount` a number above 0. Other fields are ignored. The error is a message for
    /// the client.
    pub fn parse(body: &[u8]) -> Result<NewOrder, &'static str> {
        let Ok(Value::Object(mut fields)) = serde_json::from_slice(body) else {
            return Err(r#"the body must be a JSON object such as {"item": "book", "amount": 12}"#);
        };
        let item = match fields.remove("item") {
            Some(Value::String(item)) if !item.trim().is_empty() => item,
            _ => return Err("item must be a non-empty string"),
        };
        let amount = match fields.remove("amount") {
            Some(Value::Number(n)) if n.as_f64().is_some_and(|a| a > 0.0) => n,
            _ => return Err("amount must be a positive number"),
        };
        Ok(NewOrder { item, amount })
    }

    /// The order with its id, pending: `{"id":"<id>","item":...,"amount":...,"status":"pending"}`.
    /// Written by hand to keep the fields in this order (serde_json's map sorts them).
    pub fn to_json(&self, id: &str) -> String {
        format!(
            r#"{{"id":{},"item":{},"amount":{},"status":"pending"}}"#,
            json_string(id),
            json_string(&self.item),
            self.amount
        )
    }
}
