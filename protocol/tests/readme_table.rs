//! `protocol/README.md` carries the supported-versions table; this regenerates it
//! from `SUPPORTED_APIS` and fails if the README is stale. To update, paste the
//! table printed in the failure message between the markers.

use brook_protocol::api::{ApiKey, PRODUCE_MIN_ACCEPTED, SUPPORTED_APIS};

const BEGIN: &str = "<!-- supported-apis:begin -->";
const END: &str = "<!-- supported-apis:end -->";

fn table() -> String {
    let mut out = String::from("| API | Key | Versions | Notes |\n|---|---:|---|---|\n");
    for s in SUPPORTED_APIS {
        let note = if s.key == ApiKey::Produce {
            format!(
                "advertised from {}, accepted from {PRODUCE_MIN_ACCEPTED}",
                s.min
            )
        } else {
            String::new()
        };
        out.push_str(&format!(
            "| {} | {} | {}–{} | {note} |\n",
            s.key.name(),
            s.key.as_i16(),
            s.min,
            s.max
        ));
    }
    out
}

#[test]
fn readme_table_matches_supported_apis() -> Result<(), Box<dyn std::error::Error>> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))?;
    let start = readme.find(BEGIN).ok_or("README lacks the begin marker")? + BEGIN.len();
    let end = readme.find(END).ok_or("README lacks the end marker")?;
    let current = readme.get(start..end).ok_or("markers out of order")?.trim();
    let expected = table();
    assert_eq!(
        current,
        expected.trim(),
        "protocol/README.md table is stale; expected:\n{expected}"
    );
    Ok(())
}
