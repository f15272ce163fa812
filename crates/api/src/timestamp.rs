//! RFC 3339 UTC timestamps, as Kubernetes metadata and Envoy's access logs write them.

use std::time::{SystemTime, UNIX_EPOCH};

/// (year, month, day) of a count of days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn format(t: SystemTime, millis: bool) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let rem = secs % 86_400;
    let (y, m, day) = civil(i64::try_from(secs / 86_400).unwrap_or(0));
    let time = format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    if millis {
        format!("{y:04}-{m:02}-{day:02}T{time}.{:03}Z", d.subsec_millis())
    } else {
        format!("{y:04}-{m:02}-{day:02}T{time}Z")
    }
}

/// `2026-11-25T23:40:22Z` (Kubernetes' `creationTimestamp` form).
pub fn rfc3339(t: SystemTime) -> String {
    format(t, false)
}

/// `2026-11-25T23:40:22.123Z` (Envoy's `%START_TIME%`).
pub fn rfc3339_millis(t: SystemTime) -> String {
    format(t, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn utc_dates_and_leap_days() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_650_022_123);
        assert_eq!(rfc3339_millis(t), "2026-11-25T23:40:22.123Z");
        assert_eq!(rfc3339(t), "2026-11-25T23:40:22Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }
}
