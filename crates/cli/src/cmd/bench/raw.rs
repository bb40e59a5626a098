//! The raw baseline: a plain tokio TCP ping-pong of netstring frames over loopback.
//!
//! No JSON-RPC, no sessions, no engine: an echo server reads a frame and writes it back,
//! clients keep a window of frames outstanding. Whatever the real stack achieves is compared
//! with this figure, run with the same connections, window and frame size.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

use super::report::Samples;

/// Largest frame the baseline accepts (it only echoes its own frames).
const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Read one netstring frame into `buf`. `Ok(false)` at a clean end of stream.
pub async fn read_frame<R>(r: &mut R, buf: &mut Vec<u8>) -> std::io::Result<bool>
where
    R: AsyncBufReadExt + Unpin,
{
    let mut head = Vec::with_capacity(12);
    let n = r.read_until(b':', &mut head).await?;
    if n == 0 {
        return Ok(false);
    }
    if head.last() != Some(&b':') {
        return Err(bad("truncated netstring length"));
    }
    head.pop();
    let len: usize = std::str::from_utf8(&head)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|l| *l <= MAX_FRAME)
        .ok_or_else(|| bad("bad netstring length"))?;
    buf.resize(len + 1, 0);
    r.read_exact(buf).await?;
    if buf.pop() != Some(b',') {
        return Err(bad("netstring without trailing comma"));
    }
    Ok(true)
}

/// Write one netstring frame (buffered; the caller flushes).
pub async fn write_frame<W>(w: &mut W, payload: &[u8]) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    w.write_all(format!("{}:", payload.len()).as_bytes())
        .await?;
    w.write_all(payload).await?;
    w.write_all(b",").await
}

fn bad(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string())
}

/// Echo frames back; flush only when no further input is already buffered.
async fn echo(stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (r, w) = stream.into_split();
    let mut r = BufReader::with_capacity(64 * 1024, r);
    let mut w = BufWriter::with_capacity(64 * 1024, w);
    let mut buf = Vec::new();
    while read_frame(&mut r, &mut buf).await? {
        write_frame(&mut w, &buf).await?;
        if r.buffer().is_empty() {
            w.flush().await?;
        }
    }
    w.flush().await
}

/// One client connection: `count` round trips with up to `window` frames outstanding.
async fn client(
    addr: SocketAddr,
    count: u64,
    window: u64,
    frame: Vec<u8>,
) -> std::io::Result<Samples> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (r, w) = stream.into_split();
    let mut r = BufReader::with_capacity(64 * 1024, r);
    let mut w = BufWriter::with_capacity(64 * 1024, w);
    let mut samples = Samples::new();
    let mut sent_at = VecDeque::new();
    let (mut sent, mut received) = (0u64, 0u64);
    let mut buf = Vec::new();
    while received < count {
        while sent < count && sent - received < window {
            write_frame(&mut w, &frame).await?;
            sent_at.push_back(Instant::now());
            sent += 1;
        }
        w.flush().await?;
        if !read_frame(&mut r, &mut buf).await? {
            return Err(bad("echo server closed the connection"));
        }
        received += 1;
        let t0 = sent_at.pop_front().ok_or_else(|| bad("unexpected frame"))?;
        if buf != frame {
            samples.error("raw: echoed frame differs".to_string());
        } else {
            samples.record(t0.elapsed());
        }
    }
    Ok(samples)
}

/// Run the baseline: `conns` connections sharing `total` round trips, `window` outstanding
/// per connection, frames of `frame_len` bytes. Returns the merged samples and the seconds.
pub async fn run(
    conns: usize,
    total: u64,
    window: u64,
    frame_len: usize,
) -> std::io::Result<(Samples, f64)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Err(e) = echo(s).await {
                    tracing::debug!("raw echo: {e}");
                }
            });
        }
    });
    let frame: Vec<u8> = {
        // Looks like a JSON-RPC request of the same size, but nobody parses it.
        let mut f = b"{\"jsonrpc\":\"2.0\",\"method\":\"raw\",\"id\":1,\"params\":\"".to_vec();
        while f.len() + 2 < frame_len {
            f.push(b'x');
        }
        f.extend_from_slice(b"\"}");
        f
    };
    let conns = conns.max(1);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..conns {
        let share = super::share(total, conns, i);
        tasks.push(tokio::spawn(client(
            addr,
            share,
            window.max(1),
            frame.clone(),
        )));
    }
    let mut all = Samples::new();
    for t in tasks {
        match t.await {
            Ok(Ok(s)) => all.merge(s),
            Ok(Err(e)) => all.error(format!("raw client: {e}")),
            Err(e) => all.error(format!("raw client task: {e}")),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    server.abort();
    Ok((all, secs))
}
