//! Memory limits of a real `jobcenter serve` process, measured as its resident set size
//! (`/proc/PID/status`) while peers abuse it: frames announced but never sent, and answers
//! never read. The only good outcome is a bounded RSS.

mod cli_support;

use std::time::Duration;

use cli_support::{examples_dir, Serve, CLIENT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The server's resident set size in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The highest RSS seen over `span` (sampled every 50 ms): what the server reserved for what
/// it was sent, whenever it got around to reading it.
async fn peak_rss_kib(pid: u32, span: Duration) -> u64 {
    let mut peak = 0;
    let start = tokio::time::Instant::now();
    while start.elapsed() < span {
        peak = peak.max(rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    peak
}

fn frame(payload: &str) -> Vec<u8> {
    format!("{}:{},", payload.len(), payload).into_bytes()
}

/// Connect and read the greeting (so the server has set the connection up).
async fn greeted(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut greeting = [0u8; 83];
    s.read_exact(&mut greeting).await.expect("greeting");
    assert!(greeting.starts_with(b"79:{"), "not a greeting");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_a_declared_frame_length_reserves_no_memory_before_the_bytes_arrive() {
    let serve = Serve::start_with(
        &[
            "--listen",
            "127.0.0.1:0",
            "--max-connections-per-ip",
            "5000",
            "--handshake-timeout",
            "300",
        ],
        &[examples_dir()],
    )
    .await;
    let pid = serve.proc.pid();
    let before = rss_kib(pid);
    // 1,000 connections each announce a 999,999-byte frame and send one byte of it. A
    // server that reserves the declared length holds about 1 GB now. Twice: what the first
    // round held must be free for the second to reuse once its connections closed.
    let mut peaks = Vec::new();
    for round in 1..=2 {
        let mut conns = Vec::new();
        for _ in 0..1_000 {
            let mut s = greeted(serve.port).await;
            s.write_all(b"999999:{").await.expect("send header");
            conns.push(s);
        }
        let peak = peak_rss_kib(pid, Duration::from_secs(2)).await;
        let grown_mib = peak.saturating_sub(before) / 1024;
        eprintln!("round {round}: RSS before {before} KiB, peak with 1,000 half frames {peak} KiB (+{grown_mib} MiB)");
        assert!(
            grown_mib < 100,
            "1,000 announced frames made the server grow by {grown_mib} MiB"
        );
        peaks.push(peak);
        // The server closes them (a truncated frame) once it reads their end.
        drop(conns);
    }
    // A leak would add the whole first round (about 50 MiB) again.
    assert!(
        peaks[1] < peaks[0] + 25 * 1024,
        "the second round grew the server again ({} KiB after {} KiB): memory not released",
        peaks[1],
        peaks[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_a_client_that_never_reads_its_answers_is_bounded_then_closed() {
    let serve = Serve::start_with(
        &[
            "--listen",
            "127.0.0.1:0",
            "--max-output",
            "1048576",
            "--output-stall-timeout",
            "2",
        ],
        &[examples_dir()],
    )
    .await;
    let pid = serve.proc.pid();
    let mut s = greeted(serve.port).await;
    let (who, token) = CLIENT;
    let hello = format!(
        r#"{{"jsonrpc":"2.0","id":"h","method":"hello","params":{{"who":"{who}","method":"password","token":"{token}"}}}}"#
    );
    s.write_all(&frame(&hello)).await.expect("hello");
    let mut answer = [0u8; 256];
    let n = s.read(&mut answer).await.expect("hello answer");
    assert!(
        String::from_utf8_lossy(&answer[..n]).contains("true"),
        "login failed"
    );
    let before = rss_kib(pid);
    // 50,000 pings with 10 kB ids (500 MB of answers) that are never read.
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        let id = "i".repeat(10_000);
        let ping = frame(&format!(
            r#"{{"jsonrpc":"2.0","id":"{id}","method":"ping","params":{{}}}}"#
        ));
        let mut sent = 0usize;
        for _ in 0..50_000 {
            if wr.write_all(&ping).await.is_err() {
                break;
            }
            sent += 1;
        }
        sent
    });
    // The server stops reading, then closes the connection once its output has stalled for
    // 2 s. Until then the client's writes block; afterwards they fail.
    let peak = peak_rss_kib(pid, Duration::from_secs(3)).await;
    let sent = tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .expect("the server never closed the connection")
        .expect("writer");
    let grown_mib = peak.saturating_sub(before) / 1024;
    eprintln!("RSS before {before} KiB, peak {peak} KiB (+{grown_mib} MiB); {sent} pings sent");
    assert!(sent < 50_000, "all 50,000 pings were taken");
    assert!(
        grown_mib < 100,
        "unread answers made the server grow by {grown_mib} MiB"
    );
    // The connection was closed by the server: reading ends (after what it had queued).
    let mut sink = vec![0u8; 1 << 16];
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match rd.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection stayed open");
}
