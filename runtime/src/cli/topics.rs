//! The commands for topics and dead letters: `topics`, `publish`, `dead-letters`.

use std::process::ExitCode;

use lexopt::prelude::*;
use serde::Deserialize;
use serde_json::Value;

use super::admin::{no_options, one_call, read};
use super::remote::{Syntax, json_help, parse, read_file, server_help};
use super::{Error, client, table};

pub const TOPICS_HELP: &str = concat!(
    "\
List the topics and, per subscriber, the messages waiting (DEPTH), being delivered (IN
FLIGHT) and given up on (DEAD).

Usage: wisp topics [OPTIONS]

Options:
",
    json_help!(),
    server_help!()
);

pub const PUBLISH_HELP: &str = concat!(
    "\
Publish a message to a topic, as a function that may publish to it would: every subscriber
gets it. The message is on disk when the command returns.

Usage: wisp publish [OPTIONS] <TOPIC> <DATA>

Arguments:
  <TOPIC>  The topic
  <DATA>   The message, or - to read it from stdin

Options:
",
    json_help!(),
    server_help!()
);

pub const DEAD_LETTERS_HELP: &str = concat!(
    "\
List the messages that used up their attempts, or put them back in their queues (--replay),
or forget them (--purge). Without --function, --topic or --source: all of them.

Usage: wisp dead-letters [OPTIONS]

Options:
      --function <NAME>      Only the dead letters of this function
      --topic <TOPIC>        Only those of this topic (--source topic:TOPIC)
      --source <SOURCE>      Only those of this source: topic:NAME, kv:STORE:PREFIX or async
      --id <ID>              Only the message with this id
      --replay               Deliver them again, each with its attempts reset
      --purge                Forget them
",
    json_help!(),
    server_help!()
);

#[derive(Deserialize)]
struct TopicList {
    topics: Vec<TopicInfo>,
}

#[derive(Deserialize)]
struct TopicInfo {
    name: String,
    subscribers: Vec<SubscriberInfo>,
}

#[derive(Deserialize)]
struct SubscriberInfo {
    function: String,
    #[serde(default)]
    subscribed: bool,
    depth: u64,
    in_flight: u64,
    dead_letters: u64,
    #[serde(default)]
    delivered: u64,
}

pub fn topics(parser: lexopt::Parser) -> Result<ExitCode, Error> {
    let syntax = Syntax::admin("topics", TOPICS_HELP, &[]);
    let Some((common, _)) = parse(parser, &syntax, no_options)? else {
        return Ok(ExitCode::SUCCESS);
    };
    one_call(&common, "GET", "/_wisp/topics", None, |_, text| {
        let list: TopicList = read(text)?;
        let mut rows = Vec::new();
        for topic in &list.topics {
            for s in &topic.subscribers {
                let function = match s.subscribed {
                    true => s.function.clone(),
                    false => format!("{} (unsubscribed)", s.function),
                };
                rows.push(vec![
                    topic.name.clone(),
                    function,
                    s.depth.to_string(),
                    s.in_flight.to_string(),
                    s.dead_letters.to_string(),
                    s.delivered.to_string(),
                ]);
            }
        }
        Ok(table::render(
            &[
                "TOPIC",
                "SUBSCRIBER",
                "DEPTH",
                "IN FLIGHT",
                "DEAD",
                "DELIVERED",
            ],
            &rows,
        ))
    })
}

pub fn publish(parser: lexopt::Parser) -> Result<ExitCode, Error> {
    let syntax = Syntax::admin("publish", PUBLISH_HELP, &["TOPIC", "DATA"]);
    let Some((common, args)) = parse(parser, &syntax, no_options)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let data = match args[1].as_str() {
        "-" => read_file("-")?,
        text => text.as_bytes().to_vec(),
    };
    let target = format!("/_wisp/topics/{}", client::encode(&args[0], false));
    let body = Some(("application/octet-stream", data.as_slice()));
    one_call(&common, "POST", &target, body, |_, text| {
        let answer: Value = read(text)?;
        let n = answer["subscribers"].as_u64().unwrap_or(0);
        let id = answer["id"].as_str().unwrap_or("?");
        Ok(match n {
            0 => format!("published {id} to {}: no subscribers, dropped\n", args[0]),
            1 => format!("published {id} to {} (1 subscriber)\n", args[0]),
            n => format!("published {id} to {} ({n} subscribers)\n", args[0]),
        })
    })
}

#[derive(Deserialize)]
struct DeadLetterList {
    dead_letters: Vec<DeadLetterInfo>,
}

#[derive(Deserialize)]
struct DeadLetterInfo {
    function: String,
    source: String,
    id: String,
    attempts: u64,
    error: String,
    dead_at: u64,
    size: u64,
}

pub fn dead_letters(parser: lexopt::Parser) -> Result<ExitCode, Error> {
    let syntax = Syntax::admin("dead-letters", DEAD_LETTERS_HELP, &[]);
    let mut query = Vec::new();
    let (mut replay, mut purge) = (false, false);
    let parsed = parse(parser, &syntax, |name, parser| {
        match name {
            "function" | "source" | "id" => {
                let value = parser.value()?.string()?;
                query.push(format!("{name}={}", client::encode(&value, true)));
            }
            "topic" => {
                let topic = parser.value()?.string()?;
                query.push(format!(
                    "source={}",
                    client::encode(&format!("topic:{topic}"), true)
                ));
            }
            "replay" => replay = true,
            "purge" => purge = true,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    let Some((common, _)) = parsed else {
        return Ok(ExitCode::SUCCESS);
    };
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    let (method, target) = match (replay, purge) {
        (true, true) => return Err(Error("give --replay or --purge, not both".into())),
        (true, false) => ("POST", format!("/_wisp/dead-letters/replay{query}")),
        (false, true) => ("DELETE", format!("/_wisp/dead-letters{query}")),
        (false, false) => ("GET", format!("/_wisp/dead-letters{query}")),
    };
    one_call(&common, method, &target, None, |_, text| {
        if replay || purge {
            let answer: Value = read(text)?;
            let (verb, key) = if replay {
                ("replayed", "replayed")
            } else {
                ("purged", "purged")
            };
            let n = answer[key].as_u64().unwrap_or(0);
            return Ok(format!(
                "{verb} {n} dead letter{}\n",
                if n == 1 { "" } else { "s" }
            ));
        }
        let list: DeadLetterList = read(text)?;
        let rows: Vec<Vec<String>> = list
            .dead_letters
            .iter()
            .map(|d| {
                vec![
                    d.function.clone(),
                    d.source.clone(),
                    d.id.clone(),
                    d.attempts.to_string(),
                    table::size(d.size),
                    table::date(d.dead_at / 1000),
                    d.error.clone(),
                ]
            })
            .collect();
        Ok(table::render(
            &[
                "FUNCTION", "SOURCE", "ID", "ATTEMPTS", "SIZE", "DIED", "ERROR",
            ],
            &rows,
        ))
    })
}
