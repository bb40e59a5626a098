//! The query subcommands: status, find, lock, api-status and ping.

use jobcenter::JobStatus;
use serde_json::{json, Value};

use crate::args::{ApiStatusArgs, FindArgs, LockArgs, PingArgs, StatusArgs};
use crate::cmd::conn::connect;
use crate::cmd::{parse_object, Failure};

/// Connection trouble exits 2 (like `call`); an answer the server gave exits 1.
fn server_error(e: jobcenter::ClientError) -> Failure {
    use jobcenter::ClientError as E;
    match e {
        E::Closed | E::Timeout | E::Connection { .. } | E::Tls(_) | E::HandshakeTimeout => {
            Failure::connection(e.to_string())
        }
        other => Failure::with_code(1, other.to_string()),
    }
}

/// `jobcenter status JOB_ID [--wait]`: one JSON line with the job's status.
///
/// Exit status: 0 finished successfully or still running, 1 finished with an error or unknown.
pub async fn status(a: StatusArgs) -> Result<u8, Failure> {
    let job_id: i64 = a
        .job_id
        .trim()
        .parse()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| Failure::usage(format!("invalid job id {}", a.job_id)))?;
    let client = connect(&a.conn).await?;
    let status = if a.wait {
        let (status, completion) = client
            .get_job_status_notify(job_id)
            .await
            .map_err(server_error)?;
        match (status, completion) {
            (JobStatus::Running, Some(c)) => {
                JobStatus::Finished(c.wait().await.map_err(server_error)?)
            }
            (s, _) => s,
        }
    } else {
        client.get_job_status(job_id).await.map_err(server_error)?
    };
    client.close();
    let (line, code) = match status {
        JobStatus::Running => (json!({"job_id": job_id, "status": "running"}), 0),
        JobStatus::Finished(outargs) => {
            let failed = jobcenter::json::is_error_outargs(&outargs);
            let status = if failed { "error" } else { "finished" };
            (
                json!({"job_id": job_id, "status": status, "outargs": outargs}),
                u8::from(failed),
            )
        }
        // Unknown (and any status a newer library reports).
        _ => (json!({"job_id": job_id, "status": "unknown"}), 1),
    };
    crate::cmd::emit(line);
    Ok(code)
}

/// `jobcenter find FILTER_JSON`: the matching job ids, one JSON array.
pub async fn find(a: FindArgs) -> Result<u8, Failure> {
    let filter = parse_object("the filter", &a.filter)?;
    let client = connect(&a.conn).await?;
    let ids = client.find_jobs(filter).await.map_err(server_error)?;
    client.close();
    crate::cmd::emit(Value::from(ids));
    Ok(0)
}

/// `jobcenter lock TYPE VALUE`: prints true, false or null.
pub async fn lock(a: LockArgs) -> Result<u8, Failure> {
    let client = connect(&a.conn).await?;
    let held = client
        .check_if_lock_exists(&a.locktype, &a.lockvalue)
        .await
        .map_err(server_error)?;
    client.close();
    crate::cmd::emit(held.map_or(Value::Null, Value::Bool));
    Ok(0)
}

/// `jobcenter api-status TOPIC`: the server's answer (objects as JSON, text as is).
pub async fn api_status(a: ApiStatusArgs) -> Result<u8, Failure> {
    let client = connect(&a.conn).await?;
    let v = client
        .get_api_status(a.what.as_str())
        .await
        .map_err(server_error)?;
    client.close();
    match v {
        Value::String(s) => crate::cmd::emit(s),
        other => crate::cmd::emit(other),
    }
    Ok(0)
}

/// `jobcenter ping`: exit 0 when the server answers.
pub async fn ping(a: PingArgs) -> Result<u8, Failure> {
    let client = connect(&a.conn).await?;
    let ok = client.ping().await;
    client.close();
    if ok {
        crate::cmd::emit("pong");
        Ok(0)
    } else {
        Err(Failure::with_code(1, "no pong from the server"))
    }
}
