//! Printing commands (`brook topic list | head`) end quietly when their
//! reader goes away, like other Unix tools, instead of panicking on EPIPE.
//!
//! Rust ignores SIGPIPE in every program so that a write to a closed socket
//! returns an error instead of killing the process; the broker relies on that
//! (a client may hang up mid-`sendfile`), so only the short-lived printing
//! commands restore the default action.
#![allow(unsafe_code)]

/// Restore SIGPIPE's default action (terminate) for this process.
pub(super) fn die_quietly_on_closed_stdout() {
    // SAFETY: `signal` with SIG_DFL installs no handler code; it is called
    // once at startup before any thread is spawned, so nothing races with it.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
