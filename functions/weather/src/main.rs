//! `GET /api/weather`: weather for a few cities, as JSON.
//!
//! Without a query it answers an array of every city; `?city=<name>` (case-insensitive) answers
//! that city's object, or a 404 if there is none.
//!
//! With a `WEATHER_URL` setting (`env`) whose origin the function's `allowed_hosts` lists, it
//! asks that service instead (`WEATHER_URL?city=<name>` for one city) and answers what it
//! answers; when the service cannot be reached, is not allowed or fails, it falls back to the
//! built-in data. `X-Weather-Source` says which (`upstream` or `built-in`).

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
    let city = req.query("city");
    if let Ok(base) = std::env::var("WEATHER_URL")
        && let Some(answer) = upstream(&base, city.as_deref())
    {
        return answer.header("X-Weather-Source", "upstream");
    }
    built_in(city).header("X-Weather-Source", "built-in")
}

/// The service's answer, if it gave one that is not a server error.
fn upstream(base: &str, city: Option<&str>) -> Option<Response> {
    let url = match city {
        Some(city) => format!("{base}?city={}", percent_encode(city)),
        None => base.to_string(),
    };
    let answer = wisp_sdk::http::Request::get(&url)
        .header("Accept", "application/json")
        .send();
    match answer {
        Ok(r) if r.status() < 500 => Some(Response::json(r.status(), r.text())),
        Ok(r) => {
            wisp_sdk::log(format_args!("weather service answered {}", r.status()));
            None
        }
        Err(e) => {
            wisp_sdk::log(format_args!("weather service: {e}"));
            None
        }
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn built_in(city: Option<String>) -> Response {
    let mut body = String::new();
    match city {
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
