//! Connecting to PostgreSQL, with TLS as `sslMode` asks. Roster verifies every TLS
//! connection it makes (chain and host name), against the Connector's CA bundle or else
//! the Mozilla roots.

use tokio_postgres::{Client, NoTls, config::SslMode};

use crate::{
    api::PostgresSslMode,
    connector::{ConnectorError, target::Network, transport, truncate_body},
};

/// The most a connection's handshake (TCP, TLS, authentication) may take.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Per-session limits: a statement runs at most 15 s and waits at most 5 s for a lock.
const SESSION_TIMEOUTS: &str = "-c statement_timeout=15s -c lock_timeout=5s";

/// Where and as whom to connect.
#[derive(Clone)]
pub struct Settings {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Database.
    pub database: String,
    /// The role Roster logs in as.
    pub user: String,
    /// Its password (kept out of every message).
    pub password: String,
    /// TLS mode.
    pub ssl_mode: PostgresSslMode,
    /// PEM CA bundle, if the Connector names one.
    pub ca_pem: Option<Vec<u8>>,
    /// What may be connected to, and whether `Disable` and `Prefer` are allowed.
    pub network: Network,
}

impl Settings {
    /// The connection settings, to `addr`: the address the policy allowed, while the
    /// host name still names the server for TLS.
    fn config(&self, addr: std::net::IpAddr) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .hostaddr(addr)
            .port(self.port)
            .dbname(&self.database)
            .user(&self.user)
            .password(&self.password)
            .application_name("roster")
            .connect_timeout(std::time::Duration::from_secs(5))
            // No statement of Roster's waits forever on a lock or a slow server: the
            // pass fails, says so, and is retried.
            .options(SESSION_TIMEOUTS)
            .ssl_mode(match self.ssl_mode {
                PostgresSslMode::Disable => SslMode::Disable,
                PostgresSslMode::Prefer => SslMode::Prefer,
                PostgresSslMode::Require | PostgresSslMode::VerifyFull => SslMode::Require,
            });
        config
    }

    fn tls(&self) -> Result<tokio_postgres_rustls::MakeRustlsConnect, ConnectorError> {
        let config = crate::connector::tls::client_config(self.ca_pem.as_deref())?;
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }

    /// Opens a connection and drives it in the background (see [`drive`]). The whole
    /// handshake is bounded: `connect_timeout` covers only the TCP connect, and a server
    /// that accepts but never answers would hold the connector's one connection slot.
    pub async fn connect(&self) -> Result<Client, ConnectorError> {
        let target = format!("{}:{}", self.host, self.port);
        tokio::time::timeout(HANDSHAKE_TIMEOUT, self.handshake(&target))
            .await
            .unwrap_or_else(|_| {
                Err(ConnectorError::Unreachable {
                    target: target.clone(),
                    reason: format!(
                        "no answer to the connection handshake within {} s",
                        HANDSHAKE_TIMEOUT.as_secs()
                    ),
                })
            })
    }

    async fn handshake(&self, target: &str) -> Result<Client, ConnectorError> {
        let target = target.to_owned();
        let failed = |e: tokio_postgres::Error| {
            match e.as_db_error() {
                Some(_) => super::sql_error(&e),
                None => ConnectorError::Unreachable {
                    target: target.clone(),
                    reason: truncate_body(&e.to_string()),
                },
            }
            .redacted(&self.password)
        };
        transport::postgres_mode(self.ssl_mode, self.network.allow_plaintext)?;
        let addrs = self.network.policy.resolve(&self.host, self.port).await?;
        let addr = addrs.first().ok_or_else(|| ConnectorError::Unreachable {
            target: target.clone(),
            reason: "the host resolves to no address".into(),
        })?;
        let config = self.config(addr.ip());
        let client = if self.ssl_mode == PostgresSslMode::Disable {
            let (client, connection) = config.connect(NoTls).await.map_err(failed)?;
            drive(connection);
            client
        } else {
            let (client, connection) = config.connect(self.tls()?).await.map_err(failed)?;
            drive(connection);
            client
        };
        Ok(client)
    }
}

/// Runs a connection's I/O until it closes; the client sees the closing as an error on
/// its next call and the connector reconnects.
fn drive<F>(connection: F)
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "PostgreSQL connection closed");
        }
    });
}
