//! Crash-test halt points. With the `failpoints` feature, [`halt_point`] stops the process for
//! ever when the environment variable `INTENT_HALT_AT` names the point (after writing
//! `halted at POINT` to stderr), so a test can SIGKILL it at a known stage. Without the feature
//! (every normal build) it compiles to nothing. Not part of the supported API.

/// Halts here when built with `failpoints` and `INTENT_HALT_AT` is `point`.
#[cfg(feature = "failpoints")]
pub fn halt_point(point: &str) {
    if std::env::var_os("INTENT_HALT_AT").is_some_and(|v| v == point) {
        eprintln!("halted at {point}");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

/// Halts here when built with `failpoints` and `INTENT_HALT_AT` is `point`.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn halt_point(_point: &str) {}
