//! `jobcenter demo`: server, worker and client in one process, on the example workflows.
//!
//! It starts the server in memory on a free loopback port with the workflows of
//! `examples/jcl/` (compiled into the binary), authenticates with a password file made for
//! this run, starts a worker for their actions, runs a few calls (one fails on purpose, one
//! runs a child workflow), checks every result, prints what happened, and exits 0 when
//! everything came out as expected.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use jobcenter::{Action, Client, ClientConfig, JobStatus, Worker};
use jobcenter_engine::{Catalog, EngineConfig};
use jobcenter_server::{AuthConfig, ListenerConfig, Server, ServerConfig};
use jobcenter_store::{StoreSpec, SyncMode};
use serde_json::{json, Value};

use crate::args::DemoArgs;
use crate::cmd::Failure;

/// The example definitions, in dependency order (actions, then callees before callers).
pub const EXAMPLES: [(&str, &str); 7] = [
    ("add.ac", include_str!("../../../../examples/jcl/add.ac")),
    (
        "square.ac",
        include_str!("../../../../examples/jcl/square.ac"),
    ),
    ("div.ac", include_str!("../../../../examples/jcl/div.ac")),
    (
        "calladd.wf",
        include_str!("../../../../examples/jcl/calladd.wf"),
    ),
    (
        "divide.wf",
        include_str!("../../../../examples/jcl/divide.wf"),
    ),
    (
        "safediv.wf",
        include_str!("../../../../examples/jcl/safediv.wf"),
    ),
    (
        "squareadd.wf",
        include_str!("../../../../examples/jcl/squareadd.wf"),
    ),
];

/// Compile the embedded examples.
pub fn example_catalog() -> Result<Catalog, Failure> {
    let mut catalog = Catalog::new();
    for (file, src) in EXAMPLES {
        if let Err(errors) = catalog.compile(file, src) {
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            return Err(Failure::with_code(1, text.join("; ")));
        }
    }
    Ok(catalog)
}

/// One call of the demo and the outargs it must produce.
struct Step {
    what: &'static str,
    wfname: &'static str,
    inargs: Value,
    expect: Value,
}

fn steps() -> Vec<Step> {
    vec![
        Step {
            what: "a workflow calling one action (add 3)",
            wfname: "calladd",
            inargs: json!({"input": 12}),
            expect: json!({"output": 15}),
        },
        Step {
            what: "a child workflow (calladd), then an action answered asynchronously (square)",
            wfname: "squareadd",
            inargs: json!({"input": 2}),
            expect: json!({"square": 25, "note": "square of 2 + 3"}),
        },
        Step {
            what: "a division",
            wfname: "divide",
            inargs: json!({"dividend": 10, "divisor": 4}),
            expect: json!({"quotient": 2.5}),
        },
        Step {
            what: "a division by zero: the worker reports an error, the job fails (on purpose)",
            wfname: "divide",
            inargs: json!({"dividend": 1, "divisor": 0}),
            expect: json!({"error": "division by zero"}),
        },
        Step {
            what: "the same division inside try/catch: the workflow handles the error",
            wfname: "safediv",
            inargs: json!({"dividend": 1, "divisor": 0}),
            expect: json!({"problem": "could not divide"}),
        },
        Step {
            what: "bad input: the server refuses to create the job",
            wfname: "calladd",
            inargs: json!({"input": "twelve"}),
            expect: json!({"error": "ERROR:  input argument \"input\" has wrong type string (should be number)"}),
        },
    ]
}

/// Numbers compare by value (2.0 == 2), everything else exactly.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w))
        }
        _ => a == b,
    }
}

fn number(task: &jobcenter::Task, key: &str) -> Result<f64, String> {
    task.inargs
        .get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("{key} is not a number"))
}

/// A JSON number, integral when the value is (so 12 + 3 prints as 15, as in Perl).
fn num(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

/// The demo worker's actions: add, square (answered later, asynchronously) and div.
fn actions() -> Vec<Action> {
    vec![
        Action::new("add").slots(4).sync(|t| {
            let step = t.inargs.get("step").and_then(Value::as_f64).unwrap_or(1.0);
            Ok::<_, String>(json!({"counter": num(number(&t, "counter")? + step)}))
        }),
        Action::new("square").slots(4).run_async(|t| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let root = number(&t, "root")?;
            Ok::<_, String>(json!({"square": num(root * root)}))
        }),
        Action::new("div").slots(4).sync(|t| {
            let divisor = number(&t, "divisor")?;
            if divisor == 0.0 {
                return Err("division by zero".to_string());
            }
            Ok(json!({"quotient": num(number(&t, "dividend")? / divisor)}))
        }),
    ]
}

/// A password file for this run, with random tokens for the demo client and worker.
struct Credentials {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    client_token: String,
    worker_token: String,
}

fn credentials() -> Result<Credentials, Failure> {
    use rand::distr::{Alphanumeric, SampleString};
    let fail = |e: String| Failure::with_code(2, format!("cannot write the password file: {e}"));
    let dir = tempfile::tempdir().map_err(|e| fail(e.to_string()))?;
    let path = dir.path().join("demo.passwd");
    let client_token = Alphanumeric.sample_string(&mut rand::rng(), 20);
    let worker_token = Alphanumeric.sample_string(&mut rand::rng(), 20);
    let line = |who: &str, token: &str| -> Result<String, Failure> {
        // SHA-256-crypt ($5$) is what the JobCenter password file format speaks (docs/PROTOCOL.md
        // §11.2).
        let hash = jobcenter_server::crypt::hash_sha256(token);
        Ok(format!("{who}:{hash}\n"))
    };
    let text = line("demo-client", &client_token)? + &line("demo-worker", &worker_token)?;
    std::fs::write(&path, text).map_err(|e| fail(e.to_string()))?;
    Ok(Credentials {
        _dir: dir,
        path,
        client_token,
        worker_token,
    })
}

/// Run the demo.
pub async fn run(a: DemoArgs) -> Result<u8, Failure> {
    let say = |s: String| {
        if !a.quiet {
            crate::cmd::emit(s);
        }
    };
    let catalog = example_catalog()?;
    say(format!(
        "1. compiled {} example definitions (examples/jcl): add, square, div, calladd, divide, safediv, squareadd",
        catalog.definitions().len()
    ));
    let creds = credentials()?;
    let store = a.store.clone().unwrap_or_else(|| StoreSpec::Sqlite {
        path: creds.path.with_file_name("demo.db"),
        sync: SyncMode::Full,
    });
    let backend = crate::cmd::serve::start_engine(catalog, &store, None, EngineConfig::default())
        .map_err(|e| Failure::with_code(2, e))?;
    let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
    let config = ServerConfig::new(
        ListenerConfig::tcp(loopback),
        AuthConfig {
            password_file: Some(creds.path.clone()),
            ..AuthConfig::default()
        },
    );
    let server = Server::start(config, backend)
        .await
        .map_err(|e| Failure::with_code(2, e.to_string()))?;
    let port = server
        .local_addrs()
        .first()
        .map(SocketAddr::port)
        .ok_or_else(|| Failure::with_code(2, "the server has no listener"))?;
    say(format!(
        "2. server listening on 127.0.0.1:{port} (jobs in {store}, password file with random tokens)"
    ));

    let connect_fail = |e: jobcenter::ClientError| Failure::with_code(2, e.to_string());
    let worker_cfg = ClientConfig::new("demo-worker", creds.worker_token.clone()).port(port);
    let worker = Worker::connect(worker_cfg).await.map_err(connect_fail)?;
    for action in actions() {
        let name = action.name().to_string();
        worker.announce(action).await.map_err(connect_fail)?;
        say(format!("3. worker announced action {name}"));
    }
    let serving = {
        let worker = worker.clone();
        tokio::spawn(async move { worker.work().await })
    };

    let client_cfg = ClientConfig::new("demo-client", creds.client_token.clone()).port(port);
    let client = Client::connect(client_cfg).await.map_err(connect_fail)?;
    say("4. client connected; calling workflows:".to_string());
    let mut failures = 0;
    let mut first_job = None;
    for (n, step) in steps().into_iter().enumerate() {
        let started = Instant::now();
        let result = client
            .call(step.wfname, step.inargs.clone())
            .await
            .map_err(connect_fail)?;
        first_job = first_job.or(result.job_id);
        let ok = same(&result.outargs, &step.expect);
        failures += usize::from(!ok);
        let job = result
            .job_id
            .map_or_else(|| "not created".to_string(), |id| format!("job {id}"));
        say(format!(
            "   {}.{} {}\n      call {} {} -> {} ({job}, {:.1} ms){}",
            4,
            n + 1,
            step.what,
            step.wfname,
            step.inargs,
            result.outargs,
            started.elapsed().as_secs_f64() * 1000.0,
            if ok { "" } else { "   <-- UNEXPECTED" }
        ));
        if !ok {
            say(format!("      expected {}", step.expect));
        }
    }
    if let Some(id) = first_job {
        let status = client.get_job_status(id).await.map_err(connect_fail)?;
        let shown = match &status {
            JobStatus::Finished(v) => v.to_string(),
            other => format!("{other:?}"),
        };
        failures += usize::from(
            !matches!(&status, JobStatus::Finished(v) if same(v, &json!({"output": 15}))),
        );
        say(format!("5. get_job_status({id}) -> {shown}"));
        let found = client
            .find_jobs(json!({"input": 12}))
            .await
            .map_err(connect_fail)?;
        failures += usize::from(!found.contains(&id));
        say(format!("6. find_jobs({{\"input\":12}}) -> {found:?}"));
    }

    client.close();
    let left = worker.shutdown(Duration::from_secs(5)).await;
    let code = serving.await.map_or(-1, |o| o.exit_code());
    say(format!(
        "7. worker withdrew its actions and stopped (work() returned {code}, {left} task(s) left)"
    ));
    server.shutdown().await;
    say("8. server shut down".to_string());
    if failures == 0 {
        say("demo finished: every result was as expected".to_string());
        Ok(0)
    } else {
        Err(Failure::with_code(
            1,
            format!("{failures} unexpected result(s)"),
        ))
    }
}
