//! Time bounds from flags: `--since`/`--until` take a date (UTC) or an RFC
//! 3339 time, `--month` a calendar month in UTC.

use jiff::Timestamp;
use jiff::civil::Date;

use crate::HistoryError;

/// A half-open span of time, `[since, until)`; an open end is unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Period {
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

impl Period {
    pub fn contains(&self, t: Timestamp) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }

    /// "2026-11-01 – 2026-11-30", for headings.
    pub fn describe(&self) -> String {
        let day = |t: Timestamp| t.to_zoned(jiff::tz::TimeZone::UTC).date().to_string();
        let last = |t: Timestamp| {
            // `until` is exclusive: a month ends the day before the next.
            let z = t.to_zoned(jiff::tz::TimeZone::UTC);
            if z.time() == jiff::civil::Time::midnight() {
                z.date()
                    .yesterday()
                    .map(|d| d.to_string())
                    .unwrap_or_default()
            } else {
                z.datetime().to_string()
            }
        };
        match (self.since, self.until) {
            (Some(s), Some(u)) => format!("{} to {}", day(s), last(u)),
            (Some(s), None) => format!("since {}", day(s)),
            (None, Some(u)) => format!("until {}", last(u)),
            (None, None) => "all time".to_string(),
        }
    }
}

/// A `--since`/`--until` value: `2026-11-01` (midnight UTC; for `--until`
/// the end of that day, so the day counts) or `2026-11-01T02:00:00Z`.
pub fn parse_bound(flag: &str, value: &str, until: bool) -> Result<Timestamp, HistoryError> {
    if let Ok(t) = value.parse::<Timestamp>() {
        return Ok(t);
    }
    let bad = || {
        HistoryError::Input(format!(
            "{flag} {value:?}: not a date (YYYY-MM-DD) or an RFC 3339 time (2026-11-01T02:00:00Z)"
        ))
    };
    if value.len() != 10 {
        return Err(bad());
    }
    let date: Date = value.parse().map_err(|_| bad())?;
    let date = if until {
        date.tomorrow().map_err(|_| bad())?
    } else {
        date
    };
    midnight(date).ok_or_else(bad)
}

/// `--month 2026-11`: the first of the month to the first of the next, UTC.
pub fn parse_month(value: &str) -> Result<Period, HistoryError> {
    let bad = || HistoryError::Input(format!("--month {value:?}: not a month (YYYY-MM)"));
    let (y, m) = value.split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 {
        return Err(bad());
    }
    let year: i16 = y.parse().map_err(|_| bad())?;
    let month: i8 = m.parse().map_err(|_| bad())?;
    let first = Date::new(year, month, 1).map_err(|_| bad())?;
    let next = first.last_of_month().tomorrow().map_err(|_| bad())?;
    Ok(Period {
        since: Some(midnight(first).ok_or_else(bad)?),
        until: Some(midnight(next).ok_or_else(bad)?),
    })
}

fn midnight(d: Date) -> Option<Timestamp> {
    d.to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_take_dates_and_times_and_refuse_anything_else() {
        assert_eq!(
            parse_bound("--since", "2026-11-02", false)
                .unwrap()
                .to_string(),
            "2026-11-02T00:00:00Z"
        );
        assert_eq!(
            parse_bound("--until", "2026-11-02", true)
                .unwrap()
                .to_string(),
            "2026-11-03T00:00:00Z"
        );
        assert_eq!(
            parse_bound("--since", "2026-11-02T03:04:05Z", false)
                .unwrap()
                .to_string(),
            "2026-11-02T03:04:05Z"
        );
        for bad in ["yesterday", "2026-13-01", "2026-11-2", ""] {
            let e = parse_bound("--since", bad, false).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().starts_with("--since"), "{e}");
        }
    }

    #[test]
    fn a_month_is_half_open_and_knows_its_length() {
        let p = parse_month("2026-02").unwrap();
        assert_eq!(p.since.unwrap().to_string(), "2026-02-01T00:00:00Z");
        assert_eq!(p.until.unwrap().to_string(), "2026-03-01T00:00:00Z");
        assert_eq!(p.describe(), "2026-02-01 to 2026-02-28");
        let dec = parse_month("2026-12").unwrap();
        assert_eq!(dec.until.unwrap().to_string(), "2027-01-01T00:00:00Z");
        assert!(!p.contains(p.until.unwrap()));
        assert!(p.contains(p.since.unwrap()));
        for bad in ["2026-13", "2026-1", "26-01", "november"] {
            assert!(parse_month(bad).is_err(), "{bad}");
        }
    }
}
