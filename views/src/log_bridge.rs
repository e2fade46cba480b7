//! Forwards `log` records (lsm-tree logs through the `log` crate) to `tracing`.
//!
//! Events keep the original target in a `log.target` field; their tracing
//! target is this module. The `log` max level follows tracing's current max
//! level, so disabled levels cost lsm-tree nothing.

use tracing::level_filters::LevelFilter;

struct Bridge;

static BRIDGE: Bridge = Bridge;

impl log::Log for Bridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        let target = record.target();
        let args = record.args();
        match record.level() {
            log::Level::Error => tracing::error!(log.target = target, "{args}"),
            log::Level::Warn => tracing::warn!(log.target = target, "{args}"),
            log::Level::Info => tracing::info!(log.target = target, "{args}"),
            log::Level::Debug => tracing::debug!(log.target = target, "{args}"),
            log::Level::Trace => tracing::trace!(log.target = target, "{args}"),
        }
    }

    fn flush(&self) {}
}

/// Install the bridge as the process's `log` logger. Call once, after the
/// tracing subscriber is set up; returns `false` if a `log` logger was
/// already installed (then that one keeps receiving lsm-tree's records).
pub fn install_log_bridge() -> bool {
    let level = match LevelFilter::current().into_level() {
        None => log::LevelFilter::Off,
        Some(tracing::Level::ERROR) => log::LevelFilter::Error,
        Some(tracing::Level::WARN) => log::LevelFilter::Warn,
        Some(tracing::Level::INFO) => log::LevelFilter::Info,
        Some(tracing::Level::DEBUG) => log::LevelFilter::Debug,
        Some(_) => log::LevelFilter::Trace,
    };
    if log::set_logger(&BRIDGE).is_err() {
        return false;
    }
    log::set_max_level(level);
    true
}

#[cfg(test)]
mod tests {
    #[test]
    fn installs_once() {
        let first = super::install_log_bridge();
        assert!(!super::install_log_bridge(), "second install must refuse");
        if first {
            log::warn!(target: "lsm_tree", "forwarded to tracing");
        }
    }
}
