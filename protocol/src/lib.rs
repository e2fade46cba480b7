//! brook-protocol: the Kafka wire protocol. No I/O.
pub mod records;
