//! The blobstore resources a component holds (`container`,
//! `stream-object-names`, `outgoing-value`, `incoming-value`) and the host
//! side of every `wasi:blobstore` function.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncRead, DuplexStream};
use trellis_blobstore_fs::{self as fs, FsRoot};
use wasmtime::component::Resource;
use wasmtime_wasi::p2::pipe::{AsyncReadStream, AsyncWriteStream};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream};

use super::bindings::wasi::blobstore::{blobstore, container, types};
use super::remote::{RemoteBlobstore, RemoteUpload};
use super::{Backend, BlobError, BlobstoreTarget};
use crate::runtime::InvocationState;

/// Largest value `incoming-value-consume-sync` copies into guest memory; a
/// larger one must be read with `incoming-value-consume-async` (a stream).
/// 16 MiB keeps one call's host-side copy well under a component's memory.
pub const MAX_SYNC_BYTES: u64 = 16 * 1024 * 1024;

/// Bytes the guest may write to an upload's stream before the host has
/// taken them (`check-write` budget), as wasi-http's outgoing bodies.
pub const UPLOAD_WRITE_BUDGET: usize = 64 * 1024;

/// Bytes buffered between an upload's stream and its file (or its wRPC
/// stream to a provider).
pub const UPLOAD_PIPE_BYTES: usize = 256 * 1024;

/// An opened container.
#[derive(Clone)]
pub struct Container {
    place: Place,
    name: String,
    label: Arc<str>,
}

/// Where a container's objects are.
#[derive(Clone)]
enum Place {
    /// A directory under a filesystem root.
    Fs { root: FsRoot, dir: PathBuf },
    /// A provider process.
    Remote(RemoteBlobstore),
}

impl Container {
    fn fail(&self, e: impl std::fmt::Display) -> String {
        format!("blobstore container `{}` ({}): {e}", self.name, self.label)
    }
}

/// A listing in progress: the names left to hand out.
pub struct ObjectNames {
    names: VecDeque<String>,
}

/// An object being written: the guest writes into `writer` (through its
/// output-stream); `write-data` starts copying `reader` into a temporary file
/// (or a provider's `write-container-data` stream); `finish` waits for the
/// copy and, on the filesystem, renames the file into place.
pub struct OutgoingValue {
    writer: Option<DuplexStream>,
    reader: Option<DuplexStream>,
    upload: Option<Upload>,
}

struct Upload {
    kind: UploadKind,
    container: String,
    label: Arc<str>,
}

enum UploadKind {
    Fs {
        temp: PathBuf,
        dest: PathBuf,
        task: tokio::task::JoinHandle<Result<u64, BlobError>>,
    },
    /// Dropped unfinished, its call is left to run out (see `remote`).
    Remote(RemoteUpload),
}

impl Drop for OutgoingValue {
    /// Dropped without `finish`: the value is corrupt, nothing is stored.
    fn drop(&mut self) {
        if let Some(Upload {
            kind: UploadKind::Fs { temp, task, .. },
            ..
        }) = self.upload.take()
        {
            task.abort();
            let _ = std::fs::remove_file(&temp);
        }
    }
}

/// A value being read: a bounded reader over a byte range of an object.
pub struct IncomingValue {
    reader: Option<Box<dyn AsyncRead + Send + Unpin>>,
    size: u64,
    path: PathBuf,
}

type Res<T> = wasmtime::Result<Result<T, String>>;

impl InvocationState {
    fn container_handle(&mut self, c: &Resource<Container>) -> wasmtime::Result<Container> {
        Ok(self.table_mut().get(c)?.clone())
    }

    fn push_container(
        &mut self,
        target: &BlobstoreTarget,
        place: Place,
        name: String,
    ) -> wasmtime::Result<Resource<Container>> {
        Ok(self.table_mut().push(Container {
            place,
            name,
            label: target.label.clone(),
        })?)
    }
}

fn label_error(target: &BlobstoreTarget, e: impl std::fmt::Display) -> String {
    format!("blobstore ({}): {e}", target.label)
}

/// Resolves the invocation's blobstore, or returns its error to the guest.
macro_rules! target {
    ($self:ident) => {
        match $self.blobstore().await {
            Ok(t) => t,
            Err(e) => return Ok(Err(e)),
        }
    };
}

impl blobstore::Host for InvocationState {
    async fn create_container(&mut self, name: String) -> Res<Resource<Container>> {
        let target = target!(self);
        let place = match &target.backend {
            Backend::Fs(root) => root
                .create_container(&name)
                .await
                .map(|dir| Place::Fs {
                    root: root.clone(),
                    dir,
                })
                .map_err(|e| label_error(&target, e)),
            Backend::Remote(remote) => remote
                .create_container(&name)
                .await
                .map(|()| Place::Remote(remote.clone()))
                .map_err(|e| label_error(&target, e)),
        };
        match place {
            Ok(place) => Ok(Ok(self.push_container(&target, place, name)?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn get_container(&mut self, name: String) -> Res<Resource<Container>> {
        let target = target!(self);
        let place = match &target.backend {
            Backend::Fs(root) => root
                .container(&name)
                .await
                .map(|dir| Place::Fs {
                    root: root.clone(),
                    dir,
                })
                .map_err(|e| label_error(&target, e)),
            Backend::Remote(remote) => match remote.container_exists(&name).await {
                Ok(true) => Ok(Place::Remote(remote.clone())),
                Ok(false) => Err(label_error(
                    &target,
                    format!(
                        "container `{name}` does not exist in blobstore provider `{}`: create it with `create-container` first",
                        remote.target()
                    ),
                )),
                Err(e) => Err(label_error(&target, e)),
            },
        };
        match place {
            Ok(place) => Ok(Ok(self.push_container(&target, place, name)?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn delete_container(&mut self, name: String) -> Res<()> {
        let target = target!(self);
        let result = match &target.backend {
            Backend::Fs(root) => root
                .delete_container(&name)
                .await
                .map_err(|e| e.to_string()),
            Backend::Remote(remote) => remote.delete_container(&name).await,
        };
        Ok(result.map_err(|e| label_error(&target, e)))
    }

    async fn container_exists(&mut self, name: String) -> Res<bool> {
        let target = target!(self);
        let result = match &target.backend {
            Backend::Fs(root) => root
                .container_exists(&name)
                .await
                .map_err(|e| e.to_string()),
            Backend::Remote(remote) => remote.container_exists(&name).await,
        };
        Ok(result.map_err(|e| label_error(&target, e)))
    }

    async fn copy_object(&mut self, src: types::ObjectId, dest: types::ObjectId) -> Res<()> {
        self.copy_or_move(src, dest, false).await
    }

    async fn move_object(&mut self, src: types::ObjectId, dest: types::ObjectId) -> Res<()> {
        self.copy_or_move(src, dest, true).await
    }
}

impl InvocationState {
    async fn copy_or_move(
        &mut self,
        src: types::ObjectId,
        dest: types::ObjectId,
        remove_source: bool,
    ) -> Res<()> {
        let target = target!(self);
        let result = match &target.backend {
            Backend::Fs(root) => async {
                let src_dir = root.container(&src.container).await?;
                let dest_dir = root.container(&dest.container).await?;
                let from = root.object(&src_dir, &src.object).await?;
                let to = root.object(&dest_dir, &dest.object).await?;
                if remove_source {
                    root.rename(&from, &to).await
                } else {
                    root.copy(&from, &to).await
                }
            }
            .await
            .map_err(|e| e.to_string()),
            Backend::Remote(remote) => {
                let src = super::remote::object_id(&src.container, &src.object);
                let dest = super::remote::object_id(&dest.container, &dest.object);
                if remove_source {
                    remote.move_object(src, dest).await
                } else {
                    remote.copy_object(src, dest).await
                }
            }
        };
        Ok(result.map_err(|e| label_error(&target, e)))
    }
}

impl container::Host for InvocationState {}

impl container::HostContainer for InvocationState {
    async fn name(&mut self, c: Resource<Container>) -> Res<String> {
        Ok(Ok(self.table_mut().get(&c)?.name.clone()))
    }

    async fn info(&mut self, c: Resource<Container>) -> Res<types::ContainerMetadata> {
        let c = self.container_handle(&c)?;
        let created_at = match &c.place {
            Place::Fs { dir, .. } => fs::stat(dir, "container")
                .await
                .map(|(created_at, _)| created_at)
                .map_err(|e| e.to_string()),
            Place::Remote(remote) => remote.container_info(&c.name).await,
        };
        Ok(created_at
            .map(|created_at| types::ContainerMetadata {
                name: c.name.clone(),
                created_at,
            })
            .map_err(|e| c.fail(e)))
    }

    async fn get_data(
        &mut self,
        c: Resource<Container>,
        name: String,
        start: u64,
        end: u64,
    ) -> Res<Resource<IncomingValue>> {
        let c = self.container_handle(&c)?;
        let opened = match &c.place {
            Place::Fs { root, dir } => async {
                let path = root.object(dir, &name).await?;
                let (reader, size) = fs::open_range(&path, start, end).await?;
                Ok::<_, BlobError>(IncomingValue {
                    reader: Some(Box::new(reader)),
                    size,
                    path,
                })
            }
            .await
            .map_err(|e| e.to_string()),
            Place::Remote(remote) => {
                remote
                    .get_data(&c.name, &name, start, end)
                    .await
                    .map(|(reader, size)| IncomingValue {
                        reader: Some(reader),
                        size,
                        path: PathBuf::from(format!("{}/{name}", c.name)),
                    })
            }
        };
        match opened {
            Ok(value) => Ok(Ok(self.table_mut().push(value)?)),
            Err(e) => Ok(Err(c.fail(e))),
        }
    }

    async fn write_data(
        &mut self,
        c: Resource<Container>,
        name: String,
        data: Resource<OutgoingValue>,
    ) -> Res<()> {
        let c = self.container_handle(&c)?;
        let reader = {
            let value = self.table_mut().get_mut(&data)?;
            if value.upload.is_some() {
                return Ok(Err(c.fail(format!(
                    "this outgoing-value is already being written to `{name}`; create a new one per object"
                ))));
            }
            value.reader.take()
        };
        let Some(reader) = reader else {
            return Ok(Err(c.fail("this outgoing-value was already written")));
        };
        let started = match &c.place {
            Place::Fs { root, dir } => async {
                let dest = root.object(dir, &name).await?;
                let (temp, file) = fs::upload_file(&dest).await?;
                let spool_temp = temp.clone();
                let task = tokio::spawn(async move { fs::spool(reader, file, &spool_temp).await });
                Ok::<_, BlobError>(UploadKind::Fs { temp, dest, task })
            }
            .await
            .map_err(|e| e.to_string()),
            Place::Remote(remote) => remote
                .start_write(&c.name, &name, reader)
                .await
                .map(UploadKind::Remote),
        };
        match started {
            Ok(kind) => {
                self.table_mut().get_mut(&data)?.upload = Some(Upload {
                    kind,
                    container: c.name.clone(),
                    label: c.label.clone(),
                });
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(c.fail(e))),
        }
    }

    async fn list_objects(&mut self, c: Resource<Container>) -> Res<Resource<ObjectNames>> {
        let c = self.container_handle(&c)?;
        let names = match &c.place {
            Place::Fs { dir, .. } => fs::list(dir).await.map_err(|e| e.to_string()),
            Place::Remote(remote) => remote.list(&c.name).await.map(|mut names| {
                names.sort();
                names
            }),
        };
        match names {
            Ok(names) => Ok(Ok(self.table_mut().push(ObjectNames {
                names: names.into(),
            })?)),
            Err(e) => Ok(Err(c.fail(e))),
        }
    }

    async fn delete_object(&mut self, c: Resource<Container>, name: String) -> Res<()> {
        self.delete_names(c, vec![name]).await
    }

    async fn delete_objects(&mut self, c: Resource<Container>, names: Vec<String>) -> Res<()> {
        self.delete_names(c, names).await
    }

    async fn has_object(&mut self, c: Resource<Container>, name: String) -> Res<bool> {
        let c = self.container_handle(&c)?;
        let found = match &c.place {
            Place::Fs { root, dir } => async {
                let path = root.object(dir, &name).await?;
                fs::exists(&path).await
            }
            .await
            .map_err(|e| e.to_string()),
            Place::Remote(remote) => remote.has_object(&c.name, &name).await,
        };
        Ok(found.map_err(|e| c.fail(e)))
    }

    async fn object_info(
        &mut self,
        c: Resource<Container>,
        name: String,
    ) -> Res<types::ObjectMetadata> {
        let c = self.container_handle(&c)?;
        let info = match &c.place {
            Place::Fs { root, dir } => async {
                let path = root.object(dir, &name).await?;
                fs::stat(&path, "object").await
            }
            .await
            .map_err(|e| e.to_string()),
            Place::Remote(remote) => remote.object_info(&c.name, &name).await,
        };
        match info {
            Ok((created_at, size)) => Ok(Ok(types::ObjectMetadata {
                name,
                container: c.name.clone(),
                created_at,
                size,
            })),
            Err(e) => Ok(Err(c.fail(e))),
        }
    }

    async fn clear(&mut self, c: Resource<Container>) -> Res<()> {
        let c = self.container_handle(&c)?;
        let cleared = match &c.place {
            Place::Fs { dir, .. } => fs::clear(dir).await.map_err(|e| e.to_string()),
            Place::Remote(remote) => remote.clear_container(&c.name).await,
        };
        Ok(cleared.map_err(|e| c.fail(e)))
    }

    async fn drop(&mut self, c: Resource<Container>) -> wasmtime::Result<()> {
        self.table_mut().delete(c)?;
        Ok(())
    }
}

impl InvocationState {
    async fn delete_names(&mut self, c: Resource<Container>, names: Vec<String>) -> Res<()> {
        let c = self.container_handle(&c)?;
        let deleted = match &c.place {
            Place::Fs { root, dir } => async {
                for name in &names {
                    let path = root.object(dir, name).await?;
                    fs::delete(&path).await?;
                }
                Ok::<_, BlobError>(())
            }
            .await
            .map_err(|e| e.to_string()),
            Place::Remote(remote) => remote.delete_objects(&c.name, &names).await,
        };
        Ok(deleted.map_err(|e| c.fail(e)))
    }
}

impl container::HostStreamObjectNames for InvocationState {
    async fn read_stream_object_names(
        &mut self,
        s: Resource<ObjectNames>,
        len: u64,
    ) -> Res<(Vec<String>, bool)> {
        let s = self.table_mut().get_mut(&s)?;
        let n = usize::try_from(len)
            .unwrap_or(usize::MAX)
            .min(s.names.len());
        let out: Vec<String> = s.names.drain(..n).collect();
        Ok(Ok((out, s.names.is_empty())))
    }

    async fn skip_stream_object_names(
        &mut self,
        s: Resource<ObjectNames>,
        num: u64,
    ) -> Res<(u64, bool)> {
        let s = self.table_mut().get_mut(&s)?;
        let n = usize::try_from(num)
            .unwrap_or(usize::MAX)
            .min(s.names.len());
        s.names.drain(..n);
        Ok(Ok((n as u64, s.names.is_empty())))
    }

    async fn drop(&mut self, s: Resource<ObjectNames>) -> wasmtime::Result<()> {
        self.table_mut().delete(s)?;
        Ok(())
    }
}

impl types::Host for InvocationState {}

impl types::HostOutgoingValue for InvocationState {
    async fn new_outgoing_value(&mut self) -> wasmtime::Result<Resource<OutgoingValue>> {
        let (writer, reader) = tokio::io::duplex(UPLOAD_PIPE_BYTES);
        Ok(self.table_mut().push(OutgoingValue {
            writer: Some(writer),
            reader: Some(reader),
            upload: None,
        })?)
    }

    async fn outgoing_value_write_body(
        &mut self,
        value: Resource<OutgoingValue>,
    ) -> wasmtime::Result<Result<Resource<DynOutputStream>, ()>> {
        let Some(writer) = self.table_mut().get_mut(&value)?.writer.take() else {
            return Ok(Err(()));
        };
        let stream: DynOutputStream = Box::new(AsyncWriteStream::new(UPLOAD_WRITE_BUDGET, writer));
        Ok(Ok(self.table_mut().push_child(stream, &value)?))
    }

    async fn finish(&mut self, value: Resource<OutgoingValue>) -> Res<()> {
        let mut value = self.table_mut().delete(value).map_err(|e| {
            wasmtime::Error::msg(format!(
                "outgoing-value.finish: {e}; drop its output-stream before calling finish"
            ))
        })?;
        // The end of the body: the copy sees EOF once the writer is gone.
        value.writer = None;
        let Some(upload) = value.upload.take() else {
            return Ok(Err(
                "outgoing-value.finish before container.write-data: nothing was stored; call write-data with this value first".into(),
            ));
        };
        let fail = |e: String| {
            format!(
                "blobstore container `{}` ({}): {e}",
                upload.container, upload.label
            )
        };
        match upload.kind {
            UploadKind::Fs { temp, dest, task } => {
                let stored = async {
                    let written = match task.await {
                        Ok(Ok(n)) => n,
                        Ok(Err(e)) => return Err(e.to_string()),
                        Err(e) => return Err(format!("the upload task failed: {e}")),
                    };
                    tokio::fs::rename(&temp, &dest).await.map_err(|e| {
                        format!(
                            "cannot move the upload into place at `{}`: {e}",
                            dest.display()
                        )
                    })?;
                    Ok(written)
                }
                .await;
                match stored {
                    Ok(written) => {
                        tracing::debug!(path = %dest.display(), bytes = written, "blob stored");
                        Ok(Ok(()))
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&temp);
                        Ok(Err(fail(e)))
                    }
                }
            }
            UploadKind::Remote(remote) => match remote.finish().await {
                Ok(written) => {
                    tracing::debug!(container = %upload.container, bytes = written, "blob stored by the provider");
                    Ok(Ok(()))
                }
                Err(e) => Ok(Err(fail(e))),
            },
        }
    }

    async fn drop(&mut self, value: Resource<OutgoingValue>) -> wasmtime::Result<()> {
        // `Drop for OutgoingValue` removes an unfinished upload.
        self.table_mut().delete(value)?;
        Ok(())
    }
}

impl types::HostIncomingValue for InvocationState {
    async fn incoming_value_consume_sync(
        &mut self,
        value: Resource<IncomingValue>,
    ) -> Res<Vec<u8>> {
        let mut value = self.table_mut().delete(value)?;
        if value.size > MAX_SYNC_BYTES {
            return Ok(Err(format!(
                "the value is {} bytes, more than the {MAX_SYNC_BYTES} that incoming-value-consume-sync copies; read it with incoming-value-consume-async",
                value.size
            )));
        }
        let Some(mut reader) = value.reader.take() else {
            return Ok(Err("this incoming-value was already consumed".into()));
        };
        Ok(fs::read_all(&mut reader, value.size, &value.path)
            .await
            .map_err(|e| e.to_string()))
    }

    async fn incoming_value_consume_async(
        &mut self,
        value: Resource<IncomingValue>,
    ) -> Res<Resource<DynInputStream>> {
        let mut value = self.table_mut().delete(value)?;
        let Some(reader) = value.reader.take() else {
            return Ok(Err("this incoming-value was already consumed".into()));
        };
        let stream: DynInputStream = Box::new(AsyncReadStream::new(reader));
        Ok(Ok(self.table_mut().push(stream)?))
    }

    async fn size(&mut self, value: Resource<IncomingValue>) -> wasmtime::Result<u64> {
        Ok(self.table_mut().get(&value)?.size)
    }

    async fn drop(&mut self, value: Resource<IncomingValue>) -> wasmtime::Result<()> {
        self.table_mut().delete(value)?;
        Ok(())
    }
}
