//! brook-broker
