//! Trace export over OTLP, configured by the standard OpenTelemetry
//! environment variables and off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set.
//!
//! - `OTEL_EXPORTER_OTLP_PROTOCOL` (or `..._TRACES_PROTOCOL`): `grpc` or
//!   `http/protobuf` (the default, as the specification says).
//! - `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`: the resource;
//!   the service name is `chatd` unless set. `chat.roles` names the roles
//!   the process runs, so one service's spans can be told apart by role.
//! - `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`: sampling (read by
//!   the SDK; the default is `parentbased_always_on`).
//! - `OTEL_BSP_*`: batching (read by the SDK).
//!
//! When off, no OpenTelemetry layer is installed: spans are only `tracing`
//! spans, nothing is buffered and nothing travels on the bus (see
//! `chat_bus::trace`). Exports run as tasks of the process's tokio runtime,
//! so [`init`] must run inside it; [`Telemetry::shutdown`] flushes what is
//! left before the process exits.

use anyhow::Context;
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

/// What the environment asks for: `None` when export is off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportConfig {
    pub protocol: Protocol,
}

impl ExportConfig {
    /// Reads the variables through `var` (the process environment in
    /// [`init`]).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<ExportConfig>> {
        let set = |name: &str| var(name).filter(|value| !value.trim().is_empty());
        if set("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
            && set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
        {
            return Ok(None);
        }
        let protocol = match set("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| set("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .as_deref()
            .map(str::trim)
        {
            None | Some("http/protobuf") => Protocol::HttpProtobuf,
            Some("grpc") => Protocol::Grpc,
            Some(other) => anyhow::bail!(
                "OTEL_EXPORTER_OTLP_PROTOCOL is {other:?}; chatd exports `grpc` or `http/protobuf`"
            ),
        };
        Ok(Some(ExportConfig { protocol }))
    }
}

/// The running exporter, if any.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// A tracer for the `tracing` layer, when exporting.
    pub fn tracer(&self) -> Option<opentelemetry_sdk::trace::Tracer> {
        self.provider
            .as_ref()
            .map(|provider| provider.tracer("chatd"))
    }

    /// Exports the spans still buffered and stops the exporter.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        // The SDK's shutdown blocks until the export task confirms; that
        // task runs on this runtime, so wait off its worker threads.
        match tokio::task::spawn_blocking(move || provider.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("chatd: trace export did not flush: {error}"),
            Err(error) => eprintln!("chatd: trace export did not flush: {error}"),
        }
    }
}

/// Starts the exporter the environment asks for (inside a tokio runtime),
/// for a process that runs `roles`.
pub fn init(roles: &[crate::cli::Role]) -> anyhow::Result<Telemetry> {
    let Some(config) = ExportConfig::from_vars(|name| std::env::var(name).ok())? else {
        return Ok(Telemetry { provider: None });
    };
    let exporter = match config.protocol {
        Protocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build(),
        Protocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .build(),
    }
    .context("cannot set up the OTLP trace exporter")?;
    let roles = roles
        .iter()
        .map(|role| format!("{role:?}").to_lowercase())
        .collect::<Vec<_>>()
        .join(",");
    let mut resource = Resource::builder().with_attribute(KeyValue::new("chat.roles", roles));
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("chatd");
    }
    let provider = SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter, Tokio).build())
        .with_resource(resource.build())
        .build();
    Ok(Telemetry {
        provider: Some(provider),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> anyhow::Result<Option<ExportConfig>> {
        ExportConfig::from_vars(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        })
    }

    #[test]
    fn off_without_an_endpoint() {
        assert_eq!(config(&[]).unwrap(), None);
        assert_eq!(
            config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]).unwrap(),
            None
        );
        assert_eq!(
            config(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap(),
            None
        );
    }

    #[test]
    fn http_protobuf_unless_grpc_is_asked_for() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        assert_eq!(
            config(&[endpoint]).unwrap().unwrap().protocol,
            Protocol::HttpProtobuf
        );
        assert_eq!(
            config(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")])
                .unwrap()
                .unwrap()
                .protocol,
            Protocol::Grpc
        );
        assert_eq!(
            config(&[
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://127.0.0.1:4317"
                ),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ])
            .unwrap()
            .unwrap()
            .protocol,
            Protocol::Grpc
        );
    }

    #[test]
    fn an_unsupported_protocol_is_refused() {
        let error = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ])
        .unwrap_err();
        assert!(error.to_string().contains("http/json"), "{error}");
    }
}
