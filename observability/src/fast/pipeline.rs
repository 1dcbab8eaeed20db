//! The batch of encoded spans and the thread that posts it.
//!
//! Spans are encoded by the thread that ends them ([`super::proto`]) and
//! appended here under a lock held for a copy; the export thread wakes when
//! a batch is full or the schedule delay passes, takes the batch whole
//! (swapping in an empty buffer of the same capacity) and POSTs it as one
//! OTLP/HTTP protobuf request. Nothing crosses threads but bytes, and the
//! export thread sleeps between batches: one wake-up per batch, not per span.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::proto::Frame;

/// Where and how batches are posted: the OTLP/HTTP endpoint of traces, its
/// headers and timeout (see [`super::config`]).
#[derive(Debug, Clone)]
pub(crate) struct HttpTarget {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
}

/// Batch sizes and the export interval.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Spans per export request.
    pub max_batch: usize,
    /// Spans held at most; more are dropped (and counted), never waited for.
    pub max_queue: usize,
    /// The longest a span waits before its batch is posted.
    pub delay: Duration,
}

#[derive(Debug, Default)]
struct Pending {
    /// Encoded `ScopeSpans.spans` entries.
    buf: Vec<u8>,
    spans: usize,
    dropped: u64,
    /// Export now whatever is held (flush or shutdown), then ack.
    flush_asked: u64,
    flushed: u64,
    shutdown: bool,
}

#[derive(Debug)]
struct Shared {
    pending: Mutex<Pending>,
    /// The export thread waits on it; the appender wakes it when a batch is
    /// full, flush and shutdown when asked.
    wake: Condvar,
    /// Flushers wait on it for `flushed` to reach their request.
    done: Condvar,
    limits: Limits,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while the lock was held leaves bytes, never a broken
        // invariant worth more than a lost batch.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The process's span pipeline; cheap to share.
#[derive(Debug)]
pub(crate) struct Pipeline {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// How a batch leaves: posted over HTTP, or handed to a test.
pub(crate) type Sink = Box<dyn FnMut(Vec<u8>) -> Result<(), String> + Send>;

impl Pipeline {
    /// Starts the export thread, which frames each batch with `frame` and
    /// gives the request's bytes to `sink`.
    pub(crate) fn start(limits: Limits, frame: Frame, mut sink: Sink) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            done: Condvar::new(),
            limits,
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("OpenTelemetry.Fast".into())
            .spawn(move || export_loop(&worker, &frame, &mut sink))?;
        Ok(Self {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues one encoded span entry; drops it when the queue is full.
    pub(crate) fn push(&self, entry: &[u8]) {
        let limits = &self.shared.limits;
        let mut pending = self.shared.lock();
        if pending.shutdown || pending.spans >= limits.max_queue {
            pending.dropped += 1;
            return;
        }
        pending.buf.extend_from_slice(entry);
        pending.spans += 1;
        let wake = pending.spans == limits.max_batch;
        drop(pending);
        if wake {
            self.shared.wake.notify_one();
        }
    }

    /// Posts what is held and waits (at most `timeout`) until it is done.
    #[cfg(test)]
    pub(crate) fn flush(&self, timeout: Duration) -> Result<(), String> {
        let mut pending = self.shared.lock();
        pending.flush_asked += 1;
        let ticket = pending.flush_asked;
        self.shared.wake.notify_one();
        let deadline = Instant::now() + timeout;
        while pending.flushed < ticket {
            let now = Instant::now();
            if now >= deadline || pending.shutdown {
                return Err("the span export did not finish in time".into());
            }
            pending = self
                .shared
                .done
                .wait_timeout(pending, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        Ok(())
    }

    /// Posts what is held, stops the export thread and waits for it.
    pub(crate) fn shutdown(&self) {
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_one();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    /// Spans dropped so far because the queue was full.
    #[cfg(test)]
    pub(crate) fn dropped(&self) -> u64 {
        self.shared.lock().dropped
    }
}

fn export_loop(shared: &Shared, frame: &Frame, sink: &mut Sink) {
    let limits = shared.limits;
    // The buffer the next batch is appended to, swapped with the full one:
    // its capacity is kept, so appending never grows into fresh pages.
    let mut spare: Vec<u8> = Vec::new();
    let mut warned_dropped = 0;
    let mut failing = false;
    loop {
        let mut pending = shared.lock();
        let deadline = Instant::now() + limits.delay;
        loop {
            if pending.spans >= limits.max_batch
                || pending.shutdown
                || pending.flush_asked > pending.flushed
            {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            pending = shared
                .wake
                .wait_timeout(pending, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        spare.clear();
        let batch = std::mem::replace(&mut pending.buf, std::mem::take(&mut spare));
        let spans = std::mem::take(&mut pending.spans);
        let (shutdown, ticket, dropped) = (pending.shutdown, pending.flush_asked, pending.dropped);
        drop(pending);

        if spans > 0 {
            match sink(frame.request(&batch)) {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!(target: "trellis_observability::export", "span export works again");
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(target: "trellis_observability::export", error = %e, spans, "span export failed; spans of failed batches are lost");
                }
                Err(_) => {}
            }
        }
        if dropped > warned_dropped {
            tracing::warn!(target: "trellis_observability::export",
                dropped, "spans dropped: the export queue was full (OTEL_BSP_MAX_QUEUE_SIZE)");
            warned_dropped = dropped;
        }
        spare = batch;
        let mut pending = shared.lock();
        pending.flushed = pending.flushed.max(ticket);
        drop(pending);
        shared.done.notify_all();
        if shutdown {
            return;
        }
    }
}

/// Posts a request to `target` over HTTP/protobuf; a non-2xx answer is an
/// error naming the status and the start of the body. The URL and headers
/// are checked now; the HTTP client (a thread and a runtime of its own) is
/// built on the export thread when the first batch leaves, so a process
/// that never ends a direct span never starts one.
pub(crate) fn http_sink(target: HttpTarget) -> Result<Sink, String> {
    let url = reqwest::Url::parse(&target.url)
        .map_err(|e| format!("invalid OTLP traces endpoint `{}`: {e}", target.url))?;
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in &target.headers {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| format!("OTLP header name `{name}`: {e}"))?;
        let value = reqwest::header::HeaderValue::from_str(value)
            .map_err(|e| format!("OTLP header `{name}` value: {e}"))?;
        headers.insert(name, value);
    }
    headers.insert(
        reqwest::header::CONTENT_TYPE,
        reqwest::header::HeaderValue::from_static("application/x-protobuf"),
    );
    let timeout = target.timeout;
    let mut client: Option<reqwest::blocking::Client> = None;
    Ok(Box::new(move |body: Vec<u8>| {
        let client = match &mut client {
            Some(c) => c,
            slot @ None => slot.insert(
                reqwest::blocking::Client::builder()
                    .timeout(timeout)
                    .build()
                    .map_err(|e| format!("cannot build the HTTP client: {e}"))?,
            ),
        };
        let response = client
            .post(url.clone())
            .headers(headers.clone())
            .body(body)
            .send()
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().unwrap_or_default();
        let text: String = text.chars().take(200).collect();
        Err(format!("POST {url}: {status} {text}"))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn frame() -> Frame {
        Frame::new(std::iter::empty(), "test")
    }

    /// A pipeline of `max_batch`/`max_queue` spans and `delay`, whose
    /// requests arrive on the receiver.
    fn pipeline(
        max_batch: usize,
        max_queue: usize,
        delay: Duration,
    ) -> (Pipeline, mpsc::Receiver<Vec<u8>>) {
        let limits = Limits {
            max_batch,
            max_queue,
            delay,
        };
        let (tx, rx) = mpsc::channel();
        let sink: Sink = Box::new(move |body| tx.send(body).map_err(|e| e.to_string()));
        (Pipeline::start(limits, frame(), sink).unwrap(), rx)
    }

    #[test]
    fn a_full_batch_is_posted_at_once_and_the_rest_on_flush() {
        let (p, rx) = pipeline(3, 10, Duration::from_secs(3600));
        for _ in 0..4 {
            p.push(b"ab");
        }
        let first = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("a full batch");
        // One more span may have been appended before the thread took it.
        let expected3 = frame().request(b"ababab");
        let expected4 = frame().request(b"abababab");
        assert!(first == expected3 || first == expected4, "{first:?}");
        p.flush(Duration::from_secs(5)).unwrap();
        if first == expected3 {
            assert_eq!(rx.try_recv().unwrap(), frame().request(b"ab"));
        }
        assert!(rx.try_recv().is_err(), "nothing more was queued");
        p.shutdown();
    }

    #[test]
    fn a_full_queue_drops_spans_and_counts_them() {
        let (p, rx) = pipeline(100, 2, Duration::from_secs(3600));
        for _ in 0..5 {
            p.push(b"x");
        }
        assert_eq!(p.dropped(), 3);
        p.shutdown();
        assert_eq!(rx.recv().unwrap(), frame().request(b"xx"));
    }

    #[test]
    fn a_bad_endpoint_or_header_is_refused_at_once() {
        let target = |url: &str, header: (&str, &str)| HttpTarget {
            url: url.into(),
            headers: vec![(header.0.into(), header.1.into())],
            timeout: Duration::from_secs(1),
        };
        let err = http_sink(target("not a url", ("a", "b"))).err().unwrap();
        assert!(
            err.contains("invalid OTLP traces endpoint `not a url`"),
            "{err}"
        );
        let err = http_sink(target("http://127.0.0.1:1/v1/traces", ("bad name", "b")))
            .err()
            .unwrap();
        assert!(err.contains("OTLP header name `bad name`"), "{err}");
        // Nothing listens on port 1: the POST fails with the URL in the error.
        let mut sink = http_sink(target("http://127.0.0.1:1/v1/traces", ("a", "b"))).unwrap();
        let err = sink(vec![1, 2, 3]).unwrap_err();
        assert!(err.contains("POST http://127.0.0.1:1/v1/traces"), "{err}");
    }

    #[test]
    fn the_delay_posts_a_partial_batch() {
        let (p, rx) = pipeline(100, 1000, Duration::from_millis(50));
        p.push(b"z");
        let got = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("posted after the delay");
        assert_eq!(got, frame().request(b"z"));
        p.shutdown();
    }
}
