//! Driving the invocation streams that generated `serve` functions return.

use std::future::Future;

use futures::{Stream, StreamExt as _};
use tokio::task::JoinSet;

/// Serves every invocation of every export until the streams end.
///
/// `exports` is what a `wit-bindgen-wrpc` generated `serve(&conn.server(),
/// handler)` returns: one `(instance, function, stream of invocations)` per
/// exported function. Each invocation runs in its own task, so a slow call
/// does not hold up the others; a failed invocation is logged with its
/// instance and function and does not stop the provider.
///
/// Returns when all streams have ended (the transport closed); in-flight
/// invocations are awaited first. [`run`](crate::run) drops this future at
/// shutdown, which cancels the invocations still running.
pub async fn serve_exports<S, F>(
    exports: impl IntoIterator<Item = (&'static str, &'static str, S)>,
) -> anyhow::Result<()>
where
    S: Stream<Item = anyhow::Result<F>> + Send + Unpin + 'static,
    F: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let mut invocations = futures::stream::select_all(
        exports
            .into_iter()
            .map(|(instance, func, stream)| stream.map(move |item| (instance, func, item))),
    );
    let mut running = JoinSet::new();
    loop {
        tokio::select! {
            item = invocations.next() => match item {
                Some((instance, func, Ok(invocation))) => {
                    running.spawn(async move {
                        if let Err(error) = invocation.await {
                            tracing::warn!(instance, func, error = format!("{error:#}"), "invocation failed");
                        }
                    });
                }
                Some((instance, func, Err(error))) => {
                    tracing::warn!(instance, func, error = format!("{error:#}"), "failed to accept an invocation");
                }
                None => break,
            },
            Some(joined) = running.join_next() => log_join(joined),
        }
    }
    while let Some(joined) = running.join_next().await {
        log_join(joined);
    }
    Ok(())
}

fn log_join(joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined
        && error.is_panic()
    {
        tracing::error!(%error, "an invocation panicked");
    }
}
