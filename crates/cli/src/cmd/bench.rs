//! `jobcenter bench`: a load generator for any JobCenter-compatible server.
//!
//! Workers announce an `add` action, submitters run end-to-end jobs (`--mode call`), bare
//! pings or status queries; every result is checked. The same run always measures a raw
//! loopback netstring ping-pong with the same connections and window as the baseline, and
//! reports each figure with its ratio to it. `--embedded` runs our own server in-process.

mod embedded;
mod load;
mod raw;
mod report;
mod soak;
mod spec;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobcenter::{Client, ClientConfig, Worker};
use serde_json::{json, Value};

use crate::args::{BackendKind, BenchArgs, Mode, Secret};
use crate::cmd::Failure;
use load::Op;
use report::{Figure, Samples};
use spec::Template;

/// Operations per part when `total` is split into `parts` (the first ones get the rest).
pub(crate) fn share(total: u64, parts: usize, i: usize) -> u64 {
    let parts = parts.max(1) as u64;
    let i = i as u64;
    total / parts + u64::from(i < total % parts)
}

/// Run the benchmark. Exit status 0 when every operation succeeded with the right result,
/// 1 when some failed, 2 for setup trouble.
pub async fn run(a: BenchArgs) -> Result<u8, Failure> {
    if a.serve_only {
        let action = a.action.as_deref().unwrap_or("add");
        embedded::serve_only(a.backend, &a.store, action)
            .await
            .map_err(|e| Failure::with_code(2, e))?;
        return Ok(0);
    }
    if a.clients == 0 || a.workers == 0 || a.in_flight == 0 {
        return Err(Failure::usage(
            "--clients, --workers and --in-flight must be at least 1",
        ));
    }
    if a.mode == Mode::Idle {
        return idle(&a).await;
    }
    let mut server = None;
    let mut child = None;
    let action = plan(&a)?.action;
    let cfg = if a.embedded && a.server_process {
        let c = embedded::spawn_child(a.backend, &a.store, &action)
            .await
            .map_err(|e| Failure::with_code(2, e))?;
        let cfg = embedded_config(&a, c.port)?;
        child = Some(c);
        cfg
    } else if a.embedded {
        let s = embedded::start(a.backend, &a.store, &action)
            .await
            .map_err(|e| Failure::with_code(2, e))?;
        let port = s
            .local_addrs()
            .first()
            .map(|x| x.port())
            .ok_or_else(|| Failure::with_code(2, "embedded server has no listener"))?;
        server = Some(s);
        embedded_config(&a, port)?
    } else {
        crate::cmd::conn::client_config(&a.conn)?
    };
    let server_pid = child.as_ref().map(|c| c.pid).or(a.server_pid);
    if a.soak {
        let report = run_soak(&a, &cfg, server_pid).await;
        if let Some(s) = server {
            s.shutdown().await;
        }
        if let Some(mut c) = child {
            drop(c.child.stdin.take());
            let _ = tokio::time::timeout(Duration::from_secs(5), c.child.wait()).await;
        }
        let report = report?;
        if a.json {
            println!("{}", report.json());
        } else {
            print!("{}", report.text());
            println!("machine load average (1 min): {}", loadavg());
        }
        return Ok(u8::from(!report.ok()));
    }
    let result = measure(&a, &cfg, server_pid).await;
    if let Some(s) = server {
        s.shutdown().await;
    }
    if let Some(mut c) = child {
        drop(c.child.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(5), c.child.wait()).await;
    }
    let (figures, setup) = result?;
    print_report(&a, &cfg, &figures, &setup);
    let errors: u64 = figures.iter().map(|f| f.samples.errors).sum();
    Ok(u8::from(errors > 0))
}

fn embedded_config(a: &BenchArgs, port: u16) -> Result<ClientConfig, Failure> {
    let mut conn = a.conn.clone();
    conn.address = "127.0.0.1".to_string();
    conn.port = port;
    conn.tls = false;
    conn.who.get_or_insert_with(|| "bench".to_string());
    conn.token.get_or_insert_with(|| Secret::from("bench"));
    crate::cmd::conn::client_config(&conn)
}

/// What was set up, for the report.
struct Setup {
    wfname: String,
    inargs: Value,
    load: String,
}

/// What to run: workflow, action and templates, after the defaults of the chosen backend.
#[derive(Debug, Clone)]
struct Plan {
    wfname: String,
    action: String,
    inargs: Template,
    expect: Template,
}

fn plan(a: &BenchArgs) -> Result<Plan, Failure> {
    let stub = a.embedded && a.backend == BackendKind::Stub;
    let padded = a.payload > 0;
    let action = a
        .action
        .clone()
        .unwrap_or_else(|| if padded && !stub { "addpad" } else { "add" }.to_string());
    let wfname = a.wfname.clone().unwrap_or_else(|| match (stub, padded) {
        (true, _) => action.clone(),
        (false, true) => "callpad".to_string(),
        (false, false) => "calladd".to_string(),
    });
    let (din, dex) = if stub {
        (r#"{"counter":"$n","step":3}"#, r#"{"counter":"$n+3"}"#)
    } else {
        (r#"{"input":"$n"}"#, r#"{"output":"$n+3"}"#)
    };
    let inargs_text = a.inargs.as_deref().unwrap_or(din);
    let mut inargs = Template::parse("--inargs", inargs_text).map_err(Failure::usage)?;
    let mut expect =
        Template::parse("--expect", a.expect.as_deref().unwrap_or(dex)).map_err(Failure::usage)?;
    if padded && !inargs_text.contains("$pad") {
        inargs = inargs.with_pad("pad");
        if a.expect.is_none() {
            expect = expect.with_pad("pad");
        }
    }
    Ok(Plan {
        wfname,
        action,
        inargs,
        expect,
    })
}

async fn measure(
    a: &BenchArgs,
    cfg: &ClientConfig,
    server_pid: Option<u32>,
) -> Result<(Vec<Figure>, Setup), Failure> {
    let Plan {
        wfname,
        action,
        inargs,
        expect,
    } = plan(a)?;
    let pad: Arc<str> = Arc::from("x".repeat(a.payload));
    let needs_workers = matches!(a.mode, Mode::Call | Mode::Status);
    let mut worker_cfg = cfg.clone();
    if let Some(w) = &a.worker_who {
        worker_cfg.who = w.clone();
    }
    if let Some(t) = &a.worker_token {
        worker_cfg.token = t.expose().to_string();
    }
    let workers: Vec<Worker> = if needs_workers {
        load::start_workers(&worker_cfg, a.workers, a.slots, &action)
            .await
            .map_err(Failure::connection)?
    } else {
        Vec::new()
    };
    let clients = load::connect_clients(cfg, a.clients, 64)
        .await
        .map_err(Failure::connection)?;
    let call = Op::Call {
        wfname: wfname.clone(),
        inargs: inargs.clone(),
        expect: expect.clone(),
        pad: pad.clone(),
    };
    let op = match a.mode {
        Mode::Call => call,
        Mode::Ping => Op::Ping {
            timeout: cfg.timeout,
        },
        Mode::Status => {
            let first = clients
                .first()
                .ok_or_else(|| Failure::usage("no clients"))?;
            let res = first
                .job(&wfname)
                .inargs(inargs.fill(0, &pad))
                .call()
                .await
                .map_err(|e| Failure::connection(format!("the job for --mode status: {e}")))?;
            let want = expect.fill(0, &pad);
            let job_id = match res.job_id {
                Some(id) if spec::same(&res.outargs, &want) => id,
                _ => {
                    return Err(Failure::with_code(
                        1,
                        format!(
                            "the job for --mode status gave {} (job {:?}), want {want}",
                            res.outargs, res.job_id
                        ),
                    ))
                }
            };
            Op::Status {
                job_id,
                expect: res.outargs,
            }
        }
        Mode::Idle => return Err(Failure::usage("idle is measured elsewhere")),
    };
    let op = Arc::new(op);
    let window = a.in_flight.div_ceil(a.clients).max(1);
    let request_len = request_len(&op, &inargs, &pad, &wfname);

    // The raw limit with the same shape: connections, window, frame size.
    let cpu0 = report::process_cpu_secs(None);
    let (raw_samples, raw_secs) = raw::run(a.clients, a.jobs, window as u64, request_len)
        .await
        .map_err(|e| Failure::with_code(2, format!("raw baseline: {e}")))?;
    let raw = Figure {
        name: "raw".to_string(),
        samples: raw_samples,
        secs: raw_secs,
        cpu_secs: cpu_delta(None, cpu0),
        server_cpu_secs: None,
    };

    let warmup = a.warmup.unwrap_or((a.jobs / 10).min(1000));
    if warmup > 0 {
        // Numbers after the measured range, so every job still has its own counter.
        let _ = run_ops(&clients, &op, a.jobs, warmup, window, false).await;
    }
    let cpu0 = report::process_cpu_secs(None);
    let server_cpu0 = server_pid.and_then(|p| report::process_cpu_secs(Some(p)));
    let (samples, secs) = run_ops(&clients, &op, 0, a.jobs, window, true).await;
    let cpu_secs = cpu_delta(None, cpu0);
    let server_cpu_secs = server_pid.and_then(|p| cpu_delta(Some(p), server_cpu0));
    let name = match a.mode {
        Mode::Call => "call",
        Mode::Ping => "ping",
        Mode::Status => "status",
        Mode::Idle => "idle",
    };
    let fig = Figure {
        name: name.to_string(),
        samples,
        secs,
        cpu_secs,
        server_cpu_secs,
    };

    for c in &clients {
        c.close();
    }
    for w in &workers {
        w.shutdown(Duration::from_secs(5)).await;
    }
    let load = format!(
        "mode {name}, {} worker(s) x {} slot(s), {} client(s), {} in flight ({} per client), \
         {} ops + {warmup} warm-up, payload {} B, request frame ~{request_len} B",
        if needs_workers { a.workers } else { 0 },
        a.slots,
        a.clients,
        window * a.clients,
        window,
        a.jobs,
        a.payload,
    );
    let setup = Setup {
        wfname,
        inargs: inargs.fill(0, if a.payload > 64 { "<pad>" } else { &pad }),
        load,
    };
    Ok((vec![raw, fig], setup))
}

/// `--soak`: the chaos soak of [`soak`].
async fn run_soak(
    a: &BenchArgs,
    cfg: &ClientConfig,
    server_pid: Option<u32>,
) -> Result<soak::SoakReport, Failure> {
    let plan = plan(a)?;
    let secs = |what: &str, v: f64| {
        Duration::try_from_secs_f64(v)
            .map_err(|_| Failure::usage(format!("{what} must be a number of seconds >= 0")))
    };
    let mut worker_cfg = cfg.clone();
    if let Some(w) = &a.worker_who {
        worker_cfg.who = w.clone();
    }
    if let Some(t) = &a.worker_token {
        worker_cfg.token = t.expose().to_string();
    }
    let soak_plan = soak::SoakPlan {
        jobs: a.jobs,
        clients: a.clients,
        window: a.in_flight.div_ceil(a.clients).max(1),
        workers: a.workers,
        slots: a.slots,
        worker_churn: secs("--worker-churn", a.worker_churn)?,
        client_churn: secs("--client-churn", a.client_churn)?,
        wfname: plan.wfname,
        action: plan.action,
        inargs: plan.inargs,
        expect: plan.expect,
        sample: secs("--sample", a.sample)?.max(Duration::from_millis(100)),
        stall: Duration::from_secs(120),
    };
    Ok(soak::run(soak_plan, cfg.clone(), worker_cfg, server_pid).await)
}

/// CPU seconds process `pid` (default: this one) used since `before`.
fn cpu_delta(pid: Option<u32>, before: Option<f64>) -> Option<f64> {
    Some(report::process_cpu_secs(pid)? - before?)
}

/// Approximate size of the JSON-RPC request one operation sends (for the raw frames).
fn request_len(op: &Op, inargs: &Template, pad: &str, wfname: &str) -> usize {
    let params = match op {
        Op::Call { .. } => json!({
            "wfname": wfname, "inargs": inargs.fill(0, pad), "vtag": null, "timeout": 300
        }),
        Op::Ping { .. } => json!({}),
        Op::Status { job_id, .. } => json!({"job_id": job_id, "notify": false}),
    };
    json!({"jsonrpc": "2.0", "method": "create_job", "params": params, "id": 1})
        .to_string()
        .len()
}

/// Split `count` operations over the clients and run them; a progress line on a terminal.
async fn run_ops(
    clients: &[Client],
    op: &Arc<Op>,
    first: u64,
    count: u64,
    window: usize,
    progress: bool,
) -> (Samples, f64) {
    let done = Arc::new(AtomicU64::new(0));
    let bar = (progress && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(count);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} ops  {per_sec}  eta {eta}",
        ) {
            bar.set_style(style);
        }
        bar
    });
    let ticker = bar.clone().map(|bar| {
        let done = done.clone();
        tokio::spawn(async move {
            loop {
                bar.set_position(done.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    });
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients.len());
    let mut next = first;
    for (i, c) in clients.iter().enumerate() {
        let n = share(count, clients.len(), i);
        tasks.push(tokio::spawn(load::submit(
            c.clone(),
            op.clone(),
            next,
            n,
            window,
            done.clone(),
        )));
        next += n;
    }
    let mut all = Samples::new();
    for t in tasks {
        match t.await {
            Ok(s) => all.merge(s),
            Err(e) => all.error(format!("submitter task: {e}")),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    if let Some(t) = ticker {
        t.abort();
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    (all, secs)
}

/// The 1-minute load average, for the record.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".to_string())
}

fn print_report(a: &BenchArgs, cfg: &ClientConfig, figures: &[Figure], setup: &Setup) {
    let baseline = figures.first();
    let target = if a.embedded {
        format!(
            "embedded server ({} backend{})",
            a.backend.name(),
            if a.server_process {
                ", child process"
            } else {
                ""
            }
        )
    } else {
        format!("{}:{}", cfg.address, cfg.port)
    };
    if a.json {
        let figs: Vec<Value> = figures
            .iter()
            .enumerate()
            .map(|(i, f)| f.json(if i == 0 { None } else { baseline }))
            .collect();
        let v = json!({
            "server": target,
            "wfname": setup.wfname,
            "inargs_example": setup.inargs,
            "load": setup.load,
            "mode": figures.get(1).map(|f| f.name.clone()),
            "workers": a.workers, "slots": a.slots, "clients": a.clients,
            "in_flight": a.in_flight, "jobs": a.jobs, "payload": a.payload,
            "loadavg": loadavg(),
            "figures": figs,
        });
        println!("{v}");
        return;
    }
    println!(
        "server: {target}, workflow {} {}",
        setup.wfname, setup.inargs
    );
    println!("load: {}", setup.load);
    println!("machine load average (1 min): {}", loadavg());
    for (i, f) in figures.iter().enumerate() {
        println!("{}", f.text(if i == 0 { None } else { baseline }));
    }
}

/// `--mode idle`: server memory per idle authenticated connection.
async fn idle(a: &BenchArgs) -> Result<u8, Failure> {
    let mut child = None;
    let (cfg, pid) = if a.embedded {
        let c = embedded::spawn_child(a.backend, &a.store, &plan(a)?.action)
            .await
            .map_err(|e| Failure::with_code(2, e))?;
        let cfg = embedded_config(a, c.port)?;
        let pid = c.pid;
        child = Some(c);
        (cfg, pid)
    } else {
        let pid = a
            .server_pid
            .ok_or_else(|| Failure::usage("--mode idle needs --embedded or --server-pid"))?;
        (crate::cmd::conn::client_config(&a.conn)?, pid)
    };
    let rss = |pid| embedded::rss_kib(pid).map_err(|e| Failure::with_code(2, e));
    // One connection first, so one-off costs (buffers, threads) are not counted.
    let warm = load::connect_clients(&cfg, 1, 1)
        .await
        .map_err(Failure::connection)?;
    let before = rss(pid)?;
    let t0 = Instant::now();
    let clients = load::connect_clients(&cfg, a.clients, 64)
        .await
        .map_err(Failure::connection)?;
    let connect_secs = t0.elapsed().as_secs_f64();
    // Every hello has been answered; give the server a moment to settle its allocations.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss(pid)?;
    let alive = clients.iter().filter(|c| c.is_connected()).count();
    let per_conn = (after.saturating_sub(before)) as f64 * 1024.0 / a.clients as f64;
    if a.json {
        println!(
            "{}",
            json!({
                "mode": "idle", "connections": a.clients, "alive": alive,
                "server_pid": pid, "rss_before_kib": before, "rss_after_kib": after,
                "bytes_per_connection": per_conn, "connect_secs": connect_secs,
                "loadavg": loadavg(),
            })
        );
    } else {
        println!(
            "idle: {} connections ({alive} alive) opened in {connect_secs:.2} s; server pid {pid} \
             VmRSS {before} KiB -> {after} KiB: {:.1} KiB per connection",
            a.clients,
            per_conn / 1024.0
        );
        println!("machine load average (1 min): {}", loadavg());
    }
    for c in clients.iter().chain(&warm) {
        c.close();
    }
    if let Some(mut c) = child {
        drop(c.child.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(5), c.child.wait()).await;
    }
    Ok(u8::from(alive < a.clients))
}
