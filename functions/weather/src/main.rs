//! `GET /api/weather`: fixed weather data for a few cities, as JSON.
//!
//! Without a query it answers an array of every city; `?city=<name>` (case-insensitive) answers
//! that city's object, or a 404 if there is none.

use std::fmt::Write as _;
use wisp_sdk::{Request, Response, json_string};

struct Weather {
    city: &'static str,
    temperature_c: f32,
    condition: &'static str,
    humidity: u8,
    wind_kph: u16,
}

const WEATHER: &[Weather] = &[
    Weather {
        city: "Seattle",
        temperature_c: 12.5,
        condition: "Cloudy",
        humidity: 81,
        wind_kph: 14,
    },
    Weather {
        city: "Lisbon",
        temperature_c: 21.5,
        condition: "Sunny",
        humidity: 58,
        wind_kph: 18,
    },
    Weather {
        city: "Tokyo",
        temperature_c: 17.5,
        condition: "Rain",
        humidity: 88,
        wind_kph: 9,
    },
    Weather {
        city: "Nairobi",
        temperature_c: 24.5,
        condition: "Clear",
        humidity: 45,
        wind_kph: 11,
    },
];

fn to_json(w: &Weather, out: &mut String) {
    let _ = write!(
        out,
        r#"{{"city":{},"temperature_c":{:.1},"condition":{},"humidity":{},"wind_kph":{}}}"#,
        json_string(w.city),
        w.temperature_c,
        json_string(w.condition),
        w.humidity,
        w.wind_kph,
    );
}

fn handle(req: Request) -> Response {
    let mut body = String::new();
    match req.query("city") {
        Some(city) => match WEATHER.iter().find(|w| w.city.eq_ignore_ascii_case(&city)) {
            Some(w) => to_json(w, &mut body),
            None => {
                let error = json_string(&format!("no weather for {city}"));
                return Response::json(404, format!(r#"{{"error":{error}}}"#));
            }
        },
        None => {
            body.push('[');
            for (i, w) in WEATHER.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                to_json(w, &mut body);
            }
            body.push(']');
        }
    }
    Response::json(200, body)
}

fn main() {
    wisp_sdk::serve(handle)
}
