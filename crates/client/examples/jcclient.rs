//! Example client, like the Perl distribution's `jcclient`: run one job and print its result.
//!
//! ```text
//! cargo run -p jobcenter --example jcclient -- [--address A] [--port P] [--who W] [--token T]
//!     [--tls-ca FILE | --tls-insecure] [--timeout SECS] [--vtag TAG] WFNAME [INARGS-JSON]
//! ```
//! Defaults: 127.0.0.1:6522 as `theCustomer`/`wantsThings`, inargs `{}`.
//! Exit code: 0 on success, 1 when the job failed or could not be created, 2 on usage or
//! connection errors.

use std::process::ExitCode;
use std::time::Duration;

use jobcenter::{Client, ClientConfig};
use serde_json::Value;

struct Args {
    cfg: ClientConfig,
    vtag: Option<String>,
    job_timeout: Option<Duration>,
    wfname: String,
    inargs: Value,
}

fn usage() -> String {
    "usage: jcclient [--address A] [--port P] [--who W] [--token T] [--tls-ca FILE] \
     [--tls-insecure] [--timeout SECS] [--vtag TAG] WFNAME [INARGS-JSON]"
        .to_string()
}

fn parse() -> Result<Args, String> {
    let mut cfg = ClientConfig::new("theCustomer", "wantsThings");
    let mut vtag = None;
    let mut job_timeout = None;
    let mut positional = Vec::new();
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
            "--vtag" => vtag = Some(val("--vtag")?),
            "--timeout" => {
                let secs: f64 = val("--timeout")?
                    .parse()
                    .map_err(|e| format!("--timeout: {e}"))?;
                job_timeout = Some(Duration::from_secs_f64(secs.max(0.0)));
            }
            "-h" | "--help" => return Err(usage()),
            _ => positional.push(a),
        }
    }
    let mut pos = positional.into_iter();
    let wfname = pos.next().ok_or_else(usage)?;
    let inargs = match pos.next() {
        Some(text) => serde_json::from_str(&text).map_err(|e| format!("inargs: {e}"))?,
        None => Value::Object(Default::default()),
    };
    Ok(Args {
        cfg,
        vtag,
        job_timeout,
        wfname,
        inargs,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let client = match Client::connect(args.cfg).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("connect: {e}");
            return ExitCode::from(2);
        }
    };
    let mut req = client.job(&args.wfname).inargs(args.inargs);
    if let Some(v) = args.vtag {
        req = req.vtag(v);
    }
    if let Some(t) = args.job_timeout {
        req = req.timeout(t);
    }
    let code = match req.call().await {
        Ok(res) => {
            let id = res.job_id.map_or("none".to_string(), |i| i.to_string());
            println!("job_id {id} outargs {}", res.outargs);
            if res.is_error() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("call: {e}");
            ExitCode::from(1)
        }
    };
    client.close();
    code
}
