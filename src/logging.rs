//! Logs: readable on a terminal, one JSON object per line elsewhere (for
//! log collectors). `RUST_LOG` filters; the default is `info`.
//!
//! When traces are exported (see `telemetry`), the OpenTelemetry layer
//! turns the service's own spans into OTLP spans; the spans of a request
//! or a message record its `trace_id`, so each log line inside names it.
//! The layer sees only the service's crates: the exporter's own HTTP and
//! gRPC clients must not trace their exports.

use std::io::IsTerminal;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// The crates whose spans are exported.
const TRACED_CRATES: [&str; 6] = [
    "chatd",
    "chat_gateway",
    "chat_router",
    "chat_persistence",
    "chat_bus",
    "chat_files",
];

pub fn init(format: LogFormat, tracer: Option<opentelemetry_sdk::trace::Tracer>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if json {
        fmt.json().boxed()
    } else {
        fmt.with_ansi(std::io::stderr().is_terminal()).boxed()
    };
    let otel = tracer.map(|tracer| {
        let targets = TRACED_CRATES.iter().fold(Targets::new(), |targets, name| {
            targets.with_target(*name, LevelFilter::TRACE)
        });
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(targets)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .init();
}
