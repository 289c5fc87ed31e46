//! Masks secrets in text bound for logs and error messages.
//!
//! Secrets are kept in a process-wide registry because log lines and errors
//! are produced far from where a token was loaded: the HTTP layer registers
//! every token when it is loaded, and the CLI layer passes every log line and
//! error message through [`redact`] on its way to stderr.

use std::sync::{Arc, RwLock};

const MASK: &str = "***";

/// Query parameters whose values are credentials or signatures. Compared
/// case-insensitively: signed URLs from object stores (GitHub release assets
/// redirect to such URLs) spell them in mixed case.
const SENSITIVE_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "sig",
    "signature",
    "password",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
];

static SECRETS: RwLock<Vec<Arc<str>>> = RwLock::new(Vec::new());

/// Remember a secret so that [`redact`] masks it from now on.
pub fn register_secret(secret: &str) {
    if secret.is_empty() {
        return;
    }
    let secret: Arc<str> = Arc::from(secret);
    // A poisoned lock only means another thread panicked while holding it;
    // the Vec is still valid and dropping secrets would leak them.
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|s| **s == *secret) {
        secrets.push(secret);
        // Longest first, so a secret that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Mask secrets in `text`: every registered token value, the userinfo of any
/// URL (`https://user:pass@host` → `https://***@host`), and the values of
/// query parameters that carry credentials (`token`, `access_token`, `sig`,
/// `password`, signed-URL signatures).
///
/// Every error message and log line of this crate passes through here; the
/// binaries' log layer should too.
pub fn redact(text: &str) -> String {
    let mut out = text.to_owned();
    {
        let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
        for secret in secrets.iter() {
            if out.contains(&**secret) {
                out = out.replace(&**secret, MASK);
            }
        }
    }
    let out = mask_userinfo(&out);
    mask_query_params(&out)
}

/// Characters that end a URL embedded in prose, JSON or a log line.
fn ends_url(c: u8) -> bool {
    c.is_ascii_whitespace() || matches!(c, b'"' | b'\'' | b'<' | b'>' | b'`' | b')' | b']' | b'}')
}

fn mask_userinfo(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut search = 0;
    while let Some(rel) = text[search..].find("://") {
        let authority_start = search + rel + 3;
        let mut end = authority_start;
        while end < bytes.len()
            && !ends_url(bytes[end])
            && !matches!(bytes[end], b'/' | b'?' | b'#')
        {
            end += 1;
        }
        if let Some(at) = text[authority_start..end].rfind('@') {
            let at = authority_start + at;
            out.push_str(&text[copied..authority_start]);
            out.push_str(MASK);
            copied = at;
        }
        search = end.max(authority_start);
    }
    out.push_str(&text[copied..]);
    out
}

fn mask_query_params(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if matches!(bytes[i], b'?' | b'&' | b';') {
            let name_start = i + 1;
            let matched = SENSITIVE_PARAMS.iter().find(|name| {
                let end = name_start + name.len();
                end < bytes.len()
                    && bytes[end] == b'='
                    && bytes[name_start..end].eq_ignore_ascii_case(name.as_bytes())
            });
            if let Some(name) = matched {
                let value_start = name_start + name.len() + 1;
                let mut value_end = value_start;
                while value_end < bytes.len()
                    && !ends_url(bytes[value_end])
                    && !matches!(bytes[value_end], b'&' | b'#' | b';')
                {
                    value_end += 1;
                }
                if value_end > value_start {
                    out.push_str(&text[copied..value_start]);
                    out.push_str(MASK);
                    copied = value_end;
                }
                i = value_end;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_are_masked_everywhere() {
        let secret: Arc<str> = Arc::from("ghp_redactUnitTestSecret123");
        register_secret(&secret);
        let line = "sent ghp_redactUnitTestSecret123 twice: ghp_redactUnitTestSecret123.";
        assert_eq!(redact(line), "sent *** twice: ***.");
    }

    #[test]
    fn longer_secret_containing_a_shorter_one_is_masked_whole() {
        register_secret("abcUNITxyz");
        register_secret("abcUNITxyz-and-more");
        assert_eq!(redact("v=abcUNITxyz-and-more"), "v=***");
    }

    #[test]
    fn url_userinfo_is_masked() {
        assert_eq!(
            redact("fetch https://bob:hunter2@registry.example:5000/v2/ failed"),
            "fetch https://***@registry.example:5000/v2/ failed"
        );
        // An `@` in the path is not userinfo.
        assert_eq!(
            redact("https://example.com/users/@me"),
            "https://example.com/users/@me"
        );
    }

    #[test]
    fn sensitive_query_params_are_masked_case_insensitively() {
        assert_eq!(
            redact("GET https://h/x?a=1&Access_Token=abc&b=2#frag"),
            "GET https://h/x?a=1&Access_Token=***&b=2#frag"
        );
        assert_eq!(
            redact("url=\"https://h/o?X-Amz-Signature=deadbeef\""),
            "url=\"https://h/o?X-Amz-Signature=***\""
        );
        assert_eq!(
            redact("https://h/?sig=s&password=p"),
            "https://h/?sig=***&password=***"
        );
        // A parameter that merely ends in a sensitive name is left alone.
        assert_eq!(redact("https://h/?mytoken=v"), "https://h/?mytoken=v");
    }

    #[test]
    fn text_without_secrets_is_unchanged() {
        let text = "plain text, a URL https://example.com/a?b=c and unicode ✓";
        assert_eq!(redact(text), text);
    }
}
