//! brook-producer
