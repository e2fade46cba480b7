//! Parser for the `.schema` format (see `schema/README.md`) into a small model.
//! Errors name the file and line; the build fails on any of them.

use std::fmt;

/// An inclusive version range; empty when `lo > hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub lo: i16,
    pub hi: i16,
}

impl Range {
    pub const NONE: Range = Range { lo: 1, hi: 0 };

    pub fn is_empty(self) -> bool {
        self.lo > self.hi
    }

    pub fn intersect(self, o: Range) -> Range {
        Range {
            lo: self.lo.max(o.lo),
            hi: self.hi.min(o.hi),
        }
    }

    pub fn contains_range(self, o: Range) -> bool {
        o.is_empty() || (self.lo <= o.lo && o.hi <= self.hi)
    }

    fn parse(s: &str) -> Result<Range, String> {
        let num = |t: &str| {
            t.parse::<i16>()
                .map_err(|_| format!("bad version `{t}` in range `{s}`"))
        };
        if s == "none" {
            Ok(Range::NONE)
        } else if let Some(lo) = s.strip_suffix('+') {
            Ok(Range {
                lo: num(lo)?,
                hi: i16::MAX,
            })
        } else if let Some((lo, hi)) = s.split_once('-') {
            Ok(Range {
                lo: num(lo)?,
                hi: num(hi)?,
            })
        } else {
            let v = num(s)?;
            Ok(Range { lo: v, hi: v })
        }
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            write!(f, "none")
        } else if self.hi == i16::MAX {
            write!(f, "{}+", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

#[derive(Debug, Clone)]
pub enum Ty {
    Bool,
    I8,
    I16,
    I32,
    I64,
    U16,
    U32,
    F64,
    Uuid,
    String,
    Bytes,
    Records,
    Array(Box<Ty>),
    Struct(Struct),
}

#[derive(Debug, Clone)]
pub struct Struct {
    pub name: String,
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub ty: Ty,
    /// Versions the field is present in, already clipped to its parent's.
    pub versions: Range,
    /// Versions it may be null in, clipped to `versions`.
    pub nullable: Range,
    pub tag: Option<u32>,
    /// Raw `default=` text.
    pub default: Option<String>,
}

impl Field {
    /// Whether the Rust type is `Option<_>`.
    pub fn is_option(&self) -> bool {
        !self.nullable.is_empty() || self.default.as_deref() == Some("null")
    }
}

#[derive(Debug, Clone)]
pub struct Api {
    pub name: String,
    pub key: i16,
    pub versions: Range,
    pub flexible: Range,
    pub request: Struct,
    pub response: Struct,
}

#[derive(Clone, Copy)]
struct Line<'a> {
    no: usize,
    indent: usize,
    text: &'a str,
}

fn lines(src: &str) -> Result<Vec<Line<'_>>, String> {
    let mut out = Vec::new();
    for (i, raw) in src.lines().enumerate() {
        let no = i + 1;
        let text = raw.split('#').next().unwrap_or("").trim_end();
        if text.trim().is_empty() {
            continue;
        }
        let spaces = text.len() - text.trim_start().len();
        if text.starts_with('\t') || spaces % 2 != 0 {
            return Err(format!(
                "line {no}: indentation must be a multiple of two spaces"
            ));
        }
        out.push(Line {
            no,
            indent: spaces / 2,
            text: text.trim(),
        });
    }
    Ok(out)
}

fn scalar(t: &str) -> Option<Ty> {
    Some(match t {
        "bool" => Ty::Bool,
        "int8" => Ty::I8,
        "int16" => Ty::I16,
        "int32" => Ty::I32,
        "int64" => Ty::I64,
        "uint16" => Ty::U16,
        "uint32" => Ty::U32,
        "float64" => Ty::F64,
        "uuid" => Ty::Uuid,
        "string" => Ty::String,
        "bytes" => Ty::Bytes,
        "records" => Ty::Records,
        _ => return None,
    })
}

fn is_struct_name(t: &str) -> bool {
    t.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && t.chars().all(|c| c.is_ascii_alphanumeric())
}

struct Parser<'a> {
    lines: Vec<Line<'a>>,
    pos: usize,
    flexible: Range,
    struct_names: Vec<String>,
}

impl Parser<'_> {
    /// Parses the fields at `indent` (children of a struct present in `parent`).
    fn fields(&mut self, indent: usize, parent: Range) -> Result<Vec<Field>, String> {
        let mut out: Vec<Field> = Vec::new();
        while let Some(&line) = self.lines.get(self.pos) {
            if line.indent < indent {
                break;
            }
            if line.indent > indent {
                return Err(format!("line {}: unexpected indentation", line.no));
            }
            let (no, text) = (line.no, line.text);
            self.pos += 1;
            let f = self.field(no, text, indent, parent)?;
            if out.iter().any(|o| o.name == f.name) {
                return Err(format!("line {}: duplicate field `{}`", line.no, f.name));
            }
            if let Some(tag) = f.tag {
                if out
                    .iter()
                    .any(|o| o.tag == Some(tag) && !o.versions.intersect(f.versions).is_empty())
                {
                    return Err(format!("line {}: duplicate tag {tag}", line.no));
                }
            }
            out.push(f);
        }
        Ok(out)
    }

    fn field(
        &mut self,
        no: usize,
        text: &str,
        indent: usize,
        parent: Range,
    ) -> Result<Field, String> {
        let mut parts = text.split_whitespace();
        let name = parts
            .next()
            .ok_or(format!("line {no}: empty field"))?
            .to_owned();
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(format!("line {no}: field name `{name}` is not snake_case"));
        }
        let ty_text = parts
            .next()
            .ok_or(format!("line {no}: field `{name}` has no type"))?;
        let mut versions = parent;
        let mut nullable = Range::NONE;
        let mut tag = None;
        let mut default = None;
        for attr in parts {
            if let Some(r) = attr.strip_prefix("nullable=") {
                nullable = Range::parse(r).map_err(|e| format!("line {no}: {e}"))?;
            } else if let Some(t) = attr.strip_prefix("tagged=") {
                tag = Some(
                    t.parse::<u32>()
                        .map_err(|_| format!("line {no}: bad tag `{t}`"))?,
                );
            } else if let Some(d) = attr.strip_prefix("default=") {
                default = Some(d.to_owned());
            } else if let Some(r) = attr.strip_prefix('v') {
                versions = Range::parse(r)
                    .map_err(|e| format!("line {no}: {e}"))?
                    .intersect(parent);
            } else {
                return Err(format!("line {no}: unknown attribute `{attr}`"));
            }
        }
        let nullable = nullable.intersect(versions);
        let (elem_text, is_array) = match ty_text.strip_prefix("[]") {
            Some(t) => (t, true),
            None => (ty_text, false),
        };
        let elem = if let Some(t) = scalar(elem_text) {
            if is_array && matches!(t, Ty::Records) {
                return Err(format!("line {no}: arrays of records are not supported"));
            }
            t
        } else if is_struct_name(elem_text) {
            if self.struct_names.iter().any(|n| n == elem_text) {
                return Err(format!(
                    "line {no}: struct name `{elem_text}` used twice in this file"
                ));
            }
            self.struct_names.push(elem_text.to_owned());
            let fields = self.fields(indent + 1, versions)?;
            if fields.is_empty() {
                return Err(format!("line {no}: struct `{elem_text}` has no fields"));
            }
            Ty::Struct(Struct {
                name: elem_text.to_owned(),
                fields,
            })
        } else {
            return Err(format!("line {no}: unknown type `{ty_text}`"));
        };
        let ty = if is_array {
            Ty::Array(Box::new(elem))
        } else {
            elem
        };
        if !nullable.is_empty()
            && matches!(
                ty,
                Ty::Bool
                    | Ty::I8
                    | Ty::I16
                    | Ty::I32
                    | Ty::I64
                    | Ty::U16
                    | Ty::U32
                    | Ty::F64
                    | Ty::Uuid
            )
        {
            return Err(format!(
                "line {no}: scalar field `{name}` cannot be nullable"
            ));
        }
        if tag.is_some() && !self.flexible.contains_range(versions) {
            return Err(format!(
                "line {no}: tagged field `{name}` present outside the flexible versions"
            ));
        }
        Ok(Field {
            name,
            ty,
            versions,
            nullable,
            tag,
            default,
        })
    }
}

/// Parses one schema file's text.
pub fn parse(src: &str) -> Result<Api, String> {
    let lines = lines(src)?;
    let head = lines.first().ok_or("empty schema")?;
    let mut words = head.text.split_whitespace();
    if words.next() != Some("api") || head.indent != 0 {
        return Err(format!(
            "line {}: expected `api <Name> key=.. versions=.. flexible=..`",
            head.no
        ));
    }
    let name = words
        .next()
        .ok_or(format!("line {}: missing API name", head.no))?
        .to_owned();
    let (mut key, mut versions, mut flexible) = (None, None, None);
    for w in words {
        let bad = || format!("line {}: bad attribute `{w}`", head.no);
        match w.split_once('=') {
            Some(("key", v)) => key = Some(v.parse::<i16>().map_err(|_| bad())?),
            Some(("versions", v)) => {
                versions = Some(Range::parse(v).map_err(|e| format!("line {}: {e}", head.no))?)
            }
            Some(("flexible", v)) => {
                flexible = Some(Range::parse(v).map_err(|e| format!("line {}: {e}", head.no))?)
            }
            _ => return Err(bad()),
        }
    }
    let missing = |what: &str| format!("line {}: missing `{what}=`", head.no);
    let key = key.ok_or_else(|| missing("key"))?;
    let versions = versions.ok_or_else(|| missing("versions"))?;
    if versions.is_empty() || versions.hi == i16::MAX {
        return Err(format!(
            "line {}: `versions=` must be a closed range",
            head.no
        ));
    }
    let flexible = flexible
        .ok_or_else(|| missing("flexible"))?
        .intersect(versions);
    if !flexible.is_empty() && flexible.hi != versions.hi {
        return Err(format!(
            "line {}: flexible versions must run to the last version",
            head.no
        ));
    }
    let mut p = Parser {
        lines,
        pos: 1,
        flexible,
        struct_names: Vec::new(),
    };
    let section = |p: &mut Parser<'_>, word: &str| -> Result<Vec<Field>, String> {
        match p.lines.get(p.pos) {
            Some(l) if l.indent == 0 && l.text == word => {
                p.pos += 1;
                p.fields(1, versions)
            }
            Some(l) => Err(format!("line {}: expected `{word}`", l.no)),
            None => Err(format!("missing `{word}` section")),
        }
    };
    let req = section(&mut p, "request")?;
    let resp = section(&mut p, "response")?;
    if let Some(l) = p.lines.get(p.pos) {
        return Err(format!(
            "line {}: unexpected line after the response section",
            l.no
        ));
    }
    Ok(Api {
        request: Struct {
            name: format!("{name}Request"),
            fields: req,
        },
        response: Struct {
            name: format!("{name}Response"),
            fields: resp,
        },
        name,
        key,
        versions,
        flexible,
    })
}

/// `ApiVersions` → `api_versions`.
pub fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
