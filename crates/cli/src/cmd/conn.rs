//! Turning the shared connection options into a connected client.

use std::time::Duration;

use jobcenter::{Client, ClientConfig, ClientError};

use crate::args::ConnArgs;
use crate::cmd::Failure;

/// Split `--address` into host and optional port: `HOST`, `HOST:PORT`, `[V6]:PORT`, or a
/// bare IPv6 address (`::1`, no port).
pub fn split_address(address: &str) -> Result<(String, Option<u16>), Failure> {
    if address.parse::<std::net::IpAddr>().is_ok() {
        return Ok((address.to_string(), None));
    }
    if let Some(rest) = address.strip_prefix('[') {
        let (host, tail) = rest
            .split_once(']')
            .ok_or_else(|| Failure::usage(format!("--address {address}: missing ]")))?;
        return match tail.strip_prefix(':') {
            None if tail.is_empty() => Ok((host.to_string(), None)),
            Some(port) => Ok((host.to_string(), Some(parse_port(address, port)?))),
            None => Err(Failure::usage(format!(
                "--address {address}: want [ADDRESS]:PORT"
            ))),
        };
    }
    match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.contains(':') => {
            Ok((host.to_string(), Some(parse_port(address, port)?)))
        }
        Some(_) => Err(Failure::usage(format!(
            "--address {address}: want HOST or HOST:PORT"
        ))),
        None if address.is_empty() => Err(Failure::usage("--address is empty")),
        None => Ok((address.to_string(), None)),
    }
}

fn parse_port(address: &str, port: &str) -> Result<u16, Failure> {
    port.parse()
        .map_err(|_| Failure::usage(format!("--address {address}: {port:?} is not a port")))
}

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
    let (host, port) = split_address(&c.address)?;
    let mut cfg = ClientConfig::new(who, token)
        .address(host)
        .port(port.unwrap_or(c.port))
        .method(c.method.clone())
        .timeout(Duration::from_secs_f64(c.timeout));
    if c.tls {
        cfg.tls = true;
        match (&c.tls_ca, c.tls_insecure) {
            (Some(ca), _) => cfg = cfg.tls_ca(ca.clone()),
            (None, true) => {
                eprintln!(
                    "jobcenter: warning: --tls-insecure: the server's certificate is not \
                     verified"
                );
                cfg = cfg.tls_insecure();
            }
            (None, false) => {
                return Err(Failure::usage(
                    "--tls needs --tls-ca FILE (the CA that signed the server's certificate) \
                     to verify the server, or --tls-insecure to skip the check",
                ))
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

/// What went wrong while connecting and logging in, and what to do about it.
pub fn connect_message(cfg: &ClientConfig, e: &ClientError) -> String {
    let at = format!("{}:{}", cfg.address, cfg.port);
    match e {
        ClientError::Connection { source, .. }
            if source.kind() == std::io::ErrorKind::ConnectionRefused =>
        {
            format!(
                "cannot connect to {at}: connection refused. Is the server running, and are \
                 --address/--port (JOBCENTER_ADDRESS/JOBCENTER_PORT) right?"
            )
        }
        ClientError::Connection { source, .. } => format!(
            "cannot connect to {at}: {source}. Check --address/--port \
             (JOBCENTER_ADDRESS/JOBCENTER_PORT) and the network"
        ),
        ClientError::HandshakeTimeout => format!(
            "{at} accepted the connection but sent no greeting within --timeout \
             ({} s). Is it a JobCenter server, and does it want TLS (--tls) or not?",
            cfg.timeout.as_secs_f64()
        ),
        ClientError::Closed => format!(
            "{at} closed the connection before the login finished. Is it a JobCenter server \
             (TLS needs --tls), and is it below its connection limits?"
        ),
        ClientError::WrongVersion(v) => {
            format!("{at} speaks protocol version {v}, not 1.1: not a JobCenter API server?")
        }
        ClientError::Auth(msg) => format!(
            "authentication failed as {} (method {}) at {at}: {msg} Check --who/--token \
             (JOBCENTER_WHO/JOBCENTER_TOKEN) against the server's password file",
            cfg.who, cfg.method
        ),
        ClientError::Tls(msg) => format!(
            "TLS with {at} failed: {msg}. Check --tls-ca (and --tls-cert/--tls-key), and that \
             the server listens with TLS there"
        ),
        other => format!("{at}: {other}"),
    }
}

/// Connect and authenticate, or fail with exit status 2 and a one-line message.
pub async fn connect(c: &ConnArgs) -> Result<Client, Failure> {
    let cfg = client_config(c)?;
    match Client::connect(cfg.clone()).await {
        Ok(client) => Ok(client),
        Err(e) => Err(Failure::connection(connect_message(&cfg, &e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_takes_host_names_ports_and_ipv6() {
        let ok = |a: &str| split_address(a).map_err(|f| f.message).ok();
        assert_eq!(ok("localhost"), Some(("localhost".into(), None)));
        assert_eq!(ok("localhost:6522"), Some(("localhost".into(), Some(6522))));
        assert_eq!(ok("10.0.0.1:7"), Some(("10.0.0.1".into(), Some(7))));
        assert_eq!(ok("::1"), Some(("::1".into(), None)));
        assert_eq!(ok("[::1]:6522"), Some(("::1".into(), Some(6522))));
        assert_eq!(ok("[::1]"), Some(("::1".into(), None)));
        for bad in ["", "host:port", "host:99999", "[::1", "[::1]x", "a:b:c"] {
            assert!(split_address(bad).is_err(), "{bad}");
        }
    }
}
