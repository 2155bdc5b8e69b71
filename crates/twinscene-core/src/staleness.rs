//! When an element's data is too old to trust. A scene sets `staleAfterSeconds`; an element is
//! stale when its primary twin has not been written for longer than that. "Written" means the
//! newest per-property `lastUpdateTime` the server stamped (ADT's `$metadata`), so a viewer that
//! connects to a server restored from disk sees old data as old. A twin with no timestamps at
//! all was never written by a live source (a wall, a floor, a twin from a static file): it has
//! no data to go stale, so it is never marked.
//!
//! Timestamps come from the server's clock and `now` from the viewer's; a skew between the two
//! shifts staleness by that much (docs/protocol.md).

use crate::expression::parse_rfc3339_millis;
use crate::twin::Twin;

/// Milliseconds since the Unix epoch of the twin's newest property write, if any property
/// carries a readable `lastUpdateTime`.
pub fn last_update_millis(twin: &Twin) -> Option<f64> {
    twin.last_update_time.values().filter_map(|time| parse_rfc3339_millis(time)).reduce(f64::max)
}

/// Whether data last written at `last_update` is older than `max_age_seconds` at `now` (times in
/// milliseconds since the Unix epoch). Never-written data (`None`) is not stale.
pub fn is_stale(last_update: Option<f64>, now: f64, max_age_seconds: f64) -> bool {
    last_update.is_some_and(|written| now - written > max_age_seconds * 1000.0)
}

/// Whether the twin's newest write is older than `max_age_seconds` at `now`.
pub fn twin_is_stale(twin: &Twin, now: f64, max_age_seconds: f64) -> bool {
    is_stale(last_update_millis(twin), now, max_age_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn twin_with_times(times: &[(&str, &str)]) -> Twin {
        let mut twin = Twin::new("t", "dtmi:t:T;1");
        for (property, time) in times {
            twin.last_update_time.insert(*property, crate::twin::CompactString::from(*time));
        }
        twin
    }

    #[test]
    fn newest_readable_timestamp_wins() {
        let twin = twin_with_times(&[
            ("a", "2026-01-01T00:00:00Z"),
            ("b", "2026-01-01T00:01:00Z"),
            ("c", "not a time"),
        ]);
        let a = parse_rfc3339_millis("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(last_update_millis(&twin), Some(a + 60_000.0));
        assert_eq!(last_update_millis(&twin_with_times(&[])), None);
    }

    #[test]
    fn stale_only_after_the_configured_age() {
        let written = 1_000_000.0;
        assert!(!is_stale(Some(written), written + 59_999.0, 60.0));
        assert!(is_stale(Some(written), written + 60_001.0, 60.0));
    }

    #[test]
    fn never_written_twins_are_not_stale() {
        assert!(!is_stale(None, 1e15, 1.0));
        let twin = twin_with_times(&[("temperature", "2026-01-01T00:00:00Z")]);
        let written = parse_rfc3339_millis("2026-01-01T00:00:00Z").unwrap();
        assert!(twin_is_stale(&twin, written + 2_000.0, 1.0));
        assert!(!twin_is_stale(&twin_with_times(&[]), written + 2_000.0, 1.0));
    }
}
