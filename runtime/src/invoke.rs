//! The one invocation path: every trigger (an HTTP request, a topic message, a timer tick, a
//! key-value change, an asynchronous call) hands it an [`Invocation`] and gets back how it
//! ended. In between, the same steps for all:
//!
//! 1. run it on the engine, on the calling executor thread, under the function's limits, with
//!    its stores, the topics it may publish to, and its secrets in its environment;
//! 2. read its output: an HTTP response, or for an event only whether it failed;
//! 3. if it succeeded, commit what it published together with what the trigger asks
//!    ([`Settle`]: the acknowledgement of the message it handled, say), in one transaction;
//!    if it failed, drop what it published and commit only the trigger's ops (a retry);
//! 4. make its writes and that commit durable (one group commit) before answering;
//! 5. log and count it.

use std::sync::Arc;
use std::time::Instant;

use crate::deployed::Function;
use crate::engine::{Busy, Invocation, Limit, Outcome, Scheduler, Stop};
use crate::http::Response;
use crate::store::queues::QueueOp;
use crate::store::{Backend, KvError};
use crate::topics::Topics;
use crate::wagi;

/// Runs invocations and makes their effects durable.
pub struct Invoker {
    scheduler: Scheduler,
    backend: Arc<dyn Backend>,
    topics: Arc<Topics>,
}

/// How a function's output is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// An HTTP response: stdout must hold a CGI response.
    Response,
    /// An event: output is optional; only a CGI `Status:` of 400 or more fails it.
    Event,
}

/// How an invocation ended.
#[derive(Debug)]
pub struct Invoked {
    /// The function's response, or the server's account of its failure.
    pub response: Response,
    /// Why it failed, if it did: then nothing it published was committed.
    pub failure: Option<String>,
}

/// What a trigger commits with an invocation's outcome, given how it ended. Asked again if
/// the commit of a successful invocation is refused because what it published did not fit.
pub type Settle<'a> = Box<dyn FnMut(&Invoked) -> Vec<QueueOp> + Send + 'a>;

impl Invoker {
    pub fn new(scheduler: Scheduler, backend: Arc<dyn Backend>, topics: Arc<Topics>) -> Invoker {
        Invoker {
            scheduler,
            backend,
            topics,
        }
    }

    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// Runs `invocation` of `function` to its end and settles it; `Busy` if too many wait to
    /// run already (nothing ran, nothing is committed).
    pub async fn invoke(
        &self,
        function: &Function,
        mut invocation: Invocation,
        output: Output,
        mut settle: Option<Settle<'_>>,
    ) -> Result<Invoked, Busy> {
        invocation.kv = function.kv.clone();
        invocation.topics = function.admit.clone();
        add_secrets(function, &mut invocation.env);
        invocation.outbound = function.outbound.clone();
        let started = Instant::now();
        let run = self.scheduler.run(function.module.clone(), invocation);
        let mut outcome = run.await?;
        let (fuel, memory) = (outcome.fuel_used, outcome.memory_bytes);
        let kv_wrote = outcome.kv_wrote;
        let published = std::mem::take(&mut outcome.published);
        let mut invoked = read(function, outcome, output);
        let mut ops = match invoked.failure {
            None => self.topics.pushes(&published),
            Some(_) => Vec::new(),
        };
        if let Some(settle) = settle.as_mut() {
            ops.extend(settle(&invoked));
        }
        let pushes = invoked.failure.is_none() && !published.is_empty();
        let durable = kv_wrote || pushes;
        if durable || !ops.is_empty() {
            // Awaited, not blocked on: the commits are made on the backend's own thread.
            let committed = match self.backend.apply(ops).get().await {
                Ok(()) if durable => self.backend.sync().get().await,
                other => other,
            };
            if let Err(e) = committed {
                let why = format!("wisp: its writes could not be made durable: {e}");
                function.stats.log.push(function.name(), &why);
                let text = format!("function `{}`: {why}\n", function.name());
                // Redis away, or a queue another device filled after this one admitted the
                // messages: nothing was committed, and a later try may go through.
                let response = match e {
                    KvError::QueueFull | KvError::Unavailable(_) => {
                        Response::text(503, text).header("Retry-After", "1")
                    }
                    _ => Response::text(500, text),
                };
                invoked = Invoked {
                    response,
                    failure: Some(why),
                };
                // The commit held the trigger's settlement of a success: settle a failure
                // instead (a retry), without what was published.
                if let (KvError::QueueFull, true, Some(settle)) = (&e, pushes, settle.as_mut()) {
                    let ops = settle(&invoked);
                    if let Err(e) = self.backend.apply(ops).get().await {
                        let why = format!("wisp: its failure could not be recorded: {e}");
                        function.stats.log.push(function.name(), &why);
                    }
                }
            }
        }
        // Only now do the messages give back the room they held in their queues: committed,
        // they are counted there.
        drop(published);
        let status = invoked.response.status;
        function
            .stats
            .record(status, started.elapsed(), fuel, memory);
        Ok(invoked)
    }
}

/// Puts the function's secrets into the environment, here rather than where triggers build it:
/// an asynchronous call is stored with its environment, and a secret must not be. First,
/// because the guest sees the first of a name: a call stored before a secret was set may
/// carry an `env` entry of its name, and the secret wins. No secret takes a name the host
/// sets: the registry refuses them.
fn add_secrets(function: &Function, env: &mut Vec<String>) {
    if !function.secrets.is_empty() {
        env.splice(0..0, function.secrets.iter().cloned());
    }
}

/// Reads an outcome as `output` says, logging the guest's stderr and any failure.
fn read(function: &Function, outcome: Outcome, output: Output) -> Invoked {
    let name = function.name();
    let log = &function.stats.log;
    log.guest_output(name, &outcome.stderr);
    let (status, why) = match outcome.result {
        Ok(0) => match (wagi::response(outcome.stdout), output) {
            (Ok(response), _) => {
                let failure =
                    (response.status >= 400).then(|| format!("answered {}", response.status));
                return Invoked { response, failure };
            }
            (Err(_), Output::Event) => {
                return Invoked {
                    response: Response::new(204),
                    failure: None,
                };
            }
            (Err(why), Output::Response) => (500, format!("returned a malformed response: {why}")),
        },
        Ok(code) => (500, format!("exited with status {code}")),
        Err(Stop::Limit(limit @ Limit::Timeout(_))) => (504, format!("stopped: {limit}")),
        Err(stop) => (500, format!("stopped: {stop}")),
    };
    log.push(name, &format!("wisp: {why}"));
    Invoked {
        response: Response::text(status, format!("function `{name}` {why}\n")),
        failure: Some(why),
    }
}
