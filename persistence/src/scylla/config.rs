//! [`ScyllaOptions`]: where the cluster is, how the keyspace is replicated,
//! the bucket window and the consistency levels, with validation and the
//! parsers the binary's configuration uses for its string settings.

use std::collections::BTreeMap;
use std::time::Duration;

pub use scylla::frame::types::{Consistency, SerialConsistency};

use super::buckets::{Buckets, DEFAULT_WINDOW};
use super::tls::TlsOptions;

/// The replication factor of a new keyspace unless configured: three
/// copies (per data centre), so that `local_quorum` (2 of 3) survives the
/// loss of a node.
pub const DEFAULT_REPLICATION_FACTOR: u32 = 3;

/// A username and password for ScyllaDB's PasswordAuthenticator. The
/// password is never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct ScyllaCredentials {
    pub username: String,
    password: String,
}

impl ScyllaCredentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> ScyllaCredentials {
        ScyllaCredentials {
            username: username.into(),
            password: password.into(),
        }
    }

    pub fn password(&self) -> &str {
        &self.password
    }
}

impl std::fmt::Debug for ScyllaCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScyllaCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How the keyspace is replicated when `migrate` creates it (an existing
/// keyspace is left as it is: changing replication is an operator's job).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replication {
    /// `SimpleStrategy`: one ring, `factor` copies. For a single data centre
    /// or a test cluster.
    Simple { factor: u32 },
    /// `NetworkTopologyStrategy`: copies per data centre, by name.
    NetworkTopology { datacenters: BTreeMap<String, u32> },
}

impl Replication {
    /// The replication from the configuration's strategy name, factor and
    /// per-data-centre factors (the latter only for `NetworkTopologyStrategy`;
    /// when empty, every data centre gets `factor` copies).
    pub fn from_settings(
        strategy: &str,
        factor: u32,
        datacenters: &BTreeMap<String, u32>,
    ) -> Result<Replication, String> {
        let replication = match strategy.to_ascii_lowercase().as_str() {
            "simplestrategy" | "simple" => Replication::Simple { factor },
            "networktopologystrategy" | "networktopology" | "network_topology" => {
                let datacenters = if datacenters.is_empty() {
                    // No data centre named: `replication_factor` applies to
                    // every one (the empty name stands for it).
                    BTreeMap::from([(String::new(), factor)])
                } else {
                    datacenters.clone()
                };
                Replication::NetworkTopology { datacenters }
            }
            _ => {
                return Err(format!(
                    "unknown replication strategy {strategy:?} (SimpleStrategy or NetworkTopologyStrategy)"
                ));
            }
        };
        replication.validate()?;
        Ok(replication)
    }

    /// The smallest number of copies any data centre gets.
    fn smallest_factor(&self) -> u32 {
        match self {
            Replication::Simple { factor } => *factor,
            Replication::NetworkTopology { datacenters } => {
                datacenters.values().copied().min().unwrap_or(0)
            }
        }
    }

    fn validate(&self) -> Result<(), String> {
        match self {
            Replication::Simple { factor } if *factor == 0 => {
                Err("the replication factor must be at least 1".into())
            }
            Replication::Simple { .. } => Ok(()),
            Replication::NetworkTopology { datacenters } => {
                for (name, factor) in datacenters {
                    // The name is spliced into CQL text: allow only what data
                    // centre names are made of.
                    if !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
                    {
                        return Err(format!("invalid data centre name {name:?}"));
                    }
                    if *factor == 0 {
                        return Err(format!("data centre {name:?} needs a factor of at least 1"));
                    }
                }
                Ok(())
            }
        }
    }

    /// The `replication = {...}` map of `CREATE KEYSPACE`.
    pub(crate) fn cql(&self) -> String {
        match self {
            Replication::Simple { factor } => {
                format!("{{'class': 'SimpleStrategy', 'replication_factor': {factor}}}")
            }
            Replication::NetworkTopology { datacenters } => {
                let mut map = String::from("{'class': 'NetworkTopologyStrategy'");
                for (name, factor) in datacenters {
                    if name.is_empty() {
                        map.push_str(&format!(", 'replication_factor': {factor}"));
                    } else {
                        map.push_str(&format!(", '{name}': {factor}"));
                    }
                }
                map.push('}');
                map
            }
        }
    }
}

/// Everything the ScyllaDB store needs to know.
#[derive(Clone, Debug)]
pub struct ScyllaOptions {
    /// Contact points, `host:port`; the driver discovers the rest of the
    /// cluster from them.
    pub nodes: Vec<String>,
    /// The keyspace holding every table.
    pub keyspace: String,
    /// Used when `migrate` creates the keyspace.
    pub replication: Replication,
    /// Whether a replication factor of 1 (one copy: losing a node loses
    /// acked messages) is accepted. Refused unless set, for tests and
    /// single-node trials.
    pub allow_replication_factor_one: bool,
    /// Username and password, when the cluster authenticates.
    pub credentials: Option<ScyllaCredentials>,
    /// TLS to every node, when set.
    pub tls: Option<TlsOptions>,
    /// `Some(enabled)` adds `AND tablets = {'enabled': ...}` to `CREATE
    /// KEYSPACE`. ScyllaDB versions that default to tablets did not support
    /// lightweight transactions on them at first; this store needs LWT, so
    /// an operator on such a version sets `Some(false)`. `None` says nothing
    /// (what older versions and Cassandra require).
    pub tablets: Option<bool>,
    /// The window of a message bucket; fixed for the life of the keyspace.
    pub bucket_window: Duration,
    /// Consistency of reads.
    pub read_consistency: Consistency,
    /// Consistency of writes (and of the commit of lightweight transactions).
    pub write_consistency: Consistency,
    /// Consistency of the Paxos phase of lightweight transactions.
    pub serial_consistency: SerialConsistency,
    /// The data centre whose nodes coordinate requests (recommended with
    /// `LOCAL_*` consistencies in a multi-DC cluster).
    pub local_datacenter: Option<String>,
    /// Most statements one call keeps in flight (message batches, multi-gets).
    pub concurrency: usize,
    /// How long one request may take before it fails with `Unavailable`.
    pub request_timeout: Duration,
    /// How long connecting to a node may take.
    pub connect_timeout: Duration,
}

impl Default for ScyllaOptions {
    fn default() -> ScyllaOptions {
        ScyllaOptions {
            nodes: Vec::new(),
            keyspace: "chat".into(),
            replication: Replication::NetworkTopology {
                datacenters: BTreeMap::from([(String::new(), DEFAULT_REPLICATION_FACTOR)]),
            },
            allow_replication_factor_one: false,
            credentials: None,
            tls: None,
            tablets: None,
            bucket_window: DEFAULT_WINDOW,
            read_consistency: Consistency::LocalQuorum,
            write_consistency: Consistency::LocalQuorum,
            serial_consistency: SerialConsistency::LocalSerial,
            local_datacenter: None,
            concurrency: 64,
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl ScyllaOptions {
    /// Checks everything that can be checked without a cluster.
    pub fn validate(&self) -> Result<(), String> {
        if self.nodes.is_empty() {
            return Err("no ScyllaDB nodes are configured".into());
        }
        validate_keyspace(&self.keyspace)?;
        self.replication.validate()?;
        if self.replication.smallest_factor() == 1 && !self.allow_replication_factor_one {
            return Err(
                "a replication factor of 1 keeps one copy of every message (losing a \
                 node loses acked messages); use 3, or set allow_replication_factor_one"
                    .into(),
            );
        }
        if let Some(credentials) = &self.credentials
            && credentials.username.is_empty()
        {
            return Err("a ScyllaDB username must not be empty".into());
        }
        if let Some(tls) = &self.tls {
            tls.validate()?;
        }
        Buckets::new(self.bucket_window)?;
        if matches!(
            self.read_consistency,
            Consistency::Any | Consistency::EachQuorum
        ) {
            return Err(format!(
                "{:?} is not a read consistency",
                self.read_consistency
            ));
        }
        if matches!(
            self.write_consistency,
            Consistency::Serial | Consistency::LocalSerial
        ) {
            return Err(format!(
                "{:?} is not a write consistency",
                self.write_consistency
            ));
        }
        if self.concurrency == 0 {
            return Err("concurrency must be at least 1".into());
        }
        Ok(())
    }

    /// The bucket arithmetic of the configured window.
    pub fn buckets(&self) -> Result<Buckets, String> {
        Buckets::new(self.bucket_window)
    }
}

/// Keyspace names are spliced into CQL text, so only CQL's unquoted
/// identifiers are accepted: a letter, then letters, digits and `_`, at
/// most 48 characters.
fn validate_keyspace(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let valid = name.len() <= 48
        && bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid keyspace name {name:?}: a letter, then letters, digits or _, at most 48"
        ))
    }
}

/// A consistency level by its CQL name, in any case: `local_quorum`,
/// `QUORUM`, `one`, ...
pub fn parse_consistency(name: &str) -> Result<Consistency, String> {
    let consistency = match name.to_ascii_lowercase().replace('-', "_").as_str() {
        "any" => Consistency::Any,
        "one" => Consistency::One,
        "two" => Consistency::Two,
        "three" => Consistency::Three,
        "quorum" => Consistency::Quorum,
        "all" => Consistency::All,
        "local_quorum" => Consistency::LocalQuorum,
        "each_quorum" => Consistency::EachQuorum,
        "local_one" => Consistency::LocalOne,
        "serial" => Consistency::Serial,
        "local_serial" => Consistency::LocalSerial,
        _ => return Err(format!("unknown consistency level {name:?}")),
    };
    Ok(consistency)
}

/// A serial consistency level: `local_serial` or `serial`.
pub fn parse_serial_consistency(name: &str) -> Result<SerialConsistency, String> {
    match name.to_ascii_lowercase().replace('-', "_").as_str() {
        "local_serial" => Ok(SerialConsistency::LocalSerial),
        "serial" => Ok(SerialConsistency::Serial),
        _ => Err(format!(
            "unknown serial consistency {name:?} (local_serial or serial)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_nodes() -> ScyllaOptions {
        ScyllaOptions {
            nodes: vec!["127.0.0.1:9042".into()],
            ..ScyllaOptions::default()
        }
    }

    #[test]
    fn defaults_are_valid_once_nodes_are_given() {
        assert!(ScyllaOptions::default().validate().is_err());
        with_nodes().validate().unwrap();
        let defaults = ScyllaOptions::default();
        assert_eq!(defaults.keyspace, "chat");
        assert_eq!(defaults.read_consistency, Consistency::LocalQuorum);
        assert_eq!(defaults.write_consistency, Consistency::LocalQuorum);
        assert_eq!(defaults.serial_consistency, SerialConsistency::LocalSerial);
        assert_eq!(defaults.bucket_window, DEFAULT_WINDOW);
        assert_eq!(
            defaults.replication.cql(),
            "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}"
        );
        assert!(defaults.credentials.is_none() && defaults.tls.is_none());
    }

    #[test]
    fn a_replication_factor_of_one_is_refused_unless_allowed() {
        let one_dc = BTreeMap::from([("dc1".to_owned(), 3), ("dc2".to_owned(), 1)]);
        for replication in [
            Replication::Simple { factor: 1 },
            Replication::from_settings("NetworkTopologyStrategy", 1, &BTreeMap::new()).unwrap(),
            Replication::from_settings("NetworkTopologyStrategy", 3, &one_dc).unwrap(),
        ] {
            let refused = ScyllaOptions {
                replication: replication.clone(),
                ..with_nodes()
            };
            let error = refused.validate().unwrap_err();
            assert!(error.contains("allow_replication_factor_one"), "{error}");
            let allowed = ScyllaOptions {
                replication,
                allow_replication_factor_one: true,
                ..with_nodes()
            };
            allowed.validate().unwrap();
        }
        let three = ScyllaOptions {
            replication: Replication::Simple { factor: 3 },
            ..with_nodes()
        };
        three.validate().unwrap();
    }

    #[test]
    fn credentials_never_show_their_password() {
        let credentials = ScyllaCredentials::new("chat", "s3cret-pass");
        assert_eq!(credentials.password(), "s3cret-pass");
        let shown = format!(
            "{:?}",
            ScyllaOptions {
                credentials: Some(credentials),
                ..with_nodes()
            }
        );
        assert!(
            shown.contains("chat") && !shown.contains("s3cret"),
            "{shown}"
        );
        let nameless = ScyllaOptions {
            credentials: Some(ScyllaCredentials::new("", "x")),
            ..with_nodes()
        };
        assert!(nameless.validate().is_err());
    }

    #[test]
    fn keyspace_names_cannot_smuggle_cql() {
        for bad in [
            "",
            "1chat",
            "chat; DROP",
            "chat-test",
            "Ünï",
            &"k".repeat(49),
        ] {
            let options = ScyllaOptions {
                keyspace: bad.into(),
                ..with_nodes()
            };
            assert!(options.validate().is_err(), "{bad:?}");
        }
        for good in ["chat", "chat_test", "Chat2"] {
            validate_keyspace(good).unwrap();
        }
    }

    #[test]
    fn consistency_names_parse_in_any_case() {
        assert_eq!(
            parse_consistency("local_quorum"),
            Ok(Consistency::LocalQuorum)
        );
        assert_eq!(
            parse_consistency("LOCAL_QUORUM"),
            Ok(Consistency::LocalQuorum)
        );
        assert_eq!(parse_consistency("local-one"), Ok(Consistency::LocalOne));
        assert_eq!(parse_consistency("quorum"), Ok(Consistency::Quorum));
        assert!(parse_consistency("most").is_err());
        assert_eq!(
            parse_serial_consistency("SERIAL"),
            Ok(SerialConsistency::Serial)
        );
        assert!(parse_serial_consistency("quorum").is_err());
    }

    #[test]
    fn read_and_write_levels_are_checked() {
        let options = ScyllaOptions {
            read_consistency: Consistency::Any,
            ..with_nodes()
        };
        assert!(options.validate().is_err());
        let options = ScyllaOptions {
            write_consistency: Consistency::LocalSerial,
            ..with_nodes()
        };
        assert!(options.validate().is_err());
    }

    #[test]
    fn replication_maps_render_as_cql() {
        let simple = Replication::from_settings("SimpleStrategy", 3, &BTreeMap::new()).unwrap();
        assert_eq!(
            simple.cql(),
            "{'class': 'SimpleStrategy', 'replication_factor': 3}"
        );
        let dcs = BTreeMap::from([("eu-west".to_owned(), 3), ("us_east".to_owned(), 2)]);
        let nts = Replication::from_settings("NetworkTopologyStrategy", 1, &dcs).unwrap();
        assert_eq!(
            nts.cql(),
            "{'class': 'NetworkTopologyStrategy', 'eu-west': 3, 'us_east': 2}"
        );
        let every_dc =
            Replication::from_settings("NetworkTopologyStrategy", 3, &BTreeMap::new()).unwrap();
        assert_eq!(
            every_dc.cql(),
            "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}"
        );
        assert!(Replication::from_settings("LocalStrategy", 1, &BTreeMap::new()).is_err());
        assert!(Replication::from_settings("SimpleStrategy", 0, &BTreeMap::new()).is_err());
        let injected = BTreeMap::from([("dc1': 3}; DROP".to_owned(), 3)]);
        assert!(Replication::from_settings("NetworkTopologyStrategy", 1, &injected).is_err());
    }
}
