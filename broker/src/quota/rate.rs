//! A rate over a sliding window of samples: Kafka's `Rate` over a `SampledStat`
//! (the metrics library behind its client quotas), with time passed in.
//!
//! The window is `samples` samples of `sample_ms` each. A value goes into the
//! current sample; once that sample is `sample_ms` old the next one (the oldest,
//! reset) becomes current. Samples older than the whole window are reset before
//! the rate is read. The rate divides the sum of the samples by the time since
//! the oldest sample started.
//!
//! One deliberate difference from Kafka: Kafka never divides by less than
//! `samples - 1` samples, which lets a new client send `(samples - 1) ×
//! quota` (10 s worth by default) at once; when that one sample expires a
//! window later the client may burst again, so a client sending flat out gets
//! a sawtooth that averages to the quota only over whole windows (brook
//! measured +19% over 20 s that way). brook divides by at least one sample,
//! which bounds a burst to one sample's worth and keeps the throttle formula
//! `(rate - quota) / quota × window` exact in the steady state.
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

    /// The time the rate is measured over, in ms: since the oldest live
    /// sample started, at least one sample (see the module doc for how this
    /// differs from Kafka's `Rate.windowSize`).
    pub fn window_ms(&mut self, w: Window, now_ms: u64) -> u64 {
        self.purge(w, now_ms);
        let oldest = self
            .samples
            .iter()
            .map(|s| s.start_ms)
            .min()
            .unwrap_or(now_ms);
        now_ms.saturating_sub(oldest).max(w.sample_ms)
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
        // Rounded up: at the end of the delay the rate is at most the bound,
        // so the next request is not throttled again by a rounding error.
        ((rate - bound) / bound * window).ceil() as u64
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
    fn a_first_burst_is_measured_over_one_sample() {
        let mut r = SampledRate::default();
        r.record(W, 1000.0, 0);
        assert_eq!(r.window_ms(W, 0), 1000);
        assert!((r.rate(W, 0) - 1000.0).abs() < 1e-9);
        assert_eq!(r.window_ms(W, 4500), 4500);
    }

    #[test]
    fn throttle_is_kafkas_formula() {
        let mut r = SampledRate::default();
        r.record(W, 3000.0, 0);
        // rate 3000/s against 1000/s over a 1 s window: wait 2 s; at 2 s the
        // rate is 1500/s over 2 s (wait 1 s more); at 3 s it is the quota.
        assert_eq!(r.throttle_ms(W, 1000.0, 0), 2000);
        assert_eq!(r.throttle_ms(W, 1000.0, 2000), 1000);
        assert_eq!(r.throttle_ms(W, 1000.0, 3000), 0);
        assert_eq!(r.throttle_ms(W, 3000.0, 0), 0);
        // The whole window (11 samples) later the bytes have expired.
        assert_eq!(r.total(W, 11_000), 0.0);
    }

    #[test]
    fn a_client_sending_flat_out_gets_the_quota_without_bursts() {
        // Every 10 ms the client may send 50 KB unless throttled; over 30 s
        // it gets the quota, and no 5 s stretch carries more than 15% extra.
        let mut r = SampledRate::default();
        let mut sent = Vec::new();
        let mut t = 0u64;
        let mut blocked_until = 0u64;
        while t < 30_000 {
            if t >= blocked_until {
                r.record(W, 50_000.0, t);
                sent.push((t, 50_000.0));
                blocked_until = t + r.throttle_ms(W, 1_000_000.0, t);
            }
            t += 10;
        }
        let total: f64 = sent.iter().map(|(_, b)| b).sum();
        assert!((total / 30.0 - 1e6).abs() < 0.05e6, "{}", total / 30.0);
        for start in (0..25_000).step_by(1000) {
            let chunk: f64 = sent
                .iter()
                .filter(|(t, _)| (start..start + 5000).contains(t))
                .map(|(_, b)| b)
                .sum();
            assert!(chunk / 5.0 < 1.15e6, "{start}: {}", chunk / 5.0);
        }
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
