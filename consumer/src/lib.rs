//! brook-consumer
