//! `GET /api/date`: the current time as `{ "now": <milliseconds since the Unix epoch> }`.

use std::time::{SystemTime, UNIX_EPOCH};
use wisp_sdk::Response;

fn main() {
    wisp_sdk::serve(|_| {
        // A clock before 1970 is a misconfigured device, not a reason to fail the request.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        Response::json(200, format!("{{ \"now\": {now} }}"))
    })
}
