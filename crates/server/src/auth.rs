//! `hello` authentication: the `password` (crypt hashes) and `clientcert` (TLS CN) methods (§11).

use crate::config::AuthConfig;
pub use crate::config::AuthFileError;
use parking_lot::RwLock;
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
    /// The listener the connection came in on does not allow this method
    /// ([`crate::ListenerConfig::auth`]).
    #[error("authentication method {0} not allowed on this listener")]
    NotOnListener(String),
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

/// How many entries the loaded authentication files hold (`None`: no such file configured).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthFilesLoaded {
    /// Lines of the password file (users).
    pub users: Option<usize>,
    /// Lines of the CN file (certificate names).
    pub cns: Option<usize>,
}

/// The validated contents of the configured files, as the checks read them.
#[derive(Debug, Clone, Default)]
struct AuthFiles {
    password: Option<Arc<str>>,
    cn: Option<Arc<str>>,
    loaded: AuthFilesLoaded,
}

/// Whether a password-file line is ignored: blank, or a `#` comment.
fn ignored_line(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// Whether `hash` has a format [`crypt_matches`] can check: `$1$`, `$5$` or `$6$`, a
/// non-empty salt without `rounds=`, and a hash after it. Keep in step with
/// [`crypt_matches`] (a unit test compares them).
pub fn hash_format_supported(hash: &str) -> Result<(), &'static str> {
    const WANT: &str = "not a supported password hash (want $1$, $5$ or $6$ crypt: $ID$SALT$HASH)";
    let rest = hash.strip_prefix('$').ok_or(WANT)?;
    let (id, rest) = rest.split_once('$').ok_or(WANT)?;
    if !matches!(id, "1" | "5" | "6") {
        return Err(WANT);
    }
    let (salt, value) = rest.split_once('$').ok_or(WANT)?;
    if salt.is_empty() || salt.starts_with("rounds=") || value.is_empty() {
        return Err(WANT);
    }
    Ok(())
}

/// Check password-file contents: every line that is not blank or a `#` comment must be
/// `user:hash[:more fields]` with a supported hash ([`hash_format_supported`]). Returns the
/// number of users.
pub fn validate_password_file(file: &str, contents: &str) -> Result<usize, AuthFileError> {
    validate_lines(file, contents, |line| {
        let mut fields = line.split(':');
        let user = fields.next().unwrap_or_default();
        let Some(hash) = fields.next() else {
            return Err("expected user:hash");
        };
        if user.is_empty() {
            return Err("empty user name");
        }
        hash_format_supported(hash)
    })
}

/// Check CN-file contents: every line that is not blank or a `#` comment must be
/// `cn:user1,user2,...` with a non-empty CN and no empty user name. Returns the number of
/// CN lines.
pub fn validate_cn_file(file: &str, contents: &str) -> Result<usize, AuthFileError> {
    validate_lines(file, contents, |line| {
        let Some((cn, users)) = line.split_once(':') else {
            return Err("expected cn:user1,user2");
        };
        if cn.is_empty() {
            return Err("empty cn");
        }
        if users.split(',').any(str::is_empty) {
            return Err("empty user name in the user list");
        }
        Ok(())
    })
}

/// Check each line of an auth file that is not blank or a comment with `check` (which says
/// what is wrong with a bad line); the number of lines checked, or the first bad one.
fn validate_lines(
    file: &str,
    contents: &str,
    check: impl Fn(&str) -> Result<(), &'static str>,
) -> Result<usize, AuthFileError> {
    let mut n = 0;
    for (i, line) in contents.lines().enumerate() {
        if ignored_line(line) {
            continue;
        }
        check(line).map_err(|reason| AuthFileError::BadLine {
            file: file.to_string(),
            line: i + 1,
            reason: reason.to_string(),
        })?;
        n += 1;
    }
    Ok(n)
}

fn read_auth_file(path: &Path) -> Result<String, AuthFileError> {
    std::fs::read_to_string(path).map_err(|e| AuthFileError::Unreadable {
        file: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Read and validate the password file (see [`validate_password_file`]); its contents and
/// number of users.
pub fn load_password_file(path: &Path) -> Result<(String, usize), AuthFileError> {
    let contents = read_auth_file(path)?;
    let n = validate_password_file(&path.display().to_string(), &contents)?;
    Ok((contents, n))
}

/// Read and validate the CN file (see [`validate_cn_file`]); its contents and number of CNs.
pub fn load_cn_file(path: &Path) -> Result<(String, usize), AuthFileError> {
    let contents = read_auth_file(path)?;
    let n = validate_cn_file(&path.display().to_string(), &contents)?;
    Ok((contents, n))
}

/// Load every file `cfg` names, all or nothing.
fn load_files(cfg: &AuthConfig) -> Result<AuthFiles, AuthFileError> {
    let mut files = AuthFiles::default();
    if let Some(p) = &cfg.password_file {
        let (contents, n) = load_password_file(p)?;
        files.password = Some(contents.into());
        files.loaded.users = Some(n);
    }
    if let Some(p) = &cfg.clientcert_file {
        let (contents, n) = load_cn_file(p)?;
        files.cn = Some(contents.into());
        files.loaded.cns = Some(n);
    }
    Ok(files)
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
/// The password and CN files are read and validated when it is made, and again only by
/// [`Authenticator::reload`]. Password checks (crypt hashing) run on tokio's blocking pool,
/// at most [`AuthConfig::max_concurrent_checks`] at once; the others wait for a turn, so a
/// flood of `hello`s cannot take every CPU.
pub struct Authenticator {
    cfg: AuthConfig,
    files: RwLock<AuthFiles>,
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
    /// An authenticator for `cfg`; reads and validates the files it names.
    pub fn new(cfg: AuthConfig) -> Result<Authenticator, AuthFileError> {
        let files = load_files(&cfg)?;
        let permits = Arc::new(Semaphore::new(cfg.max_concurrent_checks.max(1)));
        Ok(Authenticator {
            cfg,
            files: RwLock::new(files),
            permits,
            counters: Arc::default(),
        })
    }

    /// Read and validate the files again, and reload the per-request authenticator
    /// ([`AuthConfig::request_auth`]). On success the new contents take effect at the next
    /// `hello`; on any error the previous contents stay (all or nothing).
    pub fn reload(&self) -> Result<AuthFilesLoaded, AuthFileError> {
        let files = load_files(&self.cfg)?;
        if let Some(r) = &self.cfg.request_auth {
            r.reload()?;
        }
        let loaded = files.loaded;
        *self.files.write() = files;
        Ok(loaded)
    }

    /// How many entries the files in use hold.
    pub fn loaded(&self) -> AuthFilesLoaded {
        self.files.read().loaded
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
    /// The files are those loaded by [`Authenticator::new`] or the last successful
    /// [`Authenticator::reload`]. This does not wait [`AuthConfig::failure_delay`]; the
    /// caller does, before it answers.
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
                let Some(contents) = self.files.read().password.clone() else {
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
                    check_password(&contents, &who, &token)
                })
                .await
                .unwrap_or_else(|e| Err(AuthFailure::CheckFailed(e.to_string())))
            }
            "clientcert" => {
                let Some(contents) = self.files.read().cn.clone() else {
                    return Err(AuthFailure::NoSuchMethod(method.to_string()));
                };
                let cn = peer_cn.ok_or(AuthFailure::NoPeerCn)?;
                check_cn(&contents, cn, who)
            }
            other => Err(AuthFailure::NoSuchMethod(other.to_string())),
        }
    }
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
    // The same formats the password file is validated against, at start and on reload.
    hash_format_supported(hash).map_err(|_| AuthFailure::InvalidHash)?;
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
        let auth = Authenticator::new(AuthConfig::default()).expect("no files to read");
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
        })
        .expect("no files to read");
        assert_eq!(dev.authenticate("kerberos", "a", "b", None).await, Ok(()));
    }

    #[tokio::test]
    async fn password_checks_are_counted_and_the_file_is_read_at_start_and_on_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("passwd");
        let cfg = AuthConfig {
            password_file: Some(path.clone()),
            max_concurrent_checks: 0,
            ..AuthConfig::default()
        };
        assert!(matches!(
            Authenticator::new(cfg.clone()),
            Err(AuthFileError::Unreadable { .. })
        ));
        std::fs::write(&path, PW).expect("write");
        let auth = Authenticator::new(cfg).expect("a good file");
        assert_eq!(auth.loaded().users, Some(2));
        assert_eq!(
            auth.authenticate("password", "theCustomer", "wantsThings", None)
                .await,
            Ok(())
        );
        // an edit takes effect only on reload; a bad file on reload keeps the old one
        std::fs::write(&path, "theCustomer:nohash\n").expect("write");
        assert_eq!(
            auth.authenticate("password", "theCustomer", "wantsThings", None)
                .await,
            Ok(())
        );
        assert!(matches!(
            auth.reload(),
            Err(AuthFileError::BadLine { line: 1, .. })
        ));
        assert_eq!(
            auth.authenticate("password", "theEmployee", "doesThings", None)
                .await,
            Ok(())
        );
        std::fs::write(&path, &PW[..PW.find('\n').unwrap_or(0) + 1]).expect("write");
        assert_eq!(
            auth.reload().map(|l| l.users),
            Ok(Some(1)),
            "only theCustomer now"
        );
        assert_eq!(
            auth.authenticate("password", "theEmployee", "doesThings", None)
                .await,
            Err(AuthFailure::NoSuchUser)
        );
        assert_eq!(
            auth.stats(),
            AuthStats {
                checks_running: 0,
                checks_running_peak: 1,
                checks_done: 4
            }
        );
    }

    #[test]
    fn password_file_lines_are_validated_with_their_line_number() {
        assert_eq!(validate_password_file("pw", PW), Ok(2));
        assert_eq!(
            validate_password_file("pw", &format!("# users\n\n{PW}  \n")),
            Ok(2)
        );
        for (text, line, reason) in [
            ("a:$5$salt$hash\njunk\n", 2, "expected user:hash"),
            (":$5$salt$hash\n", 1, "empty user name"),
            ("a:plaintext\n", 1, "not a supported password hash"),
            ("a:$2b$10$abcdefghijklmnopqrstuu\n", 1, "not a supported"),
            ("a:$5$rounds=5000$salt$xyz\n", 1, "not a supported"),
            ("#c\na:$6$salt$\n", 2, "not a supported"),
        ] {
            match validate_password_file("/etc/pw", text) {
                Err(e @ AuthFileError::BadLine { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.starts_with(&format!("/etc/pw:{line}: ")), "{msg}");
                    assert!(msg.contains(reason), "{msg}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        assert_eq!(
            validate_cn_file("cn", "# x\nw.example:a,b\nc.example:c\n"),
            Ok(2)
        );
        assert!(matches!(
            validate_cn_file("cn", "w.example:a,,b\n"),
            Err(AuthFileError::BadLine { line: 1, .. })
        ));
        assert!(matches!(
            validate_cn_file("cn", "ok:a\nnocolon\n"),
            Err(AuthFileError::BadLine { line: 2, .. })
        ));
    }

    #[test]
    fn a_hash_format_passes_validation_exactly_when_crypt_matches_can_check_it() {
        let md5 = crate::crypt::crypt("pw1", "$1$abcdefgh$").unwrap_or_default();
        let mut samples = vec![
            md5,
            "$5$Re.J8ULljB$Zlp7EvuSXSqred7R/ONec5Wcx3sa0Di7r8jYj6OYJgB".to_string(),
            "$6$saltsalt$abc".to_string(),
        ];
        samples.extend(
            [
                "plaintext",
                "$2b$10$abcdefghijklmnopqrstuu",
                "$5$rounds=5000$salt$xyz",
                "$5$$xyz",
                "$7$salt$xyz",
                "$5$salt",
            ]
            .map(str::to_string),
        );
        for h in samples {
            let checkable = crypt_matches(&h, "x") != Err(AuthFailure::InvalidHash);
            assert_eq!(hash_format_supported(&h).is_ok(), checkable, "{h}");
        }
    }
}
