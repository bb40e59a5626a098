//! Client configuration: where to connect, how to authenticate, timeouts and limits.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::ClientError;

/// Everything [`crate::Client::connect`] needs; mirrors the Perl client's constructor options.
///
/// Defaults (C74): address `127.0.0.1`, port 6522, method `password`, no TLS, `timeout` 60 s,
/// `ping_timeout` 300 s, frame limit 16 MiB. `who` and `token` have no default and are
/// required.
///
/// ```
/// use jobcenter::ClientConfig;
/// let cfg = ClientConfig::new("theCustomer", "wantsThings").port(16522);
/// assert_eq!(cfg.address, "127.0.0.1");
/// assert_eq!(cfg.timeout.as_secs(), 60);
/// ```
///
/// Its `Debug` output shows the token as `"<redacted>"`.
#[derive(Clone)]
pub struct ClientConfig {
    /// Server host name or IP address.
    pub address: String,
    /// Server port.
    pub port: u16,
    /// User name sent in `hello` (required).
    pub who: String,
    /// Secret sent in `hello` (required; any non-empty text for `clientcert`).
    pub token: String,
    /// The `hello` authentication method name.
    pub method: String,
    /// Connect with TLS.
    pub tls: bool,
    /// PEM file with the CA certificate(s) the server certificate must chain to.
    pub tls_ca: Option<PathBuf>,
    /// PEM file with our client certificate (for the `clientcert` method).
    pub tls_cert: Option<PathBuf>,
    /// PEM file with our client private key.
    pub tls_key: Option<PathBuf>,
    /// Accept any server certificate and host name (INSECURE; only when no `tls_ca` is given).
    ///
    /// This crate ships no system root store, so a TLS connection needs either `tls_ca` or
    /// this explicit switch (which reproduces what the Perl client does without `tls_ca`).
    pub tls_insecure: bool,
    /// Server name to verify in the certificate; defaults to `address`.
    pub tls_server_name: Option<String>,
    /// Handshake timeout, default for [`crate::Client::ping`] and [`crate::Client::check_if_lock_exists`],
    /// and 1/5 of the default job timeout sent with `create_job`.
    pub timeout: Duration,
    /// Worker watchdog period: `work()` ends with 92 if no server ping arrived within it.
    /// Zero disables the watchdog.
    pub ping_timeout: Duration,
    /// Largest incoming frame accepted (server→client frames such as `job_done` can be big).
    pub max_frame: usize,
    /// Worker name sent with `announce`; default `"<who> <hostname> <program> <pid>"`.
    pub workername: Option<String>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every field, so that a new one is not forgotten here: the token is never shown.
        let ClientConfig {
            address,
            port,
            who,
            token: _,
            method,
            tls,
            tls_ca,
            tls_cert,
            tls_key,
            tls_insecure,
            tls_server_name,
            timeout,
            ping_timeout,
            max_frame,
            workername,
        } = self;
        f.debug_struct("ClientConfig")
            .field("address", address)
            .field("port", port)
            .field("who", who)
            .field("token", &"<redacted>")
            .field("method", method)
            .field("tls", tls)
            .field("tls_ca", tls_ca)
            .field("tls_cert", tls_cert)
            .field("tls_key", tls_key)
            .field("tls_insecure", tls_insecure)
            .field("tls_server_name", tls_server_name)
            .field("timeout", timeout)
            .field("ping_timeout", ping_timeout)
            .field("max_frame", max_frame)
            .field("workername", workername)
            .finish()
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            address: "127.0.0.1".to_string(),
            port: 6522,
            who: String::new(),
            token: String::new(),
            method: "password".to_string(),
            tls: false,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            tls_insecure: false,
            tls_server_name: None,
            timeout: Duration::from_secs(60),
            ping_timeout: Duration::from_secs(300),
            max_frame: jobcenter_wire::CLIENT_MAX_FRAME,
            workername: None,
        }
    }
}

impl ClientConfig {
    /// A default configuration with `who` and `token` set.
    pub fn new(who: impl Into<String>, token: impl Into<String>) -> Self {
        ClientConfig {
            who: who.into(),
            token: token.into(),
            ..ClientConfig::default()
        }
    }

    /// Set the server address (host name or IP).
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = address.into();
        self
    }

    /// Set the server port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Set the `hello` method name (`password`, `clientcert`, ...).
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = method.into();
        self
    }

    /// Set the handshake / ping timeout (also the base of the default job timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Set the worker watchdog period (zero disables it).
    pub fn ping_timeout(mut self, ping_timeout: Duration) -> Self {
        self.ping_timeout = ping_timeout;
        self
    }

    /// Set the worker name used by `announce`.
    pub fn workername(mut self, name: impl Into<String>) -> Self {
        self.workername = Some(name.into());
        self
    }

    /// Enable TLS, verifying the server against the CA certificates in `ca` (PEM).
    pub fn tls_ca(mut self, ca: impl Into<PathBuf>) -> Self {
        self.tls = true;
        self.tls_ca = Some(ca.into());
        self
    }

    /// Enable TLS with a client certificate and key (PEM), for the `clientcert` method.
    pub fn tls_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls = true;
        self.tls_cert = Some(cert.into());
        self.tls_key = Some(key.into());
        self
    }

    /// Enable TLS without verifying the server (INSECURE, see [`ClientConfig::tls_insecure`]).
    pub fn tls_insecure(mut self) -> Self {
        self.tls = true;
        self.tls_insecure = true;
        self
    }

    /// Start a [`ClientConfigBuilder`] from the defaults; [`ClientConfigBuilder::build`]
    /// checks the result.
    ///
    /// ```
    /// use jobcenter::ClientConfig;
    /// use std::time::Duration;
    /// let cfg = ClientConfig::builder()
    ///     .who("theCustomer")
    ///     .token("wantsThings")
    ///     .address("127.0.0.1")
    ///     .port(6522)
    ///     .timeout(Duration::from_secs(10))
    ///     .build()?;
    /// assert_eq!(cfg.who, "theCustomer");
    /// assert!(format!("{cfg:?}").contains(r#"token: "<redacted>""#));
    /// assert!(ClientConfig::builder().who("x").build().is_err(), "no token");
    /// # Ok::<(), jobcenter::ClientError>(())
    /// ```
    pub fn builder() -> ClientConfigBuilder {
        ClientConfigBuilder {
            cfg: ClientConfig::default(),
        }
    }

    /// Check the required options, in the Perl client's order (token first, then who).
    /// [`crate::Client::connect`] runs this before anything is sent.
    pub fn validate(&self) -> Result<(), ClientError> {
        if self.token.is_empty() {
            return Err(ClientError::MissingToken);
        }
        if self.who.is_empty() {
            return Err(ClientError::MissingWho);
        }
        Ok(())
    }

    /// [`ClientConfig::validate`] plus the checks that need no file or network: an address,
    /// a port, a usable TLS combination (`tls_ca` or `tls_insecure`; `tls_cert` and
    /// `tls_key` together), a non-zero frame limit.
    pub fn validate_all(&self) -> Result<(), ClientError> {
        self.validate()?;
        if self.address.trim().is_empty() {
            return Err(ClientError::Invalid("no address?".into()));
        }
        if self.port == 0 {
            return Err(ClientError::Invalid("no port?".into()));
        }
        if self.max_frame == 0 {
            return Err(ClientError::Invalid("max_frame must be at least 1".into()));
        }
        if self.tls {
            if self.tls_ca.is_none() && !self.tls_insecure {
                return Err(ClientError::Tls(
                    "no tls_ca given: set tls_ca, or tls_insecure to skip server verification"
                        .to_string(),
                ));
            }
            if self.tls_cert.is_some() != self.tls_key.is_some() {
                return Err(ClientError::Tls(
                    "tls_cert and tls_key must be given together".to_string(),
                ));
            }
        }
        Ok(())
    }

    /// The worker name: the configured one or `"<who> <hostname> <program> <pid>"`.
    pub fn effective_workername(&self) -> String {
        match &self.workername {
            Some(w) => w.clone(),
            None => default_workername(&self.who),
        }
    }

    /// The job timeout sent with `create_job` when the caller gives none: 5 × `timeout`.
    pub fn default_job_timeout(&self) -> Duration {
        self.timeout.saturating_mul(5)
    }
}

/// Builds a checked [`ClientConfig`]; see [`ClientConfig::builder`]. Unset options keep
/// their defaults. Its `Debug` output redacts the token like [`ClientConfig`]'s.
#[derive(Debug, Clone)]
#[must_use = "call .build() to get the configuration"]
pub struct ClientConfigBuilder {
    cfg: ClientConfig,
}

impl ClientConfigBuilder {
    /// The user name sent in `hello` (required).
    pub fn who(mut self, who: impl Into<String>) -> Self {
        self.cfg.who = who.into();
        self
    }

    /// The secret sent in `hello` (required).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.cfg.token = token.into();
        self
    }

    /// The server host name or IP address (default `127.0.0.1`).
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.cfg.address = address.into();
        self
    }

    /// The server port (default 6522).
    pub fn port(mut self, port: u16) -> Self {
        self.cfg.port = port;
        self
    }

    /// The `hello` method name (default `password`).
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.cfg.method = method.into();
        self
    }

    /// Handshake / ping timeout and base of the default job timeout (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.cfg.timeout = timeout;
        self
    }

    /// Worker watchdog period (default 300 s; zero disables it).
    pub fn ping_timeout(mut self, ping_timeout: Duration) -> Self {
        self.cfg.ping_timeout = ping_timeout;
        self
    }

    /// Largest incoming frame accepted (default 16 MiB).
    pub fn max_frame(mut self, max_frame: usize) -> Self {
        self.cfg.max_frame = max_frame;
        self
    }

    /// The worker name used by `announce`.
    pub fn workername(mut self, name: impl Into<String>) -> Self {
        self.cfg.workername = Some(name.into());
        self
    }

    /// Enable TLS, verifying the server against the CA certificates in `ca` (PEM).
    pub fn tls_ca(mut self, ca: impl Into<PathBuf>) -> Self {
        self.cfg = self.cfg.tls_ca(ca);
        self
    }

    /// Enable TLS with a client certificate and key (PEM), for the `clientcert` method.
    pub fn tls_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.cfg = self.cfg.tls_client_cert(cert, key);
        self
    }

    /// Enable TLS without verifying the server (INSECURE, see [`ClientConfig::tls_insecure`]).
    pub fn tls_insecure(mut self) -> Self {
        self.cfg = self.cfg.tls_insecure();
        self
    }

    /// The server name to verify in the certificate (default: the address).
    pub fn tls_server_name(mut self, name: impl Into<String>) -> Self {
        self.cfg.tls_server_name = Some(name.into());
        self
    }

    /// The configuration, checked with [`ClientConfig::validate_all`]: the same required
    /// options as [`crate::Client::connect`] (token, then who) plus address, port and the
    /// TLS combination.
    pub fn build(self) -> Result<ClientConfig, ClientError> {
        self.cfg.validate_all()?;
        Ok(self.cfg)
    }
}

/// `"<who> <hostname> <program> <pid>"`, the Perl client's default worker name.
pub fn default_workername(who: &str) -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let program = std::env::args()
        .next()
        .unwrap_or_else(|| "jobcenter".to_string());
    format!("{} {} {} {}", who, host, program, std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_token() {
        let cfg = ClientConfig::new("theCustomer", "s3cret-token-text");
        let text = format!("{cfg:?} {cfg:#?}");
        assert!(!text.contains("s3cret-token-text"), "{text}");
        assert!(
            text.contains("<redacted>") && text.contains("theCustomer"),
            "{text}"
        );
        let b = ClientConfig::builder().who("w").token("s3cret-token-text");
        let text = format!("{b:?}");
        assert!(!text.contains("s3cret-token-text"), "{text}");
    }

    #[test]
    fn builder_checks_like_connect_and_more() {
        let ok = ClientConfig::builder()
            .who("w")
            .token("t")
            .port(7000)
            .workername("wn")
            .build();
        let ok = ok.map_err(|e| e.to_string());
        assert_eq!(ok.as_ref().map(|c| c.port), Ok(7000));
        assert_eq!(
            ok.as_ref().map(|c| c.effective_workername()),
            Ok("wn".to_string())
        );
        // Token is checked before who, like ClientConfig::validate.
        assert!(matches!(
            ClientConfig::builder().build(),
            Err(ClientError::MissingToken)
        ));
        assert!(matches!(
            ClientConfig::builder().token("t").build(),
            Err(ClientError::MissingWho)
        ));
        let base = || ClientConfig::builder().who("w").token("t");
        assert!(matches!(
            base().address(" ").build(),
            Err(ClientError::Invalid(_))
        ));
        assert!(matches!(
            base().port(0).build(),
            Err(ClientError::Invalid(_))
        ));
        let mut tls = base().build().map_err(|e| e.to_string());
        if let Ok(c) = tls.as_mut() {
            c.tls = true;
        }
        assert!(matches!(
            tls.map(|c| c.validate_all()),
            Ok(Err(ClientError::Tls(_)))
        ));
        assert!(base().tls_insecure().build().is_ok());
        assert!(base().tls_ca("/ca.pem").build().is_ok());
    }
}
