//! A connection that holds one of the server's connection slots for as long as it lives, and
//! the answer to a connection past the cap.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::TcpStream,
    sync::OwnedSemaphorePermit,
};

/// A TCP stream and its slot. hyper hands the stream to the WebSocket on an upgrade, so the
/// slot is given back when the WebSocket closes, not when the handshake ends.
#[derive(Debug)]
pub(super) struct Counted {
    io: TcpStream,
    _slot: OwnedSemaphorePermit,
}

impl Counted {
    pub(super) fn new(io: TcpStream, slot: OwnedSemaphorePermit) -> Self {
        Self { io, _slot: slot }
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// What a connection past the cap gets, whatever it asked: the request is not read.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 81\r\n\
\r\n\
{\"error\":{\"code\":\"unavailable\",\"message\":\"this node is at its connection limit\"}}";

/// Answers `503` and closes, within a second: a client that does not read cannot hold it.
pub(super) async fn refuse(mut io: TcpStream) {
    let answer = async {
        io.write_all(REFUSAL).await?;
        io.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), answer).await;
}

#[cfg(test)]
mod tests {
    /// The refusal's declared length is its body's.
    #[test]
    fn refusal_is_well_formed() {
        let text = std::str::from_utf8(super::REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        serde_json::from_str::<serde_json::Value>(body).unwrap();
    }
}
