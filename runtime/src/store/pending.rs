//! The answer to a write: ready at once, or later, when the commit that holds it is done.
//!
//! A backend commits writes on a thread of its own (or, for Redis, over the network), so a
//! write's caller waits for its answer. The executor threads that run guests must never block
//! on it: they await it ([`Pending::get`]), and the guest is suspended meanwhile. Callers on
//! threads where blocking is fine (the admin API, through `smol::unblock`; tests) use
//! [`Pending::wait`].

use smol::channel::{Receiver, Sender};

use super::KvError;

/// A result that is ready now or will be.
#[must_use = "a write is done only once its answer comes"]
pub struct Pending<R>(State<R>);

enum State<R> {
    Ready(Result<R, KvError>),
    Waiting(Receiver<Result<R, KvError>>),
}

/// Where the answer of a [`Pending`] is given.
pub struct Answer<R>(Sender<Result<R, KvError>>);

impl<R> Answer<R> {
    /// Gives the answer; nobody may be waiting any more, and then it goes nowhere.
    pub fn give(self, result: Result<R, KvError>) {
        let _ = self.0.try_send(result);
    }
}

impl<R> Pending<R> {
    pub fn ready(result: Result<R, KvError>) -> Pending<R> {
        Pending(State::Ready(result))
    }

    /// A pending answer, and where to give it.
    pub fn later() -> (Answer<R>, Pending<R>) {
        let (sender, receiver) = smol::channel::bounded(1);
        (Answer(sender), Pending(State::Waiting(receiver)))
    }

    /// The answer if it is here without waiting, else the pending answer back.
    pub fn now(self) -> Result<Result<R, KvError>, Pending<R>> {
        match self.0 {
            State::Ready(result) => Ok(result),
            State::Waiting(receiver) => match receiver.try_recv() {
                Ok(result) => Ok(result),
                Err(_) => Err(Pending(State::Waiting(receiver))),
            },
        }
    }

    /// Waits for the answer, blocking this thread.
    pub fn wait(self) -> Result<R, KvError> {
        match self.0 {
            State::Ready(result) => result,
            State::Waiting(receiver) => receiver.recv_blocking().unwrap_or_else(|_| Err(stopped())),
        }
    }

    /// Waits for the answer without blocking the executor.
    pub async fn get(self) -> Result<R, KvError> {
        match self.0 {
            State::Ready(result) => result,
            State::Waiting(receiver) => receiver.recv().await.unwrap_or_else(|_| Err(stopped())),
        }
    }
}

fn stopped() -> KvError {
    KvError::Failed("the store stopped before it answered".into())
}
