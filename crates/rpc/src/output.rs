//! The output side of a connection: frames are written inline by the sender when the socket is
//! idle, and handed to the writer task only when the socket cannot take them at once.

use bytes::{Buf, BytesMut};
use jobcenter_wire::encode_frame;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;

/// The boxed write half of the stream.
pub(crate) type WriteIo = Pin<Box<dyn AsyncWrite + Send>>;

/// What a sender should do after appending a frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Written (or left for whoever is already responsible): nothing to do.
    Done,
    /// The socket could not take everything: wake the writer task.
    WakeWriter,
    /// The write failed: the connection is broken.
    Failed(String),
}

/// Shared output state, always used under a mutex.
///
/// Invariant: if `buf` is non-empty or `unflushed` is set, then either `writer_active` (the
/// writer task has been woken and will drain) or `corked` (the reader will drain on uncork).
pub(crate) struct Output {
    io: Option<WriteIo>,
    buf: BytesMut,
    unflushed: bool,
    /// The writer task owns draining until it reports the buffer empty and flushed.
    writer_active: bool,
    /// The reader is processing a batch of frames: collect output, write it at uncork.
    corked: bool,
    /// Graceful close requested: no new frames; the writer shuts down once drained.
    pub(crate) closing: bool,
    /// Aborted, failed or finished: nothing is written any more.
    pub(crate) dead: bool,
}

impl Output {
    pub(crate) fn new(io: WriteIo) -> Self {
        Self {
            io: Some(io),
            buf: BytesMut::with_capacity(16 * 1024),
            unflushed: false,
            writer_active: false,
            corked: false,
            closing: false,
            dead: false,
        }
    }

    /// Whether new frames are refused.
    pub(crate) fn refuses(&self) -> bool {
        self.closing || self.dead
    }

    /// Append a frame and, if nobody else is responsible for the socket, try to write it now.
    pub(crate) fn push(&mut self, payload: &[u8]) -> Pushed {
        encode_frame(payload, &mut self.buf);
        if self.writer_active || self.corked {
            return Pushed::Done;
        }
        self.drain_inline()
    }

    /// Start collecting output without writing it.
    pub(crate) fn cork(&mut self) {
        self.corked = true;
    }

    /// Stop collecting; write what was collected.
    pub(crate) fn uncork(&mut self) -> Pushed {
        self.corked = false;
        if self.writer_active || (self.buf.is_empty() && !self.unflushed) || self.dead {
            return Pushed::Done;
        }
        self.drain_inline()
    }

    /// Try to drain without a real waker; on `Pending` the writer task takes over.
    fn drain_inline(&mut self) -> Pushed {
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        match self.poll_drain(&mut cx) {
            Poll::Ready(Ok(())) => Pushed::Done,
            Poll::Ready(Err(e)) => {
                self.dead = true;
                Pushed::Failed(e.to_string())
            }
            Poll::Pending => {
                self.writer_active = true;
                Pushed::WakeWriter
            }
        }
    }

    /// Write and flush everything buffered.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.dead {
            self.buf.clear();
            return Poll::Ready(Ok(()));
        }
        let Some(io) = self.io.as_mut() else {
            return Poll::Ready(Err(io::Error::from(io::ErrorKind::NotConnected)));
        };
        while !self.buf.is_empty() {
            match io.as_mut().poll_write(cx, &self.buf) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero)))
                }
                Poll::Ready(Ok(n)) => {
                    self.buf.advance(n);
                    self.unflushed = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        self.buf.clear();
        if self.unflushed {
            match io.as_mut().poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// The writer task's drain: returns `Ready(Ok(closing))` once everything is written.
    pub(crate) fn poll_writer(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        match self.poll_drain(cx) {
            Poll::Ready(Ok(())) => {
                self.writer_active = false;
                Poll::Ready(Ok(self.closing))
            }
            Poll::Ready(Err(e)) => {
                self.dead = true;
                Poll::Ready(Err(e))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Request a graceful close; the writer task (to be woken by the caller) finishes it.
    pub(crate) fn begin_close(&mut self) {
        self.closing = true;
        self.writer_active = true;
    }

    /// Stop writing for good and hand out the stream (to shut it down or drop it).
    pub(crate) fn finish(&mut self) -> Option<WriteIo> {
        self.dead = true;
        self.buf.clear();
        self.io.take()
    }
}
