//! The `[scylla]` section: the ScyllaDB store's settings, and the options
//! the store is opened with.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chat_persistence::scylla::{self, ScyllaOptions};
use serde::{Deserialize, Serialize};

/// The ScyllaDB store, used instead of SQLite when `nodes` is not empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScyllaConfig {
    /// Contact points, `host:port`; empty means the embedded SQLite store.
    /// `CHAT_SCYLLA_NODES` takes them comma-separated.
    pub nodes: Vec<String>,
    pub keyspace: String,
    /// `NetworkTopologyStrategy` (default) or `SimpleStrategy`, for
    /// creating the keyspace.
    pub replication_strategy: String,
    /// Copies of every row (per data centre with `NetworkTopologyStrategy`
    /// and no `datacenters`); 3 by default.
    pub replication_factor: u32,
    /// Accept a replication factor of 1 (tests, single-node trials);
    /// refused otherwise, since one copy loses acked messages with a node.
    pub allow_replication_factor_one: bool,
    /// Username for ScyllaDB's PasswordAuthenticator (with `password`).
    pub username: Option<String>,
    /// Password of `username`; never printed or logged.
    pub password: Option<String>,
    /// Connect to every node over TLS (rustls). Node certificates must
    /// name the nodes' IP addresses.
    pub tls: bool,
    /// PEM bundle of the authorities that signed the nodes' certificates;
    /// unset: the system's roots.
    pub tls_ca_file: Option<PathBuf>,
    /// PEM certificate chain and key of this client, for clusters that
    /// require client certificates (both or neither).
    pub tls_client_cert_file: Option<PathBuf>,
    pub tls_client_key_file: Option<PathBuf>,
    /// Copies per data centre with `NetworkTopologyStrategy` (when empty,
    /// `replication_factor` in every data centre).
    pub datacenters: BTreeMap<String, u32>,
    /// The data centre whose nodes coordinate this process's requests.
    pub local_datacenter: Option<String>,
    /// Whether a new keyspace uses tablets (unset: the server's default).
    /// The store needs lightweight transactions, which some ScyllaDB
    /// versions do not support on tablets: set `false` there.
    pub tablets: Option<bool>,
    /// Hours per message partition of rooms created from now on (each room
    /// keeps the window it was created with). Hours, not days, so that a
    /// deployment with busy rooms can keep their partitions small (at
    /// ~90 msg/s a 1-hour window holds ~100 MB).
    pub bucket_hours: u32,
    /// Of reads and writes: `local_quorum`, `quorum`, `one`, ...
    pub consistency: String,
    /// Of lightweight transactions: `local_serial` or `serial`.
    pub serial_consistency: String,
    /// Whether starting creates missing tables (`chatd migrate` always does).
    pub create_schema: bool,
}

impl Default for ScyllaConfig {
    fn default() -> ScyllaConfig {
        ScyllaConfig {
            nodes: Vec::new(),
            keyspace: "chat".into(),
            replication_strategy: "NetworkTopologyStrategy".into(),
            replication_factor: scylla::DEFAULT_REPLICATION_FACTOR,
            allow_replication_factor_one: false,
            username: None,
            password: None,
            tls: false,
            tls_ca_file: None,
            tls_client_cert_file: None,
            tls_client_key_file: None,
            datacenters: BTreeMap::new(),
            local_datacenter: None,
            tablets: None,
            bucket_hours: 240,
            consistency: "local_quorum".into(),
            serial_consistency: "local_serial".into(),
            create_schema: true,
        }
    }
}

impl ScyllaConfig {
    /// The store's options, or `None` when no node is configured.
    pub fn options(&self) -> anyhow::Result<Option<ScyllaOptions>> {
        if self.nodes.is_empty() {
            return Ok(None);
        }
        let consistency =
            scylla::parse_consistency(&self.consistency).map_err(anyhow::Error::msg)?;
        let options = ScyllaOptions {
            nodes: self.nodes.clone(),
            keyspace: self.keyspace.clone(),
            replication: scylla::Replication::from_settings(
                &self.replication_strategy,
                self.replication_factor,
                &self.datacenters,
            )
            .map_err(anyhow::Error::msg)?,
            bucket_window: Duration::from_secs(u64::from(self.bucket_hours) * 60 * 60),
            read_consistency: consistency,
            write_consistency: consistency,
            serial_consistency: scylla::parse_serial_consistency(&self.serial_consistency)
                .map_err(anyhow::Error::msg)?,
            allow_replication_factor_one: self.allow_replication_factor_one,
            credentials: self.credentials()?,
            tls: self.tls.then(|| scylla::TlsOptions {
                ca_file: self.tls_ca_file.clone(),
                client_cert_file: self.tls_client_cert_file.clone(),
                client_key_file: self.tls_client_key_file.clone(),
            }),
            local_datacenter: self.local_datacenter.clone(),
            tablets: self.tablets,
            ..ScyllaOptions::default()
        };
        options.validate().map_err(anyhow::Error::msg)?;
        Ok(Some(options))
    }

    /// The username and password, both or neither.
    fn credentials(&self) -> anyhow::Result<Option<scylla::ScyllaCredentials>> {
        match (&self.username, &self.password) {
            (Some(username), Some(password)) => {
                Ok(Some(scylla::ScyllaCredentials::new(username, password)))
            }
            (None, None) => Ok(None),
            _ => anyhow::bail!("scylla.username and scylla.password go together"),
        }
    }
}
