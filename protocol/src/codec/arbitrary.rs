//! Random values for the generated `random(rng, version)` constructors (feature
//! `arbitrary`), used by round-trip and differential tests. Values are small so that
//! many iterations stay fast, and floats are finite so `PartialEq` holds.

use bytes::Bytes;
use rand::Rng;

use super::{Records, Uuid};

/// A short ASCII string (possibly empty).
pub fn string<R: Rng + ?Sized>(rng: &mut R) -> String {
    let n = rng.random_range(0..8);
    (0..n)
        .map(|_| char::from(rng.random_range(b'a'..=b'z')))
        .collect()
}

/// A short byte string.
pub fn bytes<R: Rng + ?Sized>(rng: &mut R) -> Bytes {
    let n = rng.random_range(0..12);
    (0..n)
        .map(|_| rng.random::<u8>())
        .collect::<Vec<u8>>()
        .into()
}

/// Random record-set bytes (not a valid batch; codecs treat them as opaque).
pub fn records<R: Rng + ?Sized>(rng: &mut R) -> Records {
    Records::Bytes(bytes(rng))
}

/// A random UUID.
pub fn uuid<R: Rng + ?Sized>(rng: &mut R) -> Uuid {
    Uuid(rng.random())
}

/// A finite float.
pub fn float64<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    f64::from(rng.random::<i32>()) / 8.0
}

/// A short vector of random elements.
pub fn vec<R: Rng + ?Sized, T>(rng: &mut R, mut elem: impl FnMut(&mut R) -> T) -> Vec<T> {
    let n = rng.random_range(0..4);
    (0..n).map(|_| elem(rng)).collect()
}

/// Whether a field nullable in this version should be null in this sample.
pub fn null<R: Rng + ?Sized>(rng: &mut R) -> bool {
    rng.random_bool(0.2)
}
