//! `jobcenter work`: a worker whose actions are external programs.
//!
//! Each task runs `sh -c COMMAND`; see [`jobcenter::Subprocess`] for what the program gets on
//! stdin and must print on stdout. SIGINT/SIGTERM withdraw the actions, let in-flight tasks
//! finish (up to `--drain` seconds) and exit 0.

use std::time::Duration;

use jobcenter::{Action, Subprocess, Worker};

use crate::args::WorkArgs;
use crate::cmd::conn::client_config;
use crate::cmd::{parse_object, Failure, ShutdownSignal};

/// Split `NAME=COMMAND`.
fn parse_action(spec: &str) -> Result<(String, String), Failure> {
    match spec.split_once('=') {
        Some((name, cmd)) if !name.trim().is_empty() && !cmd.trim().is_empty() => {
            Ok((name.trim().to_string(), cmd.to_string()))
        }
        _ => Err(Failure::usage(format!(
            "--action wants NAME=COMMAND, got {spec:?}"
        ))),
    }
}

/// Split `NAME:SLOTS`.
fn parse_slotgroup(spec: &str) -> Result<(String, u32), Failure> {
    let bad = || Failure::usage(format!("--slotgroup wants NAME:SLOTS, got {spec:?}"));
    let (name, slots) = spec.rsplit_once(':').ok_or_else(bad)?;
    let slots: u32 = slots.parse().map_err(|_| bad())?;
    if name.is_empty() || slots == 0 {
        return Err(bad());
    }
    Ok((name.to_string(), slots))
}

pub async fn run(a: WorkArgs) -> Result<u8, Failure> {
    let actions = a
        .actions
        .iter()
        .map(|s| parse_action(s))
        .collect::<Result<Vec<_>, _>>()?;
    let slotgroup = a.slotgroup.as_deref().map(parse_slotgroup).transpose()?;
    let filter = a
        .filter
        .as_deref()
        .map(|f| parse_object("--filter", f))
        .transpose()?;
    if a.slots == 0 {
        return Err(Failure::usage("--slots must be at least 1"));
    }
    if !(a.ping_timeout.is_finite()
        && a.ping_timeout >= 0.0
        && a.drain.is_finite()
        && a.drain >= 0.0)
    {
        return Err(Failure::usage("--ping-timeout and --drain are seconds ≥ 0"));
    }
    let mut cfg = client_config(&a.conn)?.ping_timeout(Duration::from_secs_f64(a.ping_timeout));
    if let Some(name) = &a.workername {
        cfg = cfg.workername(name.clone());
    }
    let worker = Worker::connect(cfg)
        .await
        .map_err(|e| Failure::connection(format!("{}:{}: {e}", a.conn.address, a.conn.port)))?;
    if let Some((name, slots)) = &slotgroup {
        worker
            .client()
            .create_slotgroup(name, Some(*slots))
            .await
            .map_err(|e| Failure::with_code(2, format!("create_slotgroup {name}: {e}")))?;
    }
    for (name, command) in &actions {
        let mut action = Action::new(name.clone())
            .addenv(a.addenv)
            .subprocess(Subprocess::new("sh").arg("-c").arg(command));
        action = match &slotgroup {
            Some((g, _)) => action.slotgroup(g.clone()),
            None => action.slots(a.slots),
        };
        if let Some(f) = &filter {
            action = action.filter(f.clone());
        }
        worker
            .announce(action)
            .await
            .map_err(|e| Failure::with_code(2, format!("announce {name}: {e}")))?;
        tracing::info!(action = %name, "announced");
    }
    let mut signals = ShutdownSignal::install();
    eprintln!(
        "jobcenter work: serving {}",
        actions
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let drain = Duration::from_secs_f64(a.drain);
    let code = tokio::select! {
        outcome = worker.work() => outcome.exit_code(),
        _ = signals.recv() => {
            eprintln!("jobcenter work: shutting down, draining in-flight tasks");
            let left = worker.shutdown(drain).await;
            if left > 0 {
                eprintln!("jobcenter work: {left} task(s) still running at the deadline");
            }
            0
        }
    };
    Ok(u8::try_from(code).unwrap_or(1))
}
