//! brook-protocol: the Kafka wire protocol. No I/O.
pub mod error;
pub mod frame;
pub mod records;
