//! The per-API dispatch code: `API_SCHEMAS`, `RequestBody` and `ResponseBody`.

use std::fmt::Write as _;

use crate::schema::Api;

fn body_enum(apis: &[Api], kind: &str) -> String {
    let en = format!("{kind}Body");
    let mut out = format!(
        "/// Any {lower} body, tagged by API.\n#[derive(Debug, Clone, PartialEq)]\npub enum {en} {{\n",
        lower = kind.to_lowercase()
    );
    for a in apis {
        let _ = writeln!(
            out,
            "    /// {0} {lower}.\n    {0}({0}{kind}),",
            a.name,
            lower = kind.to_lowercase()
        );
    }
    out.push_str("}\n\n");
    let arms = |f: &dyn Fn(&Api) -> String| apis.iter().map(f).collect::<String>();
    let _ = write!(
        out,
        "impl {en} {{\n\
         /// The API of this body.\n#[must_use]\npub fn api_key(&self) -> ApiKey {{\nmatch self {{\n{key_arms}}}\n}}\n\n\
         /// Decodes a body of API `key` in `version`.\n///\n/// # Errors\n\
         /// [`DecodeError::UnknownApiKey`] without a schema, [`DecodeError::UnsupportedVersion`]\n\
         /// outside the schema's versions, or any decode error of the body.\n\
         pub fn decode(key: ApiKey, version: i16, buf: &mut Bytes) -> Result<Self, DecodeError> {{\n\
         match key {{\n{dec_arms}\
         #[allow(unreachable_patterns, reason = \"needed while some API has no schema\")]\n\
         _ => Err(DecodeError::UnknownApiKey(key.as_i16())),\n}}\n}}\n\n\
         /// Encodes the body in `version`.\n///\n/// # Errors\n/// As [`Message::encode`].\n\
         pub fn encode(&self, e: &mut Encoder, version: i16) -> Result<(), EncodeError> {{\nmatch self {{\n{enc_arms}}}\n}}\n\n\
         /// Encoded size in `version`.\n///\n/// # Errors\n/// As [`Message::encoded_size`].\n\
         pub fn encoded_size(&self, version: i16) -> Result<usize, EncodeError> {{\nmatch self {{\n{size_arms}}}\n}}\n\n\
         /// A random body of API `key` valid in `version`; `None` without a schema.\n\
         #[cfg(feature = \"arbitrary\")]\n\
         pub fn random<R: rand::Rng + ?Sized>(key: ApiKey, rng: &mut R, version: i16) -> Option<Self> {{\nmatch key {{\n{rnd_arms}\
         #[allow(unreachable_patterns, reason = \"needed while some API has no schema\")]\n_ => None,\n}}\n}}\n}}\n\n",
        key_arms = arms(&|a| format!("Self::{0}(_) => ApiKey::{0},\n", a.name)),
        dec_arms = arms(&|a| format!("ApiKey::{0} => {0}{kind}::decode(buf, version).map(Self::{0}),\n", a.name)),
        enc_arms = arms(&|a| format!("Self::{0}(m) => m.encode(e, version),\n", a.name)),
        size_arms = arms(&|a| format!("Self::{0}(m) => m.encoded_size(version),\n", a.name)),
        rnd_arms = arms(&|a| format!("ApiKey::{0} => Some(Self::{0}({0}{kind}::random(rng, version))),\n", a.name)),
    );
    out
}

/// Generates the dispatch items for the crate's own schemas.
pub fn generate(apis: &[Api]) -> String {
    let mut out = String::from(
        "use crate::api::{ApiKey, ApiSchema};\nuse crate::codec::{Bytes, DecodeError, EncodeError, Encoder, Message};\n\n",
    );
    out.push_str("/// Versions each schema file describes, in key order.\npub const API_SCHEMAS: &[ApiSchema] = &[\n");
    for a in apis {
        let flex = if a.flexible.is_empty() {
            "None".to_owned()
        } else {
            format!("Some({})", a.flexible.lo)
        };
        let _ = writeln!(
            out,
            "    ApiSchema {{ key: ApiKey::{}, min: {}, max: {}, flexible_min: {flex} }},",
            a.name, a.versions.lo, a.versions.hi
        );
    }
    out.push_str("];\n\n");
    out.push_str(&body_enum(apis, "Request"));
    out.push_str(&body_enum(apis, "Response"));
    out
}
