//! The OTLP exporters and SDK providers of each signal, over HTTP/protobuf
//! or gRPC as [`OtelSettings`] say.

use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};

use crate::ObservabilityError;
use crate::settings::{OtelProtocol, OtelSettings, Signal};

fn env(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

fn protocol(settings: &OtelSettings, signal: Signal) -> Result<OtelProtocol, ObservabilityError> {
    settings
        .protocol_with(signal, env)
        .map_err(|message| ObservabilityError::Config { message })
}

fn failed(
    signal: Signal,
) -> impl FnOnce(opentelemetry_otlp::ExporterBuildError) -> ObservabilityError {
    move |e| ObservabilityError::Exporter {
        signal: signal.as_str(),
        message: e.to_string(),
    }
}

/// Builds `$builder`'s exporter over the protocol the settings choose for
/// `$signal`, at their endpoint if they name one.
macro_rules! exporter {
    ($builder:expr, $settings:expr, $signal:expr) => {{
        let proto = protocol($settings, $signal)?;
        let endpoint = $settings.endpoint($signal, proto);
        match proto {
            OtelProtocol::Http => {
                let mut b = $builder.with_http().with_protocol(Protocol::HttpBinary);
                if let Some(url) = endpoint {
                    b = b.with_endpoint(url);
                }
                b.build().map_err(failed($signal))?
            }
            OtelProtocol::Grpc => {
                let mut b = $builder.with_tonic();
                if let Some(url) = endpoint {
                    b = b.with_endpoint(url);
                }
                b.build().map_err(failed($signal))?
            }
        }
    }};
}

/// The sampler the settings name; `None` leaves the SDK's choice
/// (`OTEL_TRACES_SAMPLER`, else `parentbased_always_on`).
pub(crate) fn sampler(settings: &OtelSettings) -> Result<Option<Sampler>, ObservabilityError> {
    let Some(name) = settings.traces_sampler.as_deref() else {
        return Ok(None);
    };
    let ratio = || -> Result<f64, ObservabilityError> {
        match settings.traces_sampler_arg.as_deref() {
            None => Ok(1.0),
            Some(arg) => arg
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| ObservabilityError::Config {
                    message: format!("traces sampler argument `{arg}` is not a ratio in 0..=1"),
                }),
        }
    };
    let parent = |root: Sampler| Sampler::ParentBased(Box::new(root));
    Ok(Some(match name.trim().to_ascii_lowercase().as_str() {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(ratio()?),
        "parentbased_always_on" => parent(Sampler::AlwaysOn),
        "parentbased_always_off" => parent(Sampler::AlwaysOff),
        "parentbased_traceidratio" => parent(Sampler::TraceIdRatioBased(ratio()?)),
        other => {
            return Err(ObservabilityError::Config {
                message: format!("unknown traces sampler `{other}`"),
            });
        }
    }))
}

/// Spans per export request unless `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` says
/// otherwise (the SDK's default is 512). At one span per HTTP request and
/// ~10,000 requests/s, 512 meant ~30 export requests a second, each a
/// wake-up of the export thread and its HTTP client thread, a request the
/// collector parses, and their fixed costs; 2,048 cut the exporting
/// threads' CPU per span by a third and the collector's by two thirds in
/// `bench/observability.sh`. A request is then ~0.4 MB of protobuf, well
/// under the 4 MiB a collector accepts by default.
pub const DEFAULT_MAX_EXPORT_BATCH_SIZE: usize = 2048;

/// Spans the batch processor holds at most unless `OTEL_BSP_MAX_QUEUE_SIZE`
/// or [`OtelSettings::max_batch_queue_size`] says otherwise (the SDK's
/// default is 2,048): four batches, so spans keep queueing while one is
/// exported. A full queue drops spans, never blocks; ~4 MB at most.
pub const DEFAULT_MAX_QUEUE_SIZE: usize = 4 * DEFAULT_MAX_EXPORT_BATCH_SIZE;

/// The sampler of every span of the process: the settings' if they name
/// one, else the SDK's (`OTEL_TRACES_SAMPLER`, else `parentbased_always_on`).
fn process_sampler(
    settings: &OtelSettings,
) -> Result<Box<dyn opentelemetry_sdk::trace::ShouldSample>, ObservabilityError> {
    Ok(match sampler(settings)? {
        Some(s) => Box::new(s),
        None => opentelemetry_sdk::trace::Config::default().sampler,
    })
}

/// Batch sizes: our defaults, then `OTEL_BSP_*` variables, then settings.
fn batch_limits(settings: &OtelSettings) -> (usize, usize) {
    let from_env = |var: &str| {
        env(var)
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n > 0)
    };
    let mut queue = from_env("OTEL_BSP_MAX_QUEUE_SIZE").unwrap_or(DEFAULT_MAX_QUEUE_SIZE);
    let batch = from_env("OTEL_BSP_MAX_EXPORT_BATCH_SIZE").unwrap_or(DEFAULT_MAX_EXPORT_BATCH_SIZE);
    if let Some(size) = settings.max_batch_queue_size.filter(|s| *s > 0) {
        queue = size;
    }
    (queue, batch.min(queue))
}

/// The SDK tracer provider (for `tracing` spans) and, over OTLP/HTTP, the
/// fast pipeline of [`crate::direct`] spans ([`crate::fast`]), both with
/// the same sampler, batch sizes, resource and endpoint.
pub(crate) fn tracer_provider(
    settings: &OtelSettings,
    resource: Resource,
    scope: &str,
) -> Result<SdkTracerProvider, ObservabilityError> {
    let exporter = exporter!(
        opentelemetry_otlp::SpanExporter::builder(),
        settings,
        Signal::Traces
    );
    let (max_queue, max_batch) = batch_limits(settings);
    crate::fast::install(
        settings,
        protocol(settings, Signal::Traces)?,
        process_sampler(settings)?,
        (max_batch, max_queue),
        &resource,
        scope,
    )?;
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(max_queue)
        .with_max_export_batch_size(max_batch);
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(batch.build())
        .build();
    let mut builder = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource);
    if let Some(sampler) = sampler(settings)? {
        builder = builder.with_sampler(sampler);
    }
    Ok(builder.build())
}

pub(crate) fn meter_provider(
    settings: &OtelSettings,
    resource: Resource,
) -> Result<SdkMeterProvider, ObservabilityError> {
    let exporter = exporter!(
        opentelemetry_otlp::MetricExporter::builder(),
        settings,
        Signal::Metrics
    );
    Ok(SdkMeterProvider::builder()
        .with_periodic_exporter(exporter)
        .with_resource(resource)
        .build())
}

pub(crate) fn logger_provider(
    settings: &OtelSettings,
    resource: Resource,
) -> Result<SdkLoggerProvider, ObservabilityError> {
    let exporter = exporter!(
        opentelemetry_otlp::LogExporter::builder(),
        settings,
        Signal::Logs
    );
    Ok(SdkLoggerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samplers_by_their_standard_names() {
        let with = |name: &str, arg: Option<&str>| {
            sampler(&OtelSettings {
                traces_sampler: Some(name.into()),
                traces_sampler_arg: arg.map(String::from),
                ..Default::default()
            })
        };
        assert!(matches!(
            with("always_off", None),
            Ok(Some(Sampler::AlwaysOff))
        ));
        assert!(matches!(
            with("parentbased_traceidratio", Some("0.1")),
            Ok(Some(Sampler::ParentBased(_)))
        ));
        assert!(with("traceidratio", Some("2")).is_err());
        assert!(with("bogus", None).is_err());
        assert!(matches!(sampler(&OtelSettings::default()), Ok(None)));
    }
}
