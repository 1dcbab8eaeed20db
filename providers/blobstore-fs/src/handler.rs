//! The export `wrpc:blobstore/blobstore@0.2.0`, each call served from the
//! root of the link it comes over, by the store the host's built-in uses.
//!
//! Bodies stream: a read is the file's range as a stream of chunks of at
//! most [`READ_CHUNK_BYTES`], read only as fast as the lattice connection
//! takes them; a write spools the incoming `stream<u8>` into a temporary file
//! renamed into place when the stream ends. A stream that ends because the
//! call ran out of time (the caller abandoned the upload) is not stored.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use tokio::sync::oneshot;
use trellis_blobstore_fs::{self as fs, BlobError, FsRoot};
use trellis_provider_sdk::trellis_wrpc::ServeContext;

use crate::bindings::exports::wrpc::blobstore::blobstore;
use crate::bindings::wrpc::blobstore::types::{ContainerMetadata, ObjectId, ObjectMetadata};
use crate::links::BlobstoreFs;

/// Largest chunk of a read's `stream<u8>`: one NATS message each, below the
/// default 1 MiB `max_payload`; what one read from the file asks for.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;

/// A call's outcome: the transport error (never, here) outside, the
/// blobstore error text inside.
type Reply<T> = anyhow::Result<Result<T, String>>;
type ByteStream = Pin<Box<dyn Stream<Item = Bytes> + Send>>;
type Status = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Serves the interface; one clone per call.
#[derive(Clone)]
pub struct Handler {
    provider: Arc<BlobstoreFs>,
}

impl Handler {
    /// Serves calls with the links of `provider`.
    pub fn new(provider: Arc<BlobstoreFs>) -> Self {
        Self { provider }
    }

    /// The root of the link the call comes over.
    async fn root(&self, cx: &ServeContext) -> Result<FsRoot, String> {
        let result = async {
            self.provider
                .linked_root(cx.source_id(), cx.link_name())?
                .root()
                .await
        }
        .await;
        result.map_err(|e| {
            tracing::warn!(source_id = ?cx.source_id(), link = cx.link_name(), "{e}");
            e.to_string()
        })
    }

    /// The path of an object, checked to stay inside the root.
    async fn object(&self, cx: &ServeContext, id: &ObjectId) -> Result<PathBuf, String> {
        let root = self.root(cx).await?;
        let path = async {
            let dir = root.container(&id.container).await?;
            root.object(&dir, &id.object).await
        }
        .await;
        path.map_err(|e| e.to_string())
    }
}

/// Runs `op` on the call's root; every failure becomes the error text.
macro_rules! with_root {
    ($self:ident, $cx:ident, |$root:ident| $op:expr) => {{
        let $root = match $self.root(&$cx).await {
            Ok(root) => root,
            Err(error) => return Ok(Err(error)),
        };
        Ok($op.await.map_err(|e: BlobError| e.to_string()))
    }};
}

impl blobstore::Handler<ServeContext> for Handler {
    async fn clear_container(&self, cx: ServeContext, name: String) -> Reply<()> {
        with_root!(self, cx, |root| async {
            fs::clear(&root.container(&name).await?).await
        })
    }

    async fn container_exists(&self, cx: ServeContext, name: String) -> Reply<bool> {
        with_root!(self, cx, |root| root.container_exists(&name))
    }

    async fn create_container(&self, cx: ServeContext, name: String) -> Reply<()> {
        with_root!(self, cx, |root| async {
            root.create_container(&name).await.map(|_| ())
        })
    }

    async fn delete_container(&self, cx: ServeContext, name: String) -> Reply<()> {
        with_root!(self, cx, |root| root.delete_container(&name))
    }

    async fn get_container_info(&self, cx: ServeContext, name: String) -> Reply<ContainerMetadata> {
        with_root!(self, cx, |root| async {
            let dir = root.container(&name).await?;
            let (created_at, _) = fs::stat(&dir, "container").await?;
            Ok(ContainerMetadata { created_at })
        })
    }

    async fn list_container_objects(
        &self,
        cx: ServeContext,
        name: String,
        limit: Option<u64>,
        offset: Option<u64>,
    ) -> Reply<(Pin<Box<dyn Stream<Item = Vec<String>> + Send>>, Status)> {
        let listed: Reply<Vec<String>> = with_root!(self, cx, |root| async {
            fs::list(&root.container(&name).await?).await
        });
        let names = match listed? {
            Ok(names) => names,
            Err(e) => return Ok(Err(e)),
        };
        let skip = offset.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let take = limit.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let names: Vec<String> = names.into_iter().skip(skip).take(take).collect();
        let chunks: Vec<Vec<String>> = names.chunks(1000).map(<[String]>::to_vec).collect();
        let stream: Pin<Box<dyn Stream<Item = Vec<String>> + Send>> =
            Box::pin(futures::stream::iter(chunks));
        let status: Status = Box::pin(async { Ok(()) });
        Ok(Ok((stream, status)))
    }

    async fn copy_object(&self, cx: ServeContext, src: ObjectId, dest: ObjectId) -> Reply<()> {
        self.copy_or_move(cx, src, dest, false).await
    }

    async fn move_object(&self, cx: ServeContext, src: ObjectId, dest: ObjectId) -> Reply<()> {
        self.copy_or_move(cx, src, dest, true).await
    }

    async fn delete_object(&self, cx: ServeContext, id: ObjectId) -> Reply<()> {
        self.delete_objects(cx, id.container, vec![id.object]).await
    }

    async fn delete_objects(
        &self,
        cx: ServeContext,
        container: String,
        objects: Vec<String>,
    ) -> Reply<()> {
        with_root!(self, cx, |root| async {
            let dir = root.container(&container).await?;
            for name in &objects {
                fs::delete(&root.object(&dir, name).await?).await?;
            }
            Ok(())
        })
    }

    async fn get_container_data(
        &self,
        cx: ServeContext,
        id: ObjectId,
        start: u64,
        end: u64,
    ) -> Reply<(ByteStream, Status)> {
        let path = match self.object(&cx, &id).await {
            Ok(path) => path,
            Err(e) => return Ok(Err(e)),
        };
        let (reader, _) = match fs::open_range(&path, start, end).await {
            Ok(opened) => opened,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let (stream, status) = file_stream(reader, path);
        Ok(Ok((stream, status)))
    }

    async fn get_object_info(&self, cx: ServeContext, id: ObjectId) -> Reply<ObjectMetadata> {
        let path = match self.object(&cx, &id).await {
            Ok(path) => path,
            Err(e) => return Ok(Err(e)),
        };
        Ok(fs::stat(&path, "object")
            .await
            .map(|(created_at, size)| ObjectMetadata { created_at, size })
            .map_err(|e| e.to_string()))
    }

    async fn has_object(&self, cx: ServeContext, id: ObjectId) -> Reply<bool> {
        let path = match self.object(&cx, &id).await {
            Ok(path) => path,
            Err(e) => return Ok(Err(e)),
        };
        Ok(fs::exists(&path).await.map_err(|e| e.to_string()))
    }

    async fn write_container_data(
        &self,
        cx: ServeContext,
        id: ObjectId,
        data: ByteStream,
    ) -> Reply<Status> {
        let dest = match self.object(&cx, &id).await {
            Ok(path) => path,
            Err(e) => return Ok(Err(e)),
        };
        let deadline = cx.deadline;
        let status: Status = Box::pin(async move {
            let (ended_tx, ended_rx) = oneshot::channel();
            let reader = tokio_util::io::StreamReader::new(upload_body(data, deadline, ended_tx));
            let stored = fs::store(reader, &dest).await.map_err(|e| e.to_string());
            // The deadline check's own error says more than the read error.
            if let Ok(Err(abandoned)) = ended_rx.await {
                return Err(abandoned);
            }
            let bytes = stored?;
            tracing::debug!(path = %dest.display(), bytes, "blob stored");
            Ok(())
        });
        Ok(Ok(status))
    }
}

impl Handler {
    async fn copy_or_move(
        &self,
        cx: ServeContext,
        src: ObjectId,
        dest: ObjectId,
        remove_source: bool,
    ) -> Reply<()> {
        with_root!(self, cx, |root| async {
            let from = root
                .object(&root.container(&src.container).await?, &src.object)
                .await?;
            let to = root
                .object(&root.container(&dest.container).await?, &dest.object)
                .await?;
            if remove_source {
                root.rename(&from, &to).await
            } else {
                root.copy(&from, &to).await
            }
        })
    }
}

/// A file range as a stream of chunks, and the status of the read: an I/O
/// error ends the stream and fails the status.
fn file_stream(reader: tokio::io::Take<tokio::fs::File>, path: PathBuf) -> (ByteStream, Status) {
    let (done_tx, done_rx) = oneshot::channel::<Result<(), String>>();
    let chunks = tokio_util::io::ReaderStream::with_capacity(reader, READ_CHUNK_BYTES);
    let stream = futures::stream::unfold((chunks, Some(done_tx)), move |(mut chunks, mut done)| {
        let path = path.clone();
        async move {
            match chunks.next().await {
                Some(Ok(chunk)) => Some((chunk, (chunks, done))),
                end => {
                    let result = match end {
                        Some(Err(e)) => {
                            Err(format!("cannot read object `{}`: {e}", path.display()))
                        }
                        _ => Ok(()),
                    };
                    if let Some(done) = done.take() {
                        let _ = done.send(result);
                    }
                    None
                }
            }
        }
    });
    let status: Status = Box::pin(async move {
        done_rx
            .await
            .unwrap_or_else(|_| Err("the read was abandoned before its end".into()))
    });
    (Box::pin(stream), status)
}

/// The incoming `stream<u8>` as the spool's input. When it ends, `ended`
/// learns whether that was the body's end or the call running out of time:
/// a caller that abandons an upload never ends its stream, so the transport
/// ends it at the deadline, and what arrived must not be stored.
fn upload_body(
    data: ByteStream,
    deadline: tokio::time::Instant,
    ended: oneshot::Sender<Result<(), String>>,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + Unpin {
    let mut ended = Some(ended);
    let mut data = data;
    Box::pin(futures::stream::poll_fn(move |cx| {
        match data.poll_next_unpin(cx) {
            std::task::Poll::Ready(None) => {
                let abandoned = tokio::time::Instant::now() >= deadline;
                let verdict = if abandoned {
                    Err("the upload was abandoned: its body did not end before the call's deadline; nothing was stored".to_string())
                } else {
                    Ok(())
                };
                if let Some(ended) = ended.take() {
                    let _ = ended.send(verdict.clone());
                }
                std::task::Poll::Ready(verdict.err().map(|e| Err(std::io::Error::other(e))))
            }
            std::task::Poll::Ready(Some(chunk)) => std::task::Poll::Ready(Some(Ok(chunk))),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }))
}
