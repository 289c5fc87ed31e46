//! Maintenance windows: when `upkeep run` may touch the cluster.
//!
//! A window is a set of weekdays, a start and an end wall-clock time, and a
//! time zone (`Europe/Berlin`, not an offset: windows follow daylight
//! saving). A window that ends at or before its start runs past midnight
//! and belongs to the day it starts on. A start time that does not exist on
//! a DST day (02:30 on the spring-forward Sunday) is read with the offset
//! before the gap, as RFC 5545 does (02:30 becomes 03:30 CEST).

use std::fmt;

use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};
use schemars::JsonSchema;
use serde::Deserialize;

/// A window as written in `upkeep.yaml`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WindowSpec {
    /// `mon`..`sun`, or `daily`, `weekdays`, `weekends`.
    pub days: Vec<String>,
    /// `HH:MM`, local to `timeZone`.
    pub start: String,
    /// `HH:MM`; at or before `start` means the next day.
    pub end: String,
    /// An IANA time zone such as `Europe/Berlin`.
    pub time_zone: String,
}

/// A window that failed validation, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct WindowError {
    pub field: &'static str,
    pub message: String,
}

fn err(field: &'static str, message: String) -> WindowError {
    WindowError { field, message }
}

/// A validated window.
#[derive(Debug, Clone)]
pub struct Window {
    days: Vec<Weekday>,
    start: Time,
    end: Time,
    tz: TimeZone,
    tz_name: String,
}

fn parse_time(field: &'static str, s: &str) -> Result<Time, WindowError> {
    let bad = || err(field, format!("{s:?} is not a time of day like 02:30"));
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let h: i8 = h.parse().map_err(|_| bad())?;
    let m: i8 = m.parse().map_err(|_| bad())?;
    Time::new(h, m, 0, 0).map_err(|_| bad())
}

fn parse_days(days: &[String]) -> Result<Vec<Weekday>, WindowError> {
    use Weekday::*;
    let mut out = Vec::new();
    for d in days {
        let add: &[Weekday] = match d.trim().to_ascii_lowercase().as_str() {
            "mon" | "monday" => &[Monday],
            "tue" | "tuesday" => &[Tuesday],
            "wed" | "wednesday" => &[Wednesday],
            "thu" | "thursday" => &[Thursday],
            "fri" | "friday" => &[Friday],
            "sat" | "saturday" => &[Saturday],
            "sun" | "sunday" => &[Sunday],
            "daily" => &[
                Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday,
            ],
            "weekdays" => &[Monday, Tuesday, Wednesday, Thursday, Friday],
            "weekends" => &[Saturday, Sunday],
            other => {
                return Err(err(
                    "days",
                    format!("{other:?} is not a day (mon..sun, daily, weekdays, weekends)"),
                ));
            }
        };
        for w in add {
            if !out.contains(w) {
                out.push(*w);
            }
        }
    }
    if out.is_empty() {
        return Err(err("days", "no days given".to_string()));
    }
    Ok(out)
}

impl Window {
    /// The days it opens on.
    pub fn days(&self) -> &[Weekday] {
        &self.days
    }

    /// When it opens, local to [`Window::time_zone`].
    pub fn start(&self) -> Time {
        self.start
    }

    /// The IANA name of its time zone.
    pub fn time_zone(&self) -> &str {
        &self.tz_name
    }

    pub fn from_spec(spec: &WindowSpec) -> Result<Window, WindowError> {
        let tz = TimeZone::get(&spec.time_zone).map_err(|_| {
            err(
                "timeZone",
                format!(
                    "{:?} is not a known time zone (use e.g. Europe/Berlin)",
                    spec.time_zone
                ),
            )
        })?;
        Ok(Window {
            days: parse_days(&spec.days)?,
            start: parse_time("start", &spec.start)?,
            end: parse_time("end", &spec.end)?,
            tz,
            tz_name: spec.time_zone.clone(),
        })
    }

    fn overnight(&self) -> bool {
        self.end <= self.start
    }

    /// The occurrence of the window that starts on the civil date of `day`.
    fn occurrence(&self, day: jiff::civil::Date) -> Option<(Zoned, Zoned)> {
        if !self.days.contains(&day.weekday()) {
            return None;
        }
        let start = day.to_datetime(self.start).to_zoned(self.tz.clone()).ok()?;
        let end_day = if self.overnight() {
            day.tomorrow().ok()?
        } else {
            day
        };
        let end = end_day
            .to_datetime(self.end)
            .to_zoned(self.tz.clone())
            .ok()?;
        Some((start, end))
    }

    /// Is `t` inside a window? Returns the end of that window if so.
    pub fn contains(&self, t: Timestamp) -> Option<Zoned> {
        let local = t.to_zoned(self.tz.clone());
        // An overnight window that started yesterday may still be open.
        let yesterday = local.date().yesterday().ok();
        [yesterday, Some(local.date())]
            .into_iter()
            .flatten()
            .filter_map(|d| self.occurrence(d))
            .find(|(s, e)| s.timestamp() <= t && t < e.timestamp())
            .map(|(_, e)| e)
    }

    /// The next window that starts after `t` (within the coming 8 days).
    pub fn next_start(&self, t: Timestamp) -> Option<(Zoned, Zoned)> {
        let local = t.to_zoned(self.tz.clone());
        (0..8)
            .filter_map(|i| local.date().checked_add(i.days()).ok())
            .filter_map(|d| self.occurrence(d))
            .find(|(s, _)| s.timestamp() > t)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days: Vec<String> = self
            .days
            .iter()
            .map(|d| format!("{d:?}")[..3].to_string())
            .collect();
        write!(
            f,
            "{} {}-{} {}",
            days.join(","),
            self.start.strftime("%H:%M"),
            self.end.strftime("%H:%M"),
            self.tz_name
        )
    }
}

/// Is `t` inside any of `windows`? Returns the latest end among those open.
pub fn inside_any(windows: &[Window], t: Timestamp) -> Option<Zoned> {
    windows.iter().filter_map(|w| w.contains(t)).max()
}

/// The earliest next start among `windows`.
pub fn next_of(windows: &[Window], t: Timestamp) -> Option<(Zoned, Zoned)> {
    windows
        .iter()
        .filter_map(|w| w.next_start(t))
        .min_by_key(|(s, _)| s.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(days: &[&str], start: &str, end: &str, tz: &str) -> Window {
        Window::from_spec(&WindowSpec {
            days: days.iter().map(|s| s.to_string()).collect(),
            start: start.into(),
            end: end.into(),
            time_zone: tz.into(),
        })
        .unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn inside_and_outside_in_local_time() {
        // Saturday 2026-11-28, Berlin is UTC+1 in winter.
        let win = w(&["sat"], "02:00", "05:00", "Europe/Berlin");
        assert!(
            win.contains(ts("2026-11-28T01:30:00Z")).is_some(),
            "02:30 local"
        );
        assert!(
            win.contains(ts("2026-11-28T00:59:59Z")).is_none(),
            "01:59 local"
        );
        assert!(
            win.contains(ts("2026-11-28T04:00:00Z")).is_none(),
            "05:00 local is the end"
        );
        assert!(win.contains(ts("2026-11-29T01:30:00Z")).is_none(), "Sunday");
        let end = win.contains(ts("2026-11-28T02:00:00Z")).unwrap();
        assert_eq!(end.timestamp(), ts("2026-11-28T04:00:00Z"));
    }

    #[test]
    fn overnight_windows_belong_to_their_start_day() {
        let win = w(&["fri"], "23:00", "02:00", "UTC");
        assert!(
            win.contains(ts("2026-11-27T23:30:00Z")).is_some(),
            "Friday night"
        );
        assert!(
            win.contains(ts("2026-11-28T01:30:00Z")).is_some(),
            "Saturday small hours"
        );
        assert!(
            win.contains(ts("2026-11-28T23:30:00Z")).is_none(),
            "Saturday night is not Friday"
        );
    }

    #[test]
    fn next_window_and_daylight_saving() {
        let win = w(&["sun"], "02:30", "04:00", "Europe/Berlin");
        // 2026-03-29 is the spring-forward Sunday: 02:30 does not exist; it
        // is read with the winter offset, 01:30 UTC (03:30 CEST).
        let (start, end) = win.next_start(ts("2026-03-28T12:00:00Z")).unwrap();
        assert_eq!(start.timestamp(), ts("2026-03-29T01:30:00Z"));
        assert_eq!(end.timestamp(), ts("2026-03-29T02:00:00Z"));
        let (start, _) = win.next_start(ts("2026-11-28T12:00:00Z")).unwrap();
        assert_eq!(start.timestamp(), ts("2026-11-29T01:30:00Z"));
        assert_eq!(win.to_string(), "Sun 02:30-04:00 Europe/Berlin");
    }

    #[test]
    fn several_windows() {
        let ws = [
            w(&["weekdays"], "03:00", "04:00", "UTC"),
            w(&["weekends"], "01:00", "06:00", "UTC"),
        ];
        assert!(
            inside_any(&ws, ts("2026-11-28T05:00:00Z")).is_some(),
            "Saturday"
        );
        assert!(
            inside_any(&ws, ts("2026-11-30T05:00:00Z")).is_none(),
            "Monday 05:00"
        );
        let (s, _) = next_of(&ws, ts("2026-11-30T05:00:00Z")).unwrap();
        assert_eq!(s.timestamp(), ts("2026-12-01T03:00:00Z"));
    }

    #[test]
    fn bad_specs_name_the_field() {
        let spec = |days: &[&str], start: &str, end: &str, tz: &str| WindowSpec {
            days: days.iter().map(|s| s.to_string()).collect(),
            start: start.into(),
            end: end.into(),
            time_zone: tz.into(),
        };
        let e = Window::from_spec(&spec(&["funday"], "02:00", "03:00", "UTC")).unwrap_err();
        assert_eq!(e.field, "days");
        let e = Window::from_spec(&spec(&["sat"], "25:00", "03:00", "UTC")).unwrap_err();
        assert_eq!(e.field, "start");
        let e = Window::from_spec(&spec(&["sat"], "02:00", "3pm", "UTC")).unwrap_err();
        assert_eq!(e.field, "end");
        let e = Window::from_spec(&spec(&["sat"], "02:00", "03:00", "Mars/Olympus")).unwrap_err();
        assert_eq!(e.field, "timeZone");
        assert!(Window::from_spec(&spec(&[], "02:00", "03:00", "UTC")).is_err());
    }
}
