//! The latency breakdown of `latency --trace`: one record's path through the
//! broker, stage by stage, from the `brook::path` trace events of the
//! broker's log (see `brook_broker::path_trace`) joined with the client's
//! send and receive instants, all on `CLOCK_MONOTONIC`.
//!
//! A record at offset `o`, sent at `sent` and returned by the consumer's
//! `poll` at `polled`, passes:
//! - `client → handler`: `sent` to the produce handler starting (`appended`'s
//!   `recv_us`): the producer library, loopback, the broker's reader;
//! - `append`: the handler until the record is in the log;
//! - `flush wait`: appended until the fsync that covers it starts (the first
//!   `flush` whose durable offset passes `o`, its `start_us`);
//! - `fsync`: that flush's start to its end;
//! - `hw`: the flush's end to the HW passing `o` (on 3 nodes: the followers);
//! - `fetch wake`: the HW passing `o` to a consumer fetch response with a HW
//!   past `o` being built;
//! - `write`: that response built to written to the socket;
//! - `→ poll`: written to the consumer's `poll` returning the record.

use std::collections::HashMap;
use std::fmt::Write as _;

/// One `brook::path` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub stage: String,
    pub us: u64,
    fields: HashMap<String, String>,
}

impl Event {
    /// Parse a log line holding a `brook::path` event (`None` for others).
    pub fn parse(line: &str) -> Option<Self> {
        let (_, rest) = line.split_once("brook::path:")?;
        let fields: HashMap<String, String> = rest
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
            .collect();
        Some(Self {
            stage: fields.get("stage")?.clone(),
            us: fields.get("us")?.parse().ok()?,
            fields,
        })
    }

    /// The partition it names ("topic-index"), if any.
    pub fn part(&self) -> Option<&str> {
        self.get("part")
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    fn int(&self, key: &str) -> Option<i64> {
        self.get(key)?.parse().ok()
    }
}

/// The stages in path order.
pub const STAGES: [&str; 8] = [
    "client → handler",
    "append",
    "flush wait",
    "fsync",
    "hw",
    "fetch wake",
    "write",
    "→ poll",
];

/// One record's time in each of [`STAGES`], in µs, and its total.
#[derive(Debug, Clone)]
pub struct Path {
    pub stages: [u64; 8],
    pub total: u64,
}

/// A consumed record: its offset, send and poll instants (µs).
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    pub offset: i64,
    pub sent_us: u64,
    pub polled_us: u64,
}

/// Join `events` (one partition `part`, any order) with the records the
/// consumer saw. Records whose path is not complete in the events are left
/// out; the count of those is returned too.
pub fn paths(events: &[Event], part: &str, seen: &[Seen]) -> (Vec<Path>, usize) {
    let mut ev: Vec<&Event> = events.iter().collect();
    ev.sort_by_key(|e| e.us);
    let of = |stage: &str| -> Vec<&Event> {
        ev.iter()
            .copied()
            .filter(|e| e.stage == stage && e.get("part").is_none_or(|p| p == part))
            .collect()
    };
    let appended = of("appended");
    let flush = of("flush");
    let hw = of("hw");
    let fetch: Vec<&Event> = of("fetch_respond")
        .into_iter()
        .filter(|e| e.get("consumer") == Some("true"))
        .collect();
    let written: HashMap<(i64, i64), u64> = of("written")
        .iter()
        .filter_map(|e| Some(((e.int("port")?, e.int("corr")?), e.us)))
        .collect();
    // Each stage's offsets (first/last, target, hw) only grow with time on
    // one leader, so the first event past `o` is a binary search; events of
    // the right one that came before the previous stage are skipped.
    let first_past = |evs: &[&Event], key: &str, o: i64, after: u64| -> Option<usize> {
        let i = evs.partition_point(|e| e.int(key).is_some_and(|v| v <= o));
        (i..evs.len()).find(|&j| evs[j].us >= after)
    };
    let mut out = Vec::with_capacity(seen.len());
    let mut missing = 0;
    for s in seen {
        let o = s.offset;
        let path = (|| {
            let a = appended[first_past(&appended, "last", o - 1, 0)?];
            if a.int("first")? > o {
                return None;
            }
            let recv = u64::try_from(a.int("recv_us")?).ok()?;
            let fl = flush[first_past(&flush, "durable", o, a.us)?];
            let flush_start = u64::try_from(fl.int("start_us")?).ok()?;
            let h = hw[first_past(&hw, "hw", o, 0)?];
            let f = fetch[first_past(&fetch, "hw", o, h.us)?];
            let w = *written.get(&(f.int("port")?, f.int("corr")?))?;
            let points = [
                s.sent_us,
                recv,
                a.us,
                flush_start,
                fl.us,
                h.us,
                f.us,
                w,
                s.polled_us,
            ];
            let mut stages = [0u64; 8];
            for (i, st) in stages.iter_mut().enumerate() {
                *st = points[i + 1].saturating_sub(points[i]);
            }
            Some(Path {
                stages,
                total: s.polled_us.saturating_sub(s.sent_us),
            })
        })();
        match path {
            Some(p) => out.push(p),
            None => missing += 1,
        }
    }
    (out, missing)
}

fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// A markdown table: per stage p50 / p99 / p99.9 over all records, and the
/// median of each stage over the records at or above the total's p99 (where
/// the slow ones spend their time).
pub fn table(paths: &[Path]) -> String {
    let mut md = String::new();
    let mut totals: Vec<u64> = paths.iter().map(|p| p.total).collect();
    totals.sort_unstable();
    let p99 = quantile(&totals, 0.99);
    let slow: Vec<&Path> = paths.iter().filter(|p| p.total >= p99).collect();
    let _ = writeln!(
        md,
        "| stage | p50 µs | p99 µs | p99.9 µs | median µs in the slowest 1% ({} records) |",
        slow.len()
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|");
    let row = |md: &mut String, name: &str, mut all: Vec<u64>, mut s: Vec<u64>| {
        all.sort_unstable();
        s.sort_unstable();
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {} |",
            quantile(&all, 0.5),
            quantile(&all, 0.99),
            quantile(&all, 0.999),
            quantile(&s, 0.5)
        );
    };
    for (i, name) in STAGES.iter().enumerate() {
        row(
            &mut md,
            name,
            paths.iter().map(|p| p.stages[i]).collect(),
            slow.iter().map(|p| p.stages[i]).collect(),
        );
    }
    row(
        &mut md,
        "**total (e2e)**",
        totals.clone(),
        slow.iter().map(|p| p.total).collect(),
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str) -> Event {
        Event::parse(&format!(
            "2026-12-01T00:00:00.000001Z TRACE brook::path: {s}"
        ))
        .expect("parses")
    }

    #[test]
    fn a_record_is_followed_through_every_stage() {
        let ev = vec![
            line(r#"stage="appended" part=t-0 first=5 last=5 recv_us=110 us=120"#),
            line(r#"stage="flush" part=t-0 target=6 durable=6 start_us=130 us=400"#),
            line(r#"stage="hw" part=t-0 hw=6 us=410"#),
            line(r#"stage="fetch_respond" part=t-0 hw=6 consumer=true port=9 corr=3 us=430"#),
            line(r#"stage="written" port=9 corr=3 us=450"#),
            // Another partition and a follower fetch: not this record's.
            line(r#"stage="hw" part=t-1 hw=9 us=405"#),
            line(r#"stage="fetch_respond" part=t-0 hw=6 consumer=false port=8 corr=3 us=420"#),
        ];
        let (p, missing) = paths(
            &ev,
            "t-0",
            &[
                Seen {
                    offset: 5,
                    sent_us: 100,
                    polled_us: 500,
                },
                Seen {
                    offset: 6,
                    sent_us: 600,
                    polled_us: 700,
                },
            ],
        );
        assert_eq!(missing, 1, "offset 6 never reached the log");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].stages, [10, 10, 10, 270, 10, 20, 20, 50]);
        assert_eq!(p[0].total, 400);
        assert!(table(&p).contains("| fsync | 270 | 270 | 270 | 270 |"));
    }

    #[test]
    fn lines_without_a_path_event_are_skipped() {
        assert!(Event::parse("2026-12-01 INFO brook_broker: started").is_none());
        assert!(
            Event::parse("x brook::path: stage=\"hw\" part=t-0").is_none(),
            "no us"
        );
    }
}
