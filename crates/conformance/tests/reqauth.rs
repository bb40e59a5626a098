//! The `reqauth` per-request authentication plug-in (docs/PROTOCOL.md §11.5) through the
//! unmodified wire protocol: raw netstring frames shaped as the Perl client sends them,
//! against the real server with the engine and a [`ReqAuthFile`].

use std::sync::Arc;

use jobcenter_conformance::{
    fast_timers, own_fixtures, RawConn, TestServer, CUSTOMER, CUSTOMER_TOKEN, JC_ADMIN,
    JC_ADMIN_TOKEN,
};
use jobcenter_server::reqauth::{NOT_ALLOWED, NO_TOKEN};
use jobcenter_server::{ReqAuth, ReqAuthFile};
use serde_json::{json, Value};

/// The per-request token of `jc_admin` with the scope `billing:eu`.
const BILLING: &str = "billingRequestSecret";
/// A second token of `jc_admin`, without a scope.
const PLAIN: &str = "plainRequestSecret";

/// A server whose `create_job`s must carry a per-request token of the connection's identity.
async fn server(dir: &tempfile::TempDir) -> TestServer {
    let path = dir.path().join("reqauth");
    let hash = |t: &str, salt: &str| {
        jobcenter_server::crypt::crypt(t, salt).unwrap_or_else(|e| panic!("crypt: {e}"))
    };
    let text = format!(
        "# per-request tokens\n{JC_ADMIN}:{}:billing:eu\n{JC_ADMIN}:{}\n",
        hash(BILLING, "$5$reqauthone$"),
        hash(PLAIN, "$6$reqauthtwo$")
    );
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write: {e}"));
    let file = ReqAuthFile::open(&path).unwrap_or_else(|e| panic!("reqauth file: {e}"));
    TestServer::with_auth(own_fixtures().join("extra"), fast_timers(), |a| {
        a.request_auth = Some(Arc::new(file) as Arc<dyn ReqAuth>);
    })
    .await
    .unwrap_or_else(|e| panic!("server: {e}"))
}

/// A `create_job` frame as `JobCenter::Client::Mojo` writes it (random-looking string id,
/// `vtag` null, `timeout` 300, `reqauth` only when given).
fn create_job(id: &str, wfname: &str, inargs: Value, reqauth: Option<Value>) -> String {
    let mut params = json!({"timeout": 300, "wfname": wfname, "vtag": null, "inargs": inargs});
    if let Some(r) = reqauth {
        params["reqauth"] = r;
    }
    json!({"method": "create_job", "id": id, "jsonrpc": "2.0", "params": params}).to_string()
}

/// Send `frame` and return the response with `id` (notifications before it are kept).
async fn answer(c: &mut RawConn, id: &str, frame: &str, other: &mut Vec<Value>) -> Value {
    c.send_text(frame)
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));
    loop {
        let f = c.recv().await.unwrap_or_else(|e| panic!("recv: {e}"));
        if f.get("method").is_none() && f["id"] == id {
            return f;
        }
        other.push(f);
    }
}

/// The `job_done` for `job`, from what arrived already or from the connection.
async fn job_done(c: &mut RawConn, job: &Value, other: &mut Vec<Value>) -> Value {
    loop {
        if let Some(i) = other
            .iter()
            .position(|f| f["method"] == "job_done" && f["params"]["job_id"] == *job)
        {
            return other.remove(i)["params"]["outargs"].clone();
        }
        let f = c.recv().await.unwrap_or_else(|e| panic!("recv: {e}"));
        other.push(f);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqauth_plugin_checks_every_create_job_on_the_wire() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let mut s = server(&dir).await;
    let mut c = RawConn::login(s.addr(), JC_ADMIN, JC_ADMIN_TOKEN)
        .await
        .unwrap_or_else(|e| panic!("login: {e}"));
    let mut other = Vec::new();

    // The right token: the job runs and its environment has the line's scope, nested as
    // the original does it.
    let id = "Qx3fZ0aPpWm7yVb2kLr9Tg";
    let frame = create_job(
        id,
        "e_authscope",
        json!({"x": 1}),
        Some(json!({"token": BILLING})),
    );
    let r = answer(&mut c, id, &frame, &mut other).await;
    let job = r["result"][0].clone();
    assert!(job.is_u64(), "{r}");
    assert_eq!(r["result"][1], Value::Null, "{r}");
    let out = job_done(&mut c, &job, &mut other).await;
    assert_eq!(out, json!({"scope": {"authscope": "billing:eu"}}));

    // Another token of the same identity, without a scope: `{"authscope": null}`.
    let id = "p1Lw8cZ5nQ0aR2tY4uI6oE";
    let frame = create_job(
        id,
        "e_authscope",
        json!({"x": 2}),
        Some(json!({"token": PLAIN})),
    );
    let r = answer(&mut c, id, &frame, &mut other).await;
    let job2 = r["result"][0].clone();
    assert_eq!(
        job_done(&mut c, &job2, &mut other).await,
        json!({"scope": {"authscope": null}})
    );

    // A wrong token: exactly the refusal shape of §11.5, a result `[null, message]`.
    let id = "zZ9yY8xX7wW6vV5uU4tT3s";
    let frame = create_job(
        id,
        "e_authscope",
        json!({"x": 3}),
        Some(json!({"token": "guess"})),
    );
    let r = answer(&mut c, id, &frame, &mut other).await;
    assert_eq!(
        r,
        json!({"jsonrpc": "2.0", "id": id, "result": [null, NOT_ALLOWED]})
    );
    // No `reqauth` at all, or one without a token.
    for (id, reqauth) in [
        ("aA1bB2cC3dD4eE5fF6gG7h", None),
        ("hH7gG6fF5eE4dD3cC2bB1a", Some(json!({"tok": BILLING}))),
        ("mM1nN2oO3pP4qQ5rR6sS7t", Some(json!(BILLING))),
    ] {
        let frame = create_job(id, "e_authscope", json!({"x": 4}), reqauth);
        let r = answer(&mut c, id, &frame, &mut other).await;
        assert_eq!(
            r,
            json!({"jsonrpc": "2.0", "id": id, "result": [null, NO_TOKEN]})
        );
    }
    // The original's order: the workflow name is checked first, the per-request
    // authenticator before `inargs`.
    let id = "nN0wWfFnNaAmMeE1234567";
    let frame = json!({"method": "create_job", "id": id, "jsonrpc": "2.0",
        "params": {"timeout": 300, "vtag": null, "inargs": {}}})
    .to_string();
    let r = answer(&mut c, id, &frame, &mut other).await;
    assert_eq!(
        r["error"]["message"],
        json!("Method threw error: no workflowname?"),
        "{r}"
    );
    let id = "iInNaArRgGsS0123456789";
    let frame = create_job(id, "e_authscope", json!("notanobject"), None);
    let r = answer(&mut c, id, &frame, &mut other).await;
    assert_eq!(r["result"], json!([null, NO_TOKEN]), "{r}");
    let frame = create_job(
        id,
        "e_authscope",
        json!("notanobject"),
        Some(json!({"token": PLAIN})),
    );
    let r = answer(&mut c, id, &frame, &mut other).await;
    assert_eq!(
        r["error"]["message"],
        json!("Method threw error: inargs should be a hashref"),
        "{r}"
    );

    // Refused requests created no job: the next job id follows the last one created.
    let id = "lLaAsStT0123456789abcd";
    let frame = create_job(
        id,
        "e_authscope",
        json!({"x": 5}),
        Some(json!({"token": PLAIN})),
    );
    let r = answer(&mut c, id, &frame, &mut other).await;
    let job3 = r["result"][0].as_u64().unwrap_or_else(|| panic!("{r}"));
    assert_eq!(Some(job3), job2.as_u64().map(|j| j + 1));

    // Another identity has no per-request tokens: even jc_admin's token does not let it in.
    let mut other_user = RawConn::login(s.addr(), CUSTOMER, CUSTOMER_TOKEN)
        .await
        .unwrap_or_else(|e| panic!("login: {e}"));
    let id = "cCuUsStToOmMeErR012345";
    let frame = create_job(
        id,
        "e_authscope",
        json!({"x": 6}),
        Some(json!({"token": BILLING})),
    );
    let r = answer(&mut other_user, id, &frame, &mut Vec::new()).await;
    assert_eq!(
        r,
        json!({"jsonrpc": "2.0", "id": id, "result": [null, NOT_ALLOWED]})
    );

    // A reload (SIGHUP in `serve`) reads the file again: a bad file changes nothing, a good
    // one takes effect at the next create_job.
    let path = dir.path().join("reqauth");
    let good = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read: {e}"));
    std::fs::write(&path, format!("{good}{CUSTOMER}:plaintext\n"))
        .unwrap_or_else(|e| panic!("write: {e}"));
    let handle = s.handle().unwrap_or_else(|| panic!("no handle"));
    assert!(handle.reload_auth().is_err());
    let r = answer(&mut other_user, id, &frame, &mut Vec::new()).await;
    assert_eq!(r["result"], json!([null, NOT_ALLOWED]), "{r}");
    let hash = jobcenter_server::crypt::crypt(BILLING, "$5$customer$")
        .unwrap_or_else(|e| panic!("crypt: {e}"));
    std::fs::write(&path, format!("{good}{CUSTOMER}:{hash}:shop\n"))
        .unwrap_or_else(|e| panic!("write: {e}"));
    assert!(handle.reload_auth().is_ok());
    let mut seen = Vec::new();
    let r = answer(&mut other_user, id, &frame, &mut seen).await;
    let job4 = r["result"][0].clone();
    assert!(job4.is_u64(), "{r}");
    assert_eq!(
        job_done(&mut other_user, &job4, &mut seen).await,
        json!({"scope": {"authscope": "shop"}})
    );
    s.shutdown().await;
}
