//! Metrics as operators see them: after a scripted chat over separate
//! gateway, router and persistence processes (real `redis-server`), each
//! role's `/metrics` parses as Prometheus text, the counters and histogram
//! counts of the chat moved by exactly what it did, and every metric the
//! Grafana dashboard and the alert rules query is exported by a role; and
//! fresh roles export, before anything is counted, every metric those
//! query and every metric docs/operations.md names, and none it does not.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use chat_bus::testing::RedisServer;
use serde_json::{Value, json};

use crate::harness::Server;
use crate::ws::Ws;

/// One scrape: each sample by its series (`name{label="value",...}` with
/// labels sorted), and each family's type.
#[derive(Debug, Default)]
struct Scrape {
    samples: HashMap<String, f64>,
    types: HashMap<String, String>,
}

impl Scrape {
    /// Parses the Prometheus text format strictly enough to fail on what a
    /// Prometheus server would refuse.
    fn parse(text: &str) -> Scrape {
        let mut scrape = Scrape::default();
        for line in text.lines().filter(|l| !l.is_empty()) {
            if let Some(comment) = line.strip_prefix("# ") {
                let mut words = comment.split_whitespace();
                if words.next() == Some("TYPE") {
                    let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                        panic!("bad TYPE line: {line}");
                    };
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "{line}"
                    );
                    scrape.types.insert(name.to_owned(), kind.to_owned());
                }
                continue;
            }
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad sample line: {line}"));
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                other => other
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in: {line}")),
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => {
                    let labels = labels
                        .strip_suffix('}')
                        .unwrap_or_else(|| panic!("bad labels in: {line}"));
                    let mut pairs: Vec<&str> =
                        labels.split(',').filter(|pair| !pair.is_empty()).collect();
                    for pair in &pairs {
                        let (key, value) = pair
                            .split_once('=')
                            .unwrap_or_else(|| panic!("bad label in: {line}"));
                        assert!(is_name(key), "bad label name in: {line}");
                        assert!(value.starts_with('"') && value.ends_with('"'), "{line}");
                    }
                    pairs.sort_unstable();
                    (name, format!("{{{}}}", pairs.join(",")))
                }
                None => (series, String::new()),
            };
            assert!(is_name(name), "bad metric name in: {line}");
            scrape.samples.insert(format!("{name}{labels}"), value);
        }
        scrape
    }

    /// The value of a series (labels in any order), 0 when absent.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        pairs.sort_unstable();
        let key = if pairs.is_empty() {
            name.to_owned()
        } else {
            format!("{name}{{{}}}", pairs.join(","))
        };
        self.samples.get(&key).copied().unwrap_or(0.0)
    }

    /// Whether the scrape has a family of this name (a histogram's
    /// `_bucket`, `_count` and `_sum` series count as its family).
    fn exports(&self, name: &str) -> bool {
        if self.types.contains_key(name) {
            return true;
        }
        ["_bucket", "_count", "_sum"].iter().any(|suffix| {
            name.strip_suffix(suffix)
                .is_some_and(|family| self.types.get(family).is_some_and(|t| t == "histogram"))
        })
    }
}

fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

async fn scrape(server: &Server) -> Scrape {
    let (status, _) = server.client().get("/readyz").await;
    assert_eq!(status, 200);
    let response = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    Scrape::parse(&response.text().await.unwrap())
}

/// The metric names a PromQL expression uses: its identifiers that name
/// this service's or the process's metrics.
fn metric_names(expr: &str, into: &mut BTreeSet<String>) {
    let mut word = String::new();
    for c in expr.chars().chain([' ']) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
        } else {
            if word.starts_with("chat_") || word.starts_with("process_") {
                into.insert(std::mem::take(&mut word));
            }
            word.clear();
        }
    }
}

fn repository_file(path: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn dashboard_metrics() -> BTreeSet<String> {
    let dashboard: Value =
        serde_json::from_str(&repository_file("deploy/grafana/chat-dashboard.json")).unwrap();
    let mut names = BTreeSet::new();
    let panels = dashboard["panels"].as_array().expect("panels");
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let targets = panel["targets"]
            .as_array()
            .expect("every panel has queries");
        assert!(!targets.is_empty(), "{panel}");
        for target in targets {
            let before = names.len();
            metric_names(target["expr"].as_str().expect("expr"), &mut names);
            assert!(
                names.len() > before || target["expr"].as_str().unwrap().contains("chat_"),
                "a query on no metric of the service: {target}"
            );
        }
    }
    names
}

fn alert_metrics() -> BTreeSet<String> {
    let docs =
        yaml_rust2::YamlLoader::load_from_str(&repository_file("deploy/prometheus/alerts.yml"))
            .expect("alerts.yml is YAML");
    let runbooks = repository_file("docs/operations.md");
    let unit_tests = repository_file("deploy/prometheus/alerts.test.yml");
    let mut names = BTreeSet::new();
    let mut alerts = 0;
    for group in docs[0]["groups"].as_vec().expect("groups") {
        for rule in group["rules"].as_vec().expect("rules") {
            metric_names(rule["expr"].as_str().expect("expr"), &mut names);
            let alert = rule["alert"].as_str().expect("every rule is an alert");
            assert!(
                runbooks.contains(&format!("\n### {alert}\n")),
                "{alert} has no runbook paragraph in docs/operations.md"
            );
            assert!(
                unit_tests.contains(&format!("alertname: {alert}\n")),
                "{alert} has no unit test in alerts.test.yml"
            );
            alerts += 1;
        }
    }
    assert!(alerts >= 7, "the seven alerts of the issue, at least");
    names
}

/// Polls `check` on fresh scrapes of `server` until it holds.
async fn eventually(server: &Server, what: &str, check: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let scrape = scrape(server).await;
        if check(&scrape) {
            return scrape;
        }
        assert!(Instant::now() < deadline, "{what}: {scrape:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_chat_moves_the_metrics_and_every_queried_metric_is_exported() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    let start = |role: &str| {
        Server::start_role(
            role,
            dir.path(),
            &[
                ("CHAT_REDIS_URL", &url),
                ("CHAT_RATES__SEND_PER_SECOND", "100000"),
                ("CHAT_RATES__SEND_BURST", "100000"),
            ],
        )
    };
    let (router, persist, gateway) = (start("router"), start("persist"), start("gateway"));
    let (alice, _) = gateway.user("alice").await;
    let (bob, bob_id) = gateway.user("bob").await;
    let room = alice.create_room("metered", "public", &[&bob_id]).await;

    let before = [
        scrape(&gateway).await,
        scrape(&router).await,
        scrape(&persist).await,
    ];
    let mut a = Ws::connect(&gateway, alice.token()).await;
    let mut b = Ws::connect(&gateway, bob.token()).await;
    for i in 0..3 {
        a.send(json!({"type": "send", "ref": format!("r{i}"), "room_id": room, "content": "hi"}))
            .await;
        a.next_of("ack").await;
        b.next_of("message").await;
    }
    a.close().await;
    b.close().await;

    let [gw0, router0, persist0] = &before;
    let moved = |after: &Scrape, before: &Scrape, name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    let gw = eventually(&gateway, "both connections closed", |s| {
        moved(s, gw0, "chat_disconnects_total", &[("code", "1000")]) == 2.0
    })
    .await;
    assert_eq!(moved(&gw, gw0, "chat_connections_opened_total", &[]), 2.0);
    assert_eq!(moved(&gw, gw0, "chat_ack_latency_seconds_count", &[]), 3.0);
    assert_eq!(
        moved(&gw, gw0, "chat_delivery_latency_seconds_count", &[]),
        3.0
    );
    assert_eq!(
        moved(&gw, gw0, "chat_frames_sent_total", &[("type", "ack")]),
        3.0
    );
    // To both members' connections.
    assert_eq!(
        moved(&gw, gw0, "chat_frames_sent_total", &[("type", "message")]),
        6.0
    );
    assert_eq!(gw.value("chat_connections", &[]), 0.0);
    assert_eq!(gw.value("chat_ready", &[]), 1.0);
    let router1 = scrape(&router).await;
    let sends = [("action", "send"), ("result", "ok")];
    assert_eq!(
        moved(&router1, router0, "chat_router_actions_total", &sends),
        3.0
    );
    assert_eq!(
        moved(
            &router1,
            router0,
            "chat_router_action_duration_seconds_count",
            &sends
        ),
        3.0
    );
    assert_eq!(
        moved(
            &router1,
            router0,
            "chat_bus_published_total",
            &[("kind", "stream")]
        ),
        3.0,
        "each send handed to the persist stream once"
    );
    let persist1 = scrape(&persist).await;
    assert_eq!(
        moved(&persist1, persist0, "chat_messages_persisted_total", &[]),
        3.0
    );
    // The gateway hears the room, so each ack rides its message's event
    // (one publish per message) instead of a reply of its own.
    assert_eq!(
        moved(
            &persist1,
            persist0,
            "chat_bus_published_total",
            &[("kind", "event")]
        ),
        3.0,
        "one event per message"
    );
    assert_eq!(
        moved(
            &persist1,
            persist0,
            "chat_bus_published_total",
            &[("kind", "reply")]
        ),
        0.0,
        "the acks rode the events"
    );
    let inserts = [("op", "insert_messages"), ("outcome", "ok")];
    assert!(
        moved(
            &persist1,
            persist0,
            "chat_store_operation_duration_seconds_count",
            &inserts
        ) >= 1.0
    );

    // Every role says which build it is and how the process fares.
    for scrape in [&gw, &router1, &persist1] {
        assert!(scrape.exports("chat_build_info"));
        assert!(scrape.exports("process_resident_memory_bytes"));
        assert_eq!(
            scrape.value("chat_dependency_up", &[("dependency", "bus")]),
            1.0
        );
    }
    // Lag gauges come from the roles that consume streams.
    let backlog = [
        ("stream", "persist"),
        ("group", "persisters"),
        ("partition", "0"),
    ];
    assert!(persist1.exports("chat_stream_backlog_entries"));
    assert_eq!(persist1.value("chat_stream_backlog_entries", &backlog), 0.0);

    let queried: BTreeSet<String> = dashboard_metrics()
        .union(&alert_metrics())
        .cloned()
        .collect();
    assert!(queried.len() > 20, "{queried:?}");
    let missing: Vec<&String> = queried
        .iter()
        .filter(|name| ![&gw, &router1, &persist1].iter().any(|s| s.exports(name)))
        .collect();
    assert!(
        missing.is_empty(),
        "queried but not exported by any role: {missing:?}"
    );
}

/// Every series an alert rule or the dashboard needs is there from a
/// role's first scrape, before anything was counted: a counter that
/// appears only on its first increment is invisible to `rate()` until its
/// second, so an alert on it would miss the first burst.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_roles_export_every_queried_series_before_anything_is_counted() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    let start = |role: &str| Server::start_role(role, dir.path(), &[("CHAT_REDIS_URL", &url)]);
    let roles = [start("router"), start("persist"), start("gateway")];
    let mut scrapes = Vec::new();
    for role in &roles {
        scrapes.push(scrape(role).await);
    }
    for scrape in &scrapes {
        assert_eq!(scrape.value("chat_audit_dropped_total", &[]), 0.0);
        assert!(scrape.exports("chat_audit_dropped_total"));
        assert!(scrape.exports("chat_runtime_threads"));
        for (name, label, value) in [
            ("chat_connections_refused_total", "cap", "total"),
            ("chat_handshakes_closed_total", "reason", "timeout"),
            ("chat_caps_refused_total", "cap", "rooms_per_hour"),
            ("chat_budget_refused_total", "action", "send"),
            ("chat_login_limited_total", "by", "address"),
            ("chat_file_uploads_total", "outcome", "failed"),
        ] {
            let series = format!("{name}{{{label}=\"{value}\"}}");
            assert_eq!(
                scrape.samples.get(&series),
                Some(&0.0),
                "{series} is not at zero from the start"
            );
        }
    }
    let queried: BTreeSet<String> = dashboard_metrics()
        .union(&alert_metrics())
        .cloned()
        .collect();
    let missing: Vec<&String> = queried
        .iter()
        .filter(|name| !scrapes.iter().any(|s| s.exports(name)))
        .collect();
    assert!(
        missing.is_empty(),
        "queried but not exported before anything was counted: {missing:?}"
    );

    // The operator's reference names every metric, and what it names is
    // there from the start.
    let documented = documented_metrics();
    let exported: BTreeSet<&String> = scrapes
        .iter()
        .flat_map(|s| s.types.keys())
        .filter(|name| name.starts_with("chat_"))
        .collect();
    let undocumented: Vec<&&String> = exported
        .iter()
        .filter(|name| !documented.contains(name.as_str()))
        .collect();
    assert!(
        undocumented.is_empty(),
        "exported but not in docs/operations.md: {undocumented:?}"
    );
    let absent: Vec<&String> = documented
        .iter()
        .filter(|name| !exported.contains(name))
        .collect();
    assert!(
        absent.is_empty(),
        "in docs/operations.md but not exported before anything was counted: {absent:?}"
    );
}

/// The metric families docs/operations.md names in its tables (a row's
/// first or last cell: `chat_name{labels}`).
fn documented_metrics() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in repository_file("docs/operations.md").lines() {
        if !line.starts_with('|') {
            continue;
        }
        for cell in line.split('|') {
            let cell = cell.trim();
            if let Some(name) = cell.strip_prefix("`chat_") {
                let name: String = name
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                names.insert(format!("chat_{name}"));
            }
        }
    }
    assert!(names.len() > 40, "{names:?}");
    names
}
