//! What a connection reads and writes: a plain TCP socket, or TLS over one.
//!
//! An enum rather than a type parameter: the connection code is compiled once, and a plain
//! connection pays one predictable branch per read or write, with no allocation and no
//! indirection (the TLS session, a few KiB, is boxed so that it costs plain connections nothing).

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Shutdown, TcpStream};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_rustls::TlsAcceptor;
use futures_rustls::server::TlsStream;
use smol::future;
use smol::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use smol::{Async, Timer};

pub(super) enum Stream {
    Plain(Async<TcpStream>),
    Tls(Box<TlsStream<Async<TcpStream>>>),
}

impl Stream {
    /// Runs the server side of a TLS handshake on `tcp`. None when it fails, or when it has not
    /// finished within `timeout` (a client that connects and never says hello holds its
    /// connection slot that long at most).
    pub async fn handshake(
        tcp: Async<TcpStream>,
        config: Arc<rustls::ServerConfig>,
        timeout: Duration,
    ) -> Option<Stream> {
        let accept = async {
            let tls = TlsAcceptor::from(config).accept(tcp).await.ok()?;
            Some(Stream::Tls(Box::new(tls)))
        };
        future::or(accept, async {
            Timer::after(timeout).await;
            None
        })
        .await
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// The socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s.get_ref(),
            Stream::Tls(s) => s.get_ref().0.get_ref(),
        }
    }

    /// Sends what TLS still holds of what was written (a plain socket holds nothing back).
    pub async fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Ok(()),
            Stream::Tls(s) => s.flush().await,
        }
    }

    /// Stops sending: over TLS, a `close_notify` first (given at most `linger` to go out), so
    /// that the client can tell the end of the stream from a cut.
    pub async fn shutdown_write(&mut self, linger: Duration) {
        if let Stream::Tls(s) = self {
            let notify = async {
                let _ = s.close().await;
            };
            future::or(notify, async {
                Timer::after(linger).await;
            })
            .await;
        }
        let _ = self.tcp().shutdown(Shutdown::Write);
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read_vectored(cx, bufs),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_close(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}
