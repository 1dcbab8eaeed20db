//! A blobstore provider process anywhere in the lattice, reached over wRPC
//! on the resource-free wire interface `wrpc:blobstore/blobstore@0.2.0`
//! (PROTOCOL.md §3.2), as wasmCloud's host does: prefix `{lattice}.{target}`,
//! headers `source-id` and `link-name`.
//!
//! Object bodies stream both ways without being held:
//!
//! - **Reads** go in windows of [`DOWNLOAD_WINDOW_BYTES`], one
//!   `get-container-data` call each; the next window's call is opened while
//!   the guest reads the current one, never more. NATS has no flow control,
//!   so a single call for the whole object would let the provider push it
//!   into the host's memory as fast as the network allows; windows bound
//!   what is in flight to two.
//! - **Writes** are one `write-container-data` call whose `stream<u8>`
//!   carries what the guest writes to the value's output-stream, in chunks of
//!   at most [`UPLOAD_CHUNK_BYTES`]; the NATS connection's bounded queue
//!   holds the guest back when the network is slower. The stream ends on
//!   `outgoing-value.finish`, not when the output-stream is dropped, so a
//!   guest that stops half-way (a trap, a dropped value) never gets a
//!   truncated object stored: its stream is left open past the call's
//!   deadline, so the provider discards the upload, and is ended
//!   [`ABANDONED_UPLOAD_GRACE`] later.
//!
//! Unary calls must answer within `--rpc-timeout-ms` (and the invocation's
//! deadline); streaming calls must give their first answer within the same
//! budget and then may run until the invocation's deadline.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use tokio::io::{AsyncRead, DuplexStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::dataplane::DataPlane;

mod wire {
    wit_bindgen_wrpc::generate!({
        path: "../interfaces/wit/deps/wrpc-blobstore",
        world: "wrpc:blobstore/imports",
        generate_all,
    });
}

use wire::wrpc::blobstore::blobstore;
use wire::wrpc::blobstore::types::ObjectId;

/// Bytes asked for by one `get-container-data` call of a read: at most this
/// much of an object is in flight between the provider and the guest (plus
/// [`DOWNLOAD_QUEUE_CHUNKS`] chunks already received). 1 MiB keeps a 50 MiB
/// read at 50 calls (a few ms each on a LAN) while far below the host's
/// memory budget per invocation.
pub const DOWNLOAD_WINDOW_BYTES: u64 = 1024 * 1024;

/// Chunks received from the provider and not yet read by the guest.
const DOWNLOAD_QUEUE_CHUNKS: usize = 4;

/// Largest chunk of an upload's `stream<u8>`: one NATS message each (below
/// the default 1 MiB `max_payload`), as wasmCloud's host sends.
pub const UPLOAD_CHUNK_BYTES: usize = 64 * 1024;

/// How long after its call's deadline an abandoned upload's stream is ended:
/// by then the provider's side of the call has run out and discarded what it
/// received (it stores nothing whose stream ends after its deadline), so the
/// end message cannot make it store a truncated object; the host's side of
/// the call then finishes and frees its task.
pub const ABANDONED_UPLOAD_GRACE: Duration = Duration::from_secs(5);

/// A component's blobstore link to a provider process.
#[derive(Clone)]
pub struct RemoteBlobstore {
    dataplane: Arc<DataPlane>,
    component: Arc<str>,
    link_name: Arc<str>,
    target: Arc<str>,
    /// The invocation's deadline: no call outlasts it.
    deadline: Instant,
}

/// An upload in progress: the call runs in `task`; `finish` ends its stream.
pub struct RemoteUpload {
    finish: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<u64, String>>,
}

impl RemoteUpload {
    /// Ends the object's body and waits until the provider stored it.
    pub async fn finish(self) -> Result<u64, String> {
        // A send error means the call already ended; its task says why.
        let _ = self.finish.send(());
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(format!("the upload task failed: {e}")),
        }
    }
}

type Io = Option<tokio::task::JoinHandle<anyhow::Result<()>>>;
/// The status future a streaming call's results end with.
type Status = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

impl RemoteBlobstore {
    /// Calls to `target` for `component`'s link `link_name`, none past `deadline`.
    pub fn new(
        dataplane: Arc<DataPlane>,
        component: &str,
        link_name: &str,
        target: Arc<str>,
        deadline: Instant,
    ) -> Self {
        Self {
            dataplane,
            component: Arc::from(component),
            link_name: Arc::from(link_name),
            target,
            deadline,
        }
    }

    /// The provider's id.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// What is left of the invocation.
    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// How long a call may take to give its first answer.
    fn answer_budget(&self) -> Duration {
        self.remaining().min(self.dataplane.rpc_timeout())
    }

    /// The client and context of one call whose whole budget is `budget`.
    fn call(
        &self,
        budget: Duration,
    ) -> Result<(trellis_wrpc::Client, trellis_wrpc::CallContext), String> {
        let Some(transport) = self.dataplane.transport() else {
            return Err("the lattice transport is not connected yet; retry".into());
        };
        let headers = trellis_wrpc::headers::call_headers(&self.component, &self.link_name);
        let cx = trellis_wrpc::CallContext {
            prefix: format!("{}.{}", self.dataplane.lattice(), self.target),
            headers: Some(headers),
            timeout: Some(budget),
        };
        Ok((transport.client(), cx))
    }

    /// A call that did not get an answer from the provider.
    fn failed(&self, op: &str, err: &anyhow::Error) -> String {
        let detail = err
            .chain()
            .find_map(trellis_wrpc::find_wrpc_error)
            .map_or_else(|| format!("{err:#}"), ToString::to_string);
        format!(
            "wrpc:blobstore/blobstore.{op} on provider `{}` failed: {detail}",
            self.target
        )
    }

    /// Runs a streaming call's first exchange within the answer budget.
    async fn first_answer<T>(
        &self,
        op: &str,
        call: impl Future<Output = anyhow::Result<T>>,
    ) -> Result<T, String> {
        let budget = self.answer_budget();
        match tokio::time::timeout(budget, call).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(self.failed(op, &e)),
            Err(_) => Err(format!(
                "wrpc:blobstore/blobstore.{op} on provider `{}`: no answer within {} ms",
                self.target,
                budget.as_millis()
            )),
        }
    }

    /// Waits for a streaming call's background I/O.
    async fn finish_io(&self, op: &str, io: Io) -> Result<(), String> {
        match io {
            None => Ok(()),
            Some(io) => match io.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(self.failed(op, &e)),
                Err(e) => Err(format!(
                    "wrpc:blobstore/blobstore.{op}: I/O task failed: {e}"
                )),
            },
        }
    }

    /// Waits for a streaming call's status future and its I/O. A failed I/O
    /// ends the wait at once: the status it would have delivered never comes.
    async fn settle(&self, op: &str, mut status: Status, io: Io) -> Result<(), String> {
        let Some(mut io) = io else {
            return status.await;
        };
        tokio::select! {
            result = &mut status => {
                result?;
                self.finish_io(op, Some(io)).await
            }
            joined = &mut io => match joined {
                Ok(Ok(())) => status.await,
                Ok(Err(e)) => Err(self.failed(op, &e)),
                Err(e) => Err(format!("wrpc:blobstore/blobstore.{op}: I/O task failed: {e}")),
            },
        }
    }

    /// `create-container`.
    pub async fn create_container(&self, name: &str) -> Result<(), String> {
        let (client, cx) = self.call(self.answer_budget())?;
        blobstore::create_container(&client, cx, name)
            .await
            .map_err(|e| self.failed("create-container", &e))?
    }

    /// `container-exists`.
    pub async fn container_exists(&self, name: &str) -> Result<bool, String> {
        let (client, cx) = self.call(self.answer_budget())?;
        blobstore::container_exists(&client, cx, name)
            .await
            .map_err(|e| self.failed("container-exists", &e))?
    }

    /// `delete-container`.
    pub async fn delete_container(&self, name: &str) -> Result<(), String> {
        let (client, cx) = self.call(self.answer_budget())?;
        blobstore::delete_container(&client, cx, name)
            .await
            .map_err(|e| self.failed("delete-container", &e))?
    }

    /// `clear-container`.
    pub async fn clear_container(&self, name: &str) -> Result<(), String> {
        let (client, cx) = self.call(self.answer_budget())?;
        blobstore::clear_container(&client, cx, name)
            .await
            .map_err(|e| self.failed("clear-container", &e))?
    }

    /// The container's creation time.
    pub async fn container_info(&self, name: &str) -> Result<u64, String> {
        let (client, cx) = self.call(self.answer_budget())?;
        let info = blobstore::get_container_info(&client, cx, name)
            .await
            .map_err(|e| self.failed("get-container-info", &e))??;
        Ok(info.created_at)
    }

    /// Every object name in the container.
    pub async fn list(&self, name: &str) -> Result<Vec<String>, String> {
        let op = "list-container-objects";
        let (client, cx) = self.call(self.remaining())?;
        let (result, io) = self
            .first_answer(
                op,
                blobstore::list_container_objects(&client, cx, name, None, None),
            )
            .await?;
        let io = io.map(tokio::spawn);
        let (names, status) = match result {
            Ok(answer) => answer,
            Err(message) => {
                abort(io);
                return Err(message);
            }
        };
        let names: Vec<String> = names.collect::<Vec<Vec<String>>>().await.concat();
        self.settle(op, status, io).await?;
        Ok(names)
    }

    /// `copy-object`.
    pub async fn copy_object(&self, src: ObjectId, dest: ObjectId) -> Result<(), String> {
        let (client, cx) = self.call(self.answer_budget())?;
        blobstore::copy_object(&client, cx, &src, &dest)
            .await
            .map_err(|e| self.failed("copy-object", &e))?
    }

    /// `move-object`.
    pub async fn move_object(&self, src: ObjectId, dest: ObjectId) -> Result<(), String> {
        let (client, cx) = self.call(self.answer_budget())?;
        blobstore::move_object(&client, cx, &src, &dest)
            .await
            .map_err(|e| self.failed("move-object", &e))?
    }

    /// `delete-object` for one name, `delete-objects` for several.
    pub async fn delete_objects(&self, container: &str, names: &[String]) -> Result<(), String> {
        let (client, cx) = self.call(self.answer_budget())?;
        if let [name] = names {
            let id = object_id(container, name);
            return blobstore::delete_object(&client, cx, &id)
                .await
                .map_err(|e| self.failed("delete-object", &e))?;
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        blobstore::delete_objects(&client, cx, container, &names)
            .await
            .map_err(|e| self.failed("delete-objects", &e))?
    }

    /// `has-object`.
    pub async fn has_object(&self, container: &str, name: &str) -> Result<bool, String> {
        let (client, cx) = self.call(self.answer_budget())?;
        blobstore::has_object(&client, cx, &object_id(container, name))
            .await
            .map_err(|e| self.failed("has-object", &e))?
    }

    /// The object's (creation time, size).
    pub async fn object_info(&self, container: &str, name: &str) -> Result<(u64, u64), String> {
        let (client, cx) = self.call(self.answer_budget())?;
        let info = blobstore::get_object_info(&client, cx, &object_id(container, name))
            .await
            .map_err(|e| self.failed("get-object-info", &e))??;
        Ok((info.created_at, info.size))
    }

    /// A reader of bytes `start..=end` of the object (clamped to its size)
    /// and how many it yields. The bytes arrive window by window as the
    /// reader is read.
    pub async fn get_data(
        &self,
        container: &str,
        name: &str,
        start: u64,
        end: u64,
    ) -> Result<(Box<dyn AsyncRead + Send + Unpin>, u64), String> {
        let (_, size) = self.object_info(container, name).await?;
        let len = trellis_blobstore_fs::range_len(start, end, size).map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(DOWNLOAD_QUEUE_CHUNKS);
        if len > 0 {
            let this = self.clone();
            let id = object_id(container, name);
            tokio::spawn(async move { this.pump(id, start, len, tx).await });
        }
        let chunks = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        });
        let reader = tokio_util::io::StreamReader::new(Box::pin(chunks));
        Ok((Box::new(reader), len))
    }

    /// Reads `len` bytes from `start`, one window at a time, into `tx`;
    /// stops early when the reader is gone, and hands a failure to it. The
    /// next window's call is opened while the current one is forwarded, so
    /// its bytes are on their way when the guest needs them: at most two
    /// windows are in flight.
    async fn pump(
        self,
        id: ObjectId,
        start: u64,
        len: u64,
        tx: mpsc::Sender<std::io::Result<Bytes>>,
    ) {
        let last = start.saturating_add(len.saturating_sub(1));
        let mut windows = Windows {
            next: Some(start),
            last,
        };
        let mut current = match windows.next() {
            Some((first, end)) => self.open_window(&id, first, end).await,
            None => return,
        };
        loop {
            let window = match current {
                Ok(window) => window,
                Err(message) => {
                    let _ = tx.send(Err(std::io::Error::other(message))).await;
                    return;
                }
            };
            let upcoming = windows.next();
            let prefetch = async {
                match upcoming {
                    Some((first, end)) if !tx.is_closed() => {
                        Some(self.open_window(&id, first, end).await)
                    }
                    _ => None,
                }
            };
            let (forwarded, opened) = tokio::join!(self.forward(&id, window, &tx), prefetch);
            if let Err(message) = forwarded {
                if let Some(Ok(next)) = opened {
                    abort(next.io);
                }
                let _ = tx.send(Err(std::io::Error::other(message))).await;
                return;
            }
            match opened {
                Some(next) if !tx.is_closed() => current = next,
                Some(Ok(next)) => return abort(next.io),
                _ => return,
            }
        }
    }

    /// Opens the `get-container-data` call for `first..=last`.
    async fn open_window(&self, id: &ObjectId, first: u64, last: u64) -> Result<Window, String> {
        let (client, cx) = self.call(self.remaining())?;
        let (result, io) = self
            .first_answer(
                WINDOW_OP,
                blobstore::get_container_data(&client, cx, id, first, last),
            )
            .await?;
        let io = io.map(tokio::spawn);
        match result {
            Ok((data, status)) => Ok(Window {
                data,
                status,
                io,
                first,
                last,
            }),
            Err(message) => {
                abort(io);
                Err(message)
            }
        }
    }

    /// Forwards one window's bytes to `tx` and checks that the provider sent
    /// the whole range and nothing more.
    async fn forward(
        &self,
        id: &ObjectId,
        window: Window,
        tx: &mpsc::Sender<std::io::Result<Bytes>>,
    ) -> Result<(), String> {
        let Window {
            mut data,
            status,
            io,
            first,
            last,
        } = window;
        let want = last.saturating_sub(first).saturating_add(1);
        let mut got = 0u64;
        while let Some(chunk) = data.next().await {
            got = got.saturating_add(chunk.len() as u64);
            if got > want || tx.send(Ok(chunk)).await.is_err() {
                break;
            }
        }
        if tx.is_closed() {
            abort(io);
            return Ok(());
        }
        self.settle(WINDOW_OP, status, io).await?;
        if got != want {
            return Err(format!(
                "object `{}` in container `{}` changed while it was read: bytes {first}..={last} \
                 came back as {got} bytes instead of {want}; read it again",
                id.object, id.container
            ));
        }
        Ok(())
    }

    /// Starts storing object `name`: the provider's first answer (a missing
    /// container, a refused name) comes back here; the body is what the
    /// guest writes into the other end of `body`, until `finish`.
    pub async fn start_write(
        &self,
        container: &str,
        name: &str,
        body: DuplexStream,
    ) -> Result<RemoteUpload, String> {
        let op = "write-container-data";
        let (finish, finished) = oneshot::channel();
        let (sent_tx, sent_rx) = oneshot::channel();
        let give_up = self.deadline + ABANDONED_UPLOAD_GRACE;
        let data = upload_stream(body, finished, sent_tx, give_up);
        let id = object_id(container, name);
        let (client, cx) = self.call(self.remaining())?;
        let (result, io) = self
            .first_answer(op, blobstore::write_container_data(&client, cx, &id, data))
            .await?;
        let io = io.map(tokio::spawn);
        let status = match result {
            Ok(status) => status,
            Err(message) => {
                abort(io);
                return Err(message);
            }
        };
        let this = self.clone();
        let task = tokio::spawn(async move {
            this.settle(op, status, io).await?;
            Ok(sent_rx.await.unwrap_or(0))
        });
        Ok(RemoteUpload { finish, task })
    }
}

/// The wire function of a read window.
const WINDOW_OP: &str = "get-container-data";

/// One opened read window: its bytes, its status and the call's I/O.
struct Window {
    data: Pin<Box<dyn Stream<Item = Bytes> + Send>>,
    status: Status,
    io: Io,
    first: u64,
    last: u64,
}

/// The windows of an inclusive byte range, in order.
struct Windows {
    next: Option<u64>,
    last: u64,
}

impl Iterator for Windows {
    /// First and last byte of a window.
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        let first = self.next.filter(|first| *first <= self.last)?;
        let end = first
            .saturating_add(DOWNLOAD_WINDOW_BYTES.saturating_sub(1))
            .min(self.last);
        self.next = end.checked_add(1);
        Some((first, end))
    }
}

pub(super) fn object_id(container: &str, object: &str) -> ObjectId {
    ObjectId {
        container: container.to_string(),
        object: object.to_string(),
    }
}

/// Stops a call's background I/O (its results are not wanted).
fn abort(io: Io) {
    if let Some(io) = io {
        io.abort();
    }
}

/// The `stream<u8>` of an upload: chunks of what the guest writes into
/// `body`'s other end, ended only once `finished` fires (then `sent` gets the
/// byte count). If the value is dropped unfinished, the stream stays open
/// until `give_up` (past the call's deadline), so no truncated object is
/// stored.
fn upload_stream(
    body: DuplexStream,
    finished: oneshot::Receiver<()>,
    sent: oneshot::Sender<u64>,
    give_up: Instant,
) -> Pin<Box<dyn Stream<Item = Bytes> + Send>> {
    let total = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = total.clone();
    let chunks = tokio_util::io::ReaderStream::with_capacity(body, UPLOAD_CHUNK_BYTES)
        .take_while(|chunk| std::future::ready(chunk.is_ok()))
        .filter_map(move |chunk| {
            let chunk = chunk.ok();
            if let Some(chunk) = &chunk {
                counted.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
            std::future::ready(chunk)
        });
    let end = futures::stream::once(async move {
        if finished.await.is_err() {
            tokio::time::sleep_until(give_up).await;
        }
        let _ = sent.send(total.load(std::sync::atomic::Ordering::Relaxed));
    })
    .filter_map(|()| std::future::ready(None::<Bytes>));
    Box::pin(chunks.chain(end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    #[test]
    fn windows_cover_the_range_exactly() {
        let w = DOWNLOAD_WINDOW_BYTES;
        let all: Vec<_> = Windows {
            next: Some(10),
            last: 10 + 2 * w,
        }
        .collect();
        assert_eq!(
            all,
            vec![(10, 9 + w), (10 + w, 9 + 2 * w), (10 + 2 * w, 10 + 2 * w)]
        );
        let one: Vec<_> = Windows {
            next: Some(u64::MAX),
            last: u64::MAX,
        }
        .collect();
        assert_eq!(one, vec![(u64::MAX, u64::MAX)]);
    }

    #[tokio::test]
    async fn upload_stream_ends_only_on_finish() {
        let (mut writer, reader) = tokio::io::duplex(1024);
        let (finish, finished) = oneshot::channel();
        let (sent_tx, sent_rx) = oneshot::channel();
        let give_up = Instant::now() + Duration::from_secs(60);
        let mut stream = upload_stream(reader, finished, sent_tx, give_up);
        writer.write_all(b"hello").await.unwrap();
        drop(writer);
        assert_eq!(stream.next().await.unwrap(), Bytes::from_static(b"hello"));
        // The body ended but the value was not finished: still open.
        let pending = tokio::time::timeout(Duration::from_millis(50), stream.next()).await;
        assert!(pending.is_err(), "the stream ended before finish");
        finish.send(()).unwrap();
        assert!(stream.next().await.is_none());
        assert_eq!(sent_rx.await.unwrap(), 5);
    }

    #[tokio::test]
    async fn an_unfinished_upload_stays_open_until_it_is_given_up() {
        let (writer, reader) = tokio::io::duplex(1024);
        let (finish, finished) = oneshot::channel::<()>();
        let (sent_tx, _sent_rx) = oneshot::channel();
        let give_up = Instant::now() + Duration::from_millis(300);
        let mut stream = upload_stream(reader, finished, sent_tx, give_up);
        drop(writer);
        drop(finish);
        let pending = tokio::time::timeout(Duration::from_millis(100), stream.next()).await;
        assert!(
            pending.is_err(),
            "an unfinished upload ended its stream early"
        );
        assert!(stream.next().await.is_none());
        assert!(Instant::now() >= give_up);
    }
}
