//! Pure helpers for deciding how long to wait before the next attempt.

use std::time::Duration;

use jiff::Timestamp;
use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// Delay before retry number `retry` (1-based): exponential from `base`,
/// capped, with "equal jitter" (a random point in the upper half) so that
/// many clients failing together do not retry in lockstep, yet the delay
/// never collapses to zero.
pub(crate) fn backoff(base: Duration, cap: Duration, retry: u32) -> Duration {
    let exp = retry.saturating_sub(1).min(20);
    let full = base.saturating_mul(1u32 << exp).min(cap);
    let half = full / 2;
    let jitter_ns = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(rand::rng().random_range(0..=jitter_ns))
}

/// `Retry-After` as a wait from `now`: either delay-seconds or an HTTP-date
/// (RFC 9110 §10.2.3). A date in the past means "now". Unparseable → None.
pub(crate) fn retry_after(headers: &HeaderMap, now: Timestamp) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    static PARSER: jiff::fmt::rfc2822::DateTimeParser = jiff::fmt::rfc2822::DateTimeParser::new();
    let at = PARSER.parse_timestamp(value).ok()?;
    Some(until(at, now))
}

/// Time from `now` until `at`, zero if `at` has passed.
pub(crate) fn until(at: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)
}

/// GitHub's rate-limit headers (also used by Gitea and others).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RateLimit {
    pub remaining: Option<u64>,
    pub reset: Option<Timestamp>,
}

impl RateLimit {
    pub(crate) fn from_headers(headers: &HeaderMap) -> RateLimit {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        RateLimit {
            remaining: number("x-ratelimit-remaining"),
            reset: number("x-ratelimit-reset")
                .and_then(|secs| i64::try_from(secs).ok())
                .and_then(|secs| Timestamp::from_second(secs).ok()),
        }
    }

    /// When the quota is used up, the moment it comes back.
    pub(crate) fn exhausted_until(&self) -> Option<Timestamp> {
        match (self.remaining, self.reset) {
            (Some(0), Some(reset)) => Some(reset),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn backoff_grows_is_capped_and_never_zero() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_millis(1000);
        for _ in 0..200 {
            let first = backoff(base, cap, 1);
            assert!(
                first >= Duration::from_millis(50) && first <= base,
                "{first:?}"
            );
            let third = backoff(base, cap, 3);
            assert!(
                third >= Duration::from_millis(200) && third <= Duration::from_millis(400),
                "{third:?}"
            );
            let late = backoff(base, cap, 30);
            assert!(late >= cap / 2 && late <= cap, "{late:?}");
        }
    }

    #[test]
    fn retry_after_seconds_and_http_date() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));

        // 1_700_000_000 is Tue, 14 Nov 2023 22:13:20 GMT.
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Tue, 14 Nov 2023 22:13:50 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(30)));

        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Tue, 14 Nov 2023 22:00:00 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::ZERO));

        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn github_rate_limit_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        headers.insert("x-ratelimit-reset", HeaderValue::from_static("1700000000"));
        let limit = RateLimit::from_headers(&headers);
        assert_eq!(
            limit.exhausted_until(),
            Some(Timestamp::from_second(1_700_000_000).unwrap())
        );
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static("59"));
        assert_eq!(RateLimit::from_headers(&headers).exhausted_until(), None);
        assert_eq!(
            RateLimit::from_headers(&HeaderMap::new()),
            RateLimit::default()
        );
    }
}
