//! A rate over a sliding window of samples: Kafka's `Rate` over a `SampledStat`
//! (the metrics library behind its client quotas), with time passed in.
//!
//! The window is `samples` samples of `sample_ms` each. A value goes into the
//! current sample; once that sample is `sample_ms` old the next one (the oldest,
//! reset) becomes current. Samples older than the whole window are reset before
//! the rate is read. The rate divides the sum of the samples by the time they
//! span, but never by less than `samples - 1` full samples, so a client's first
//! burst is spread over (almost) a whole window instead of looking infinitely
//! fast — exactly Kafka's `Rate.windowSize`.
//!
//! Pure and single-threaded: the owner locks it.

/// Shape of the window (`quota.window.num`, `quota.window.size.seconds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub samples: usize,
    pub sample_ms: u64,
}

impl Window {
    /// The window from the broker config (at least two samples of 1 ms).
    pub fn new(samples: u32, sample_seconds: u32) -> Self {
        Self {
            samples: (samples as usize).max(2),
            sample_ms: u64::from(sample_seconds.max(1)) * 1000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    start_ms: u64,
    value: f64,
    events: u64,
}

impl Sample {
    fn reset(&mut self, now_ms: u64) {
        *self = Sample {
            start_ms: now_ms,
            value: 0.0,
            events: 0,
        };
    }
}

/// The sampled sum behind a rate (and an average, for throttle times).
#[derive(Debug, Clone, Default)]
pub struct SampledRate {
    samples: Vec<Sample>,
    current: usize,
}

impl SampledRate {
    /// Add `value` at `now_ms` (negative to take back an earlier record).
    pub fn record(&mut self, w: Window, value: f64, now_ms: u64) {
        if self.samples.is_empty() {
            self.samples.push(Sample {
                start_ms: now_ms,
                value: 0.0,
                events: 0,
            });
            self.current = 0;
        }
        if now_ms.saturating_sub(self.samples[self.current].start_ms) >= w.sample_ms {
            self.current = (self.current + 1) % w.samples;
            if self.current >= self.samples.len() {
                self.samples.push(Sample {
                    start_ms: now_ms,
                    value: 0.0,
                    events: 0,
                });
            } else {
                self.samples[self.current].reset(now_ms);
            }
        }
        let s = &mut self.samples[self.current];
        s.value += value;
        s.events += 1;
    }

    fn purge(&mut self, w: Window, now_ms: u64) {
        let expire = w.sample_ms * w.samples as u64;
        for s in &mut self.samples {
            if now_ms.saturating_sub(s.start_ms) >= expire {
                s.reset(now_ms);
            }
        }
    }

    /// Sum of the live samples.
    pub fn total(&mut self, w: Window, now_ms: u64) -> f64 {
        self.purge(w, now_ms);
        self.samples.iter().map(|s| s.value).sum()
    }

    /// Events recorded in the live samples.
    pub fn events(&mut self, w: Window, now_ms: u64) -> u64 {
        self.purge(w, now_ms);
        self.samples.iter().map(|s| s.events).sum()
    }

    /// The time the rate is measured over, in ms (Kafka's `Rate.windowSize`).
    pub fn window_ms(&mut self, w: Window, now_ms: u64) -> u64 {
        self.purge(w, now_ms);
        let oldest = self
            .samples
            .iter()
            .map(|s| s.start_ms)
            .min()
            .unwrap_or(now_ms);
        let mut elapsed = now_ms.saturating_sub(oldest);
        let full = elapsed / w.sample_ms;
        let min_full = w.samples as u64 - 1;
        if full < min_full {
            elapsed += (min_full - full) * w.sample_ms;
        }
        elapsed.max(1)
    }

    /// The rate per second at `now_ms`.
    pub fn rate(&mut self, w: Window, now_ms: u64) -> f64 {
        let total = self.total(w, now_ms);
        total / (self.window_ms(w, now_ms) as f64 / 1000.0)
    }

    /// Average of the recorded values (0 when none).
    pub fn avg(&mut self, w: Window, now_ms: u64) -> f64 {
        let n = self.events(w, now_ms);
        if n == 0 {
            0.0
        } else {
            self.total(w, now_ms) / n as f64
        }
    }

    /// Kafka's throttle for a rate over `bound`: how long the client must stay
    /// silent for the rate over the window to fall back to the bound,
    /// `(rate - bound) / bound * window`. 0 when the rate is within the bound.
    pub fn throttle_ms(&mut self, w: Window, bound: f64, now_ms: u64) -> u64 {
        let rate = self.rate(w, now_ms);
        if rate <= bound || bound <= 0.0 {
            return 0;
        }
        let window = self.window_ms(w, now_ms) as f64;
        ((rate - bound) / bound * window).round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Window = Window {
        samples: 11,
        sample_ms: 1000,
    };

    #[test]
    fn a_first_burst_is_spread_over_the_minimum_window() {
        let mut r = SampledRate::default();
        r.record(W, 10_000.0, 0);
        // 10 full samples assumed: 10 000 bytes over 10 s.
        assert_eq!(r.window_ms(W, 0), 10_000);
        assert!((r.rate(W, 0) - 1000.0).abs() < 1e-9);
    }

    #[test]
    fn throttle_is_kafkas_formula() {
        let mut r = SampledRate::default();
        r.record(W, 20_000.0, 0);
        // rate 2000/s against 1000/s over a 10 s window: wait 10 s.
        assert_eq!(r.throttle_ms(W, 1000.0, 0), 10_000);
        assert_eq!(r.throttle_ms(W, 2000.0, 0), 0);
        // The whole window (11 samples) later the bytes have expired.
        assert_eq!(r.total(W, 11_000), 0.0);
    }

    #[test]
    fn old_samples_expire_and_are_reused() {
        let mut r = SampledRate::default();
        for t in 0..30u64 {
            r.record(W, 100.0, t * 1000);
        }
        // 11 samples live, 100 each, spanning 10 s since the oldest.
        assert_eq!(r.total(W, 29_000), 1100.0);
        assert_eq!(r.window_ms(W, 29_000), 10_000);
        assert!((r.rate(W, 29_000) - 110.0).abs() < 1e-9);
        assert_eq!(r.events(W, 29_000), 11);
    }

    #[test]
    fn unrecording_takes_a_value_back() {
        let mut r = SampledRate::default();
        r.record(W, 500.0, 0);
        r.record(W, -500.0, 10);
        assert_eq!(r.total(W, 10), 0.0);
        assert_eq!(r.throttle_ms(W, 1.0, 10), 0);
    }

    #[test]
    fn a_steady_client_below_the_bound_is_not_throttled() {
        let mut r = SampledRate::default();
        let mut throttled = 0;
        for t in 0..300u64 {
            r.record(W, 90.0, t * 100);
            throttled += r.throttle_ms(W, 1000.0, t * 100);
        }
        assert_eq!(throttled, 0);
    }
}
