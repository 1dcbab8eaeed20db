//! `http-config`: written exactly like a wasmCloud 1.x component, with the
//! `wasmcloud-component` crate. `GET /<key>` answers the value of `<key>` in
//! the component's named config (`wasi:config/store`), or `<unset>`, and logs
//! each lookup through `wasi:logging`.

use wasmcloud_component::http;
use wasmcloud_component::wasi::config::store;
use wasmcloud_component::wasi::logging::logging::{log, Level};

struct HttpConfig;

http::export!(HttpConfig);

impl http::Server for HttpConfig {
    fn handle(
        request: http::IncomingRequest,
    ) -> http::Result<http::Response<impl http::OutgoingBody>> {
        let key = request.uri().path().trim_start_matches('/').to_string();
        log(Level::Info, "http-config", &format!("config lookup for `{key}`"));
        let body = match store::get(&key) {
            Ok(Some(value)) => value,
            Ok(None) => "<unset>".to_string(),
            Err(e) => format!("config error: {e:?}"),
        };
        Ok(http::Response::new(body))
    }
}
