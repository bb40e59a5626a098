//! Per-request authentication of `create_job` (`reqauth`, docs/PROTOCOL.md §11.5): the
//! plug-in interface and [`ReqAuthFile`], a file of per-request tokens.

use crate::auth::{crypt_matches, hash_format_supported, AuthFileError};
pub use crate::config::{ReqAuth, ReqAuthRequest};
use parking_lot::RwLock;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The refusal when `reqauth` has no `token` string.
pub const NO_TOKEN: &str = "reqauth: no token?";
/// The refusal when the token is wrong or the identity has no per-request token.
pub const NOT_ALLOWED: &str = "reqauth: not allowed";

/// One line of a per-request token file.
#[derive(Debug, Clone)]
struct Entry {
    who: String,
    hash: String,
    scope: Value,
}

/// Per-request tokens from a file: the [`ReqAuth`] of `serve --reqauth-file`.
///
/// Lines are `who:hash[:scope]` (blank lines and `#` comments ignored); `hash` is a crypt
/// hash as in the password file (`$1$`, `$5$`, `$6$`, made with `openssl passwd -5`), and
/// `scope` the rest of the line (may hold `:`), given to the job as
/// `authscope: {"authscope": "<scope>"}` (`null` when there is none). A `create_job` on a
/// connection logged in as `who` must carry `reqauth: {"token": "<secret>"}` whose secret
/// matches one of `who`'s lines; the first match gives the scope. One identity may have
/// several lines (tokens with different scopes).
#[derive(Debug)]
pub struct ReqAuthFile {
    path: PathBuf,
    entries: RwLock<Arc<Vec<Entry>>>,
}

impl ReqAuthFile {
    /// Read and validate the file (an unreadable file or a bad line is an error naming the
    /// file and line; the line itself is not shown).
    pub fn open(path: impl Into<PathBuf>) -> Result<ReqAuthFile, AuthFileError> {
        let path = path.into();
        let entries = load(&path)?;
        Ok(ReqAuthFile {
            path,
            entries: RwLock::new(Arc::new(entries)),
        })
    }

    /// How many tokens the file in use holds.
    pub fn len(&self) -> usize {
        self.entries.read().len()
    }

    /// Whether the file in use holds no token (every `create_job` is then refused).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn load(path: &Path) -> Result<Vec<Entry>, AuthFileError> {
    let file = path.display().to_string();
    let contents = std::fs::read_to_string(path).map_err(|e| AuthFileError::Unreadable {
        file: file.clone(),
        reason: e.to_string(),
    })?;
    let mut entries = Vec::new();
    for (i, line) in contents.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let bad = |reason: &str| AuthFileError::BadLine {
            file: file.clone(),
            line: i + 1,
            reason: reason.to_string(),
        };
        let mut fields = line.splitn(3, ':');
        let who = fields.next().unwrap_or_default();
        let Some(hash) = fields.next() else {
            return Err(bad("expected who:hash[:scope]"));
        };
        if who.is_empty() {
            return Err(bad("empty identity"));
        }
        hash_format_supported(hash).map_err(bad)?;
        let scope = match fields.next() {
            Some(s) if !s.is_empty() => Value::String(s.to_string()),
            _ => Value::Null,
        };
        entries.push(Entry {
            who: who.to_string(),
            hash: hash.to_string(),
            scope,
        });
    }
    Ok(entries)
}

impl ReqAuth for ReqAuthFile {
    fn check(&self, req: &ReqAuthRequest) -> Result<Value, String> {
        let token = req
            .reqauth
            .as_ref()
            .and_then(|r| r.get("token"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty());
        let Some(token) = token else {
            tracing::warn!(who = %req.who, workflow = %req.wfname, "reqauth refused: no token");
            return Err(NO_TOKEN.to_string());
        };
        let entries = self.entries.read().clone();
        let mut candidates = entries.iter().filter(|e| e.who == req.who).peekable();
        if candidates.peek().is_none() {
            // Hash all the same, so that the time taken does not tell who has tokens.
            let _ = crate::crypt::crypt(token, "$5$jcunknownuser$");
            tracing::warn!(who = %req.who, workflow = %req.wfname,
                "reqauth refused: no per-request token for this identity");
            return Err(NOT_ALLOWED.to_string());
        }
        for e in candidates {
            if crypt_matches(&e.hash, token) == Ok(true) {
                return Ok(e.scope.clone());
            }
        }
        tracing::warn!(who = %req.who, workflow = %req.wfname, "reqauth refused: wrong token");
        Err(NOT_ALLOWED.to_string())
    }

    fn describe(&self) -> String {
        let n = self.len();
        let s = if n == 1 { "" } else { "s" };
        format!("token file {} ({n} token{s})", self.path.display())
    }

    fn reload(&self) -> Result<(), AuthFileError> {
        let entries = load(&self.path)?;
        *self.entries.write() = Arc::new(entries);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::net::SocketAddr;

    fn request(who: &str, reqauth: Option<Value>) -> ReqAuthRequest {
        ReqAuthRequest {
            who: who.to_string(),
            method: "password".to_string(),
            peer_cn: None,
            from: SocketAddr::from(([127, 0, 0, 1], 1)),
            wfname: "wf".to_string(),
            reqauth,
        }
    }

    #[test]
    fn tokens_scopes_and_refusals() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("reqauth");
        let h1 = crate::crypt::crypt("s1", "$5$saltone$").unwrap_or_default();
        let h2 = crate::crypt::crypt("s2", "$5$salttwo$").unwrap_or_default();
        let text = format!("# comment\n\nalice:{h1}:billing:eu\nalice:{h2}\n");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        let f = ReqAuthFile::open(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.len(), 2);
        let tok = |t: &str| Some(json!({ "token": t }));
        assert_eq!(
            f.check(&request("alice", tok("s1"))),
            Ok(json!("billing:eu"))
        );
        assert_eq!(f.check(&request("alice", tok("s2"))), Ok(Value::Null));
        assert_eq!(
            f.check(&request("alice", tok("s3"))),
            Err(NOT_ALLOWED.into())
        );
        assert_eq!(f.check(&request("bob", tok("s1"))), Err(NOT_ALLOWED.into()));
        assert_eq!(f.check(&request("alice", None)), Err(NO_TOKEN.into()));
        assert_eq!(
            f.check(&request("alice", Some(json!("s1")))),
            Err(NO_TOKEN.into())
        );
        assert_eq!(
            f.check(&request("alice", Some(json!({"token": 5})))),
            Err(NO_TOKEN.into())
        );
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("reqauth");
        std::fs::write(&path, "# ok\nalice:plaintext\n").unwrap_or_else(|e| panic!("{e}"));
        match ReqAuthFile::open(&path) {
            Err(AuthFileError::BadLine { line, .. }) => assert_eq!(line, 2),
            other => panic!("want a bad line: {other:?}"),
        }
        match ReqAuthFile::open(dir.path().join("nope")) {
            Err(AuthFileError::Unreadable { .. }) => {}
            other => panic!("want unreadable: {other:?}"),
        }
    }
}
