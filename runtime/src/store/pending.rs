//! The answer to a store operation: ready at once, or later, when the commit that holds it is
//! done or the answer comes over the network.
//!
//! A backend commits writes on a thread of its own, and Redis answers reads and writes over
//! the network, so a caller waits for the answer. The executor threads that run guests must never block
//! on it: they await it ([`Pending::get`]), and the guest is suspended meanwhile. Callers on
//! threads where blocking is fine (the admin API, through `smol::unblock`; tests) use
//! [`Pending::wait`].

use std::future::Future;
use std::pin::Pin;

use smol::channel::{Receiver, Sender};

use super::KvError;

/// A result that is ready now or will be.
#[must_use = "an operation is done only once its answer comes"]
pub struct Pending<R>(State<R>);

enum State<R> {
    Ready(Result<R, KvError>),
    Waiting(Receiver<Result<R, KvError>>),
    /// Another pending answer, converted when it comes.
    Mapped(Box<dyn Convert<R>>),
}

/// A pending answer of some type and how to make an `R` of it.
trait Convert<R>: Send {
    fn now(self: Box<Self>) -> Result<Result<R, KvError>, Pending<R>>;
    fn wait(self: Box<Self>) -> Result<R, KvError>;
    fn get(self: Box<Self>) -> Pin<Box<dyn Future<Output = Result<R, KvError>> + Send>>;
}

struct Map<T, F> {
    inner: Pending<T>,
    f: F,
}

impl<T, R, F> Convert<R> for Map<T, F>
where
    T: Send + 'static,
    R: 'static,
    F: FnOnce(T) -> R + Send + 'static,
{
    fn now(self: Box<Self>) -> Result<Result<R, KvError>, Pending<R>> {
        let Map { inner, f } = *self;
        match inner.now() {
            Ok(result) => Ok(result.map(f)),
            Err(inner) => Err(inner.map(f)),
        }
    }

    fn wait(self: Box<Self>) -> Result<R, KvError> {
        self.inner.wait().map(self.f)
    }

    fn get(self: Box<Self>) -> Pin<Box<dyn Future<Output = Result<R, KvError>> + Send>> {
        Box::pin(async move { self.inner.get().await.map(self.f) })
    }
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

    /// The answer converted by `f` when it comes.
    pub fn map<S: 'static>(self, f: impl FnOnce(R) -> S + Send + 'static) -> Pending<S>
    where
        R: Send + 'static,
    {
        match self.0 {
            State::Ready(result) => Pending(State::Ready(result.map(f))),
            _ => Pending(State::Mapped(Box::new(Map { inner: self, f }))),
        }
    }

    /// The answer if it is here without waiting, else the pending answer back.
    pub fn now(self) -> Result<Result<R, KvError>, Pending<R>> {
        match self.0 {
            State::Ready(result) => Ok(result),
            State::Mapped(convert) => convert.now(),
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
            State::Mapped(convert) => convert.wait(),
        }
    }

    /// Waits for the answer without blocking the executor.
    pub async fn get(self) -> Result<R, KvError> {
        match self.0 {
            State::Ready(result) => result,
            State::Waiting(receiver) => receiver.recv().await.unwrap_or_else(|_| Err(stopped())),
            State::Mapped(convert) => convert.get().await,
        }
    }
}

fn stopped() -> KvError {
    KvError::Failed("the store stopped before it answered".into())
}
