//! brook's openraft plumbing for the controller quorum.
//!
//! The quorum replicates opaque application commands ([`App`]) with openraft
//! 0.9 over brook's own on-disk log and TCP framing.
//!
//! # Layout
//!
//! - [`types`]: the openraft type configuration and aliases.
//! - [`app`]: the [`App`] seam (replicated state) and [`AppRpcHandler`].
//! - [`log_store`]: on-disk Raft log (segments, vote, purge marker).
//! - [`state_machine`]: wraps the [`App`]; snapshots on disk.
//! - [`network`]: TCP transport, handshake, app RPCs.
//! - [`quorum`]: [`Quorum::start`] ties it together.

pub mod app;
mod fsutil;
pub mod log_store;
pub mod network;
pub mod quorum;
pub mod state_machine;
pub mod types;

pub use app::{App, AppRpcHandler, KvApp, NoAppRpc};
pub use log_store::{LogOptions, LogReader, LogStore, LogStoreError};
pub use network::{call_app, CallError, NetworkFactory, PeerClient, MAX_FRAME};
pub use quorum::{Listen, Quorum, QuorumConfig, QuorumError, WriteError};
pub use state_machine::{AppHandle, StateMachine, StateMachineError};
pub use types::*;
