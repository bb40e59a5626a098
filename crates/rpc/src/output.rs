//! The output side of a connection: frames are written inline by the sender when the socket is
//! idle, and handed to the writer task only when the socket cannot take them at once.

use bytes::{Buf, BytesMut};
use jobcenter_wire::encode_frame;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
// tokio's clock: the same as std's in a running program, virtual in tests that pause time.
use tokio::io::AsyncWrite;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// A drained buffer larger than this gives its memory back.
const SHRINK_ABOVE: usize = 256 * 1024;

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
    /// More output is queued than the hard limit allows: the peer does not read.
    Overflow(String),
}

/// Shared output state, always used under a mutex.
///
/// Invariant: if `buf` is non-empty or `unflushed` is set, then either `writer_active` (the
/// writer task has been woken and will drain) or `corked` (the burst holding it
/// drains it when it ends).
pub(crate) struct Output {
    io: Option<WriteIo>,
    buf: BytesMut,
    unflushed: bool,
    /// The writer task owns draining until it reports the buffer empty and flushed.
    writer_active: bool,
    /// A burst (a reader handling one read's frames, on some thread) holds the output back:
    /// frames are collected and written when that burst ends ([`Output::uncork`]). At most
    /// one burst holds it; others that queue meanwhile leave their frames to that one.
    corked: bool,
    /// Graceful close requested: no new frames; the writer shuts down once drained.
    pub(crate) closing: bool,
    /// Aborted, failed or finished: nothing is written any more.
    pub(crate) dead: bool,
    /// Queued bytes above which the connection reports congestion.
    congest_at: usize,
    /// Queued bytes above which the reader pauses (back-pressure); four times this closes.
    max_output: usize,
    /// The congestion signal (see [`crate::Peer::congestion`]).
    congested: watch::Sender<bool>,
    /// Set while more than `max_output` bytes are queued; cleared (waking `space`) at half.
    over: bool,
    /// `over`, readable without the lock (the reader checks it for every frame).
    over_flag: Arc<AtomicBool>,
    /// Woken when the queue went back below half of `max_output`.
    space: Arc<Notify>,
    /// When bytes last left the buffer, or it was last empty.
    last_progress: Instant,
}

/// The output limits of one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutputLimits {
    /// Queued bytes that make the connection congested.
    pub(crate) congest_at: usize,
    /// Queued bytes that pause the reader; four times this closes the connection.
    pub(crate) max_output: usize,
}

impl Output {
    pub(crate) fn new(
        io: WriteIo,
        limits: OutputLimits,
        congested: watch::Sender<bool>,
        space: Arc<Notify>,
        over_flag: Arc<AtomicBool>,
    ) -> Self {
        Self {
            io: Some(io),
            // Allocated by the first frame that cannot be written at once.
            buf: BytesMut::new(),
            unflushed: false,
            writer_active: false,
            corked: false,
            closing: false,
            dead: false,
            congest_at: limits.congest_at,
            max_output: limits.max_output,
            congested,
            over: false,
            over_flag,
            space,
            last_progress: Instant::now(),
        }
    }

    /// Bytes queued and not yet handed to the socket.
    pub(crate) fn backlog(&self) -> usize {
        self.buf.len()
    }

    /// How long ago bytes last left a non-empty buffer (zero when nothing is queued).
    pub(crate) fn stalled_for(&self) -> std::time::Duration {
        if self.buf.is_empty() && !self.unflushed {
            std::time::Duration::ZERO
        } else {
            self.last_progress.elapsed()
        }
    }

    /// Update the congestion signal and the pause flag after the backlog changed; an error
    /// when the backlog passed the hard limit (four times `max_output`).
    fn note_backlog(&mut self) -> Result<(), String> {
        let b = self.buf.len();
        if b > self.max_output.saturating_mul(4) {
            return Err(format!(
                "{b} bytes of output queued (limit {}): the peer does not read",
                self.max_output.saturating_mul(4)
            ));
        }
        let congested = *self.congested.borrow();
        if !congested && b > self.congest_at {
            self.congested.send_replace(true);
        } else if congested && b <= self.congest_at / 2 {
            self.congested.send_replace(false);
        }
        if !self.over && b > self.max_output {
            self.over = true;
            self.over_flag.store(true, Ordering::Release);
        } else if self.over && b <= self.max_output / 2 {
            self.over = false;
            self.over_flag.store(false, Ordering::Release);
            self.space.notify_waiters();
        }
        Ok(())
    }

    /// Whether new frames are refused.
    pub(crate) fn refuses(&self) -> bool {
        self.closing || self.dead
    }

    /// Append a frame and, if nobody else is responsible for the socket, try to write it now.
    pub(crate) fn push(&mut self, payload: &[u8]) -> Pushed {
        if self.buf.is_empty() {
            self.last_progress = Instant::now();
        }
        encode_frame(payload, &mut self.buf);
        let pushed = if self.writer_active || self.corked {
            Pushed::Done
        } else {
            self.drain_inline()
        };
        if !matches!(pushed, Pushed::Failed(_)) {
            if let Err(e) = self.note_backlog() {
                self.dead = true;
                self.buf = BytesMut::new();
                return Pushed::Overflow(e);
            }
        }
        pushed
    }

    /// Start collecting output without writing it, unless a burst holds it already.
    /// `true`: the caller holds it now and must [`Output::uncork`] it.
    pub(crate) fn cork(&mut self) -> bool {
        !std::mem::replace(&mut self.corked, true)
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
        let before = self.buf.len();
        let r = self.poll_write_all(cx);
        if self.buf.len() < before {
            self.last_progress = Instant::now();
            // Cannot fail: the backlog only shrank.
            let _ = self.note_backlog();
        }
        r
    }

    fn poll_write_all(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
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
        if self.buf.capacity() > SHRINK_ABOVE {
            self.buf = BytesMut::new();
        }
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
        self.buf = BytesMut::new();
        self.io.take()
    }
}
