//! Turning the shared connection options into a connected client.

use std::time::Duration;

use jobcenter::{Client, ClientConfig};

use crate::args::ConnArgs;
use crate::cmd::Failure;

/// Build the client configuration from the command-line options.
pub fn client_config(c: &ConnArgs) -> Result<ClientConfig, Failure> {
    let who = c
        .who
        .clone()
        .ok_or_else(|| Failure::usage("no who? (give --who or set JOBCENTER_WHO)"))?;
    let token = c
        .token
        .as_ref()
        .map(|t| t.expose().to_string())
        .ok_or_else(|| Failure::usage("no token? (give --token or set JOBCENTER_TOKEN)"))?;
    if !(c.timeout.is_finite() && c.timeout > 0.0) {
        return Err(Failure::usage(
            "--timeout must be a positive number of seconds",
        ));
    }
    let mut cfg = ClientConfig::new(who, token)
        .address(c.address.clone())
        .port(c.port)
        .method(c.method.clone())
        .timeout(Duration::from_secs_f64(c.timeout));
    if c.tls {
        cfg.tls = true;
        match &c.tls_ca {
            Some(ca) => cfg = cfg.tls_ca(ca.clone()),
            None => {
                eprintln!(
                    "jobcenter: warning: --tls without --tls-ca does not verify the server's \
                     certificate (as the Perl client without tls_ca)"
                );
                cfg = cfg.tls_insecure();
            }
        }
    }
    match (&c.tls_cert, &c.tls_key) {
        (Some(cert), Some(key)) => cfg = cfg.tls_client_cert(cert.clone(), key.clone()),
        (None, None) => {}
        _ => return Err(Failure::usage("--tls-cert and --tls-key go together")),
    }
    Ok(cfg)
}

/// Connect and authenticate, or fail with exit status 2 and a one-line message.
pub async fn connect(c: &ConnArgs) -> Result<Client, Failure> {
    let cfg = client_config(c)?;
    Client::connect(cfg)
        .await
        .map_err(|e| Failure::connection(format!("{}:{}: {e}", c.address, c.port)))
}
