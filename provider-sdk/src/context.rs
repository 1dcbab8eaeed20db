//! [`Context`]: who is calling, per invocation.

use std::time::Instant;

use trellis_observability::propagation::W3cContext;
use trellis_wrpc::ServeContext;

/// The link name a call carries when its caller set none.
pub const DEFAULT_LINK_NAME: &str = "default";

/// Who made one call to this provider's exports, from the request headers.
///
/// Generated handlers receive a [`ServeContext`] as their first argument;
/// `Context::from(&cx)` (or [`Context::source_id`] on the fly) tells which
/// component called and over which link, so a provider with several links
/// can pick the matching link config from [`Connection::links`](crate::Connection::links).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// `source-id` header: the calling component or provider, when sent.
    pub source_id: Option<String>,
    /// `link-name` header, `default` when absent.
    pub link_name: String,
    /// When the caller stops waiting (`trellis-timeout-ms`, else the
    /// transport's default budget).
    pub deadline: Option<Instant>,
    /// W3C trace context of the call: the provider's own `provider.serve`
    /// span when traces are on, else the caller's `traceparent` as received.
    /// Pass it on with [`ProviderClient::in_context`](crate::ProviderClient::in_context).
    pub trace: Option<W3cContext>,
}

impl Context {
    /// The caller's id, when the request carried one.
    pub fn source_id(&self) -> Option<&str> {
        self.source_id.as_deref()
    }

    /// The link name the caller used.
    pub fn link_name(&self) -> &str {
        &self.link_name
    }
}

impl From<&ServeContext> for Context {
    fn from(cx: &ServeContext) -> Self {
        Self {
            source_id: cx.source_id().map(str::to_string),
            link_name: Some(cx.link_name())
                .filter(|name| !name.is_empty())
                .unwrap_or(DEFAULT_LINK_NAME)
                .to_string(),
            deadline: Some(cx.deadline.into_std()),
            trace: crate::trace::incoming(&cx.headers),
        }
    }
}
