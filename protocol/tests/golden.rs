//! Golden vectors: request frames captured from real clients (kcat, librdkafka
//! through confluent-kafka, kafka-python; see `tests/vectors/README.md`).
//!
//! Every vector must decode — header with `RequestHeader::decode`, body with
//! `RequestBody::decode` for the key and version the header names — with no byte
//! left over, and re-encode to exactly the captured bytes. The one exception is a
//! documented client quirk, [`KNOWN_TRAILING`], where the exact number of extra
//! bytes is asserted instead (the broker ignores trailing bytes, as Kafka does).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use brook_protocol::api::ApiKey;
use brook_protocol::codec::Encoder;
use brook_protocol::header::RequestHeader;
use brook_protocol::messages::RequestBody;
use bytes::Bytes;

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// Vectors known to carry bytes after the body: (client directory, file name
/// without the `NNN-` prefix, extra bytes, why).
const KNOWN_TRAILING: &[(&str, &str, usize, &str)] = &[(
    "librdkafka",
    "metadata-v12-all-topics.bin",
    3,
    "librdkafka 2.x (here 2.16.0) asks for all topics with a null topic array and then \
     writes `01 00 00` after the body's tagged-field section; Kafka's broker ignores \
     bytes after the body, and so does brook's",
)];

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// Every `<client>/<NNN>-<api>-v<version>[-<note>].bin`, sorted.
fn vectors() -> TestResult<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for client in fs::read_dir(vectors_dir())? {
        let client = client?;
        if !client.file_type()?.is_dir() {
            continue;
        }
        let name = client.file_name().to_string_lossy().into_owned();
        for f in fs::read_dir(client.path())? {
            let path = f?.path();
            if path.extension().is_some_and(|e| e == "bin") {
                out.push((name.clone(), path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `ListOffsets` → `list_offsets`, as in the file names.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn known_trailing(
    client: &str,
    file: &str,
) -> Option<&'static (&'static str, &'static str, usize, &'static str)> {
    KNOWN_TRAILING.iter().find(|(c, f, _, _)| {
        *c == client && file.split_once('-').is_some_and(|(_, rest)| rest == *f)
    })
}

/// What one vector decodes to.
struct Decoded {
    key: ApiKey,
    trailing: usize,
}

fn check(client: &str, path: &Path) -> TestResult<Decoded> {
    let raw = Bytes::from(fs::read(path)?);
    let mut buf = raw.clone();
    let header = RequestHeader::decode(&mut buf)?;
    let key = header
        .key()
        .ok_or_else(|| format!("unknown API key {}", header.api_key))?;
    let version = header.api_version;
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let expected_prefix = format!("-{}-v{version}", snake(key.name()));
    if !file.contains(&format!("{expected_prefix}."))
        && !file.contains(&format!("{expected_prefix}-"))
    {
        return Err(format!("file name does not match {key} v{version}").into());
    }

    let body = RequestBody::decode(key, version, &mut buf)?;
    let trailing = buf.len();
    let allowed = known_trailing(client, &file).map_or(0, |(_, _, n, _)| *n);
    if trailing != allowed {
        return Err(format!(
            "{trailing} bytes left after the body (expected {allowed}): {:02x?}",
            &buf[..]
        )
        .into());
    }

    let mut e = Encoder::new();
    header.encode(&mut e)?;
    body.encode(&mut e, version)?;
    let again = e.into_bytes()?;
    let consumed = &raw[..raw.len() - trailing];
    if again[..] != consumed[..] {
        return Err(format!(
            "re-encoding differs\n captured: {:02x?}\n brook:    {:02x?}",
            consumed,
            &again[..]
        )
        .into());
    }
    let mut h = Encoder::new();
    header.encode(&mut h)?;
    let header_len = h.into_bytes()?.len();
    if header_len + body.encoded_size(version)? != consumed.len() {
        return Err("encoded_size disagrees with the encoding".into());
    }
    Ok(Decoded { key, trailing })
}

#[test]
fn every_golden_vector_decodes_and_reencodes_identically() -> TestResult {
    let all = vectors()?;
    let mut failures = Vec::new();
    let mut seen: BTreeSet<(String, ApiKey)> = BTreeSet::new();
    let mut trailing_seen = BTreeSet::new();
    for (client, path) in &all {
        match check(client, path) {
            Ok(d) => {
                seen.insert((client.clone(), d.key));
                if d.trailing > 0 {
                    let file = path.file_name().map(|f| f.to_string_lossy().into_owned());
                    if let Some((c, f, _, _)) = file.and_then(|f| known_trailing(client, &f)) {
                        trailing_seen.insert((*c, *f));
                    }
                }
            }
            Err(e) => failures.push(format!("{}: {e}", path.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors fail:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );

    // Each client's everyday requests are covered.
    let clients: BTreeSet<&String> = all.iter().map(|(c, _)| c).collect();
    assert!(clients.len() >= 3, "vector sets: {clients:?}");
    for client in clients {
        for key in [
            ApiKey::ApiVersions,
            ApiKey::Metadata,
            ApiKey::Produce,
            ApiKey::Fetch,
        ] {
            assert!(
                seen.contains(&(client.clone(), key)),
                "{client}: no {key} vector"
            );
        }
    }
    // Every documented quirk is still exercised by some vector.
    for (client, file, _, why) in KNOWN_TRAILING {
        assert!(
            trailing_seen.contains(&(*client, *file)),
            "no {client} {file} vector shows the documented quirk: {why}"
        );
    }
    Ok(())
}
