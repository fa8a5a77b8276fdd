//! Traces across processes: gateway, router and persistence worker as
//! separate `chatd` processes over a real `redis-server`, exporting over
//! OTLP/HTTP to a real receiver started here (an axum server decoding the
//! OTLP protobuf requests the exporter posts). One WebSocket `send` must be
//! one trace whose spans come from all three processes; without
//! `OTEL_EXPORTER_OTLP_ENDPOINT` nothing is exported. The gRPC transport
//! is checked against PyPI's `otelsink` (package `oteltest`, which .ci/run
//! installs).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use chat_bus::testing::RedisServer;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message as _;
use serde_json::json;
use tempfile::TempDir;

use crate::harness::Server;
use crate::ws::Ws;

/// One received span, flattened.
#[derive(Clone, Debug)]
struct Span {
    /// The `chat.roles` resource attribute of the process that sent it.
    roles: String,
    service: String,
    name: String,
    trace_id: String,
    attributes: Vec<(String, String)>,
}

impl Span {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// An OTLP/HTTP receiver: `POST /v1/traces` with a protobuf body.
struct Sink {
    endpoint: String,
    spans: Arc<Mutex<Vec<Span>>>,
    requests: Arc<Mutex<usize>>,
}

type Received = (Arc<Mutex<Vec<Span>>>, Arc<Mutex<usize>>);

async fn receive(State((spans, requests)): State<Received>, body: Bytes) -> &'static str {
    *requests.lock().unwrap() += 1;
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP trace export request");
    let mut spans = spans.lock().unwrap();
    for resource_spans in request.resource_spans {
        let resource = resource_spans.resource.unwrap_or_default().attributes;
        let roles = attribute(&resource, "chat.roles").unwrap_or_default();
        let service = attribute(&resource, "service.name").unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                spans.push(Span {
                    roles: roles.clone(),
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    attributes: span
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
                        .collect(),
                });
            }
        }
    }
    ""
}

fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| text(kv.value.as_ref()))
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sink {
    async fn start_on(address: &str) -> Sink {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(0));
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(receive))
            .with_state((spans.clone(), requests.clone()));
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .unwrap_or_else(|error| panic!("cannot listen on {address}: {error}"));
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Sink {
            endpoint,
            spans,
            requests,
        }
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }
}

/// The three roles, as separate processes on one Redis and data directory.
struct Roles {
    gateway: Server,
    router: Server,
    persist: Server,
}

fn start_roles(redis: &RedisServer, dir: &TempDir, extra: &[(&str, &str)]) -> Roles {
    let url = redis.url();
    let start = |role: &str| {
        let mut env: Vec<(&str, &str)> = vec![
            ("CHAT_REDIS_URL", &url),
            ("CHAT_RATES__SEND_PER_SECOND", "100000"),
            ("CHAT_RATES__SEND_BURST", "100000"),
            ("RUST_LOG", "info,chat_router=debug,chat_persistence=debug"),
        ];
        env.extend_from_slice(extra);
        Server::start_role(role, dir.path(), &env)
    };
    Roles {
        router: start("router"),
        persist: start("persist"),
        gateway: start("gateway"),
    }
}

/// One WebSocket `send` and one REST post carrying a client's
/// `traceparent`; answers the `ack`ed message id of the `send`.
async fn chat(gateway: &Server, traceparent: &str) -> String {
    let (alice, _) = gateway.user("alice").await;
    let room = alice.create_room("traced", "public", &[]).await;
    let mut ws = Ws::connect(gateway, alice.token()).await;
    ws.send(json!({
        "type": "send", "ref": "r1", "room_id": room, "content": "secret words",
    }))
    .await;
    let ack = ws.next_of("ack").await;
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/rooms/{room}/messages", gateway.base))
        .bearer_auth(alice.token())
        .header("traceparent", traceparent)
        .json(&json!({"content": "more secret words"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    ack["message_id"].as_str().unwrap().to_owned()
}

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_ws_send_is_one_trace_across_gateway_router_and_persistence() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start_on("127.0.0.1:0").await;
    let roles = start_roles(
        &redis,
        &dir,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &sink.endpoint),
            ("OTEL_SERVICE_NAME", "chat-test"),
        ],
    );
    let traceparent = format!("00-{CLIENT_TRACE}-00f067aa0ba902b7-01");
    let message_id = chat(&roles.gateway, &traceparent).await;
    // Batches are exported every 5 s by default: what arrives before the
    // processes stop was flushed by their shutdown.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (router_log, persist_log) = (roles.router.log(), roles.persist.log());
    for server in [roles.gateway, roles.router, roles.persist] {
        assert!(server.stop().success());
    }
    let spans = sink.spans();
    assert!(spans.iter().all(|s| s.service == "chat-test"), "{spans:#?}");

    let ws_send = spans
        .iter()
        .find(|s| s.name == "ws.action" && s.attribute("action") == Some("send"))
        .unwrap_or_else(|| panic!("no ws.action span for the send: {spans:#?}"));
    assert_eq!(ws_send.roles, "gateway");
    let trace: Vec<&Span> = spans
        .iter()
        .filter(|s| s.trace_id == ws_send.trace_id)
        .collect();
    let has = |roles: &str, name: &str| trace.iter().any(|s| s.roles == roles && s.name == name);
    assert!(has("router", "router.action"), "{trace:#?}");
    assert!(has("persistence", "persist.deliver"), "{trace:#?}");
    assert!(has("gateway", "gateway.reply"), "{trace:#?}");
    assert!(has("gateway", "gateway.fan_out"), "{trace:#?}");
    let routed = trace
        .iter()
        .find(|s| s.name == "router.action")
        .expect("the router's span");
    assert_eq!(routed.attribute("action"), Some("send"));
    assert_eq!(routed.attribute("message_id"), Some(message_id.as_str()));
    assert_eq!(routed.attribute("room_id"), ws_send.attribute("room_id"));

    // The REST post continued the client's trace through every role.
    let client_trace: Vec<&Span> = spans
        .iter()
        .filter(|s| s.trace_id == CLIENT_TRACE)
        .collect();
    let in_client_trace = |roles: &str, name: &str| {
        client_trace
            .iter()
            .any(|s| s.roles == roles && s.name == name)
    };
    assert!(in_client_trace("gateway", "http.request"), "{spans:#?}");
    assert!(in_client_trace("router", "router.action"), "{spans:#?}");
    assert!(
        in_client_trace("persistence", "persist.deliver"),
        "{spans:#?}"
    );

    // Never content or tokens in span attributes.
    for span in &spans {
        for (key, value) in &span.attributes {
            assert!(
                !value.contains("secret words") && !value.contains("token="),
                "{key}={value} in {span:?}"
            );
        }
    }
    // Log lines inside a message's spans name its trace.
    assert!(router_log.contains(&ws_send.trace_id), "{router_log}");
    assert!(persist_log.contains(&ws_send.trace_id), "{persist_log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_exported_without_an_endpoint() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    // Where an exporter would send by default (OTLP/HTTP on localhost).
    let sink = Sink::start_on("127.0.0.1:4318").await;
    let roles = start_roles(
        &redis,
        &dir,
        &[
            ("OTEL_SERVICE_NAME", "chat-test"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ],
    );
    let traceparent = format!("00-{CLIENT_TRACE}-00f067aa0ba902b7-01");
    chat(&roles.gateway, &traceparent).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = [roles.gateway.log(), roles.router.log(), roles.persist.log()];
    for server in [roles.gateway, roles.router, roles.persist] {
        assert!(server.stop().success());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(*sink.requests.lock().unwrap(), 0);
    for log in logs {
        assert!(!log.contains("trace_id"), "{log}");
    }
}

/// `otelsink` (PyPI's `oteltest`), an OTLP sink on the default gRPC port,
/// printing each export request it receives as a line on stdout.
struct GrpcSink {
    child: std::process::Child,
    output: Arc<Mutex<String>>,
}

impl GrpcSink {
    /// The gRPC sink listens on 4317, the default OTLP/gRPC port.
    const ENDPOINT: &str = "127.0.0.1:4317";

    async fn start() -> GrpcSink {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new("otelsink")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("otelsink is needed (pip3 install oteltest; .ci/run does): {error}")
            });
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut output = output.lock().unwrap();
                    output.push_str(&line);
                    output.push('\n');
                }
            });
        }
        let mut sink = GrpcSink { child, output };
        for _ in 0..200 {
            if let Ok(Some(status)) = sink.child.try_wait() {
                panic!("otelsink exited ({status}): {}", sink.output());
            }
            if sink.output().contains("ready to start")
                && tokio::net::TcpStream::connect(Self::ENDPOINT).await.is_ok()
            {
                return sink;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "otelsink did not listen on {}: {}",
            Self::ENDPOINT,
            sink.output()
        );
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

impl Drop for GrpcSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_grpc_and_flushed_on_shutdown() {
    let sink = GrpcSink::start().await;
    let endpoint = format!("http://{}", GrpcSink::ENDPOINT);
    let server = Server::start_with(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_SERVICE_NAME", "chat-grpc-test"),
    ]);
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/register", server.base))
        .header(
            "traceparent",
            format!("00-{CLIENT_TRACE}-00f067aa0ba902b7-01"),
        )
        .json(&json!({"username": "carol", "password": "password123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    // Exports are batched every 5 s: only the shutdown's flush sends it now.
    assert!(server.stop().success());
    // otelsink prints each request as a dict; ids are base64 there.
    let client_trace_base64 = "S/kvNXezTaajzpKdDg5HNg==";
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let output = sink.output();
        let exported = output
            .lines()
            .find(|line| line.contains(client_trace_base64));
        if let Some(line) = exported {
            assert!(line.contains("'name': 'http.request'"), "{line}");
            assert!(line.contains("'chat-grpc-test'"), "{line}");
            assert!(line.contains("/api/v1/auth/register"), "{line}");
            assert!(!line.contains("password123"), "{line}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no span of the client's trace reached otelsink:\n{output}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
