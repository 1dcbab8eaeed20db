//! `wash call COMPONENT_ID INSTANCE.FUNCTION [ARGS…]`: invokes an exported
//! function over the lattice, the way another component or a provider would
//! (wRPC 0.0.1 on `{lattice}.{id}.wrpc.0.0.1.{instance}.{function}`, through
//! `trellis-wrpc`, so Trellis hosts answer with the compact framing and
//! wasmCloud hosts with the standard handshake).
//!
//! Arguments are JSON values, typed by the function's WIT signature, which
//! is read from the component binary: `--wit-from FILE.wasm`, else the
//! `file://` image the component runs from (host inventory). Values are
//! encoded and decoded by [`crate::wrpc_value`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wit_parser::{Function, Resolve, WorldItem};
use wrpc_transport::Invoke as _;

use crate::ctl::Lattice;
use crate::output::Report;
use crate::parse;
use crate::wrpc_value::{self, Decoder};

/// Default budget of a call: 10 s, the invocation timeout of wasmCloud hosts
/// (and of `trellis-wrpc`), so `wash call` waits as long as a component
/// calling the same function would.
pub const DEFAULT_CALL_TIMEOUT_MS: u64 = 10_000;

/// The `source-id` header `wash call` sends, so `wash spy` and the target's
/// logs show where the call came from.
pub const SOURCE_ID: &str = "wash";

/// `wash call`.
#[derive(Args, Debug, Clone)]
pub struct CallArgs {
    /// Id of the component to call
    #[arg(value_parser = parse::component_id)]
    pub component_id: String,
    /// The exported function: `INSTANCE.FUNCTION` (`example:pong/pingpong.ping`;
    /// the instance's `@version` may be left out), or `FUNCTION` for a function
    /// the component exports directly
    pub function: String,
    /// One JSON value per parameter (`'{"message": "hi", "times": 2}'`); a bare
    /// word is taken as a string where the parameter is a string, char or enum
    #[arg(allow_negative_numbers = true)]
    pub args: Vec<String>,
    /// Read the WIT signature from this component file instead of the
    /// component's `file://` image
    #[arg(long = "wit-from", value_name = "FILE.wasm")]
    pub wit_from: Option<PathBuf>,
    /// Budget of the call in milliseconds
    #[arg(long = "rpc-timeout-ms", default_value_t = DEFAULT_CALL_TIMEOUT_MS)]
    pub rpc_timeout_ms: u64,
    /// Send this `link-name` header (what a caller using that link would send)
    #[arg(long = "link-name")]
    pub link_name: Option<String>,
}

/// A function to call: where it lives and its types.
pub struct Signature {
    /// Everything the types refer to.
    pub resolve: Resolve,
    /// Instance name on the wire (`example:pong/pingpong@0.1.0`; empty for
    /// a function exported directly).
    pub instance: String,
    /// The function.
    pub func: Function,
}

/// Calls the function and reports its result.
pub async fn run(lattice: &Lattice, args: CallArgs) -> anyhow::Result<Report> {
    let wasm = component_bytes(lattice, &args).await?;
    let signature = signature(&wasm, &args.function)?;
    let params = encode_args(&signature, &args.args)?;
    let started = Instant::now();
    let results = invoke(lattice, &args, &signature, params).await?;
    let elapsed = started.elapsed();
    let result = decode_result(&signature, &results)?;
    let text = match &result {
        Some(value) => value.to_string(),
        None => String::new(),
    };
    Ok(Report::action(
        text,
        json!({
            "component_id": args.component_id,
            "instance": signature.instance,
            "function": signature.func.name,
            "result": result,
            "duration_ms": elapsed.as_secs_f64() * 1000.0,
        }),
    ))
}

/// The component binary the signature comes from.
async fn component_bytes(lattice: &Lattice, args: &CallArgs) -> anyhow::Result<Vec<u8>> {
    if let Some(path) = &args.wit_from {
        return read(path);
    }
    let found = lattice.find_component(&args.component_id, None).await?;
    let image = found
        .first()
        .map(|(_, c)| c.image_ref.clone())
        .unwrap_or_default();
    match image.strip_prefix("file://") {
        Some(path) => read(Path::new(path)),
        None => anyhow::bail!(
            "component `{}` runs from `{image}`, which wash does not read to find its WIT signature; pass the component file with --wit-from FILE.wasm",
            args.component_id
        ),
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| {
        format!(
            "cannot read {} to find the WIT signature; pass the component file with --wit-from FILE.wasm",
            path.display()
        )
    })
}

/// Finds `target` (`INSTANCE.FUNCTION` or `FUNCTION`) among the exports of
/// the component in `wasm`.
pub fn signature(wasm: &[u8], target: &str) -> anyhow::Result<Signature> {
    let decoded = wit_parser::decoding::decode(wasm)
        .map_err(|e| anyhow::anyhow!("cannot read the component's WIT: {e:#}"))?;
    let wit_parser::decoding::DecodedWasm::Component(resolve, world) = decoded else {
        anyhow::bail!("the file is a WIT package, not a component: pass the component's .wasm");
    };
    let (instance, func_name) = match target.rsplit_once('.') {
        Some((instance, func)) => (instance, func),
        None => ("", target),
    };
    let mut available = Vec::new();
    let mut found = None;
    let exports = resolve.worlds.get(world).map(|w| &w.exports);
    for (key, item) in exports.into_iter().flatten() {
        match item {
            WorldItem::Interface { id, .. } => {
                let name = resolve.name_world_key(key);
                let Some(iface) = resolve.interfaces.get(*id) else {
                    continue;
                };
                let matches = name == instance || unversioned(&name) == instance;
                for f in iface.functions.values() {
                    available.push(format!("{}.{}", unversioned(&name), f.name));
                    if matches && f.name == func_name && found.is_none() {
                        found = Some((name.clone(), f.clone()));
                    }
                }
            }
            WorldItem::Function(f) => {
                available.push(f.name.clone());
                if instance.is_empty() && f.name == func_name && found.is_none() {
                    found = Some((String::new(), f.clone()));
                }
            }
            WorldItem::Type { .. } => {}
        }
    }
    let Some((instance, func)) = found else {
        let list = if available.is_empty() {
            "it exports no functions".to_string()
        } else {
            format!("it exports {}", available.join(", "))
        };
        anyhow::bail!("the component does not export `{target}`: {list}");
    };
    let types = func.params.iter().map(|p| p.ty).chain(func.result);
    if let Some(why) = types
        .into_iter()
        .find_map(|t| wrpc_value::unsupported(&resolve, &t))
    {
        anyhow::bail!("`{target}` cannot be called from wash: {why}");
    }
    Ok(Signature {
        resolve,
        instance,
        func,
    })
}

fn unversioned(name: &str) -> &str {
    name.split_once('@').map_or(name, |(n, _)| n)
}

/// The function's signature as WIT: `echo(req: echo-request) -> result<…>`.
pub fn describe(sig: &Signature) -> String {
    let params = sig
        .func
        .params
        .iter()
        .map(|p| format!("{}: {}", p.name, wrpc_value::type_name(&sig.resolve, &p.ty)))
        .collect::<Vec<_>>()
        .join(", ");
    let result = sig
        .func
        .result
        .map(|t| format!(" -> {}", wrpc_value::type_name(&sig.resolve, &t)))
        .unwrap_or_default();
    format!("{}({params}){result}", sig.func.name)
}

/// Encodes the command-line arguments as the function's parameters.
pub fn encode_args(sig: &Signature, args: &[String]) -> anyhow::Result<Vec<u8>> {
    let params = &sig.func.params;
    anyhow::ensure!(
        args.len() == params.len(),
        "`{}` takes {} argument(s), got {}: call it as {}",
        sig.func.name,
        params.len(),
        args.len(),
        describe(sig)
    );
    let mut out = Vec::new();
    for (param, arg) in params.iter().zip(args) {
        let value = match serde_json::from_str::<Value>(arg) {
            Ok(value) => value,
            Err(_) if takes_bare_word(&sig.resolve, &param.ty) => Value::String(arg.clone()),
            Err(e) => anyhow::bail!(
                "argument `{}` is not JSON ({e}): expected {}",
                param.name,
                wrpc_value::describe(&sig.resolve, &param.ty)
            ),
        };
        wrpc_value::encode(&sig.resolve, &param.ty, &value, &param.name, &mut out)?;
    }
    Ok(out)
}

fn takes_bare_word(resolve: &Resolve, ty: &wit_parser::Type) -> bool {
    matches!(ty, wit_parser::Type::String | wit_parser::Type::Char)
        || wrpc_value::describe(resolve, ty).starts_with("enum ")
}

/// Decodes the results; `None` for a function without a result.
pub fn decode_result(sig: &Signature, bytes: &[u8]) -> anyhow::Result<Option<Value>> {
    let mut decoder = Decoder::new(&sig.resolve, bytes);
    let value = match &sig.func.result {
        Some(ty) => Some(decoder.value(ty).with_context(|| {
            format!(
                "cannot decode the result of `{}` as {}",
                sig.func.name,
                wrpc_value::type_name(&sig.resolve, ty)
            )
        })?),
        None => None,
    };
    anyhow::ensure!(
        decoder.remaining() == 0,
        "the reply of `{}` has {} byte(s) after the result: does --wit-from name the component that runs?",
        sig.func.name,
        decoder.remaining()
    );
    Ok(value)
}

async fn invoke(
    lattice: &Lattice,
    args: &CallArgs,
    sig: &Signature,
    params: Vec<u8>,
) -> anyhow::Result<Vec<u8>> {
    let timeout = Duration::from_millis(args.rpc_timeout_ms);
    let transport = trellis_wrpc::Transport::new(
        lattice.nats.clone(),
        trellis_wrpc::TransportOptions {
            default_timeout: timeout,
            ..Default::default()
        },
    )
    .await?;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(trellis_wrpc::headers::SOURCE_ID, SOURCE_ID);
    if let Some(link) = &args.link_name {
        headers.insert(trellis_wrpc::headers::LINK_NAME, link.as_str());
    }
    let cx = trellis_wrpc::CallContext {
        prefix: format!("{}.{}", lattice.name(), args.component_id),
        headers: Some(headers),
        timeout: Some(timeout),
    };
    let target = format!(
        "`{}` on component `{}`",
        if sig.instance.is_empty() {
            sig.func.name.clone()
        } else {
            format!("{}.{}", sig.instance, sig.func.name)
        },
        args.component_id
    );
    let call = async {
        let (mut outgoing, mut incoming) = transport
            .client()
            .invoke(
                cx,
                &sig.instance,
                &sig.func.name,
                params.into(),
                Vec::<Box<[Option<usize>]>>::new(),
            )
            .await?;
        outgoing.shutdown().await?;
        let mut results = Vec::new();
        incoming.read_to_end(&mut results).await?;
        anyhow::Ok(results)
    };
    call.await
        .map_err(|e| anyhow::anyhow!("calling {target} failed: {e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_a_component() {
        let err = signature(b"not wasm", "a.b").err().unwrap();
        assert!(
            err.to_string().contains("cannot read the component's WIT"),
            "{err}"
        );
    }
}
