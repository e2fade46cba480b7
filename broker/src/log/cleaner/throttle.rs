//! `log.cleaner.io.max.bytes.per.second`: one rate limit shared by every cleaner
//! thread, counting bytes read and written.
//!
//! Each caller adds its bytes to a window; when the window is ahead of the allowed
//! rate the caller sleeps until it is not. The window restarts every second so a
//! long idle spell does not build up a burst. Callers are blocking cleaner threads,
//! never async runtime threads.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A byte-rate limit; `f64::INFINITY` (Kafka's default `Double.MAX_VALUE`) disables it.
#[derive(Debug)]
pub struct Throttler {
    bytes_per_sec: f64,
    window: Mutex<(Instant, u64)>,
}

const WINDOW: Duration = Duration::from_secs(1);

impl Throttler {
    pub fn new(bytes_per_sec: f64) -> Self {
        Self {
            bytes_per_sec,
            window: Mutex::new((Instant::now(), 0)),
        }
    }

    /// No limit.
    pub fn unlimited() -> Self {
        Self::new(f64::INFINITY)
    }

    /// Account for `bytes` of I/O, sleeping as long as needed to stay under the rate.
    pub fn acquire(&self, bytes: u64) {
        if !self.bytes_per_sec.is_finite() || self.bytes_per_sec <= 0.0 {
            return;
        }
        let wait = {
            let mut w = match self.window.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if w.0.elapsed() >= WINDOW
                && w.1 as f64 <= self.bytes_per_sec * w.0.elapsed().as_secs_f64()
            {
                *w = (Instant::now(), 0);
            }
            w.1 += bytes;
            let due = Duration::from_secs_f64(w.1 as f64 / self.bytes_per_sec);
            due.saturating_sub(w.0.elapsed())
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_rate() {
        let t = Throttler::new(1_000_000.0);
        let start = Instant::now();
        for _ in 0..30 {
            t.acquire(10_000);
        }
        // 300 kB at 1 MB/s cannot finish in less than ~0.3 s.
        assert!(start.elapsed() >= Duration::from_millis(290));
        let free = Throttler::unlimited();
        let start = Instant::now();
        free.acquire(u64::MAX / 2);
        assert!(start.elapsed() < Duration::from_millis(100));
    }
}
