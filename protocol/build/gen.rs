//! Rust code generation from the schema model: one module per message with its
//! structs, `Default`, `Message` (encode / decode / encoded_size) and the
//! `random` constructors of the `arbitrary` feature.
//!
//! Conventions in the generated code: `e` is the `Encoder`, `buf` the input
//! `Bytes`, `version` the message version, `flexible` whether it uses the compact
//! encoding, `c` the `codec` module.

use std::fmt::Write as _;

use crate::schema::{Api, Field, Range, Struct, Ty};

const KEYWORDS: &[&str] = &[
    "as", "async", "await", "box", "break", "const", "continue", "crate", "dyn", "else", "enum",
    "extern", "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move",
    "mut", "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "yield",
];

pub fn ident(name: &str) -> String {
    if KEYWORDS.contains(&name) {
        format!("r#{name}")
    } else {
        name.to_owned()
    }
}

/// Rust condition for "version in `r`", simplified knowing the code only runs for
/// versions in `within`. `None` = always true; `Some("false")` = never.
fn cond(r: Range, within: Range) -> Option<String> {
    let r = r.intersect(within);
    if r.is_empty() {
        return Some("false".to_owned());
    }
    match (r.lo > within.lo, r.hi < within.hi) {
        (false, false) => None,
        (true, false) => Some(format!("version >= {}", r.lo)),
        (false, true) => Some(format!("version <= {}", r.hi)),
        (true, true) if r.lo == r.hi => Some(format!("version == {}", r.lo)),
        (true, true) => Some(format!("({}..={}).contains(&version)", r.lo, r.hi)),
    }
}

fn is_fixed(ty: &Ty) -> Option<usize> {
    Some(match ty {
        Ty::Bool | Ty::I8 => 1,
        Ty::I16 | Ty::U16 => 2,
        Ty::I32 | Ty::U32 => 4,
        Ty::I64 | Ty::F64 => 8,
        Ty::Uuid => 16,
        _ => return None,
    })
}

fn base_type(ty: &Ty) -> String {
    match ty {
        Ty::Bool => "bool".into(),
        Ty::I8 => "i8".into(),
        Ty::I16 => "i16".into(),
        Ty::I32 => "i32".into(),
        Ty::I64 => "i64".into(),
        Ty::U16 => "u16".into(),
        Ty::U32 => "u32".into(),
        Ty::F64 => "f64".into(),
        Ty::Uuid => "c::Uuid".into(),
        Ty::String => "String".into(),
        Ty::Bytes => "c::Bytes".into(),
        Ty::Records => "c::Records".into(),
        Ty::Array(el) => format!("Vec<{}>", base_type(el)),
        Ty::Struct(s) => s.name.clone(),
    }
}

fn field_type(f: &Field) -> String {
    if f.is_option() {
        format!("Option<{}>", base_type(&f.ty))
    } else {
        base_type(&f.ty)
    }
}

fn default_expr(f: &Field) -> Result<String, String> {
    if f.is_option() {
        return match f.default.as_deref() {
            None | Some("null") => Ok("None".into()),
            Some(d) => Err(format!(
                "field `{}`: only `default=null` is supported for nullable fields, not `{d}`",
                f.name
            )),
        };
    }
    let Some(d) = f.default.as_deref() else {
        return Ok(match &f.ty {
            Ty::Bool => "false".into(),
            Ty::F64 => "0.0".into(),
            Ty::Uuid => "c::Uuid::ZERO".into(),
            Ty::String => "String::new()".into(),
            Ty::Bytes => "c::Bytes::new()".into(),
            Ty::Records => "c::Records::default()".into(),
            Ty::Array(_) => "Vec::new()".into(),
            Ty::Struct(s) => format!("{}::default()", s.name),
            _ => "0".into(),
        });
    };
    let bad = || format!("field `{}`: bad default `{d}` for its type", f.name);
    match &f.ty {
        Ty::Bool if d == "true" || d == "false" => Ok(d.into()),
        Ty::I8 => d.parse::<i8>().map(|v| v.to_string()).map_err(|_| bad()),
        Ty::I16 => d.parse::<i16>().map(|v| v.to_string()).map_err(|_| bad()),
        Ty::I32 => d.parse::<i32>().map(|v| v.to_string()).map_err(|_| bad()),
        Ty::I64 => d.parse::<i64>().map(|v| v.to_string()).map_err(|_| bad()),
        Ty::U16 => d.parse::<u16>().map(|v| v.to_string()).map_err(|_| bad()),
        Ty::U32 => d.parse::<u32>().map(|v| v.to_string()).map_err(|_| bad()),
        Ty::F64 => d
            .parse::<f64>()
            .map(|v| format!("{v:?}"))
            .map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// Statements writing the non-null value `x` (a reference) of type `ty`.
fn encode_value(ty: &Ty, x: &str, depth: usize) -> String {
    match ty {
        Ty::Bool => format!("e.put_bool(*{x});"),
        Ty::I8 => format!("e.put_i8(*{x});"),
        Ty::I16 => format!("e.put_i16(*{x});"),
        Ty::I32 => format!("e.put_i32(*{x});"),
        Ty::I64 => format!("e.put_i64(*{x});"),
        Ty::U16 => format!("e.put_u16(*{x});"),
        Ty::U32 => format!("e.put_u32(*{x});"),
        Ty::F64 => format!("e.put_f64(*{x});"),
        Ty::Uuid => format!("e.put_uuid({x});"),
        Ty::String => format!("c::put_string(e, {x}, flexible)?;"),
        Ty::Bytes => format!("c::put_bytes(e, {x}, flexible)?;"),
        Ty::Records => format!("c::put_records(e, Some({x}), flexible)?;"),
        Ty::Array(el) => {
            let y = format!("x{}", depth + 1);
            format!(
                "c::put_array_len(e, Some({x}.len()), flexible)?;\nfor {y} in {x} {{\n{}\n}}",
                encode_value(el, &y, depth + 1)
            )
        }
        Ty::Struct(_) => format!("{x}.encode(e, version)?;"),
    }
}

fn encode_null(ty: &Ty) -> &'static str {
    match ty {
        Ty::String => "c::put_nullable_string(e, None, flexible)?;",
        Ty::Bytes => "c::put_nullable_bytes(e, None, flexible)?;",
        Ty::Records => "c::put_records(e, None, flexible)?;",
        Ty::Array(_) => "c::put_array_len(e, None, flexible)?;",
        // A nullable struct is preceded by an int8 marker: -1 null, 1 present.
        _ => "e.put_i8(-1);",
    }
}

/// Statements adding the size of non-null `x` to `n`.
fn size_value(ty: &Ty, x: &str, depth: usize) -> String {
    if let Some(k) = is_fixed(ty) {
        return format!("n += {k};");
    }
    match ty {
        Ty::String => format!("n += c::string_size(Some({x}), flexible)?;"),
        Ty::Bytes => format!("n += c::bytes_size(Some({x}), flexible)?;"),
        Ty::Records => format!("n += c::records_size(Some({x}), flexible)?;"),
        Ty::Array(el) => {
            let head = format!("n += c::array_len_size(Some({x}.len()), flexible)?;");
            if let Some(k) = is_fixed(el) {
                format!("{head}\nn += {k} * {x}.len();")
            } else {
                let y = format!("x{}", depth + 1);
                format!(
                    "{head}\nfor {y} in {x} {{\n{}\n}}",
                    size_value(el, &y, depth + 1)
                )
            }
        }
        Ty::Struct(_) => format!("n += {x}.encoded_size(version)?;"),
        _ => String::new(),
    }
}

fn size_null(ty: &Ty) -> &'static str {
    match ty {
        Ty::String => "n += c::string_size(None, flexible)?;",
        Ty::Bytes | Ty::Records => "n += c::bytes_size(None, flexible)?;",
        Ty::Array(_) => "n += c::array_len_size(None, flexible)?;",
        _ => "n += 1;",
    }
}

/// Expression decoding a value of `ty` from `buf` (`nullable`: as `Option`).
fn decode_value(ty: &Ty, nullable: bool) -> String {
    let plain = |f: &str| format!("c::{f}(buf)?");
    match (ty, nullable) {
        (Ty::Bool, _) => plain("read_bool"),
        (Ty::I8, _) => plain("read_i8"),
        (Ty::I16, _) => plain("read_i16"),
        (Ty::I32, _) => plain("read_i32"),
        (Ty::I64, _) => plain("read_i64"),
        (Ty::U16, _) => plain("read_u16"),
        (Ty::U32, _) => plain("read_u32"),
        (Ty::F64, _) => plain("read_f64"),
        (Ty::Uuid, _) => plain("read_uuid"),
        (Ty::String, false) => "c::read_string(buf, flexible)?".into(),
        (Ty::String, true) => "c::read_nullable_string(buf, flexible)?".into(),
        (Ty::Bytes, false) => "c::read_bytes(buf, flexible)?".into(),
        (Ty::Bytes, true) => "c::read_nullable_bytes(buf, flexible)?".into(),
        (Ty::Records, false) => "c::read_records(buf, flexible)?".into(),
        (Ty::Records, true) => "c::read_nullable_records(buf, flexible)?".into(),
        (Ty::Array(el), n) => format!(
            "c::read_{}array(buf, flexible, |buf| Ok({}))?",
            if n { "nullable_" } else { "" },
            decode_value(el, false)
        ),
        (Ty::Struct(s), false) => format!("{}::decode(buf, version)?", s.name),
        (Ty::Struct(s), true) => {
            format!(
                "if c::read_i8(buf)? < 0 {{ None }} else {{ Some({}::decode(buf, version)?) }}",
                s.name
            )
        }
    }
}

/// Expression producing a random non-null value of `ty`.
fn random_value(ty: &Ty) -> String {
    match ty {
        Ty::Bool => "rng.random::<bool>()".into(),
        Ty::I8 => "rng.random::<i8>()".into(),
        Ty::I16 => "rng.random::<i16>()".into(),
        Ty::I32 => "rng.random::<i32>()".into(),
        Ty::I64 => "rng.random::<i64>()".into(),
        Ty::U16 => "rng.random::<u16>()".into(),
        Ty::U32 => "rng.random::<u32>()".into(),
        Ty::F64 => "c::arbitrary::float64(rng)".into(),
        Ty::Uuid => "c::arbitrary::uuid(rng)".into(),
        Ty::String => "c::arbitrary::string(rng)".into(),
        Ty::Bytes => "c::arbitrary::bytes(rng)".into(),
        Ty::Records => "c::arbitrary::records(rng)".into(),
        Ty::Array(el) => format!("c::arbitrary::vec(rng, |rng| {})", random_value(el)),
        Ty::Struct(s) => format!("{}::random(rng, version)", s.name),
    }
}

fn guarded(c: Option<&str>, body: &str) -> String {
    match c {
        None => format!("{{\n{body}\n}}\n"),
        Some("false") => String::new(),
        Some(c) => format!("if {c} {{\n{body}\n}}\n"),
    }
}

/// `true` if `code` mentions identifier `id` as a whole word.
fn uses(code: &str, id: &str) -> bool {
    code.match_indices(id).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        let after = code[i + id.len()..].chars().next();
        let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        !word(before) && !word(after)
    })
}

pub struct Ctx<'a> {
    pub api: &'a Api,
    /// Path to the brook-protocol crate root (`crate` or `brook_protocol`).
    pub root: &'a str,
}

impl Ctx<'_> {
    fn flex_decl(&self, within: Range) -> String {
        let c = cond(self.api.flexible, within).unwrap_or_else(|| "true".into());
        format!("let flexible = {c};\n")
    }

    /// Generates `s` and all structs nested in it into `out`.
    pub fn gen_struct(
        &self,
        s: &Struct,
        within: Range,
        top: Option<&str>,
        out: &mut String,
    ) -> Result<(), String> {
        for f in &s.fields {
            let inner = match &f.ty {
                Ty::Struct(n) => Some(n),
                Ty::Array(el) => match el.as_ref() {
                    Ty::Struct(n) => Some(n),
                    _ => None,
                },
                _ => None,
            };
            if let Some(n) = inner {
                self.gen_struct(n, f.versions, None, out)?;
            }
        }
        let (regular, mut tagged): (Vec<&Field>, Vec<&Field>) =
            s.fields.iter().partition(|f| f.tag.is_none());
        tagged.sort_by_key(|f| f.tag);
        let flex_any = !self.api.flexible.intersect(within).is_empty();

        // Type and Default.
        let _ = writeln!(
            out,
            "#[derive(Debug, Clone, PartialEq)]\npub struct {} {{",
            s.name
        );
        for f in &s.fields {
            let _ = writeln!(
                out,
                "    /// Versions {}{}{}.\n    pub {}: {},",
                f.versions,
                if f.nullable.is_empty() {
                    String::new()
                } else {
                    format!(", nullable {}", f.nullable)
                },
                f.tag.map(|t| format!(", tag {t}")).unwrap_or_default(),
                ident(&f.name),
                field_type(f)
            );
        }
        out.push_str("    /// Tagged fields this schema does not know, kept for re-encoding.\n");
        out.push_str("    pub unknown_tagged_fields: Vec<c::RawTaggedField>,\n}\n\n");
        let _ = writeln!(
            out,
            "impl Default for {} {{\n    fn default() -> Self {{\n        Self {{",
            s.name
        );
        for f in &s.fields {
            let _ = writeln!(out, "            {}: {},", ident(&f.name), default_expr(f)?);
        }
        out.push_str("            unknown_tagged_fields: Vec::new(),\n        }\n    }\n}\n\n");

        // encode
        let mut enc = String::new();
        let top_response = s.name == format!("{}Response", self.api.name);
        for f in &regular {
            let mut field = self.encode_field(f, within);
            if top_response && f.name == "throttle_time_ms" && matches!(f.ty, Ty::I32) {
                field = format!("e.mark_throttle_time();\n{field}");
            }
            enc.push_str(&guarded(cond(f.versions, within).as_deref(), &field));
        }
        if flex_any {
            let mut_kw = if tagged.is_empty() { "" } else { "mut " };
            let mut t = format!("let {mut_kw}count = self.unknown_tagged_fields.len();\n");
            for f in &tagged {
                let present = self.tag_present(f, within)?;
                let _ = writeln!(t, "if {present} {{ count += 1; }}");
            }
            t.push_str("e.put_uvarint(u32::try_from(count).map_err(|_| c::EncodeError::LengthOverflow(count))?);\n");
            let mut lo = 0u64;
            for f in &tagged {
                let tag = f.tag.unwrap_or(0);
                let _ = writeln!(
                    t,
                    "c::put_raw_tags_in(e, &self.unknown_tagged_fields, {lo}, {tag})?;"
                );
                lo = u64::from(tag);
                let present = self.tag_present(f, within)?;
                let _ = writeln!(
                    t,
                    "if {present} {{\nlet sz = {{ let mut n = 0usize;\n{}\nn }};\nc::put_tag_header(e, {tag}, sz)?;\n{}\n}}",
                    self.size_field(f, within),
                    self.encode_field(f, within)
                );
            }
            let _ = writeln!(
                t,
                "c::put_raw_tags_in(e, &self.unknown_tagged_fields, {lo}, u64::MAX)?;"
            );
            enc.push_str(&guarded(Some("flexible"), &t));
        }
        enc.push_str("Ok(())");

        // encoded_size
        let mut size = String::from("let mut n = 0usize;\n");
        for f in &regular {
            size.push_str(&guarded(
                cond(f.versions, within).as_deref(),
                &self.size_field(f, within),
            ));
        }
        if flex_any {
            let mut_kw = if tagged.is_empty() { "" } else { "mut " };
            let mut t = format!(
                "let {mut_kw}count = self.unknown_tagged_fields.len();\nn += c::raw_tags_size(&self.unknown_tagged_fields)?;\n"
            );
            for f in &tagged {
                let tag = f.tag.unwrap_or(0);
                let present = self.tag_present(f, within)?;
                let _ = writeln!(
                    t,
                    "if {present} {{\ncount += 1;\nlet sz = {{ let mut n = 0usize;\n{}\nn }};\nn += c::tag_size({tag}, sz);\n}}",
                    self.size_field(f, within)
                );
            }
            t.push_str("n += c::uvarint_size(u32::try_from(count).map_err(|_| c::EncodeError::LengthOverflow(count))?);\n");
            size.push_str(&guarded(Some("flexible"), &t));
        }
        size.push_str("Ok(n)");

        // decode
        let mut init = String::new();
        for f in &s.fields {
            let v = if f.tag.is_some() {
                default_expr(f)?
            } else {
                match cond(f.versions, within).as_deref() {
                    None => self.decode_field(f, within),
                    Some("false") => default_expr(f)?,
                    Some(c) => format!(
                        "if {c} {{ {} }} else {{ {} }}",
                        self.decode_field(f, within),
                        default_expr(f)?
                    ),
                }
            };
            let _ = writeln!(init, "{}: {v},", ident(&f.name));
        }
        init.push_str("unknown_tagged_fields: Vec::new(),\n");
        let dec = if flex_any {
            let mut arms = String::new();
            for f in &tagged {
                let guard = cond(f.versions, within)
                    .map(|c| format!(" if {c}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    arms,
                    "{}{guard} => {{ let buf = &mut data; this.{} = {}; }}",
                    f.tag.unwrap_or(0),
                    ident(&f.name),
                    self.decode_field(f, within)
                );
            }
            let mut_data = if tagged.is_empty() { "" } else { "mut " };
            format!(
                "let mut this = Self {{\n{init}}};\nif flexible {{\nlet count = c::read_unsigned_varint(buf)?;\nfor _ in 0..count {{\n\
                 let (tag, {mut_data}data) = c::read_tagged_field(buf)?;\nmatch tag {{\n{arms}_ => this.unknown_tagged_fields.push(c::RawTaggedField {{ tag, data }}),\n}}\n}}\n}}\nOk(this)"
            )
        } else {
            format!("Ok(Self {{\n{init}}})")
        };

        // random
        let mut rnd = String::new();
        for f in &s.fields {
            let mut present = cond(f.versions, within);
            if f.tag.is_some() {
                present = Some(match present {
                    None => "flexible".into(),
                    Some(c) => format!("flexible && {c}"),
                });
            }
            let v = self.random_field(f, within);
            let val = match present.as_deref() {
                None => v,
                Some("false") => default_expr(f)?,
                Some(c) => format!("if {c} {{ {v} }} else {{ {} }}", default_expr(f)?),
            };
            let _ = writeln!(rnd, "{}: {val},", ident(&f.name));
        }
        let rnd = format!("Self {{\n{rnd}unknown_tagged_fields: Vec::new(),\n}}");

        let (check_enc, check_dec) = match top {
            Some(_) => (
                format!(
                    "if !({}..={}).contains(&version) {{ return Err(c::EncodeError::UnsupportedVersion {{ api_key: {}, version }}); }}\n",
                    self.api.versions.lo, self.api.versions.hi, self.api.key
                ),
                format!(
                    "if !({}..={}).contains(&version) {{ return Err(c::DecodeError::UnsupportedVersion {{ api_key: {}, version }}); }}\n",
                    self.api.versions.lo, self.api.versions.hi, self.api.key
                ),
            ),
            None => (String::new(), String::new()),
        };
        let body = |check: &str, b: &str| {
            let flex = if uses(b, "flexible") {
                self.flex_decl(within)
            } else {
                String::new()
            };
            let text = format!("{check}{flex}{b}");
            let v = if uses(&text, "version") {
                "version"
            } else {
                "_version"
            };
            (v, text)
        };
        let (ve, enc) = body(&check_enc, &enc);
        let (vs, size) = body(&check_enc, &size);
        let (vd, dec) = body(&check_dec, &dec);
        let (vr, rnd) = body("", &rnd);
        let (lo, hi) = (self.api.versions.lo, self.api.versions.hi);
        let root = self.root;
        let _ = write!(
            out,
            "impl c::Message for {name} {{\n\
             const VERSIONS: (i16, i16) = ({lo}, {hi});\n\n\
             fn encode(&self, e: &mut c::Encoder, {ve}: i16) -> Result<(), c::EncodeError> {{\n{enc}\n}}\n\n\
             fn decode(buf: &mut c::Bytes, {vd}: i16) -> Result<Self, c::DecodeError> {{\n{dec}\n}}\n\n\
             fn encoded_size(&self, {vs}: i16) -> Result<usize, c::EncodeError> {{\n{size}\n}}\n}}\n\n\
             #[cfg(feature = \"arbitrary\")]\nimpl {name} {{\n\
             /// A random value valid in `version` (only fields present in it are set).\n\
             pub fn random<R: rand::Rng + ?Sized>(rng: &mut R, {vr}: i16) -> Self {{\n\
             #[allow(unused_imports, reason = \"not every message draws a scalar\")]\nuse rand::Rng as _;\n{rnd}\n}}\n}}\n\n",
            name = s.name
        );
        if let Some(resp) = top {
            let _ = write!(
                out,
                "impl c::Request for {} {{\nconst KEY: {root}::api::ApiKey = {root}::api::ApiKey::{};\ntype Response = super::{}_response::{resp};\n}}\n\n",
                s.name,
                self.api.name,
                crate::schema::snake(&self.api.name),
            );
        }
        Ok(())
    }

    /// Condition under which tagged field `f` is written: in its versions and not
    /// equal to its default (Kafka omits default-valued tagged fields).
    fn tag_present(&self, f: &Field, within: Range) -> Result<String, String> {
        let d = default_expr(f)?;
        let name = ident(&f.name);
        let ne = match d.as_str() {
            "None" => format!("self.{name}.is_some()"),
            "Vec::new()" | "String::new()" => format!("!self.{name}.is_empty()"),
            _ => format!("self.{name} != {d}"),
        };
        Ok(match cond(f.versions, within) {
            None => ne,
            Some(c) => format!("{c} && {ne}"),
        })
    }

    fn encode_field(&self, f: &Field, within: Range) -> String {
        let name = ident(&f.name);
        if !f.is_option() {
            return format!("let x0 = &self.{name};\n{}", encode_value(&f.ty, "x0", 0));
        }
        let null_ok = cond(f.nullable, within);
        let marker = match (&f.ty, null_ok.as_deref()) {
            (Ty::Struct(_), None) => "e.put_i8(1);\n".to_owned(),
            (Ty::Struct(_), Some("false")) => String::new(),
            (Ty::Struct(_), Some(c)) => format!("if {c} {{ e.put_i8(1); }}\n"),
            _ => String::new(),
        };
        let reject = format!(
            "return Err(c::EncodeError::NullNotAllowed(\"{}\"));",
            f.name
        );
        let none = match null_ok.as_deref() {
            None => encode_null(&f.ty).to_owned(),
            Some("false") => reject,
            Some(c) => format!("if !({c}) {{ {reject} }}\n{}", encode_null(&f.ty)),
        };
        format!(
            "match &self.{name} {{\nSome(x0) => {{\n{marker}{}\n}}\nNone => {{\n{none}\n}}\n}}",
            encode_value(&f.ty, "x0", 0)
        )
    }

    fn size_field(&self, f: &Field, within: Range) -> String {
        let name = ident(&f.name);
        if !f.is_option() {
            let s = size_value(&f.ty, "x0", 0);
            return if uses(&s, "x0") {
                format!("let x0 = &self.{name};\n{s}")
            } else {
                s
            };
        }
        let null_ok = cond(f.nullable, within);
        let marker = match (&f.ty, null_ok.as_deref()) {
            (Ty::Struct(_), None) => "n += 1;\n".to_owned(),
            (Ty::Struct(_), Some("false")) => String::new(),
            (Ty::Struct(_), Some(c)) => format!("if {c} {{ n += 1; }}\n"),
            _ => String::new(),
        };
        let reject = format!(
            "return Err(c::EncodeError::NullNotAllowed(\"{}\"));",
            f.name
        );
        let none = match null_ok.as_deref() {
            None => size_null(&f.ty).to_owned(),
            Some("false") => reject,
            Some(c) => format!("if !({c}) {{ {reject} }}\n{}", size_null(&f.ty)),
        };
        let some = size_value(&f.ty, "x0", 0);
        let pat = if uses(&some, "x0") {
            "Some(x0)"
        } else {
            "Some(_)"
        };
        format!(
            "match &self.{name} {{\n{pat} => {{\n{marker}{some}\n}}\nNone => {{\n{none}\n}}\n}}"
        )
    }

    fn decode_field(&self, f: &Field, within: Range) -> String {
        if !f.is_option() {
            return decode_value(&f.ty, false);
        }
        match cond(f.nullable, within).as_deref() {
            None => decode_value(&f.ty, true),
            Some("false") => format!("Some({})", decode_value(&f.ty, false)),
            Some(c) => format!(
                "if {c} {{ {} }} else {{ Some({}) }}",
                decode_value(&f.ty, true),
                decode_value(&f.ty, false)
            ),
        }
    }

    fn random_field(&self, f: &Field, within: Range) -> String {
        let v = random_value(&f.ty);
        if !f.is_option() {
            return v;
        }
        match cond(f.nullable, within).as_deref() {
            None => format!("if c::arbitrary::null(rng) {{ None }} else {{ Some({v}) }}"),
            Some("false") => format!("Some({v})"),
            Some(c) => format!("if {c} && c::arbitrary::null(rng) {{ None }} else {{ Some({v}) }}"),
        }
    }
}

/// The module of one message (`<snake>_request` / `<snake>_response`).
pub fn gen_module(api: &Api, root: &str, request: bool) -> Result<String, String> {
    let ctx = Ctx { api, root };
    let (s, kind) = if request {
        (&api.request, "request")
    } else {
        (&api.response, "response")
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "/// The {} {kind} (API key {}, versions {}, flexible {}).\npub mod {}_{kind} {{\n\
         #[allow(unused_imports, reason = \"not every message needs the trait in scope\")]\n\
         use {root}::codec::Message as _;\nuse {root}::codec as c;\n\n",
        api.name,
        api.key,
        api.versions,
        api.flexible,
        crate::schema::snake(&api.name)
    );
    let resp_name = api.response.name.clone();
    ctx.gen_struct(
        s,
        api.versions,
        if request { Some(&resp_name) } else { None },
        &mut out,
    )?;
    out.push_str("}\n\n");
    Ok(out)
}
