//! Where the fast span pipeline posts, read from the settings and the
//! standard `OTEL_EXPORTER_OTLP_*` variables the way the SDK's HTTP exporter
//! reads them, so both pipelines of a process go to the same place.

use std::time::Duration;

use super::pipeline::HttpTarget;

/// The SDK's default OTLP/HTTP endpoint.
const DEFAULT_ENDPOINT: &str = "http://localhost:4318";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP target of traces: `configured` (the settings' endpoint) if
/// given, else `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as it is, else
/// `OTEL_EXPORTER_OTLP_ENDPOINT` plus `/v1/traces`, else the default;
/// headers from `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, else
/// `OTEL_EXPORTER_OTLP_HEADERS`; the timeout (ms) from
/// `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, else `OTEL_EXPORTER_OTLP_TIMEOUT`.
///
/// `None` when a compression is asked for (`OTEL_EXPORTER_OTLP_*COMPRESSION`):
/// the SDK's exporter handles that case.
pub(crate) fn http_target(
    configured: Option<String>,
    env: impl Fn(&str) -> Option<String>,
) -> Option<HttpTarget> {
    let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    if var("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION")
        .or_else(|| var("OTEL_EXPORTER_OTLP_COMPRESSION"))
        .is_some()
    {
        return None;
    }
    let url = configured
        .filter(|u| !u.is_empty())
        .or_else(|| var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        .unwrap_or_else(|| {
            let base =
                var("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.into());
            format!("{}/v1/traces", base.trim_end_matches('/'))
        });
    let headers = var("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
        .or_else(|| var("OTEL_EXPORTER_OTLP_HEADERS"))
        .map(|h| parse_headers(&h))
        .unwrap_or_default();
    let timeout = var("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
        .or_else(|| var("OTEL_EXPORTER_OTLP_TIMEOUT"))
        .and_then(|ms| ms.trim().parse::<u64>().ok())
        .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
    Some(HttpTarget {
        url,
        headers,
        timeout,
    })
}

/// `key1=value1,key2=value2`, values percent-decoded; pairs without a key
/// or a value are skipped.
fn parse_headers(input: &str) -> Vec<(String, String)> {
    input
        .split(',')
        .filter_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            let (k, v) = (k.trim(), v.trim());
            (!k.is_empty() && !v.is_empty()).then(|| {
                (
                    k.to_string(),
                    percent_decode(v).unwrap_or_else(|| v.to_string()),
                )
            })
        })
        .collect()
}

fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            rest = tail.get(2..)?;
        } else {
            out.push(b);
            rest = tail;
        }
    }
    String::from_utf8(out).ok()
}

/// The `OTEL_BSP_SCHEDULE_DELAY` (ms) the SDK's batch processor reads, else
/// its default of 5 s.
pub(crate) fn schedule_delay(env: impl Fn(&str) -> Option<String>) -> Duration {
    env("OTEL_BSP_SCHEDULE_DELAY")
        .and_then(|ms| ms.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(5), Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| vars.get(k).cloned()
    }

    #[test]
    fn endpoint_order_settings_then_signal_then_base_then_default() {
        let all = env(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:1/x"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://b:2/"),
        ]);
        let url = |c: Option<&str>, e: &dyn Fn(&str) -> Option<String>| {
            http_target(c.map(String::from), e).unwrap().url
        };
        assert_eq!(
            url(Some("http://s:3/v1/traces"), &all),
            "http://s:3/v1/traces"
        );
        assert_eq!(url(None, &all), "http://t:1/x");
        assert_eq!(
            url(
                None,
                &env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://b:2/")])
            ),
            "http://b:2/v1/traces"
        );
        assert_eq!(url(None, &env(&[])), "http://localhost:4318/v1/traces");
    }

    #[test]
    fn headers_timeout_and_compression() {
        let t = http_target(
            None,
            env(&[
                ("OTEL_EXPORTER_OTLP_HEADERS", "a=1"),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                    "api-key=s%20ecret, =x,b=2,c=",
                ),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ]),
        )
        .unwrap();
        assert_eq!(
            t.headers,
            vec![
                ("api-key".to_string(), "s ecret".to_string()),
                ("b".to_string(), "2".to_string())
            ]
        );
        assert_eq!(t.timeout, Duration::from_millis(2500));
        assert!(http_target(None, env(&[("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")])).is_none());
        assert_eq!(
            schedule_delay(env(&[("OTEL_BSP_SCHEDULE_DELAY", "200")])),
            Duration::from_millis(200)
        );
    }
}
