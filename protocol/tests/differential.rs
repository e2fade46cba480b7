//! Differential test against the `kafka-protocol` crate (dev-dependency only).
//!
//! For every (API, version) in `SUPPORTED_APIS` that kafka-protocol also knows:
//! a random brook message is encoded by brook, decoded and re-encoded by
//! kafka-protocol, and the bytes must be identical; the re-encoded bytes must decode
//! in brook to the original message. This is also what verifies the schema files.
//! Headers are tested separately (`header.rs`, `roundtrip.rs`).
//!
//! Bytes alone cannot catch a wrong tag number or two swapped same-typed fields,
//! so each kafka-protocol decode is also compared by value with the brook message
//! (see "Value-level checks" below), and the test fails if kafka-protocol found
//! an unknown tagged field anywhere in brook's bytes.

use brook_protocol::api::{ApiKey, SUPPORTED_APIS};
use brook_protocol::codec::Encoder;
use brook_protocol::messages::{JoinGroupRequest, RequestBody, ResponseBody};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey as KpKey, RequestKind, ResponseKind};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::BTreeSet;

const ITERATIONS: usize = 40;

fn kp_range(key: ApiKey) -> Option<(i16, i16)> {
    let k = KpKey::try_from(key.as_i16()).ok()?;
    let r = k.valid_versions();
    Some((r.min, r.max))
}

/// Checks one encoding; returns a description of the mismatch if any.
fn compare(
    what: &str,
    brook: &Bytes,
    kp_roundtrip: impl FnOnce(&mut Bytes) -> Result<BytesMut, String>,
) -> Result<Bytes, String> {
    let mut input = brook.clone();
    let again = kp_roundtrip(&mut input)
        .map_err(|e| format!("{what}: kafka-protocol cannot decode brook's bytes: {e}"))?;
    if !input.is_empty() {
        return Err(format!(
            "{what}: kafka-protocol left {} of {} bytes unread",
            input.len(),
            brook.len()
        ));
    }
    if again[..] != brook[..] {
        return Err(format!(
            "{what}: bytes differ\n brook: {:02x?}\n kafka: {:02x?}",
            &brook[..],
            &again[..]
        ));
    }
    Ok(again.freeze())
}

/// What the value checks covered, summed over all messages.
#[derive(Default)]
struct Coverage {
    leaves: usize,
    /// Brook fields kafka-protocol has no field of that name for.
    unmatched: BTreeSet<String>,
}

fn run(key: ApiKey, version: i16, rng: &mut StdRng, cov: &mut Coverage) -> Result<(), String> {
    let kp_key =
        KpKey::try_from(key.as_i16()).map_err(|()| format!("{key}: unknown to kafka-protocol"))?;

    let req = RequestBody::random(key, rng, version).ok_or(format!("{key}: no schema"))?;
    let mut e = Encoder::new();
    req.encode(&mut e, version)
        .map_err(|err| format!("{key} v{version} request encode: {err}"))?;
    let bytes = e.into_bytes().map_err(|err| err.to_string())?;
    let what = format!("{key} v{version} request");
    let mut kp_dbg = String::new();
    let again = compare(&what, &bytes, |b| {
        let m = RequestKind::decode(kp_key, b, version).map_err(|e| e.to_string())?;
        kp_dbg = format!("{m:?}");
        let mut out = BytesMut::new();
        m.encode(&mut out, version)
            .map_err(|e| format!("re-encode: {e}"))?;
        Ok(out)
    })?;
    cov.add(check_values(&what, &format!("{req:?}"), &kp_dbg)?, &what);
    let back = RequestBody::decode(key, version, &mut again.clone())
        .map_err(|err| format!("{what}: {err}"))?;
    if back != req {
        return Err(format!(
            "{what}: brook decode of kafka-protocol bytes differs"
        ));
    }

    let resp = ResponseBody::random(key, rng, version).ok_or(format!("{key}: no schema"))?;
    let mut e = Encoder::new();
    resp.encode(&mut e, version)
        .map_err(|err| format!("{key} v{version} response encode: {err}"))?;
    let bytes = e.into_bytes().map_err(|err| err.to_string())?;
    let what = format!("{key} v{version} response");
    let mut kp_dbg = String::new();
    let again = compare(&what, &bytes, |b| {
        let m = ResponseKind::decode(kp_key, b, version).map_err(|e| e.to_string())?;
        kp_dbg = format!("{m:?}");
        let mut out = BytesMut::new();
        m.encode(&mut out, version)
            .map_err(|e| format!("re-encode: {e}"))?;
        Ok(out)
    })?;
    cov.add(check_values(&what, &format!("{resp:?}"), &kp_dbg)?, &what);
    let back = ResponseBody::decode(key, version, &mut again.clone())
        .map_err(|err| format!("{what}: {err}"))?;
    if back != resp {
        return Err(format!(
            "{what}: brook decode of kafka-protocol bytes differs"
        ));
    }
    Ok(())
}

#[test]
fn brook_and_kafka_protocol_agree_on_every_supported_version() {
    let mut rng = StdRng::seed_from_u64(0x006b_6166_6b61);
    let mut failures: Vec<String> = Vec::new();
    let mut checked = 0;
    let mut cov = Coverage::default();
    for s in SUPPORTED_APIS {
        let Some((kmin, kmax)) = kp_range(s.key) else {
            failures.push(format!("{}: unknown to kafka-protocol", s.key));
            continue;
        };
        // kafka-protocol 0.18 follows Kafka 4, which dropped Produce 0-2 (brook
        // advertises but refuses them); nothing to compare against there.
        for version in s.min.max(kmin)..=s.max.min(kmax) {
            checked += 1;
            for _ in 0..ITERATIONS {
                if let Err(e) = run(s.key, version, &mut rng, &mut cov) {
                    failures.push(e);
                    break;
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} versions compared");
    // Fields of old versions Kafka 4 (and so kafka-protocol 0.18) dropped; any
    // other brook field without a kafka-protocol namesake is a misnamed field.
    let expected_unmatched: BTreeSet<String> = [
        "DescribeConfigs.results.configs.is_default",
        "ListOffsets.topics.partitions.max_num_offsets",
        "ListOffsets.topics.partitions.old_style_offsets",
        "OffsetCommit.topics.partitions.commit_timestamp",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(
        cov.unmatched, expected_unmatched,
        "brook fields kafka-protocol lacks"
    );
    assert!(
        cov.leaves > 50_000,
        "only {} field values compared",
        cov.leaves
    );
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Value-level checks.
//
// The byte comparison above cannot see two kinds of schema bug: a tagged field
// with the wrong tag number (kafka-protocol keeps it as an unknown tagged field
// and writes it back unchanged) and two same-typed fields in swapped order (the
// bytes are the same, only their meaning differs). So every message
// kafka-protocol decodes from brook's bytes is also compared *by value* with the
// brook message it came from, field by field, and must have no unknown tagged
// fields at any level.
//
// Both libraries derive `Debug` with the Kafka field names, so the comparison
// walks the two `Debug` renderings as trees: structs by field name, lists by
// position, newtype wrappers (`Some(..)`, `TopicName(..)`, `Records::Bytes(..)`)
// unwrapped, brook's `Uuid([u8; 16])` shown as kafka-protocol's hyphenated form.
// ---------------------------------------------------------------------------

/// A parsed `Debug` rendering.
#[derive(Debug, Clone, PartialEq)]
enum Tree {
    /// `Name { field: value, .. }`
    Struct(String, Vec<(String, Tree)>),
    /// `Name(a, b)`
    Tuple(String, Vec<Tree>),
    /// `[a, b]`
    List(Vec<Tree>),
    /// `{k: v, ..}`
    Map(Vec<(Tree, Tree)>),
    /// A number, string, byte string, `None`, `true`, a unit variant, ...
    Atom(String),
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!(
                "expected {:?} at {} in {}",
                c as char,
                self.pos,
                String::from_utf8_lossy(self.s)
            ))
        }
    }

    /// A quoted string starting at `pos` (on the quote), escapes kept verbatim.
    fn quoted(&mut self) -> Result<String, String> {
        let start = self.pos;
        self.pos += 1;
        while self.pos < self.s.len() {
            match self.s[self.pos] {
                b'\\' => self.pos += 2,
                b'"' => {
                    self.pos += 1;
                    return Ok(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned());
                }
                _ => self.pos += 1,
            }
        }
        Err("unterminated string".into())
    }

    fn word(&mut self) -> String {
        let start = self.pos;
        while self.pos < self.s.len()
            && (self.s[self.pos].is_ascii_alphanumeric() || b"_-.+:".contains(&self.s[self.pos]))
        {
            // `a: b` separates a field from its value; `a::B` is a path.
            if self.s[self.pos] == b':' && self.s.get(self.pos + 1) != Some(&b':') {
                break;
            }
            self.pos += if self.s[self.pos] == b':' { 2 } else { 1 };
        }
        String::from_utf8_lossy(&self.s[start..self.pos]).into_owned()
    }

    fn list<T>(
        &mut self,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        let mut out = Vec::new();
        loop {
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok(out);
            }
            out.push(item(self)?);
            if self.peek() == Some(b',') {
                self.pos += 1;
            }
        }
    }

    fn value(&mut self) -> Result<Tree, String> {
        match self.peek() {
            Some(b'[') => {
                self.pos += 1;
                Ok(Tree::List(self.list(b']', Self::value)?))
            }
            Some(b'{') => {
                self.pos += 1;
                Ok(Tree::Map(self.list(b'}', |p| {
                    let k = p.value()?;
                    p.eat(b':')?;
                    Ok((k, p.value()?))
                })?))
            }
            Some(b'"') => Ok(Tree::Atom(self.quoted()?)),
            Some(b'b') if self.s.get(self.pos + 1) == Some(&b'"') => {
                self.pos += 1;
                Ok(Tree::Atom(format!("b{}", self.quoted()?)))
            }
            Some(_) => {
                let w = self.word();
                if w.is_empty() {
                    return Err(format!("unexpected byte at {}", self.pos));
                }
                match self.peek() {
                    Some(b'(') => {
                        self.pos += 1;
                        Ok(Tree::Tuple(w, self.list(b')', Self::value)?))
                    }
                    Some(b'{') => {
                        self.pos += 1;
                        let fields = self.list(b'}', |p| {
                            p.skip_ws();
                            let name = p.word();
                            p.eat(b':')?;
                            Ok((name, p.value()?))
                        })?;
                        Ok(Tree::Struct(w, fields))
                    }
                    _ => Ok(Tree::Atom(w)),
                }
            }
            None => Err("unexpected end".into()),
        }
    }
}

fn parse_debug(s: &str) -> Result<Tree, String> {
    let mut p = Parser {
        s: s.as_bytes(),
        pos: 0,
    };
    let t = p.value()?;
    if p.peek().is_some() {
        return Err(format!("trailing input at {}", p.pos));
    }
    Ok(t)
}

/// Every `unknown_tagged_fields` in a kafka-protocol value that is not empty,
/// as `path: contents`.
fn unknown_tags(t: &Tree, path: &str, out: &mut Vec<String>) {
    match t {
        Tree::Struct(_, fields) => {
            for (name, v) in fields {
                let p = format!("{path}.{name}");
                if name == "unknown_tagged_fields" {
                    if !matches!(v, Tree::Map(m) if m.is_empty()) {
                        out.push(format!("{p}: {v:?}"));
                    }
                } else {
                    unknown_tags(v, &p, out);
                }
            }
        }
        Tree::Tuple(_, items) | Tree::List(items) => {
            for (i, v) in items.iter().enumerate() {
                unknown_tags(v, &format!("{path}[{i}]"), out);
            }
        }
        Tree::Map(_) | Tree::Atom(_) => {}
    }
}

/// Brings both libraries' renderings to one shape: one-element wrappers are
/// unwrapped, `Uuid([16 bytes])` becomes the hyphenated hex kafka-protocol
/// prints, and the tagged-field bookkeeping (checked separately) is dropped.
fn normalise(t: Tree) -> Tree {
    match t {
        Tree::Tuple(name, items) if name == "Uuid" && items.len() == 1 => {
            let hex = match &items[0] {
                Tree::List(bytes) if bytes.len() == 16 => bytes
                    .iter()
                    .map(|b| match b {
                        Tree::Atom(a) => a.parse::<u8>().map(|n| format!("{n:02x}")).ok(),
                        _ => None,
                    })
                    .collect::<Option<String>>(),
                _ => None,
            };
            match hex {
                Some(h) => Tree::Atom(format!(
                    "{}-{}-{}-{}-{}",
                    &h[0..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..]
                )),
                None => Tree::Tuple(name, items.into_iter().map(normalise).collect()),
            }
        }
        Tree::Tuple(_, mut items) if items.len() == 1 => normalise(items.remove(0)),
        Tree::Tuple(name, items) => Tree::Tuple(name, items.into_iter().map(normalise).collect()),
        Tree::Struct(name, fields) => Tree::Struct(
            name,
            fields
                .into_iter()
                .filter(|(n, _)| n != "unknown_tagged_fields")
                // Rust keywords: brook spells them raw (`r#match`, printed
                // `match`), kafka-protocol with a leading underscore.
                .map(|(n, v)| {
                    (
                        n.strip_prefix('_').map_or(n.clone(), str::to_owned),
                        normalise(v),
                    )
                })
                .collect(),
        ),
        Tree::List(items) => Tree::List(items.into_iter().map(normalise).collect()),
        Tree::Map(kv) => Tree::Map(
            kv.into_iter()
                .map(|(k, v)| (normalise(k), normalise(v)))
                .collect(),
        ),
        Tree::Atom(a) => Tree::Atom(a),
    }
}

/// Field-by-field comparison. Differences are pushed to `diffs`; fields only one
/// side has (names the libraries spell differently, fields of newer Kafka
/// versions) are counted in `unmatched` so the caller can bound them. Returns
/// the number of leaf values compared.
fn compare_trees(
    brook: &Tree,
    kp: &Tree,
    path: &str,
    diffs: &mut Vec<String>,
    unmatched: &mut Vec<String>,
) -> usize {
    match (brook, kp) {
        (Tree::Struct(_, bf), Tree::Struct(_, kf)) => {
            let mut n = 0;
            for (name, bv) in bf {
                let p = format!("{path}.{name}");
                match kf.iter().find(|(k, _)| k == name) {
                    Some((_, kv)) => n += compare_trees(bv, kv, &p, diffs, unmatched),
                    None => unmatched.push(p),
                }
            }
            n
        }
        (Tree::List(b), Tree::List(k)) | (Tree::Tuple(_, b), Tree::Tuple(_, k))
            if b.len() == k.len() =>
        {
            b.iter()
                .zip(k)
                .enumerate()
                .map(|(i, (bv, kv))| {
                    compare_trees(bv, kv, &format!("{path}[{i}]"), diffs, unmatched)
                })
                .sum()
        }
        (Tree::Atom(b), Tree::Atom(k)) if b == k => 1,
        // A nullable field absent in this version: brook defaults it to null,
        // kafka-protocol to empty. Where the field is on the wire, null and empty
        // encode differently, so the byte comparison already tells them apart.
        (Tree::Atom(b), Tree::Atom(k)) if b == "None" && (k == "\"\"" || k == "b\"\"") => 1,
        (Tree::Atom(b), Tree::List(k)) if b == "None" && k.is_empty() => 1,
        _ => {
            diffs.push(format!("{path}: brook {brook:?} != kafka-protocol {kp:?}"));
            1
        }
    }
}

/// The value checks for one message: `brook_dbg` is brook's `Debug` of the
/// message it encoded, `kp_dbg` kafka-protocol's `Debug` of its decode of those
/// bytes. Returns the number of leaves compared and the unmatched brook fields.
fn check_values(what: &str, brook_dbg: &str, kp_dbg: &str) -> Result<(usize, Vec<String>), String> {
    let kp = parse_debug(kp_dbg).map_err(|e| format!("{what}: kafka-protocol Debug: {e}"))?;
    let mut tags = Vec::new();
    unknown_tags(&kp, "", &mut tags);
    if !tags.is_empty() {
        return Err(format!(
            "{what}: kafka-protocol saw unknown tagged fields (wrong tag number?): {}",
            tags.join("; ")
        ));
    }
    let brook = parse_debug(brook_dbg).map_err(|e| format!("{what}: brook Debug: {e}"))?;
    let (mut diffs, mut unmatched) = (Vec::new(), Vec::new());
    let n = compare_trees(
        &normalise(brook),
        &normalise(kp),
        "",
        &mut diffs,
        &mut unmatched,
    );
    if !diffs.is_empty() {
        return Err(format!(
            "{what}: field values differ (swapped or misplaced fields?):\n  {}",
            diffs.join("\n  ")
        ));
    }
    Ok((n, unmatched))
}

impl Coverage {
    fn add(&mut self, (leaves, unmatched): (usize, Vec<String>), what: &str) {
        self.leaves += leaves;
        let api = what.split(' ').next().unwrap_or(what);
        // One entry per field, not per list element.
        self.unmatched.extend(unmatched.into_iter().map(|p| {
            let mut out = api.to_owned();
            let mut in_index = false;
            for c in p.chars() {
                match c {
                    '[' => in_index = true,
                    ']' => in_index = false,
                    _ if in_index => {}
                    _ => out.push(c),
                }
            }
            out
        }));
    }
}

/// Brook's bytes for `req` at `version`, and kafka-protocol's `Debug` of them.
fn through_kafka_protocol(req: &RequestBody, version: i16) -> Result<String, String> {
    let mut e = Encoder::new();
    req.encode(&mut e, version).map_err(|e| e.to_string())?;
    let mut bytes = e.into_bytes().map_err(|e| e.to_string())?;
    let kp_key = KpKey::try_from(req.api_key().as_i16()).map_err(|()| "unknown key".to_owned())?;
    let m = RequestKind::decode(kp_key, &mut bytes, version).map_err(|e| e.to_string())?;
    Ok(format!("{m:?}"))
}

/// A field brook writes under a tag kafka-protocol does not know — what a
/// schema with a wrong tag number produces — passes the byte comparison but
/// fails the value check.
#[test]
fn value_check_catches_unknown_tag() -> Result<(), String> {
    let mut rng = StdRng::seed_from_u64(7);
    let RequestBody::JoinGroup(mut req) =
        RequestBody::random(ApiKey::JoinGroup, &mut rng, 9).ok_or("no schema")?
    else {
        return Err("random JoinGroup is not JoinGroup".into());
    };
    let clean = RequestBody::JoinGroup(req.clone());
    check_values(
        "clean",
        &format!("{clean:?}"),
        &through_kafka_protocol(&clean, 9)?,
    )?;

    req.unknown_tagged_fields
        .push(brook_protocol::codec::RawTaggedField {
            tag: 5,
            data: Bytes::from_static(&[0, 0, 0, 1]),
        });
    let tagged = RequestBody::JoinGroup(req);
    let kp = through_kafka_protocol(&tagged, 9)?;
    // Compare with the message brook meant to send: its tagged field is a known
    // field in the broken schema, not an unknown one.
    let err = check_values("tagged", &format!("{clean:?}"), &kp)
        .err()
        .ok_or("a field under an unknown tag went unnoticed")?;
    assert!(err.contains("unknown tagged fields"), "{err}");
    Ok(())
}

/// Two same-typed fields in swapped order encode to the same bytes kafka-protocol
/// accepts and re-encodes identically; only the value comparison sees it.
#[test]
fn value_check_catches_swapped_fields() -> Result<(), String> {
    let req = JoinGroupRequest {
        group_id: "g".into(),
        session_timeout_ms: 45_000,
        rebalance_timeout_ms: 300_000,
        member_id: "m".into(),
        protocol_type: "consumer".into(),
        ..JoinGroupRequest::default()
    };
    let sent = RequestBody::JoinGroup(req.clone());
    let kp = through_kafka_protocol(&sent, 9)?;
    let (leaves, _) = check_values("as sent", &format!("{sent:?}"), &kp)?;
    assert!(leaves >= 6, "only {leaves} values compared");

    // What a schema with the two timeouts swapped would claim it sent.
    let swapped = RequestBody::JoinGroup(JoinGroupRequest {
        session_timeout_ms: req.rebalance_timeout_ms,
        rebalance_timeout_ms: req.session_timeout_ms,
        ..req
    });
    let err = check_values("swapped", &format!("{swapped:?}"), &kp)
        .err()
        .ok_or("swapped fields went unnoticed")?;
    assert!(err.contains(".session_timeout_ms"), "{err}");
    assert!(err.contains(".rebalance_timeout_ms"), "{err}");
    Ok(())
}

#[test]
fn debug_parser_handles_both_renderings() -> Result<(), String> {
    let brook = r#"Fetch(FetchRequest { cluster_id: Some("a\"b"), topic_id: Uuid([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]), records: Some(Bytes(b"\x00x")), unknown_tagged_fields: [] })"#;
    let kp = r#"Fetch(FetchRequest { cluster_id: Some("a\"b"), topic_id: 00010203-0405-0607-0809-0a0b0c0d0e0f, records: Some(b"\x00x"), unknown_tagged_fields: {} })"#;
    let (leaves, unmatched) = check_values("parser", brook, kp)?;
    assert_eq!((leaves, unmatched.len()), (3, 0));
    let bad = kp.replace("{}", "{3: b\"\"}");
    assert!(check_values("parser", brook, &bad).is_err());
    Ok(())
}
