//! Authentication matrix against the real server on loopback TCP and TLS (docs/PROTOCOL.md §6.1,
//! §7.2, §11, wire transcripts c01, c02, c09): refusals carry the original's messages, nothing
//! but `hello` is answered before login, and the `hello` hardening (check cap, failure delay).

mod common;

use common::tls::{
    call, connector, connector_with, greeted_session, pki, read_frame, read_frame_or_error,
    server_name, start, start_listeners, tls_listener,
};
use common::{mini_backend, RawClient, TestServer, WAIT};
use jobcenter_server::{AuthMethod, AuthStats, ListenerConfig, Timers};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The reference's answer to every failed `hello` (c01).
const NOT_WELCOME: &str = "you're not welcome!";

/// The reference's error for a call that needs login (c02), exactly.
fn needs_auth() -> Value {
    json!({"code": -32002, "message": "This method requires connection state auth"})
}

fn hello(who: &str, token: &str) -> Value {
    json!({"who": who, "method": "password", "token": token})
}

/// Send a `hello` and expect `[false,"you're not welcome!"]`, then the server's close.
async fn expect_not_welcome(c: &mut RawClient, params: Value) {
    let r = c.result("hello", params.clone()).await;
    assert_eq!(r, json!([false, NOT_WELCOME]), "{params}");
    c.expect_eof().await;
}

#[tokio::test]
async fn auth_wrong_token_is_refused_with_the_original_message() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    expect_not_welcome(&mut c, hello("theCustomer", "WRONG")).await;
    // another user's password is as wrong
    let mut c = s.client().await;
    expect_not_welcome(&mut c, hello("theCustomer", "doesThings")).await;
    s.handle.shutdown().await;
}

#[tokio::test]
async fn auth_unknown_user_is_refused_with_the_same_message_as_a_wrong_token() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    expect_not_welcome(&mut c, hello("nobody", "x")).await;
    // an unknown user with a known user's password
    let mut c = s.client().await;
    expect_not_welcome(&mut c, hello("nobody", "wantsThings")).await;
    s.handle.shutdown().await;
}

#[tokio::test]
async fn auth_unknown_method_is_refused_with_the_original_message() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    expect_not_welcome(
        &mut c,
        json!({"who": "theCustomer", "method": "kerberos", "token": "wantsThings"}),
    )
    .await;
    // clientcert is not configured on this (plain TCP) server
    let mut c = s.client().await;
    expect_not_welcome(
        &mut c,
        json!({"who": "theCustomer", "method": "clientcert", "token": "x"}),
    )
    .await;
    s.handle.shutdown().await;
}

#[tokio::test]
async fn auth_hello_without_token_is_an_error_and_leaves_the_connection_logged_out() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let e = c
        .error("hello", json!({"who": "theCustomer", "method": "password"}))
        .await;
    assert_eq!(
        e,
        json!({"code": -32001, "message": "Method threw error: no token?"})
    );
    // the connection stays open (c01 conn 4) but is not logged in
    assert_eq!(
        c.error("get_job_status", json!({"job_id": 1})).await,
        needs_auth()
    );
    s.handle.shutdown().await;
}

#[tokio::test]
async fn auth_every_call_before_hello_is_refused_with_state_auth_error() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    for (m, p) in [
        ("ping", json!({})),
        (
            "create_job",
            json!({"wfname": "calladd", "inargs": {"counter": 1}}),
        ),
        ("get_job_status", json!({"job_id": 1})),
        ("find_jobs", json!({"filter": "{\"counter\":1}"})),
        (
            "check_if_lock_exists",
            json!({"locktype": "slot", "lockvalue": "sleutel"}),
        ),
        ("get_api_status", json!({"what": "stats"})),
        ("create_slotgroup", json!({"name": "g", "slots": 1})),
        ("announce", json!({"actionname": "add"})),
        ("withdraw", json!({"actionname": "add"})),
        ("get_task", json!({"actionname": "add", "job_id": 1})),
    ] {
        assert_eq!(c.error(m, p).await, needs_auth(), "{m}");
    }
    // a notification gets the same error with id null (c02)
    c.notify("task_done", json!({"cookie": "x", "outargs": {}}))
        .await;
    let v = c.next().await.expect("error frame");
    assert_eq!(
        v,
        json!({"jsonrpc": "2.0", "id": null, "error": needs_auth()})
    );
    // nothing was created or announced on the way
    assert!(s.backend.job(101).is_none());
    // hello still works afterwards on the same connection, and then the calls do
    let r = c.result("hello", hello("theCustomer", "wantsThings")).await;
    assert_eq!(r, json!([true, "welcome to the clientapi theCustomer!"]));
    assert_eq!(c.result("ping", json!({})).await, json!("pong?"));
    s.handle.shutdown().await;
}

#[tokio::test]
async fn auth_ping_before_hello_is_refused() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let r = c.request("ping", json!({})).await;
    assert_eq!(
        r,
        json!({"jsonrpc": "2.0", "id": "t1", "error": needs_auth()}),
        "the reference answered \"pong?\" here; we answer nothing but hello before login"
    );
    s.handle.shutdown().await;
}

#[tokio::test]
async fn auth_hello_twice_reauthenticates_as_the_second_user() {
    let s = TestServer::start().await;
    let mut c = s.login("theCustomer").await;
    threw(
        &c.error("get_api_status", json!({"what": "stats"})).await,
        "permission denied",
    );
    // a second successful hello switches the identity (§6.1)
    let r = c.result("hello", hello("apimeister", "meister")).await;
    assert_eq!(r, json!([true, "welcome to the clientapi apimeister!"]));
    let stats = c.result("get_api_status", json!({"what": "stats"})).await;
    assert_eq!(stats["clients"], json!(1), "{stats}");
    s.handle.shutdown().await;
}

#[tokio::test]
async fn auth_failed_second_hello_logs_out_and_closes() {
    let s = TestServer::start().await;
    let mut c = s.login("theCustomer").await;
    expect_not_welcome(&mut c, hello("theCustomer", "WRONG")).await;
    s.handle.shutdown().await;
}

fn threw(e: &Value, reason: &str) {
    assert_eq!(
        e,
        &json!({"code": -32001, "message": format!("Method threw error: {reason}")})
    );
}

#[tokio::test]
async fn auth_get_api_status_is_refused_to_everybody_but_apimeister() {
    // get_api_status is the only admin-only method (§11.7, c09): who must be apimeister.
    let s = TestServer::start().await;
    for who in ["theCustomer", "theEmployee"] {
        let mut c = s.login(who).await;
        for what in ["stats", "clients", "jobs", "tasks"] {
            threw(
                &c.error("get_api_status", json!({"what": what})).await,
                "permission denied",
            );
        }
        // permission is checked before the params
        threw(
            &c.error("get_api_status", json!({})).await,
            "permission denied",
        );
    }
    let mut m = s.login("apimeister").await;
    let stats = m.result("get_api_status", json!({"what": "stats"})).await;
    assert!(stats.is_object(), "{stats}");
    s.handle.shutdown().await;
}

#[tokio::test]
async fn auth_client_cert_with_a_wrong_cn_is_not_welcome() {
    let p = pki();
    let h = start(&p, true).await;
    let addr = h.local_addrs()[0];
    for (cn, who) in [
        // a CN the CN file does not list
        ("stranger.example", "theEmployee"),
        // a listed CN, but not one that may log in as this user
        ("other.example", "theEmployee"),
    ] {
        let cert = p.client_cert(cn);
        // The certificate itself is valid: the handshake succeeds.
        let mut s = greeted_session(addr, &connector_with(&p, Some(&cert))).await;
        let r = call(
            &mut s,
            "hello",
            json!({"who": who, "method": "clientcert", "token": "x"}),
        )
        .await;
        assert_eq!(r["result"], json!([false, NOT_WELCOME]), "{cn}");
        assert!(read_frame(&mut s).await.is_none(), "{cn}: closed after");
    }
    h.shutdown().await;
}

/// Connect with `cert` and return the greeting, or why there was none.
async fn tls_greeting(
    addr: std::net::SocketAddr,
    p: &common::tls::Pki,
    cert: &common::tls::ClientCert,
) -> Result<Vec<u8>, String> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    let mut s = connector_with(p, Some(cert))
        .connect(server_name(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    // TLS 1.3: the server's verdict on our certificate arrives with the first read
    read_frame_or_error(&mut s).await
}

#[tokio::test]
async fn auth_expired_client_cert_is_refused_in_the_tls_handshake() {
    let p = pki();
    let h = start(&p, true).await;
    let addr = h.local_addrs()[0];
    // control: a valid certificate of the same CA with the same CN gets the greeting
    let valid = p.client_cert_valid("worker.example", 2020, 4000);
    assert!(tls_greeting(addr, &p, &valid).await.is_ok());
    let expired = p.client_cert_valid("worker.example", 2000, 2001);
    let err = tls_greeting(addr, &p, &expired)
        .await
        .expect_err("an expired certificate gets no greeting");
    assert!(err.contains("CertificateExpired"), "{err}");
    h.shutdown().await;
}

#[tokio::test]
async fn auth_client_cert_of_an_unknown_ca_is_refused_in_the_tls_handshake() {
    let p = pki();
    let h = start(&p, true).await;
    let addr = h.local_addrs()[0];
    let foreign = p.foreign_client_cert("worker.example");
    let err = tls_greeting(addr, &p, &foreign)
        .await
        .expect_err("a certificate of another CA gets no greeting");
    assert!(err.contains("UnknownCA"), "{err}");
    h.shutdown().await;
}

/// Open `n` connections (greeting read), then send each a wrong-password `hello` at once and
/// return how long each took to be answered `[false,…]`.
async fn concurrent_wrong_hellos(s: &TestServer, n: usize) -> Vec<Duration> {
    let mut clients = Vec::new();
    for _ in 0..n {
        clients.push(s.client().await);
    }
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            tokio::spawn(async move {
                let t0 = Instant::now();
                let r = c
                    .result("hello", hello("theCustomer", &format!("guess{i}")))
                    .await;
                let took = t0.elapsed();
                assert_eq!(r, json!([false, NOT_WELCOME]));
                c.expect_eof().await;
                took
            })
        })
        .collect();
    let mut took = Vec::new();
    for t in tasks {
        took.push(t.await.expect("client task"));
    }
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_concurrent_wrong_hellos_wait_the_delay_and_never_exceed_the_check_cap() {
    const N: usize = 8;
    const CAP: usize = 2;
    const DELAY: Duration = Duration::from_millis(300);
    let s = TestServer::with_auth(Timers::default(), mini_backend(), |a| {
        a.max_concurrent_checks = CAP;
        a.failure_delay = DELAY;
    })
    .await;
    let took = concurrent_wrong_hellos(&s, N).await;
    for t in &took {
        assert!(*t >= DELAY, "a failed hello was answered after {t:?}");
    }
    let stats = s.handle.auth_stats();
    assert_eq!(stats.checks_done, N as u64, "{stats:?}");
    assert_eq!(stats.checks_running, 0, "{stats:?}");
    assert!(
        (1..=CAP).contains(&stats.checks_running_peak),
        "{N} checks at once with a cap of {CAP}: {stats:?}"
    );
    s.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_a_cap_of_one_runs_password_checks_one_at_a_time() {
    let s = TestServer::with_auth(Timers::default(), mini_backend(), |a| {
        a.max_concurrent_checks = 1;
        a.failure_delay = Duration::ZERO;
    })
    .await;
    concurrent_wrong_hellos(&s, 6).await;
    assert_eq!(
        s.handle.auth_stats(),
        AuthStats {
            checks_running: 0,
            checks_running_peak: 1,
            checks_done: 6
        }
    );
    s.handle.shutdown().await;
}

#[tokio::test]
async fn auth_failure_delay_does_not_slow_a_successful_hello() {
    let s = TestServer::with_auth(Timers::default(), mini_backend(), |a| {
        a.failure_delay = Duration::from_secs(60);
    })
    .await;
    // RawClient gives up after WAIT (5 s), far below the 60 s failure delay
    let t0 = Instant::now();
    let _c = s.login("theCustomer").await;
    assert!(t0.elapsed() < WAIT);
    s.handle.shutdown().await;
}

/// A `hello` over TLS (with the `worker.example` certificate) on `addr`: its result, and
/// whether the server closed the connection after it.
async fn tls_hello(
    addr: std::net::SocketAddr,
    p: &common::tls::Pki,
    params: Value,
) -> (Value, bool) {
    let mut s = greeted_session(addr, &connector(p, true)).await;
    let r = call(&mut s, "hello", params).await;
    let result = r["result"].clone();
    let closed = if result[0] == json!(true) {
        // still open: a call that needs login works
        let r = call(&mut s, "ping", json!({})).await;
        assert_eq!(r["result"], json!("pong?"));
        false
    } else {
        read_frame(&mut s).await.is_none()
    };
    (result, closed)
}

#[tokio::test]
async fn auth_listener_allows_only_its_methods() {
    let p = pki();
    // 0: TLS, clientcert only (the reference's example config); 1: TLS, every method;
    // 2: plain TCP, password only
    let restricted = ListenerConfig {
        auth: Some(vec![AuthMethod::Clientcert]),
        ..tls_listener(&p, true)
    };
    let plain = ListenerConfig {
        auth: Some(vec![AuthMethod::Password]),
        ..ListenerConfig::tcp("127.0.0.1:0".parse().expect("addr"))
    };
    let h = start_listeners(&p, vec![restricted, tls_listener(&p, true), plain], true).await;
    let addrs = h.local_addrs().to_vec();
    let password = hello("theEmployee", "doesThings");
    let cert = json!({"who": "theEmployee", "method": "clientcert", "token": "x"});
    let welcome = json!([true, "welcome to the clientapi theEmployee!"]);
    // the right password on the clientcert-only listener: the normal refusal, then the close
    assert_eq!(
        tls_hello(addrs[0], &p, password.clone()).await,
        (json!([false, NOT_WELCOME]), true)
    );
    // the certificate works there
    assert_eq!(
        tls_hello(addrs[0], &p, cert.clone()).await,
        (welcome.clone(), false)
    );
    // both work on the unrestricted TLS listener: the refusal above was the listener's
    assert_eq!(
        tls_hello(addrs[1], &p, password.clone()).await,
        (welcome.clone(), false)
    );
    assert_eq!(
        tls_hello(addrs[1], &p, cert).await,
        (welcome.clone(), false)
    );
    // the password-only plain listener: password in, clientcert refused like a bad password
    let mut c = RawClient::connect(addrs[2]).await;
    assert_eq!(c.result("hello", password).await, welcome);
    let mut c = RawClient::connect(addrs[2]).await;
    expect_not_welcome(
        &mut c,
        json!({"who": "theEmployee", "method": "clientcert", "token": "x"}),
    )
    .await;
    h.shutdown().await;
}
