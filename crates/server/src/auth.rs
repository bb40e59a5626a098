//! `hello` authentication: the `password` (crypt hashes) and `clientcert` (TLS CN) methods (§11).

use crate::config::AuthConfig;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

/// Why a `hello` was refused. Only logged; the client just sees `you're not welcome!` (§11.4).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// The `method` param names no configured adapter.
    #[error("no such authentication method {0}")]
    NoSuchMethod(String),
    /// No password-file line for this user.
    #[error("no such user")]
    NoSuchUser,
    /// The stored hash is not `$1$`, `$5$` or `$6$` crypt.
    #[error("invalid password hash")]
    InvalidHash,
    /// Wrong password.
    #[error("nope")]
    Nope,
    /// The password or CN file could not be read.
    #[error("cannot open pwfile: {0}")]
    CannotOpen(String),
    /// The connection has no verified client certificate with a subject CN.
    #[error("no peer cn?")]
    NoPeerCn,
    /// The certificate's CN is not in the CN file.
    #[error("cn {0} not found")]
    CnNotFound(String),
    /// The CN line does not list `who`.
    #[error("user {who} not allowed for cn {cn}")]
    UserNotAllowed {
        /// The identity asked for.
        who: String,
        /// The certificate's CN.
        cn: String,
    },
    /// The check itself could not run (it panicked, or the server is stopping).
    #[error("password check failed: {0}")]
    CheckFailed(String),
}

/// Counters of the password checks of one server (see [`crate::ServerHandle::auth_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthStats {
    /// Password checks running right now.
    pub checks_running: usize,
    /// The most password checks that ever ran at once; never above
    /// [`AuthConfig::max_concurrent_checks`].
    pub checks_running_peak: usize,
    /// Password checks finished so far (accepted or refused).
    pub checks_done: u64,
}

#[derive(Default)]
struct Counters {
    running: AtomicUsize,
    peak: AtomicUsize,
    done: AtomicU64,
}

/// Counts one password check as running while it lives.
struct Running(Arc<Counters>);

impl Running {
    fn enter(counters: &Arc<Counters>) -> Running {
        let now = counters.running.fetch_add(1, Ordering::SeqCst) + 1;
        counters.peak.fetch_max(now, Ordering::SeqCst);
        Running(counters.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
        self.0.done.fetch_add(1, Ordering::SeqCst);
    }
}

/// Checks `hello` credentials against the adapters of an [`AuthConfig`] (§11).
///
/// Password checks (reading the file and crypt hashing) run on tokio's blocking pool, at
/// most [`AuthConfig::max_concurrent_checks`] at once; the others wait for a turn, so a
/// flood of `hello`s cannot take every CPU.
pub struct Authenticator {
    cfg: AuthConfig,
    permits: Arc<Semaphore>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("cfg", &self.cfg)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Authenticator {
    /// An authenticator for `cfg`.
    pub fn new(cfg: AuthConfig) -> Authenticator {
        let permits = Arc::new(Semaphore::new(cfg.max_concurrent_checks.max(1)));
        Authenticator {
            cfg,
            permits,
            counters: Arc::default(),
        }
    }

    /// The configuration it checks against.
    pub fn config(&self) -> &AuthConfig {
        &self.cfg
    }

    /// The password-check counters so far.
    pub fn stats(&self) -> AuthStats {
        AuthStats {
            checks_running: self.counters.running.load(Ordering::SeqCst),
            checks_running_peak: self.counters.peak.load(Ordering::SeqCst),
            checks_done: self.counters.done.load(Ordering::SeqCst),
        }
    }

    /// Check a `hello`.
    ///
    /// `peer_cn` is the subject CN of the connection's verified client certificate, if any.
    /// Files are re-read on every call, so edits take effect at the next `hello`. This does
    /// not wait [`AuthConfig::failure_delay`]; the caller does, before it answers.
    pub async fn authenticate(
        &self,
        method: &str,
        who: &str,
        token: &str,
        peer_cn: Option<&str>,
    ) -> Result<(), AuthFailure> {
        let cfg = &self.cfg;
        if cfg.dev_allow_any {
            return Ok(());
        }
        match method {
            "password" => {
                let Some(path) = cfg.password_file.clone() else {
                    return Err(AuthFailure::NoSuchMethod(method.to_string()));
                };
                let permit = self
                    .permits
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|e| AuthFailure::CheckFailed(e.to_string()))?;
                let counters = self.counters.clone();
                let who = who.to_string();
                let token = token.to_string();
                // crypt is deliberately slow: keep it off the async worker threads. The
                // permit moves along, so a check counts until it really ends, even when the
                // connection is gone before.
                tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    let _running = Running::enter(&counters);
                    let contents = std::fs::read_to_string(&path)
                        .map_err(|e| AuthFailure::CannotOpen(format!("{}: {e}", path.display())))?;
                    check_password(&contents, &who, &token)
                })
                .await
                .unwrap_or_else(|e| Err(AuthFailure::CheckFailed(e.to_string())))
            }
            "clientcert" => {
                let Some(path) = cfg.clientcert_file.as_deref() else {
                    return Err(AuthFailure::NoSuchMethod(method.to_string()));
                };
                let cn = peer_cn.ok_or(AuthFailure::NoPeerCn)?;
                let contents = read_file(path).await?;
                check_cn(&contents, cn, who)
            }
            other => Err(AuthFailure::NoSuchMethod(other.to_string())),
        }
    }
}

async fn read_file(path: &Path) -> Result<String, AuthFailure> {
    tokio::fs::read_to_string(path)
        .await
        .map_err(|e| AuthFailure::CannotOpen(format!("{}: {e}", path.display())))
}

/// The crypt setting hashed for a `who` that has no password-file line (SHA-256-crypt,
/// like the test vectors and `openssl passwd -5`).
const UNKNOWN_USER_SETTING: &str = "$5$jcunknownuser$";

/// Check `who`/`token` against password-file contents (`user:hash` lines, first match wins).
pub fn check_password(contents: &str, who: &str, token: &str) -> Result<(), AuthFailure> {
    let hash = contents
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            let user = fields.next()?;
            let hash = fields.next()?;
            (user == who).then_some(hash)
        })
        .ok_or_else(|| {
            // Hash the token all the same, so that an unknown user takes about as long to
            // refuse as a wrong password and the answer time does not tell who exists.
            let _ = crate::crypt::crypt(token, UNKNOWN_USER_SETTING);
            AuthFailure::NoSuchUser
        })?;
    if crypt_matches(hash, token)? {
        Ok(())
    } else {
        Err(AuthFailure::Nope)
    }
}

/// `crypt(token, "$<id>$<salt>$") == hash` for `$1$`, `$5$` and `$6$` hashes (§11.2).
///
/// Other formats (including the `rounds=` variant) are [`AuthFailure::InvalidHash`].
pub fn crypt_matches(hash: &str, token: &str) -> Result<bool, AuthFailure> {
    // A stored hash has all three parts: `$<id>$<salt>$<hash>`.
    if hash.split('$').count() < 4 {
        return Err(AuthFailure::InvalidHash);
    }
    let computed = crate::crypt::crypt(token, hash).map_err(|_| AuthFailure::InvalidHash)?;
    Ok(hashes_equal(&computed, hash))
}

/// Compare a computed crypt string with the stored one in constant time: how long the
/// comparison takes does not tell how many leading characters of a guess were right.
/// (Only the length may differ in time, and every hash of one kind has the same length.)
pub fn hashes_equal(computed: &str, stored: &str) -> bool {
    computed.as_bytes().ct_eq(stored.as_bytes()).into()
}

/// Check `who` against CN-file contents (`cn:user1,user2` lines, first matching CN wins).
pub fn check_cn(contents: &str, cn: &str, who: &str) -> Result<(), AuthFailure> {
    let users = contents
        .lines()
        .find_map(|line| {
            let (line_cn, users) = line.split_once(':')?;
            (line_cn == cn).then_some(users)
        })
        .ok_or_else(|| AuthFailure::CnNotFound(cn.to_string()))?;
    if users.split(',').any(|u| u == who) {
        Ok(())
    } else {
        Err(AuthFailure::UserNotAllowed {
            who: who.to_string(),
            cn: cn.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &str = "theCustomer:$5$Re.J8ULljB$Zlp7EvuSXSqred7R/ONec5Wcx3sa0Di7r8jYj6OYJgB\n\
theEmployee:$5$OHFG1Ol7VMz647y$gmqS.M6i0hTtcKu9935yBn8Ck7yOdonV68hkz7mjnS/\n";

    #[test]
    fn c25_test_vectors_accepted() {
        assert_eq!(check_password(PW, "theCustomer", "wantsThings"), Ok(()));
        assert_eq!(check_password(PW, "theEmployee", "doesThings"), Ok(()));
    }

    #[test]
    fn c26_wrong_token_and_unknown_user_refused() {
        assert_eq!(
            check_password(PW, "theCustomer", "WRONG"),
            Err(AuthFailure::Nope)
        );
        assert_eq!(
            check_password(PW, "theCustomer", "doesThings"),
            Err(AuthFailure::Nope)
        );
        assert_eq!(
            check_password(PW, "nobody", "x"),
            Err(AuthFailure::NoSuchUser)
        );
    }

    #[test]
    fn c29_md5_sha256_sha512_and_other_formats() {
        let md5 = crate::crypt::crypt("pw1", "$1$abcdefgh$").unwrap_or_default();
        let sha512 = crate::crypt::crypt("pw6", "$6$saltsalt$").unwrap_or_default();
        assert!(md5.starts_with("$1$abcdefgh$"));
        assert!(sha512.starts_with("$6$saltsalt$"));
        assert_eq!(crypt_matches(&md5, "pw1"), Ok(true));
        assert_eq!(crypt_matches(&md5, "pw6"), Ok(false));
        assert_eq!(crypt_matches(&sha512, "pw6"), Ok(true));
        assert_eq!(crypt_matches(&sha512, "pw1"), Ok(false));
        // other formats fail
        assert_eq!(
            crypt_matches("plaintext", "plaintext"),
            Err(AuthFailure::InvalidHash)
        );
        assert_eq!(
            crypt_matches("$2b$10$abcdefghijklmnopqrstuu", "x"),
            Err(AuthFailure::InvalidHash)
        );
        assert_eq!(
            crypt_matches("$5$rounds=5000$salt$xyz", "x"),
            Err(AuthFailure::InvalidHash)
        );
        assert_eq!(
            crypt_matches("$5$saltsalt", "pw6"),
            Err(AuthFailure::InvalidHash)
        );
        // hashes made by `openssl passwd -1/-5/-6`
        for (hash, token) in [
            ("$1$saltsalt$pRmHVZe5Tr199NLta1EY2.", "pw6"),
            ("$5$saltsalt$GS.J0iOniXD56W.8I.HKCV/SniA7PIUamayUAJFekM7", "pw6"),
            ("$6$saltsalt$vqfwhgbpDQsmrvB6w5/8F5c4CO40.Qu2BBSXMRAH03mtpJ3D3UncG8x1f8qam566S8Gqa9EQmwIXTEp9knEjA.", "pw6"),
        ] {
            assert_eq!(crypt_matches(hash, token), Ok(true), "{hash}");
            assert_eq!(crypt_matches(hash, "pw1"), Ok(false), "{hash}");
        }
        // exact comparison: a truncated hash fails
        assert_eq!(crypt_matches(&sha512[..sha512.len() - 1], "pw6"), Ok(false));
    }

    #[test]
    fn c29_first_matching_user_line_wins() {
        let contents = format!(
            "other:xx\ntheCustomer:$5$OHFG1Ol7VMz647y$gmqS.M6i0hTtcKu9935yBn8Ck7yOdonV68hkz7mjnS/\n{PW}"
        );
        // first line for theCustomer carries theEmployee's hash
        assert_eq!(
            check_password(&contents, "theCustomer", "doesThings"),
            Ok(())
        );
        assert_eq!(
            check_password(&contents, "theCustomer", "wantsThings"),
            Err(AuthFailure::Nope)
        );
        // extra fields after the hash are ignored
        let extra = "u:$5$Re.J8ULljB$Zlp7EvuSXSqred7R/ONec5Wcx3sa0Di7r8jYj6OYJgB:1000:gecos\n";
        assert_eq!(check_password(extra, "u", "wantsThings"), Ok(()));
    }

    #[test]
    fn c30_cn_file_rules() {
        let cns = "worker.example:theEmployee,apimeister\nclient.example:theCustomer\n";
        assert_eq!(check_cn(cns, "worker.example", "apimeister"), Ok(()));
        assert_eq!(check_cn(cns, "client.example", "theCustomer"), Ok(()));
        assert_eq!(
            check_cn(cns, "client.example", "theEmployee"),
            Err(AuthFailure::UserNotAllowed {
                who: "theEmployee".into(),
                cn: "client.example".into()
            })
        );
        assert_eq!(
            check_cn(cns, "nobody.example", "theCustomer"),
            Err(AuthFailure::CnNotFound("nobody.example".into()))
        );
    }

    #[test]
    fn hash_comparison_is_exact() {
        let h = "$5$Re.J8ULljB$Zlp7EvuSXSqred7R/ONec5Wcx3sa0Di7r8jYj6OYJgB";
        assert!(hashes_equal(h, h));
        assert!(!hashes_equal(h, &h[..h.len() - 1]));
        assert!(!hashes_equal(&h[..h.len() - 1], h));
        assert!(!hashes_equal(h, &h.replace('B', "C")));
        assert!(!hashes_equal("", h));
        assert!(hashes_equal("", ""));
    }

    #[tokio::test]
    async fn c27_unconfigured_method_refused() {
        let auth = Authenticator::new(AuthConfig::default());
        assert_eq!(
            auth.authenticate("kerberos", "a", "b", None).await,
            Err(AuthFailure::NoSuchMethod("kerberos".into()))
        );
        assert_eq!(
            auth.authenticate("password", "a", "b", None).await,
            Err(AuthFailure::NoSuchMethod("password".into()))
        );
        let dev = Authenticator::new(AuthConfig {
            dev_allow_any: true,
            ..AuthConfig::default()
        });
        assert_eq!(dev.authenticate("kerberos", "a", "b", None).await, Ok(()));
    }

    #[tokio::test]
    async fn password_checks_are_counted_and_the_file_is_read_each_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("passwd");
        let auth = Authenticator::new(AuthConfig {
            password_file: Some(path.clone()),
            max_concurrent_checks: 0,
            ..AuthConfig::default()
        });
        assert!(matches!(
            auth.authenticate("password", "theCustomer", "wantsThings", None)
                .await,
            Err(AuthFailure::CannotOpen(_))
        ));
        std::fs::write(&path, PW).expect("write");
        assert_eq!(
            auth.authenticate("password", "theCustomer", "wantsThings", None)
                .await,
            Ok(())
        );
        assert_eq!(
            auth.authenticate("password", "nobody", "x", None).await,
            Err(AuthFailure::NoSuchUser)
        );
        assert_eq!(
            auth.stats(),
            AuthStats {
                checks_running: 0,
                checks_running_peak: 1,
                checks_done: 3
            }
        );
    }
}
