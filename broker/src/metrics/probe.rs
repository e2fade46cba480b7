//! Per-topic counter handles, registered once when the topic is loaded or
//! created; produce and fetch only bump them.
//!
// Hot path: increments are relaxed atomic adds on pre-registered handles.

use metrics::{counter, Counter};

/// Counters of one topic.
#[derive(Debug, Clone)]
pub struct TopicProbe {
    bytes_in: Counter,
    records_in: Counter,
    bytes_out: Counter,
    records_out: Counter,
}

impl TopicProbe {
    pub fn new(topic: &str) -> Self {
        let label = topic.to_owned();
        Self {
            bytes_in: counter!("brook_topic_bytes_in_total", "topic" => label.clone()),
            records_in: counter!("brook_topic_records_in_total", "topic" => label.clone()),
            bytes_out: counter!("brook_topic_bytes_out_total", "topic" => label.clone()),
            records_out: counter!("brook_topic_records_out_total", "topic" => label),
        }
    }

    pub fn produced(&self, bytes: u64, records: u64) {
        self.bytes_in.increment(bytes);
        self.records_in.increment(records);
    }

    pub fn fetched(&self, bytes: u64, records: u64) {
        self.bytes_out.increment(bytes);
        self.records_out.increment(records);
    }
}
