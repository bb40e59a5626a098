//! Example worker, like the Perl distribution's `jcworker`: serves the actions
//! `add` (sync: counter + step), `square` (async: answers a moment later) and `div`
//! (sync: dividend / divisor; division by zero gives an error result).
//!
//! ```text
//! cargo run -p jobcenter --example jcworker -- [--address A] [--port P] [--who W]
//!     [--token T] [--tls-ca FILE | --tls-insecure] [--slots N] [--reconnect] [ACTION...]
//! ```
//! Defaults: 127.0.0.1:6522 as `theEmployee`/`doesThings`, all three actions, 1 slot each.
//! Ctrl-C withdraws the actions, lets running tasks finish (10 s at most) and exits 0.
//! Otherwise the exit code is `work()`'s: 91 connection closed, 92 no ping from the server.

use std::time::Duration;

use jobcenter::{Action, ClientConfig, Reconnect, Task, Worker};
use serde_json::{json, Value};

fn num(v: &Value, key: &str) -> Result<f64, String> {
    v.get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("{key} is not a number"))
}

/// A number as JSON: integral values as integers (so `2 + 1` gives `3`, not `3.0`).
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

fn add(t: Task) -> Result<Value, String> {
    let counter = num(&t.inargs, "counter")?;
    let step = num(&t.inargs, "step").unwrap_or(1.0);
    Ok(json!({ "counter": number(counter + step) }))
}

async fn square(t: Task) -> Result<Value, String> {
    let root = num(&t.inargs, "root")?;
    // Finishes later: the connection keeps serving pings and other tasks meanwhile.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(json!({ "square": number(root * root) }))
}

fn div(t: Task) -> Result<Value, String> {
    let dividend = num(&t.inargs, "dividend")?;
    let divisor = num(&t.inargs, "divisor")?;
    if divisor == 0.0 {
        return Err("division by zero".to_string());
    }
    Ok(json!({ "quotient": number(dividend / divisor) }))
}

fn parse() -> Result<(ClientConfig, u32, bool, Vec<String>), String> {
    let mut cfg = ClientConfig::new("theEmployee", "doesThings");
    let mut slots = 1;
    let mut reconnect = false;
    let mut actions = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--address" => cfg.address = val("--address")?,
            "--port" => cfg.port = val("--port")?.parse().map_err(|e| format!("--port: {e}"))?,
            "--who" => cfg.who = val("--who")?,
            "--token" => cfg.token = val("--token")?,
            "--tls-ca" => cfg = cfg.tls_ca(val("--tls-ca")?),
            "--tls-insecure" => cfg = cfg.tls_insecure(),
            "--slots" => {
                slots = val("--slots")?
                    .parse()
                    .map_err(|e| format!("--slots: {e}"))?
            }
            "--reconnect" => reconnect = true,
            "-h" | "--help" => {
                return Err(
                    "usage: jcworker [--address A] [--port P] [--who W] [--token T] \
                            [--tls-ca FILE] [--tls-insecure] [--slots N] [--reconnect] \
                            [add|square|div ...]"
                        .to_string(),
                )
            }
            _ => actions.push(a),
        }
    }
    if actions.is_empty() {
        actions = vec!["add".into(), "square".into(), "div".into()];
    }
    Ok((cfg, slots, reconnect, actions))
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let (cfg, slots, reconnect, names) = match parse() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let worker = match Worker::connect(cfg).await {
        Ok(w) => w,
        Err(e) => {
            eprintln!("connect: {e}");
            std::process::exit(2);
        }
    };
    if reconnect {
        worker.set_reconnect(Some(Reconnect::default()));
    }
    for name in names {
        let action = Action::new(name.as_str()).slots(slots);
        let action = match name.as_str() {
            "add" => action.sync(add),
            "square" => action.run_async(square),
            "div" => action.sync(div),
            other => {
                eprintln!("unknown action {other} (known: add, square, div)");
                std::process::exit(2);
            }
        };
        if let Err(e) = worker.announce(action).await {
            eprintln!("announce {name}: {e}");
            std::process::exit(1);
        }
        tracing::info!("announced {name}");
    }
    let w = worker.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("interrupted: draining");
            let left = w.shutdown(Duration::from_secs(10)).await;
            if left > 0 {
                tracing::warn!("{left} task(s) still running at exit");
            }
        }
    });
    let outcome = worker.work().await;
    tracing::info!("work() returned {outcome}");
    std::process::exit(outcome.exit_code());
}
