//! `blobstore-fs-provider`: a capability provider serving
//! `wrpc:blobstore/blobstore@0.2.0` — what a wasmCloud 1.x or Trellis host
//! calls when a component's `wasi:blobstore` import is linked to it — from a
//! directory on the provider's machine.
//!
//! The store is the host's `builtin://blobstore-fs` (`trellis-blobstore-fs`):
//! the same name checks, root containment and streamed, renamed-into-place
//! uploads. Each link from a component has its root (`ROOT`/`root` in the
//! link's target config, else the provider's config, else
//! `$TMPDIR/<component-id>`); see README.md.

mod bindings {
    wit_bindgen_wrpc::generate!({
        inline: "
            package trellis:blobstore-fs-provider;

            world provider {
                export wrpc:blobstore/blobstore@0.2.0;
            }
        ",
        path: ["../../interfaces/wit/deps/wrpc-blobstore"],
        world: "trellis:blobstore-fs-provider/provider",
        generate_all,
    });
}

mod handler;
mod links;

use std::sync::Arc;

use trellis_provider_sdk::Connection;

use crate::links::BlobstoreFs;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    trellis_provider_sdk::run(
        BlobstoreFs::default(),
        "blobstore-fs",
        async |conn: Connection, provider: Arc<BlobstoreFs>| {
            let handler = handler::Handler::new(provider);
            let exports = bindings::serve(&conn.server(), handler).await?;
            trellis_provider_sdk::serve_exports(exports).await
        },
    )
    .await?;
    Ok(())
}
