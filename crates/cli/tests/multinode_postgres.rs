//! Several nodes on one PostgreSQL database are one JobCenter (issue 9): three real
//! `jobcenter serve --store postgres://…` processes on a fresh database; node 0 has clients
//! but no worker (so its jobs are done by workers of other nodes and its `job_done`s come
//! from other nodes' commits), nodes 1 and 2 have a worker and clients. Node 2 is killed
//! (`kill -9`) in the middle of the load. Every job whose `create_job` was answered must end
//! exactly once with the right result, readable through any surviving node; the only tasks
//! that may run twice are those node 2's worker held when it died (released by the survivors
//! once node 2's lease ran out).

#[path = "cli_support/mod.rs"]
mod cli_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cli_support::{examples_dir, jobcenter, password_file, Proc, CLIENT, WORKER};
use jobcenter::{Action, Client, ClientConfig, JobStatus, Worker};
use jobcenter_store::testdb::TestDatabase;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::task::JoinSet;

/// Jobs submitted in total, spread over the clients of the three nodes.
const JOBS: i64 = 600;
/// Jobs each client keeps in flight.
const PER_CLIENT: usize = 40;
/// After this many results, node 2 is killed.
const KILL_AFTER: usize = 150;
/// Bound of the whole run (node 2's lease is 10 s).
const BOUND: Duration = Duration::from_secs(120);

/// A running node.
struct Node {
    proc: Proc,
    port: u16,
}

async fn start_node(url: &str, passwd: &std::path::Path) -> Node {
    let mut cmd = jobcenter(["serve", "--listen", "127.0.0.1:0", "--load"]);
    cmd.arg(examples_dir())
        .arg("--passwd")
        .arg(passwd)
        .arg("--store")
        .arg(url);
    let mut proc = Proc::spawn("jobcenter serve (postgres)", cmd);
    let port = proc.listening_port().await;
    Node { proc, port }
}

fn config((who, token): (&str, &str), port: u16) -> ClientConfig {
    ClientConfig::new(who, token)
        .port(port)
        .timeout(Duration::from_secs(30))
        .ping_timeout(Duration::ZERO)
}

/// Who ran `add` for which job: (job id, node of the worker).
type Runs = Arc<Mutex<Vec<(i64, usize)>>>;

/// A worker on `node`; `hold` keeps each task that long, so that a node killed in the middle
/// of the load surely holds claimed tasks.
async fn worker(port: u16, node: usize, runs: Runs, hold: Duration) -> Worker {
    let w = Worker::connect(config(WORKER, port))
        .await
        .expect("worker connects");
    let name = format!("multinode-worker-{node}");
    w.announce(
        Action::new("add")
            .slots(20)
            .workername(name)
            .sync(move |task| {
                runs.lock().push((task.job_id, node));
                std::thread::sleep(hold);
                let counter = task.inargs["counter"].as_i64().ok_or("no counter")?;
                let step = task.inargs["step"].as_i64().unwrap_or(1);
                Ok::<_, &str>(json!({ "counter": counter + step }))
            }),
    )
    .await
    .expect("announce add");
    w
}

/// What a client saw of a job: (node of the client, input, result if it arrived).
type Sighting = (usize, i64, Option<Value>);

/// What the clients saw, by job id.
type Seen = Arc<Mutex<HashMap<i64, Sighting>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_one_database_one_killed_every_job_ends_once() {
    let started = Instant::now();
    let db = TestDatabase::create().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let passwd = password_file(dir.path());
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(start_node(db.url(), &passwd).await);
    }
    let runs: Runs = Arc::default();
    let w1 = worker(nodes[1].port, 1, runs.clone(), Duration::ZERO).await;
    let w2 = worker(nodes[2].port, 2, runs.clone(), Duration::from_millis(200)).await;

    let seen: Seen = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let killed = Arc::new(tokio::sync::Notify::new());
    let mut clients = JoinSet::new();
    let next = Arc::new(std::sync::atomic::AtomicI64::new(0));
    for (node, n) in nodes.iter().enumerate() {
        let port = n.port;
        let client = Client::connect(config(CLIENT, port))
            .await
            .expect("client connects");
        let client = Arc::new(client);
        for _ in 0..PER_CLIENT {
            let (client, seen, done, next) =
                (client.clone(), seen.clone(), done.clone(), next.clone());
            clients.spawn(async move {
                loop {
                    let input = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if input >= JOBS {
                        return;
                    }
                    let handle = match client
                        .job("calladd")
                        .inargs(json!({ "input": input }))
                        .submit()
                        .await
                    {
                        Ok(h) => h,
                        // Node 2's clients lose their connection: their unanswered jobs are
                        // not counted; their answered ones are checked below.
                        Err(_) => return,
                    };
                    let Some(id) = handle.job_id() else {
                        panic!("job {input} refused: {handle:?}");
                    };
                    seen.lock().insert(id, (node, input, None));
                    match handle.outcome().await {
                        Ok(r) => {
                            seen.lock().insert(id, (node, input, Some(r.outargs)));
                            done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(_) => return,
                    }
                }
            });
        }
    }
    // Kill node 2 once enough results came in (polled: the results are the event).
    while done.load(std::sync::atomic::Ordering::Relaxed) < KILL_AFTER {
        assert!(started.elapsed() < BOUND, "no progress before the kill");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    nodes[2].proc.signal("KILL");
    killed.notify_waiters();
    let clients_done = tokio::time::timeout(BOUND, async {
        while clients.join_next().await.is_some() {}
    })
    .await;
    assert!(clients_done.is_ok(), "the clients did not finish in time");
    drop(w2);

    // Every answered job ends with the right result; ask a surviving node (node 2's clients
    // lost their connection, so some results were never delivered: they must be there now).
    let checker = Client::connect(config(CLIENT, nodes[0].port))
        .await
        .expect("checker connects");
    let answered: Vec<(i64, Sighting)> = seen.lock().iter().map(|(k, v)| (*k, v.clone())).collect();
    let mut lost = 0;
    let mut wrong = 0;
    let mut changed = 0;
    for (id, (_node, input, got)) in &answered {
        let want = json!({ "output": input + 3 });
        let status = loop {
            let s = checker.get_job_status(*id).await.expect("status");
            match s {
                JobStatus::Finished(v) => break Some(v),
                JobStatus::Unknown => break None,
                _ if started.elapsed() < BOUND => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ => panic!("job {id} still running at the end"),
            }
        };
        match status {
            None => lost += 1,
            Some(v) if v != want => wrong += 1,
            Some(_) => {}
        }
        if got.as_ref().is_some_and(|g| *g != want) {
            changed += 1;
        }
    }
    // Exactly once: a job ran more than once only if node 2's worker ran it first.
    let runs = runs.lock().clone();
    let mut per_job: HashMap<i64, Vec<usize>> = HashMap::new();
    for (job, node) in &runs {
        per_job.entry(*job).or_default().push(*node);
    }
    let twice_without_cause = per_job
        .values()
        .filter(|nodes| nodes.len() > 1 && nodes[0] != 2)
        .count();
    let reruns = per_job.values().filter(|n| n.len() > 1).count();
    // Tasks node 2's worker held when node 2 died, finished by node 1's worker (released by
    // the survivors after node 2's lease, or never committed as claimed at all).
    let taken_over = per_job
        .values()
        .filter(|n| n.first() == Some(&2) && n.last() == Some(&1))
        .count();
    let cross_node = answered
        .iter()
        .filter(|(id, (node, _, _))| {
            *node == 0 && per_job.get(id).is_some_and(|n| n.iter().all(|w| *w != 0))
        })
        .count();
    println!(
        "multinode: {} jobs answered, {} results delivered, {lost} lost, {wrong} wrong, \
         {changed} changed, {reruns} re-run after the kill ({taken_over} held by node 2's \
         worker, finished on node 1), {twice_without_cause} run twice without cause, \
         {cross_node} created on node 0 and done on other nodes, {:.1} s",
        answered.len(),
        answered.iter().filter(|(_, (_, _, g))| g.is_some()).count(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        answered.len() as i64 >= KILL_AFTER as i64,
        "too few jobs ran"
    );
    assert_eq!((lost, wrong, changed), (0, 0, 0));
    assert_eq!(twice_without_cause, 0);
    assert!(
        taken_over > 0,
        "node 2 held tasks when it died; node 1 must finish them"
    );
    assert!(
        cross_node > 0,
        "node 0 has no worker: its jobs ran elsewhere"
    );
    drop(w1);
    drop(checker);
    for n in &mut nodes[..2] {
        n.proc.signal("TERM");
    }
}

/// Nodes A and B on one fresh database, with a worker on B that records what it runs. (Field
/// order is drop order: the worker and the nodes go before the database.)
struct TwoNodes {
    _worker: Worker,
    a: Node,
    b: Node,
    runs: Runs,
    passwd: std::path::PathBuf,
    _dir: tempfile::TempDir,
    db: TestDatabase,
}

async fn two_nodes() -> TwoNodes {
    let db = TestDatabase::create().expect("test database");
    let dir = tempfile::tempdir().expect("tempdir");
    let passwd = password_file(dir.path());
    let a = start_node(db.url(), &passwd).await;
    let b = start_node(db.url(), &passwd).await;
    let runs: Runs = Arc::default();
    let worker = worker(b.port, 1, runs.clone(), Duration::ZERO).await;
    TwoNodes {
        _worker: worker,
        a,
        b,
        runs,
        passwd,
        _dir: dir,
        db,
    }
}

/// An admin client (`apimeister`) of the node on `port`.
async fn admin(port: u16) -> Client {
    Client::connect(config(cli_support::MEISTER, port))
        .await
        .unwrap_or_else(|e| panic!("admin connects to port {port}: {e}"))
}

/// The admin views on two nodes of one database (docs/PROTOCOL.md §18): both list the job
/// and the worker (the store's rows), only the worker's own node knows its connection and
/// slots (`local`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_views_on_two_nodes() {
    let nodes = two_nodes().await;
    let (a, b) = (&nodes.a, &nodes.b);
    let client = Client::connect(config(CLIENT, a.port))
        .await
        .expect("client connects");
    let r = client
        .call("calladd", json!({"input": 1}))
        .await
        .expect("calladd");
    assert_eq!(r.outargs, json!({"output": 4}));
    let id = r.job_id.expect("created");
    for (node, port) in [("a", a.port), ("b", b.port)] {
        let admin = admin(port).await;
        let jobs = admin
            .request("admin_jobs", json!({}))
            .await
            .expect("admin_jobs");
        assert_eq!(jobs[0]["job_id"], id, "{node}: {jobs}");
        assert_eq!(jobs[0]["state"], "finished", "{node}: {jobs}");
        let ws = admin
            .request("admin_workers", json!({}))
            .await
            .expect("admin_workers");
        let w = &ws["workers"][0];
        assert_eq!(w["name"], "multinode-worker-1", "{node}: {ws}");
        assert_eq!(
            w["local"].is_object(),
            node == "b",
            "{node}: only the worker's node knows its connection: {ws}"
        );
        admin.close();
    }
    client.close();
}

/// `admin_workers`'s list of disabled actions as `admin`'s node sees it.
async fn disabled_on(admin: &Client) -> Value {
    let ws = admin
        .request("admin_workers", json!({}))
        .await
        .expect("admin_workers");
    ws["disabled_actions"].clone()
}

/// Poll (bounded) until `admin`'s node lists `want` as its disabled actions: the other
/// node's change reaches it through the NOTIFY of its commit.
async fn wait_disabled(admin: &Client, want: Value) {
    let started = Instant::now();
    loop {
        let got = disabled_on(admin).await;
        if got == want {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still {got}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `disable` through node A holds the action's tasks back on node B too (whose worker is the
/// only one), for jobs created on either node; a node started later reads the setting from
/// the store; `enable` through A releases them on B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_on_one_node_holds_on_every_node_until_enabled() {
    let nodes = two_nodes().await;
    let (a, b, runs) = (&nodes.a, &nodes.b, &nodes.runs);
    let admin_a = admin(a.port).await;
    let admin_b = admin(b.port).await;
    let r = admin_a
        .request("admin_disable", json!({"action": "add"}))
        .await
        .expect("admin_disable");
    assert_eq!(r["changed"], true, "{r}");

    // Created on A after the disable: its task offer reaches B after the new setting.
    let client_a = Client::connect(config(CLIENT, a.port))
        .await
        .expect("client connects to a");
    let job_a = client_a
        .job("calladd")
        .inargs(json!({"input": 1}))
        .submit()
        .await
        .expect("submit on a");
    wait_disabled(&admin_b, json!(["add"])).await;
    let client_b = Client::connect(config(CLIENT, b.port))
        .await
        .expect("client connects to b");
    let job_b = client_b
        .job("calladd")
        .inargs(json!({"input": 2}))
        .submit()
        .await
        .expect("submit on b");
    let ids = [
        job_a.job_id().expect("created on a"),
        job_b.job_id().expect("created on b"),
    ];

    // A node started now reads the setting from the store.
    let c = start_node(nodes.db.url(), &nodes.passwd).await;
    let admin_c = admin(c.port).await;
    assert_eq!(disabled_on(&admin_c).await, json!(["add"]));

    // Longer than a node round (1 s): B's worker gets nothing, both tasks wait.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        runs.lock().is_empty(),
        "ran while disabled: {:?}",
        runs.lock()
    );
    for id in ids {
        let j = admin_b
            .request("admin_job", json!({"job_id": id}))
            .await
            .expect("admin_job");
        assert_eq!(j["state"], "ready", "{j}");
    }

    let r = admin_a
        .request("admin_enable", json!({"action": "add"}))
        .await
        .expect("admin_enable");
    assert_eq!(r["changed"], true, "{r}");
    for (job, want) in [(job_a, 4), (job_b, 5)] {
        let out = tokio::time::timeout(Duration::from_secs(20), job.outcome())
            .await
            .expect("released after enable")
            .expect("outcome");
        assert_eq!(out.outargs, json!({"output": want}));
    }
    wait_disabled(&admin_b, json!([])).await;
    wait_disabled(&admin_c, json!([])).await;
    let mut ran: Vec<i64> = runs.lock().iter().map(|(j, _)| *j).collect();
    ran.sort_unstable();
    assert_eq!(ran, ids.to_vec(), "each held task ran once, on B");
    drop(c);
}

/// A job's result travels in the `job:finished` NOTIFY to the other nodes, unless it is larger
/// than a NOTIFY payload (8000 bytes): then the node of the waiting client reads it from the
/// database. Both arrive, small and large, with the worker on the other node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_larger_than_a_notify_reach_the_other_node() {
    let db = TestDatabase::create().expect("test database");
    let dir = tempfile::tempdir().expect("tempdir");
    let passwd = password_file(dir.path());
    let a = start_node(db.url(), &passwd).await;
    let b = start_node(db.url(), &passwd).await;
    let big = "x".repeat(20_000);
    let w = Worker::connect(config(WORKER, b.port))
        .await
        .expect("worker connects");
    let fail_with = big.clone();
    w.announce(
        Action::new("add")
            .slots(4)
            .workername("multinode-big-worker")
            .sync(move |task| {
                let counter = task.inargs["counter"].as_i64().ok_or("no counter")?;
                if counter < 0 {
                    // The job fails with this text in its result.
                    return Err(fail_with.clone());
                }
                Ok::<_, String>(json!({ "counter": counter + 3 }))
            }),
    )
    .await
    .expect("announce add");
    let client = Client::connect(config(CLIENT, a.port))
        .await
        .expect("client connects");
    let small = client
        .call("calladd", json!({"input": 1}))
        .await
        .expect("small result");
    assert_eq!(small.outargs, json!({"output": 4}));
    let large = client
        .call("calladd", json!({"input": -1}))
        .await
        .expect("large result");
    let text = large.outargs.to_string();
    assert!(
        text.contains(&big),
        "the whole error text arrives: {}",
        &text[..200.min(text.len())]
    );
    // And it is what the store holds.
    let id = large.job_id.expect("created");
    let status = client.get_job_status(id).await.expect("get_job_status");
    assert_eq!(status, JobStatus::Finished(large.outargs.clone()));
    client.close();
    drop((a, b, w));
}

/// A task goes first to the workers of the node where it became ready: the other nodes hear
/// of it marked as offered there and hold it back for a moment, offering it only if it is
/// still ready then. Before, every node offered every task to its own workers at once, and all
/// but one of the `get_task`s (each a claim transaction) found it taken. Two nodes with a
/// free worker each, jobs created one at a time through A: B's server (logging its offers)
/// offers none of them, and all run on A's worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_offered_on_its_node_is_held_back_by_the_others() {
    const N: i64 = 30;
    let db = TestDatabase::create().expect("test database");
    let dir = tempfile::tempdir().expect("tempdir");
    let passwd = password_file(dir.path());
    let a = start_node(db.url(), &passwd).await;
    let b = {
        let mut cmd = jobcenter(["serve", "--listen", "127.0.0.1:0", "--load"]);
        cmd.arg(examples_dir())
            .arg("--passwd")
            .arg(&passwd)
            .arg("--store")
            .arg(db.url())
            .env("RUST_LOG", "warn,jobcenter_server=debug");
        let mut proc = Proc::spawn("jobcenter serve (postgres, offers logged)", cmd);
        let port = proc.listening_port().await;
        Node { proc, port }
    };
    let runs: Runs = Arc::default();
    let _worker_a = worker(a.port, 0, runs.clone(), Duration::ZERO).await;
    let _worker_b = worker(b.port, 1, runs.clone(), Duration::ZERO).await;
    let client = Client::connect(config(CLIENT, a.port))
        .await
        .expect("client connects to a");
    for i in 0..N {
        let r = client
            .call("calladd", json!({"input": i}))
            .await
            .expect("calladd");
        assert_eq!(r.outargs, json!({"output": i + 3}));
    }
    client.close();
    b.proc.signal("TERM");
    let out = b.proc.finish().await;
    let offers_on_b: Vec<&String> = out
        .stderr
        .iter()
        .filter(|l| l.contains("task_ready") && !l.contains("please_"))
        .collect();
    // A claim on A takes milliseconds against the 250 ms hold; a very slow moment of the
    // test machine may let one or two through.
    assert!(
        offers_on_b.len() <= 2,
        "B offered {} of {N} tasks of A: {offers_on_b:#?}",
        offers_on_b.len()
    );
    let runs = runs.lock().clone();
    assert_eq!(runs.len(), N as usize, "{runs:?}");
    assert!(runs.iter().all(|(_, node)| *node == 0), "{runs:?}");
}

/// The other half of the standby: a task held back by the other nodes is offered there once
/// the standby is over if its own node's offer was not claimed. A's only worker froze (it
/// announced, then reads nothing and claims nothing): the job created through A is done by
/// B's worker within seconds, long before A's 10 s hand-off, after which A has nobody else
/// to offer it to anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_back_task_is_offered_when_its_own_nodes_offer_is_not_claimed() {
    let nodes = two_nodes().await;
    let (a, runs) = (&nodes.a, &nodes.runs);
    // A frozen worker on A, spoken to in raw netstrings: it logs in and announces, then
    // reads nothing more and claims nothing.
    let mut frozen = tokio::net::TcpStream::connect(("127.0.0.1", a.port))
        .await
        .expect("connect to a");
    let mut buf = Vec::new();
    let hello = raw_call(
        &mut frozen,
        &mut buf,
        json!({"jsonrpc": "2.0", "id": 1, "method": "hello",
            "params": {"who": WORKER.0, "method": "password", "token": WORKER.1}}),
    )
    .await;
    assert_eq!(hello["result"][0], true, "{hello}");
    let announced = raw_call(
        &mut frozen,
        &mut buf,
        json!({"jsonrpc": "2.0", "id": 2, "method": "announce",
            "params": {"workername": "frozen", "actionname": "add", "slots": 1}}),
    )
    .await;
    assert_eq!(announced["result"], json!([true, "success"]), "{announced}");
    // A knows the frozen worker (and its free slot) before the job is created.
    let admin_a = admin(a.port).await;
    let started = Instant::now();
    loop {
        let ws = admin_a
            .request("admin_workers", json!({}))
            .await
            .expect("admin_workers");
        let local = ws["workers"].as_array().is_some_and(|ws| {
            ws.iter()
                .any(|w| w["name"] == "frozen" && w["local"].is_object())
        });
        if local {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{ws}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client = Client::connect(config(CLIENT, a.port))
        .await
        .expect("client connects to a");
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        client.call("calladd", json!({"input": 5})),
    )
    .await
    .expect("the held-back task was not offered on B within 5 s")
    .expect("calladd");
    assert_eq!(r.outargs, json!({"output": 8}));
    let runs = runs.lock().clone();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].1, 1, "done by B's worker: {runs:?}");
    client.close();
    admin_a.close();
}

/// Send `frame` on a raw connection and return the response with its id (netstrings read
/// into `buf`; other frames are skipped).
async fn raw_call(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>, frame: Value) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let text = frame.to_string();
    stream
        .write_all(format!("{}:{},", text.len(), text).as_bytes())
        .await
        .expect("write a frame");
    loop {
        // Whole frames in the buffer first.
        while let Some(colon) = buf.iter().position(|b| *b == b':') {
            let len: usize = std::str::from_utf8(&buf[..colon])
                .ok()
                .and_then(|n| n.parse().ok())
                .expect("a netstring length");
            if buf.len() < colon + len + 2 {
                break;
            }
            let payload: Value =
                serde_json::from_slice(&buf[colon + 1..colon + 1 + len]).expect("JSON frame");
            buf.drain(..colon + len + 2);
            if payload.get("method").is_none() && payload["id"] == frame["id"] {
                return payload;
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("an answer within 10 s")
            .expect("read");
        assert!(n > 0, "the server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}
