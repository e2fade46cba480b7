//! "Did you mean" hints for unknown keys.

use crate::registry::{self, KeyDef};

/// Levenshtein distance over bytes (keys are ASCII).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, &ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The closest key accepted by `accept`, if close enough to be a plausible typo.
fn closest(key: &str, accept: impl Fn(&KeyDef) -> bool) -> Option<&'static str> {
    // Allow about one edit per four characters, at least two.
    let limit = (key.len() / 4).max(2);
    registry::all()
        .filter(|k| accept(k))
        .map(|k| (edit_distance(key, k.name), k.name))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, name)| name)
}

/// Hint for a key unknown in the broker config (empty if none).
pub(crate) fn broker_hint(key: &str) -> String {
    if let Some(def) = registry::lookup(key) {
        // A topic-only key in the broker file: point at its broker-wide default.
        if let Some(first) = def.synonyms.first() {
            return format!(
                "; `{key}` is a topic config, its broker-wide default is `{}`",
                first.key
            );
        }
        return format!("; `{key}` is a topic config and has no broker-wide default");
    }
    if let Some(s) = closest(key, |k| k.scope.is_broker()) {
        return format!("; did you mean `{s}`?");
    }
    if key.starts_with("view.") {
        // Most likely `[view.NAME]` written for `[views.NAME]`.
        return "; materialized views are declared as `[views.NAME]` tables".to_owned();
    }
    String::new()
}

/// Hint for a key unknown as a topic override (empty if none).
pub(crate) fn topic_hint(key: &str) -> String {
    if registry::lookup(key).is_some() {
        let topic =
            registry::all().find(|k| k.scope.is_topic() && k.synonyms.iter().any(|s| s.key == key));
        return match topic {
            Some(t) => format!(
                "; `{key}` is a broker config, the topic config is `{}`",
                t.name
            ),
            None => format!("; `{key}` is a broker config"),
        };
    }
    closest(key, |k| k.scope.is_topic())
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_basics() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("log.dirs", "log.dirs"), 0);
        assert_eq!(edit_distance("log.dir", "log.dirs"), 1);
    }

    #[test]
    fn suggests_close_keys_only() {
        assert_eq!(broker_hint("log.dir"), "; did you mean `log.dirs`?");
        assert_eq!(
            broker_hint("num.partition"),
            "; did you mean `num.partitions`?"
        );
        assert_eq!(broker_hint("completely.unrelated.thing"), "");
        assert!(broker_hint("view.orders.topic").contains("[views.NAME]"));
        assert_eq!(topic_hint("retention.m"), "; did you mean `retention.ms`?");
    }

    #[test]
    fn explains_scope_mixups() {
        assert!(broker_hint("retention.ms").contains("`log.retention.ms`"));
        assert!(topic_hint("log.segment.bytes").contains("`segment.bytes`"));
    }
}
