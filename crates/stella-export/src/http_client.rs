//! HTTP clients that start on any machine. `reqwest::Client::new()` panics where the system has no CA
//! certificates (a minimal or air-gapped Debian without `ca-certificates`: seen on a clean install, where
//! it killed the rule evaluator); these builders fall back to a client that trusts no server certificate,
//! so plain HTTP (a loopback Alertmanager, a local Prometheus) still works and every HTTPS server is
//! refused as unknown, with the error naming the certificate.

/// Builds the client `configure` sets up on a fresh builder, trusting the system's CA certificates; where
/// there are none, the same client trusting no server certificate (see the module documentation).
pub fn build(
    configure: impl Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
) -> Result<reqwest::Client, reqwest::Error> {
    crate::install_crypto_provider();
    configure(reqwest::Client::builder()).build().or_else(|error| {
        let trusting_nothing = reqwest::Client::builder().tls_certs_only(Vec::<reqwest::Certificate>::new());
        configure(trusting_nothing).build().map_err(|_| error)
    })
}

/// A client with reqwest's defaults, built as [`build`] does: for webhooks, Alertmanager and the
/// command line's calls to a server.
pub fn plain() -> Result<reqwest::Client, reqwest::Error> {
    build(|builder| builder)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn a_client_is_built_whether_or_not_the_system_has_ca_certificates() {
        // The fallback itself: a client that trusts no server certificate builds (an empty root store is
        // not an error), so `plain` has a client to return where the system roots fail to load.
        crate::install_crypto_provider();
        let nothing = reqwest::Client::builder().tls_certs_only(Vec::<reqwest::Certificate>::new()).build();
        assert!(nothing.is_ok(), "{nothing:?}");
        assert!(super::plain().is_ok());
    }
}
