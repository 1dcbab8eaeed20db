//! wRPC 0.0.1 value encoding of the plain-value subset of WIT, from and to
//! JSON, for `wash call`: bool, integers, floats, char, string, list, record,
//! tuple, variant, enum, option, result and flags (and aliases of them).
//! Resources, streams, futures, maps and fixed-length lists are refused.
//!
//! The encoding is the one `wrpc-runtime-wasmtime` 0.31 writes (PROTOCOL.md
//! §3.1): `u8`/`s8` as one byte, other integers as (signed) LEB128, floats
//! little-endian, `char` as UTF-8, strings and lists with a LEB128 `u32`
//! length, records and tuples as their fields in order, variant and enum
//! cases as a LEB128 discriminant, `option` and `result` with one status byte
//! (`option`: 0 none, 1 some; `result`: 0 ok, 1 err), flags as a
//! little-endian bit set of `ceil(n/8)` bytes.
//!
//! The JSON forms: numbers, strings (one character for `char`), arrays for
//! lists, tuples and flags (the names that are set), objects for records
//! (field names as in WIT), `"case"` or `{"case": value}` for variants,
//! `"case"` for enums, `null` or the value for options, `{"ok": v}` /
//! `{"err": v}` for results.

use serde_json::{Map, Value, json};
use wit_parser::{Resolve, Type, TypeDefKind};

/// A WIT type as a person writes it: `u32`, `list<string>`, or a named
/// type's name (`echo-request`).
pub fn type_name(resolve: &Resolve, ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::U8 => "u8".into(),
        Type::U16 => "u16".into(),
        Type::U32 => "u32".into(),
        Type::U64 => "u64".into(),
        Type::S8 => "s8".into(),
        Type::S16 => "s16".into(),
        Type::S32 => "s32".into(),
        Type::S64 => "s64".into(),
        Type::F32 => "f32".into(),
        Type::F64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::ErrorContext => "error-context".into(),
        Type::Id(id) => {
            let Some(def) = resolve.types.get(*id) else {
                return "<unknown type>".into();
            };
            if let Some(name) = &def.name {
                return name.clone();
            }
            let name = |t: &Type| type_name(resolve, t);
            let opt = |t: &Option<Type>| t.as_ref().map(name).unwrap_or_else(|| "_".into());
            match &def.kind {
                TypeDefKind::List(t) => format!("list<{}>", name(t)),
                TypeDefKind::Option(t) => format!("option<{}>", name(t)),
                TypeDefKind::Result(r) => format!("result<{}, {}>", opt(&r.ok), opt(&r.err)),
                TypeDefKind::Tuple(t) => format!(
                    "tuple<{}>",
                    t.types.iter().map(name).collect::<Vec<_>>().join(", ")
                ),
                TypeDefKind::Type(t) => name(t),
                TypeDefKind::Future(t) => format!("future<{}>", opt(t)),
                TypeDefKind::Stream(t) => format!("stream<{}>", opt(t)),
                TypeDefKind::Map(k, v) => format!("map<{}, {}>", name(k), name(v)),
                other => other.as_str().to_string(),
            }
        }
    }
}

/// The type with its shape, for error messages: a record lists its fields,
/// an enum or variant its cases, flags their names.
pub fn describe(resolve: &Resolve, ty: &Type) -> String {
    let name = type_name(resolve, ty);
    let Some(def) = kind(resolve, ty) else {
        return name;
    };
    let list = |items: Vec<String>| items.join(", ");
    match def {
        TypeDefKind::Record(r) => format!(
            "record `{name}` {{ {} }}",
            list(
                r.fields
                    .iter()
                    .map(|f| format!("{}: {}", f.name, type_name(resolve, &f.ty)))
                    .collect()
            )
        ),
        TypeDefKind::Enum(e) => format!(
            "enum `{name}` (one of {})",
            list(e.cases.iter().map(|c| format!("\"{}\"", c.name)).collect())
        ),
        TypeDefKind::Variant(v) => format!(
            "variant `{name}` (\"case\" or {{\"case\": value}} for cases {})",
            list(v.cases.iter().map(|c| c.name.clone()).collect())
        ),
        TypeDefKind::Flags(f) => format!(
            "flags `{name}` (an array of {})",
            list(f.flags.iter().map(|c| c.name.clone()).collect())
        ),
        TypeDefKind::Result(_) => format!("{name} ({{\"ok\": …}} or {{\"err\": …}})"),
        _ => name,
    }
}

/// The definition behind `ty`, through aliases; `None` for primitives.
fn kind<'r>(resolve: &'r Resolve, ty: &Type) -> Option<&'r TypeDefKind> {
    let mut ty = *ty;
    loop {
        let Type::Id(id) = ty else { return None };
        let def = resolve.types.get(id)?;
        match &def.kind {
            TypeDefKind::Type(inner) => ty = *inner,
            other => return Some(other),
        }
    }
}

/// Why a type cannot be called from wash, if it cannot.
pub fn unsupported(resolve: &Resolve, ty: &Type) -> Option<String> {
    let bad = |what: &str| {
        Some(format!(
            "{what} (`{}`) cannot be passed by `wash call`: only plain values (no resources, streams, futures or maps) are supported",
            type_name(resolve, ty)
        ))
    };
    if *ty == Type::ErrorContext {
        return bad("an error-context");
    }
    let recurse = |t: &Type| unsupported(resolve, t);
    let recurse_opt = |t: &Option<Type>| t.as_ref().and_then(recurse);
    match kind(resolve, ty)? {
        TypeDefKind::Resource | TypeDefKind::Handle(_) => bad("a resource"),
        TypeDefKind::Future(_) => bad("a future"),
        TypeDefKind::Stream(_) => bad("a stream"),
        TypeDefKind::Map(..) => bad("a map"),
        TypeDefKind::FixedLengthList(..) => bad("a fixed-length list"),
        TypeDefKind::Unknown => bad("an unknown type"),
        TypeDefKind::Record(r) => r.fields.iter().find_map(|f| recurse(&f.ty)),
        TypeDefKind::Tuple(t) => t.types.iter().find_map(recurse),
        TypeDefKind::Variant(v) => v.cases.iter().find_map(|c| recurse_opt(&c.ty)),
        TypeDefKind::Option(t) | TypeDefKind::List(t) | TypeDefKind::Type(t) => recurse(t),
        TypeDefKind::Result(r) => recurse_opt(&r.ok).or_else(|| recurse_opt(&r.err)),
        TypeDefKind::Enum(_) | TypeDefKind::Flags(_) => None,
    }
}

/// Encodes `value` as `ty`; errors name the path (`req.times`) and the
/// expected WIT type.
pub fn encode(
    resolve: &Resolve,
    ty: &Type,
    value: &Value,
    path: &str,
    out: &mut Vec<u8>,
) -> anyhow::Result<()> {
    let wrong = || anyhow::anyhow!("{path}: expected {}, got {value}", describe(resolve, ty));
    match ty {
        Type::Bool => out.push(u8::from(value.as_bool().ok_or_else(wrong)?)),
        Type::U8 => out.push(int::<u8>(value).ok_or_else(wrong)?),
        Type::S8 => out.extend(int::<i8>(value).ok_or_else(wrong)?.to_le_bytes()),
        Type::U16 => uleb(u64::from(int::<u16>(value).ok_or_else(wrong)?), out),
        Type::U32 => uleb(u64::from(int::<u32>(value).ok_or_else(wrong)?), out),
        Type::U64 => uleb(int::<u64>(value).ok_or_else(wrong)?, out),
        Type::S16 => sleb(i64::from(int::<i16>(value).ok_or_else(wrong)?), out),
        Type::S32 => sleb(i64::from(int::<i32>(value).ok_or_else(wrong)?), out),
        Type::S64 => sleb(int::<i64>(value).ok_or_else(wrong)?, out),
        // Narrowing to f32 is what asking for an f32 means.
        #[allow(
            clippy::cast_possible_truncation,
            reason = "f64 to f32 is the conversion asked for"
        )]
        Type::F32 => out.extend((float(value).ok_or_else(wrong)? as f32).to_le_bytes()),
        Type::F64 => out.extend(float(value).ok_or_else(wrong)?.to_le_bytes()),
        Type::Char => {
            let s = value.as_str().ok_or_else(wrong)?;
            let mut chars = s.chars();
            let (Some(c), None) = (chars.next(), chars.next()) else {
                return Err(wrong());
            };
            let mut buf = [0u8; 4];
            out.extend(c.encode_utf8(&mut buf).as_bytes());
        }
        Type::String => bytes(value.as_str().ok_or_else(wrong)?.as_bytes(), out)?,
        Type::ErrorContext => return Err(wrong()),
        Type::Id(_) => {
            let Some(def) = kind(resolve, ty) else {
                return Err(wrong());
            };
            encode_def(resolve, def, value, path, out, wrong)?;
        }
    }
    Ok(())
}

fn encode_def(
    resolve: &Resolve,
    def: &TypeDefKind,
    value: &Value,
    path: &str,
    out: &mut Vec<u8>,
    wrong: impl Fn() -> anyhow::Error,
) -> anyhow::Result<()> {
    match def {
        TypeDefKind::List(t) => {
            let items = value.as_array().ok_or_else(&wrong)?;
            length(items.len(), out)?;
            for (i, item) in items.iter().enumerate() {
                encode(resolve, t, item, &format!("{path}[{i}]"), out)?;
            }
        }
        TypeDefKind::Tuple(t) => {
            let items = value.as_array().ok_or_else(&wrong)?;
            if items.len() != t.types.len() {
                return Err(wrong());
            }
            for (i, (item, t)) in items.iter().zip(&t.types).enumerate() {
                encode(resolve, t, item, &format!("{path}.{i}"), out)?;
            }
        }
        TypeDefKind::Record(r) => {
            let object = value.as_object().ok_or_else(&wrong)?;
            if let Some(extra) = object
                .keys()
                .find(|k| !r.fields.iter().any(|f| &f.name == *k))
            {
                anyhow::bail!("{path}: unknown field `{extra}`; {}", wrong());
            }
            for field in &r.fields {
                let item = object.get(&field.name).ok_or_else(|| {
                    anyhow::anyhow!("{path}: missing field `{}`; {}", field.name, wrong())
                })?;
                encode(
                    resolve,
                    &field.ty,
                    item,
                    &format!("{path}.{}", field.name),
                    out,
                )?;
            }
        }
        TypeDefKind::Variant(v) => {
            let (case, payload) = case_of(value).ok_or_else(&wrong)?;
            let (index, case) = v
                .cases
                .iter()
                .enumerate()
                .find(|(_, c)| c.name == case)
                .ok_or_else(&wrong)?;
            uleb(index as u64, out);
            match (&case.ty, payload) {
                (Some(t), Some(payload)) => {
                    encode(resolve, t, payload, &format!("{path}.{}", case.name), out)?;
                }
                (None, None | Some(Value::Null)) => {}
                _ => return Err(wrong()),
            }
        }
        TypeDefKind::Enum(e) => {
            let name = value.as_str().ok_or_else(&wrong)?;
            let index = e
                .cases
                .iter()
                .position(|c| c.name == name)
                .ok_or_else(&wrong)?;
            uleb(index as u64, out);
        }
        TypeDefKind::Option(t) => match value {
            Value::Null => out.push(0),
            some => {
                out.push(1);
                encode(resolve, t, some, path, out)?;
            }
        },
        TypeDefKind::Result(r) => {
            let (case, payload) = case_of(value).ok_or_else(&wrong)?;
            let (status, ty) = match case {
                "ok" => (0, &r.ok),
                "err" => (1, &r.err),
                _ => return Err(wrong()),
            };
            out.push(status);
            match (ty, payload) {
                (Some(t), Some(payload)) => {
                    encode(resolve, t, payload, &format!("{path}.{case}"), out)?;
                }
                (None, None | Some(Value::Null)) => {}
                _ => return Err(wrong()),
            }
        }
        TypeDefKind::Flags(f) => {
            let names = value.as_array().ok_or_else(&wrong)?;
            let mut bits = vec![0u8; f.flags.len().div_ceil(8)];
            for name in names {
                let name = name.as_str().ok_or_else(&wrong)?;
                let i = f
                    .flags
                    .iter()
                    .position(|c| c.name == name)
                    .ok_or_else(&wrong)?;
                if let Some(byte) = bits.get_mut(i / 8) {
                    *byte |= 1 << (i % 8);
                }
            }
            out.extend(bits);
        }
        _ => return Err(wrong()),
    }
    Ok(())
}

/// `"case"` → (case, None); `{"case": v}` → (case, Some(v)).
fn case_of(value: &Value) -> Option<(&str, Option<&Value>)> {
    match value {
        Value::String(s) => Some((s, None)),
        Value::Object(o) if o.len() == 1 => o.iter().next().map(|(k, v)| (k.as_str(), Some(v))),
        _ => None,
    }
}

fn int<T: TryFrom<i64> + TryFrom<u64>>(value: &Value) -> Option<T> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .and_then(|v| T::try_from(v).ok())
            .or_else(|| n.as_i64().and_then(|v| T::try_from(v).ok())),
        // Big integers may come quoted (JSON numbers lose precision past 2^53
        // in many tools).
        Value::String(s) => s
            .parse::<u64>()
            .ok()
            .and_then(|v| T::try_from(v).ok())
            .or_else(|| s.parse::<i64>().ok().and_then(|v| T::try_from(v).ok())),
        _ => None,
    }
}

fn float(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" | "nan" => Some(f64::NAN),
            "inf" | "Infinity" => Some(f64::INFINITY),
            "-inf" | "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

fn uleb(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn sleb(mut v: i64, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        let done = (v == 0 && byte & 0x40 == 0) || (v == -1 && byte & 0x40 != 0);
        if done {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn length(n: usize, out: &mut Vec<u8>) -> anyhow::Result<()> {
    let n = u32::try_from(n).map_err(|_| anyhow::anyhow!("a list of {n} items is too long"))?;
    uleb(u64::from(n), out);
    Ok(())
}

fn bytes(b: &[u8], out: &mut Vec<u8>) -> anyhow::Result<()> {
    length(b.len(), out)?;
    out.extend_from_slice(b);
    Ok(())
}

/// Reads values of known types from the bytes of a reply.
pub struct Decoder<'a> {
    resolve: &'a Resolve,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder over a whole results payload.
    pub fn new(resolve: &'a Resolve, bytes: &'a [u8]) -> Self {
        Decoder {
            resolve,
            bytes,
            at: 0,
        }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.at)
    }

    fn take(&mut self, n: usize) -> anyhow::Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let slice = end
            .and_then(|end| self.bytes.get(self.at..end))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "the reply ended early: {n} more bytes needed at byte {} of {}",
                    self.at,
                    self.bytes.len()
                )
            })?;
        self.at += n;
        Ok(slice)
    }

    fn byte(&mut self) -> anyhow::Result<u8> {
        Ok(self.take(1)?.first().copied().unwrap_or(0))
    }

    fn array<const N: usize>(&mut self) -> anyhow::Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn uleb(&mut self) -> anyhow::Result<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        anyhow::bail!("a LEB128 integer in the reply is longer than 10 bytes")
    }

    fn sleb(&mut self) -> anyhow::Result<i64> {
        let mut v: i64 = 0;
        let mut shift = 0;
        loop {
            let byte = self.byte()?;
            v |= i64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                if shift < 64 && byte & 0x40 != 0 {
                    v |= -1 << shift;
                }
                return Ok(v);
            }
            anyhow::ensure!(shift < 64, "a LEB128 integer in the reply is too long");
        }
    }

    fn narrow<T: TryFrom<u64>>(&mut self, what: &str) -> anyhow::Result<T> {
        let v = self.uleb()?;
        T::try_from(v).map_err(|_| anyhow::anyhow!("the reply's {what} {v} is out of range"))
    }

    fn signed<T: TryFrom<i64>>(&mut self, what: &str) -> anyhow::Result<T> {
        let v = self.sleb()?;
        T::try_from(v).map_err(|_| anyhow::anyhow!("the reply's {what} {v} is out of range"))
    }

    /// Reads one value of type `ty` as JSON.
    pub fn value(&mut self, ty: &Type) -> anyhow::Result<Value> {
        Ok(match ty {
            Type::Bool => json!(self.byte()? != 0),
            Type::U8 => json!(self.byte()?),
            Type::S8 => json!(i8::from_le_bytes(self.array()?)),
            Type::U16 => json!(self.narrow::<u16>("u16")?),
            Type::U32 => json!(self.narrow::<u32>("u32")?),
            Type::U64 => json!(self.uleb()?),
            Type::S16 => json!(self.signed::<i16>("s16")?),
            Type::S32 => json!(self.signed::<i32>("s32")?),
            Type::S64 => json!(self.sleb()?),
            Type::F32 => float_json(f64::from(f32::from_le_bytes(self.array()?))),
            Type::F64 => float_json(f64::from_le_bytes(self.array()?)),
            Type::Char => {
                let first = self.byte()?;
                let len = match first {
                    0..=0x7f => 1,
                    0xc0..=0xdf => 2,
                    0xe0..=0xef => 3,
                    _ => 4,
                };
                let mut buf = vec![first];
                buf.extend_from_slice(self.take(len - 1)?);
                json!(
                    String::from_utf8(buf)
                        .map_err(|_| anyhow::anyhow!("the reply has a char that is not UTF-8"))?
                )
            }
            Type::String => {
                let n = self.narrow::<u32>("string length")?;
                let b = self.take(n as usize)?;
                json!(
                    std::str::from_utf8(b)
                        .map_err(|_| anyhow::anyhow!("the reply has a string that is not UTF-8"))?
                )
            }
            Type::ErrorContext => anyhow::bail!("an error-context cannot be read by wash"),
            Type::Id(_) => {
                let def = kind(self.resolve, ty)
                    .ok_or_else(|| anyhow::anyhow!("unknown type in the signature"))?;
                self.def(def)?
            }
        })
    }

    fn def(&mut self, def: &TypeDefKind) -> anyhow::Result<Value> {
        Ok(match def {
            TypeDefKind::List(t) => {
                let n = self.narrow::<u32>("list length")?;
                // Every element is at least one byte: no huge allocation for
                // a length the payload cannot hold.
                let mut items = Vec::with_capacity((n as usize).min(self.remaining()));
                for _ in 0..n {
                    items.push(self.value(t)?);
                }
                Value::Array(items)
            }
            TypeDefKind::Tuple(t) => Value::Array(
                t.types
                    .iter()
                    .map(|t| self.value(t))
                    .collect::<anyhow::Result<_>>()?,
            ),
            TypeDefKind::Record(r) => {
                let mut object = Map::new();
                for f in &r.fields {
                    object.insert(f.name.clone(), self.value(&f.ty)?);
                }
                Value::Object(object)
            }
            TypeDefKind::Variant(v) => {
                let index = self.narrow::<u32>("variant case")?;
                let case = v.cases.get(index as usize).ok_or_else(|| {
                    anyhow::anyhow!("the reply names variant case {index}, which does not exist")
                })?;
                match &case.ty {
                    Some(t) => json!({ case.name.clone(): self.value(t)? }),
                    None => json!(case.name),
                }
            }
            TypeDefKind::Enum(e) => {
                let index = self.narrow::<u32>("enum case")?;
                let case = e.cases.get(index as usize).ok_or_else(|| {
                    anyhow::anyhow!("the reply names enum case {index}, which does not exist")
                })?;
                json!(case.name)
            }
            TypeDefKind::Option(t) => match self.byte()? {
                0 => Value::Null,
                1 => self.value(t)?,
                b => anyhow::bail!("the reply has option status {b} (expected 0 or 1)"),
            },
            TypeDefKind::Result(r) => {
                let (case, ty) = match self.byte()? {
                    0 => ("ok", &r.ok),
                    1 => ("err", &r.err),
                    b => anyhow::bail!("the reply has result status {b} (expected 0 or 1)"),
                };
                let payload = match ty {
                    Some(t) => self.value(t)?,
                    None => Value::Null,
                };
                json!({ case: payload })
            }
            TypeDefKind::Flags(f) => {
                let bits = self.take(f.flags.len().div_ceil(8))?;
                let set = f
                    .flags
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| bits.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0))
                    .map(|(_, f)| json!(f.name))
                    .collect();
                Value::Array(set)
            }
            other => anyhow::bail!("a {} cannot be read by wash", other.as_str()),
        })
    }
}

fn float_json(v: f64) -> Value {
    if v.is_nan() {
        json!("NaN")
    } else if v.is_infinite() {
        json!(if v > 0.0 { "inf" } else { "-inf" })
    } else {
        json!(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve() -> (Resolve, wit_parser::InterfaceId) {
        let mut resolve = Resolve::default();
        let pkg = resolve
            .push_str(
                "t.wit",
                r#"package t:t;
                interface i {
                  record req { message: string, times: u32, tags: list<string> }
                  enum color { red, green }
                  variant v { none, num(s32) }
                  flags perms { read, write, exec }
                  f: func(r: req, c: color, v: v, p: perms, o: option<u8>, x: s64, c2: char, f: f32) -> result<list<string>, string>;
                }"#,
            )
            .unwrap();
        let id = *resolve.packages[pkg].interfaces.get("i").unwrap();
        (resolve, id)
    }

    #[test]
    fn encodes_like_wrpc_and_round_trips() {
        let (resolve, iface) = resolve();
        let func = &resolve.interfaces[iface].functions["f"];
        let args = [
            json!({"message": "hi", "times": 300, "tags": ["a"]}),
            json!("green"),
            json!({"num": -2}),
            json!(["read", "exec"]),
            json!(null),
            json!(-129),
            json!("é"),
            json!(1.5),
        ];
        let mut out = Vec::new();
        for (p, a) in func.params.iter().zip(&args) {
            encode(&resolve, &p.ty, a, &p.name, &mut out).unwrap();
        }
        assert_eq!(
            out,
            [
                2, b'h', b'i', 0xac, 0x02, 1, 1, b'a', // record
                1,    // enum
                1, 0x7e,  // variant num(-2)
                0b101, // flags
                0,     // none
                0xff, 0x7e, // -129
                0xc3, 0xa9, // é
                0, 0, 0xc0, 0x3f, // 1.5f32
            ]
        );
        let mut d = Decoder::new(&resolve, &out);
        for (p, a) in func.params.iter().zip(&args) {
            assert_eq!(&d.value(&p.ty).unwrap(), a, "{}", p.name);
        }
        assert_eq!(d.remaining(), 0);
        let result = func.result.unwrap();
        let mut d = Decoder::new(&resolve, &[0, 1, 1, b'x']);
        assert_eq!(d.value(&result).unwrap(), json!({"ok": ["x"]}));
        assert_eq!(type_name(&resolve, &result), "result<list<string>, string>");
    }

    #[test]
    fn errors_name_the_path_and_the_expected_type() {
        let (resolve, iface) = resolve();
        let func = &resolve.interfaces[iface].functions["f"];
        let p = &func.params[0];
        let err = encode(
            &resolve,
            &p.ty,
            &json!({"message": "hi", "times": "x", "tags": []}),
            "r",
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "r.times: expected u32, got \"x\"");
        let err = encode(&resolve, &p.ty, &json!(3), "r", &mut Vec::new()).unwrap_err();
        assert!(
            err.to_string()
                .contains("record `req` { message: string, times: u32, tags: list<string> }"),
            "{err}"
        );
        let err = encode(
            &resolve,
            &func.params[1].ty,
            &json!("blue"),
            "c",
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("enum `color` (one of \"red\", \"green\")"),
            "{err}"
        );
    }

    #[test]
    fn leb128_edges() {
        let mut out = Vec::new();
        sleb(i64::MIN, &mut out);
        uleb(u64::MAX, &mut out);
        sleb(63, &mut out);
        sleb(64, &mut out);
        let resolve = Resolve::default();
        let mut d = Decoder::new(&resolve, &out);
        assert_eq!(d.sleb().unwrap(), i64::MIN);
        assert_eq!(d.uleb().unwrap(), u64::MAX);
        assert_eq!(d.sleb().unwrap(), 63);
        assert_eq!(d.sleb().unwrap(), 64);
        assert!(Decoder::new(&resolve, &[0x80]).uleb().is_err());
    }
}
