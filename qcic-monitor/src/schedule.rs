//! When a job is expected: `every` (a message at least this often) or a cron
//! pattern in an IANA time zone (croner + chrono-tz: a time in a spring-forward
//! gap fires at the end of the gap, a repeated autumn time fires once).

use std::fmt;
use std::time::Duration;

use crate::clock::millis;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// A job's schedule.
#[derive(Clone)]
pub enum Schedule {
    /// A message at least this often.
    Every(Duration),
    /// Runs at the times of a cron pattern, in a time zone.
    Cron {
        /// The pattern as written (5 fields, or 6 with leading seconds).
        pattern: String,
        /// The time zone it is read in.
        tz: Tz,
        /// The parsed pattern.
        cron: Box<Cron>,
    },
}

// Two schedules are the same when written the same: the parsed pattern
// follows from the text.
impl PartialEq for Schedule {
    fn eq(&self, other: &Schedule) -> bool {
        match (self, other) {
            (Schedule::Every(a), Schedule::Every(b)) => a == b,
            (
                Schedule::Cron { pattern, tz, .. },
                Schedule::Cron {
                    pattern: p2,
                    tz: tz2,
                    ..
                },
            ) => pattern == p2 && tz == tz2,
            _ => false,
        }
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(d) => write!(f, "every {}", humantime::format_duration(*d)),
            Schedule::Cron { pattern, tz, .. } => write!(f, "cron \"{pattern}\" {tz}"),
        }
    }
}

impl Schedule {
    /// Parses a cron pattern (5 fields, or 6 with a leading seconds field)
    /// and an IANA time zone name.
    pub fn cron(pattern: &str, timezone: &str) -> Result<Schedule, (&'static str, String)> {
        let tz: Tz = timezone.parse().map_err(|_| {
            (
                "timezone",
                format!("{timezone:?} is not an IANA time zone such as \"Europe/London\""),
            )
        })?;
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(pattern)
            .map_err(|e| ("cron", format!("{pattern:?} is not a cron pattern: {e}")))?;
        Ok(Schedule::Cron {
            pattern: pattern.to_owned(),
            tz,
            cron: Box::new(cron),
        })
    }

    /// The first scheduled time strictly after `after_ms` (unix ms); `None`
    /// for `every` schedules or a pattern that never fires again.
    pub fn next_fire_ms(&self, after_ms: u64) -> Option<u64> {
        let Schedule::Cron { tz, cron, .. } = self else {
            return None;
        };
        let after: DateTime<Utc> = DateTime::from_timestamp_millis(i64::try_from(after_ms).ok()?)?;
        let local = tz.from_utc_datetime(&after.naive_utc());
        let next = cron.find_next_occurrence(&local, false).ok()?;
        u64::try_from(next.timestamp_millis()).ok()
    }

    /// The next `n` fire times after `after_ms`, for `check`.
    pub fn next_fires(&self, after_ms: u64, n: usize) -> Vec<String> {
        let Schedule::Cron { tz, .. } = self else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut at = after_ms;
        for _ in 0..n {
            let Some(next) = self.next_fire_ms(at) else {
                break;
            };
            if let Some(t) =
                DateTime::from_timestamp_millis(i64::try_from(next).unwrap_or(i64::MAX))
            {
                out.push(format!(
                    "{} ({})",
                    t.with_timezone(tz).format("%Y-%m-%d %H:%M:%S %Z"),
                    t.format("%H:%M:%S UTC")
                ));
            }
            at = next;
        }
        out
    }

    /// When a job last heard from at `last_ms` (or watched since then) is
    /// down, in unix ms. For cron, a message up to `grace` before a fire time
    /// counts for that fire (a job that starts a little early is not late).
    pub fn down_at_ms(&self, last_ms: u64, grace: Duration) -> u64 {
        let grace_ms = millis(grace);
        match self {
            Schedule::Every(every) => last_ms
                .saturating_add(millis(*every))
                .saturating_add(grace_ms),
            Schedule::Cron { .. } => self
                .next_fire_ms(last_ms.saturating_add(grace_ms))
                .map_or(u64::MAX, |fire| fire.saturating_add(grace_ms)),
        }
    }

    /// A rough period, for display: `every`, or the gap between the next two fires.
    pub fn period_ms(&self, now_ms: u64) -> u64 {
        match self {
            Schedule::Every(d) => millis(*d),
            Schedule::Cron { .. } => match self
                .next_fire_ms(now_ms)
                .and_then(|a| Some((a, self.next_fire_ms(a)?)))
            {
                Some((a, b)) => b - a,
                None => 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> u64 {
        u64::try_from(
            DateTime::parse_from_rfc3339(rfc3339)
                .unwrap()
                .timestamp_millis(),
        )
        .unwrap()
    }

    fn utc(ms: u64) -> String {
        DateTime::from_timestamp_millis(i64::try_from(ms).unwrap())
            .unwrap()
            .to_rfc3339()
    }

    #[test]
    fn weekday_mornings_in_london_follow_bst() {
        let s = Schedule::cron("30 2 * * 1-5", "Europe/London").unwrap();
        // Friday 2026-07-03 03:00 BST: next is Monday 02:30 BST = 01:30 UTC.
        assert_eq!(
            utc(s.next_fire_ms(ms("2026-07-03T02:00:00Z")).unwrap()),
            "2026-07-06T01:30:00+00:00"
        );
        // In winter 02:30 GMT is 02:30 UTC.
        assert_eq!(
            utc(s.next_fire_ms(ms("2026-12-01T00:00:00Z")).unwrap()),
            "2026-12-01T02:30:00+00:00"
        );
    }

    #[test]
    fn a_time_in_the_spring_gap_fires_once_at_the_end_of_the_gap() {
        // 2026-03-29: London clocks go 01:00 GMT -> 02:00 BST; 01:30 does not exist.
        let s = Schedule::cron("30 1 * * *", "Europe/London").unwrap();
        let fire = s.next_fire_ms(ms("2026-03-29T00:00:00Z")).unwrap();
        assert_eq!(
            utc(fire),
            "2026-03-29T01:00:00+00:00",
            "02:00 BST, the end of the gap"
        );
        let next = s.next_fire_ms(fire).unwrap();
        assert_eq!(
            utc(next),
            "2026-03-30T00:30:00+00:00",
            "then 01:30 BST the next day"
        );
    }

    #[test]
    fn a_repeated_autumn_time_fires_once() {
        // 2026-10-25: London clocks go 02:00 BST -> 01:00 GMT; 01:30 happens twice.
        let s = Schedule::cron("30 1 * * *", "Europe/London").unwrap();
        let first = s.next_fire_ms(ms("2026-10-24T23:00:00Z")).unwrap();
        assert_eq!(utc(first), "2026-10-25T00:30:00+00:00", "01:30 BST");
        let second = s.next_fire_ms(first).unwrap();
        assert_eq!(
            utc(second),
            "2026-10-26T01:30:00+00:00",
            "not 01:30 GMT the same night"
        );
    }

    #[test]
    fn six_fields_have_seconds_and_bad_input_is_explained() {
        let s = Schedule::cron("*/30 * * * * *", "UTC").unwrap();
        assert_eq!(
            s.next_fire_ms(ms("2026-01-01T00:00:10Z")).unwrap(),
            ms("2026-01-01T00:00:30Z")
        );
        assert_eq!(Schedule::cron("61 * * * *", "UTC").unwrap_err().0, "cron");
        assert_eq!(
            Schedule::cron("* * * * *", "Mars/Olympus").unwrap_err().0,
            "timezone"
        );
    }

    #[test]
    fn down_times_give_cron_jobs_their_grace() {
        let s = Schedule::cron("0 2 * * *", "UTC").unwrap();
        let grace = Duration::from_secs(600);
        // Heard at 02:01 on the 1st: down at 02:10 on the 2nd.
        assert_eq!(
            s.down_at_ms(ms("2026-01-01T02:01:00Z"), grace),
            ms("2026-01-02T02:10:00Z")
        );
        // Started early, at 01:55: that counts for 02:00, so also down on the 2nd.
        assert_eq!(
            s.down_at_ms(ms("2026-01-01T01:55:00Z"), grace),
            ms("2026-01-02T02:10:00Z")
        );
        let e = Schedule::Every(Duration::from_secs(10));
        assert_eq!(e.down_at_ms(1000, Duration::from_secs(5)), 16_000);
    }
}
