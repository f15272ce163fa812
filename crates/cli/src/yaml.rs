//! Output helpers: JSON values as block YAML (for `-o yaml`), and kubectl-style ages.

pub use weft_api::render::to_yaml;

/// kubectl's age of an RFC 3339 UTC timestamp (`5s`, `3m`, `2h`, `4d`).
pub fn age(timestamp: &str) -> String {
    let parse = || -> Option<i64> {
        let (date, time) = timestamp.trim_end_matches('Z').split_once('T')?;
        let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
        let (y, m, day) = (d.next()??, d.next()??, d.next()??);
        let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
        let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
        let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * m + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    match parse() {
        Some(t) => {
            let s = (now - t).max(0);
            match s {
                0..=119 => format!("{s}s"),
                120..=7199 => format!("{}m", s / 60),
                7200..=172_799 => format!("{}h", s / 3600),
                _ => format!("{}d", s / 86_400),
            }
        }
        None => "-".into(),
    }
}
