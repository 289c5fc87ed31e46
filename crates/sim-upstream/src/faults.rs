//! Fault injection: rules matched by path (glob or prefix) and method, applied with a seeded
//! RNG so that a test with `rate: 0.5` sees the same sequence on every run.

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

/// What a fault does to a matching request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Answer with `status` (default 500) instead of the real response.
    Error,
    /// Wait `delayMs` before handling the request; other rules still apply.
    Latency,
    /// Answer 429 Too Many Requests with `Retry-After: retryAfter` (default 60).
    TooManyRequests,
    /// Close the connection without answering.
    Drop,
    /// Send the headers (with the full Content-Length) and half the body, then close.
    Truncate,
    /// Serve the real body with `contentType` (default `text/html; charset=utf-8`).
    WrongContentType,
    /// Send the headers and half the body, wait `delayMs` (default 60000), then the rest.
    Stall,
    /// Answer 200 with the route's content type and `sizeBytes` (default 10 MiB) of seeded
    /// pseudo-random bytes instead of the body: an upstream that serves rubbish in bulk.
    Garbage,
}

impl FaultKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FaultKind::Error => "error",
            FaultKind::Latency => "latency",
            FaultKind::TooManyRequests => "too-many-requests",
            FaultKind::Drop => "drop",
            FaultKind::Truncate => "truncate",
            FaultKind::WrongContentType => "wrong-content-type",
            FaultKind::Stall => "stall",
            FaultKind::Garbage => "garbage",
        }
    }
}

/// One fault rule, as written in SIM.yaml or posted to `/_admin/faults`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRule {
    /// Glob over the request path: `*` matches any run of characters (including `/`), `?` one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Alternative to `path`: the request path starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Only this HTTP method (any when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    pub kind: FaultKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Probability (0..=1) that a matching request is hit; 1 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Hit only the next N matching requests ("fail the next N"); unlimited when absent.
    /// Counts down as requests are hit; `GET /_admin/faults` shows what is left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// `garbage`: how many bytes to send (default 10 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
}

/// What `garbage` sends when `sizeBytes` is absent.
pub(crate) const GARBAGE_DEFAULT_BYTES: u64 = 10 << 20;
/// The most `garbage` sends, so a typo cannot exhaust the simulator's memory.
const GARBAGE_MAX_BYTES: u64 = 256 << 20;

/// `n` pseudo-random bytes from `seed` (splitmix64): the same rubbish every run.
pub(crate) fn garbage(seed: u64, n: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(n as usize + 8);
    while (out.len() as u64) < n {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(n as usize);
    out
}

/// The fault part of SIM.yaml and the body of `POST /_admin/faults`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultConfig {
    /// Seed of the RNG deciding `rate`; 0 when absent.
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub faults: Vec<FaultRule>,
}

impl FaultConfig {
    /// Checks every rule; the message names the rule index and field.
    pub fn validate(&self) -> Result<(), String> {
        for (i, r) in self.faults.iter().enumerate() {
            let e = |m: &str| Err(format!("faults[{i}]: {m}"));
            match (&r.path, &r.prefix) {
                (Some(_), Some(_)) => return e("give `path` or `prefix`, not both"),
                (None, None) => return e("needs `path` (glob) or `prefix`"),
                (Some(p), None) | (None, Some(p)) if !p.starts_with('/') && p != "*" => {
                    return e("`path`/`prefix` must start with '/'");
                }
                _ => {}
            }
            if let Some(rate) = r.rate
                && !(0.0..=1.0).contains(&rate)
            {
                return e("`rate` must be between 0 and 1");
            }
            if let Some(s) = r.status
                && !(100..=599).contains(&s)
            {
                return e("`status` must be an HTTP status code (100-599)");
            }
            if r.kind == FaultKind::Latency && r.delay_ms.is_none() {
                return e("kind `latency` needs `delayMs`");
            }
            if let Some(ct) = &r.content_type
                && http::HeaderValue::from_str(ct).is_err()
            {
                return e("`contentType` is not a valid header value");
            }
            if let Some(n) = r.size_bytes
                && n > GARBAGE_MAX_BYTES
            {
                return e("`sizeBytes` must be at most 256 MiB");
            }
        }
        Ok(())
    }
}

/// `*` matches any run of characters, `?` any one character.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// The faults chosen for one request.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Decision {
    pub delay_ms: u64,
    /// The first non-latency fault hit, with its rule.
    pub fault: Option<FaultRule>,
}

pub(crate) struct FaultState {
    config: FaultConfig,
    rng: StdRng,
}

impl FaultState {
    pub fn new(config: FaultConfig) -> Self {
        let rng = StdRng::seed_from_u64(config.seed);
        FaultState { config, rng }
    }

    pub fn config(&self) -> &FaultConfig {
        &self.config
    }

    pub fn decide(&mut self, method: &str, path: &str) -> Decision {
        let mut d = Decision::default();
        for rule in &mut self.config.faults {
            let matches = match (&rule.path, &rule.prefix) {
                (Some(glob), _) => glob_match(glob, path),
                (None, Some(prefix)) => path.starts_with(prefix.as_str()),
                (None, None) => false,
            } && rule
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method));
            if !matches || rule.times == Some(0) {
                continue;
            }
            let rate = rule.rate.unwrap_or(1.0);
            if rate < 1.0 && self.rng.random::<f64>() >= rate {
                continue;
            }
            if let Some(t) = rule.times.as_mut() {
                *t -= 1;
            }
            if rule.kind == FaultKind::Latency {
                d.delay_ms = d.delay_ms.saturating_add(rule.delay_ms.unwrap_or(0));
                continue;
            }
            d.fault = Some(rule.clone());
            break;
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: FaultKind) -> FaultRule {
        FaultRule {
            path: Some("/repos/*".into()),
            prefix: None,
            method: None,
            kind,
            status: None,
            rate: None,
            times: None,
            delay_ms: None,
            retry_after: None,
            content_type: None,
            size_bytes: None,
        }
    }

    #[test]
    fn glob_semantics() {
        assert!(glob_match(
            "/repos/*/releases",
            "/repos/k3s-io/k3s/releases"
        ));
        assert!(glob_match(
            "/repos/k3s-io/?3s/*",
            "/repos/k3s-io/k3s/releases/latest"
        ));
        assert!(!glob_match("/repos/*/latest", "/repos/k3s-io/k3s/releases"));
        assert!(glob_match("*", "/anything"));
        assert!(glob_match("/a*b*c", "/aXXbYYc"));
        assert!(!glob_match("/a*b*c", "/aXXbYY"));
    }

    #[test]
    fn times_counts_down_then_stops() {
        let mut r = rule(FaultKind::Error);
        r.times = Some(2);
        let mut s = FaultState::new(FaultConfig {
            seed: 0,
            faults: vec![r],
        });
        assert!(s.decide("GET", "/repos/a/b").fault.is_some());
        assert!(s.decide("GET", "/repos/a/b").fault.is_some());
        assert!(s.decide("GET", "/repos/a/b").fault.is_none());
        assert_eq!(s.config().faults[0].times, Some(0));
    }

    #[test]
    fn rate_is_deterministic_for_a_seed() {
        let mut r = rule(FaultKind::Error);
        r.rate = Some(0.5);
        let run = |seed| {
            let mut s = FaultState::new(FaultConfig {
                seed,
                faults: vec![r.clone()],
            });
            (0..64)
                .map(|_| s.decide("GET", "/repos/a/b").fault.is_some())
                .collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        let hits = a.iter().filter(|h| **h).count();
        assert!((16..=48).contains(&hits), "{hits} of 64 at rate 0.5");
        assert_ne!(a, run(8));
    }

    #[test]
    fn latency_accumulates_and_method_and_prefix_filter() {
        let mut lat = rule(FaultKind::Latency);
        lat.delay_ms = Some(30);
        let mut drop = rule(FaultKind::Drop);
        drop.path = None;
        drop.prefix = Some("/repos/x/".into());
        drop.method = Some("HEAD".into());
        let mut s = FaultState::new(FaultConfig {
            seed: 1,
            faults: vec![lat, drop],
        });
        let d = s.decide("GET", "/repos/x/y");
        assert_eq!(d.delay_ms, 30);
        assert!(d.fault.is_none());
        let d = s.decide("HEAD", "/repos/x/y");
        assert_eq!(d.fault.unwrap().kind, FaultKind::Drop);
        assert_eq!(s.decide("GET", "/helm/x").delay_ms, 0);
    }

    #[test]
    fn validation_names_the_rule() {
        let mut bad = rule(FaultKind::Latency);
        bad.rate = Some(2.0);
        let cfg = FaultConfig {
            seed: 0,
            faults: vec![rule(FaultKind::Drop), bad],
        };
        let e = cfg.validate().unwrap_err();
        assert!(e.starts_with("faults[1]") && e.contains("rate"), "{e}");
        let mut both = rule(FaultKind::Drop);
        both.prefix = Some("/x".into());
        let e = FaultConfig {
            seed: 0,
            faults: vec![both],
        }
        .validate()
        .unwrap_err();
        assert!(e.contains("not both"), "{e}");
    }

    #[test]
    fn garbage_is_seeded_and_sized() {
        let a = garbage(7, 1001);
        assert_eq!(a.len(), 1001);
        assert_eq!(a, garbage(7, 1001));
        assert_ne!(a, garbage(8, 1001));
        assert!(std::str::from_utf8(&a).is_err(), "not text");
        let mut big = rule(FaultKind::Garbage);
        big.size_bytes = Some(1 << 30);
        let e = FaultConfig {
            seed: 0,
            faults: vec![big],
        }
        .validate()
        .unwrap_err();
        assert!(e.contains("sizeBytes"), "{e}");
    }

    #[test]
    fn parses_kebab_case_kinds() {
        let cfg: FaultConfig = serde_json::from_str(
            r#"{"seed":3,"faults":[{"prefix":"/v1-release/","kind":"too-many-requests","retryAfter":5}]}"#,
        )
        .unwrap();
        assert_eq!(cfg.faults[0].kind, FaultKind::TooManyRequests);
        assert_eq!(cfg.faults[0].retry_after, Some(5));
        assert!(
            serde_json::from_str::<FaultConfig>(r#"{"faults":[{"kind":"nope","path":"/"}]}"#)
                .is_err()
        );
    }
}
