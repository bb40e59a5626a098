//! The records' times (milliseconds since the UNIX epoch, UTC) as text, and back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The last millisecond that is still written with four year digits (9999-12-31T23:59:59.999).
/// Later times are shown as this one: formatting them is not possible (and they only come from
/// a broken clock or a broken record).
pub const MAX_MS: u64 = 253_402_300_799_999;

fn system_time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.min(MAX_MS))
}

/// `YYYY-MM-DDTHH:MM:SS.mmm+00:00`, the way the original writes event times.
pub fn iso_millis(ms: u64) -> String {
    let mut s = humantime::format_rfc3339_millis(system_time(ms)).to_string();
    if s.ends_with('Z') {
        s.pop();
        s.push_str("+00:00");
    }
    s
}

/// `YYYY-MM-DD HH:MM:SS` (UTC), for tables and pages.
pub fn utc_seconds(ms: u64) -> String {
    let s = humantime::format_rfc3339_seconds(system_time(ms)).to_string();
    s.trim_end_matches('Z').replacen('T', " ", 1)
}

/// A UTC time written as `YYYY-MM-DD`, `YYYY-MM-DD HH:MM`, `YYYY-MM-DD HH:MM:SS` (`T` for the
/// space, a trailing `Z` and a fraction of a second allowed) in milliseconds since the epoch;
/// `None` for anything else, including times before the epoch.
pub fn parse_utc(text: &str) -> Option<u64> {
    let t = text.trim();
    let full = match t.len() {
        10 => format!("{t} 00:00:00"),
        16 => format!("{t}:00"),
        _ => t.to_string(),
    };
    let at = humantime::parse_rfc3339_weak(&full).ok()?;
    let ms = at.duration_since(UNIX_EPOCH).ok()?.as_millis();
    u64::try_from(ms).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_in_utc() {
        assert_eq!(iso_millis(0), "1970-01-01T00:00:00.000+00:00");
        assert_eq!(
            iso_millis(1_709_210_096_789),
            "2024-02-29T12:34:56.789+00:00"
        );
        assert_eq!(utc_seconds(1_796_306_400_000), "2026-12-03 14:00:00");
        assert_eq!(utc_seconds(1_709_210_096_789), "2024-02-29 12:34:56");
        // no panic beyond year 9999
        assert_eq!(utc_seconds(u64::MAX), "9999-12-31 23:59:59");
        assert_eq!(iso_millis(u64::MAX), "9999-12-31T23:59:59.999+00:00");
    }

    #[test]
    fn utc_times_are_read_back() {
        assert_eq!(parse_utc("2026-12-03T14:00:00Z"), Some(1_796_306_400_000));
        assert_eq!(parse_utc("2026-12-03 14:00:00"), Some(1_796_306_400_000));
        assert_eq!(parse_utc("2026-12-03 14:00"), Some(1_796_306_400_000));
        assert_eq!(
            parse_utc("2026-12-03T14:00:00.250Z"),
            Some(1_796_306_400_250)
        );
        assert_eq!(parse_utc("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_utc("2024-02-29"), Some(1_709_164_800_000));
        for bad in [
            "2026-13-01",
            "2026-02-30",
            "yesterday",
            "2026-12-03 25:00",
            "",
            "1969-12-31",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
        for ms in [0, 86_400_000, 1_709_210_096_000, 1_796_306_400_000] {
            assert_eq!(parse_utc(&utc_seconds(ms)), Some(ms));
        }
    }
}
