//! Loading a token from the environment. Its own test binary, because it sets
//! process environment variables, which must not race with other tests.

use upkeep_http::{AuthScheme, BaseUrl, Token, TokenError};

#[test]
fn token_from_environment() {
    let scope = BaseUrl::parse("https://api.github.com").unwrap();
    // SAFETY: the only test in this binary, so no other thread reads the
    // environment concurrently.
    unsafe {
        std::env::set_var("UPKEEP_HTTP_TEST_TOKEN", "  ghp_fromEnvTest55\n");
        std::env::set_var("UPKEEP_HTTP_TEST_EMPTY", "");
        std::env::remove_var("UPKEEP_HTTP_TEST_UNSET");
        std::env::set_var("UPKEEP_HTTP_TEST_BAD", "two words");
    }
    let token = Token::from_env("UPKEEP_HTTP_TEST_TOKEN", AuthScheme::GitHub, &scope)
        .unwrap()
        .unwrap();
    assert_eq!(token.to_string(), "***");
    assert_eq!(upkeep_http::redact("x ghp_fromEnvTest55 y"), "x *** y");

    assert!(
        Token::from_env("UPKEEP_HTTP_TEST_EMPTY", AuthScheme::GitHub, &scope)
            .unwrap()
            .is_none()
    );
    assert!(
        Token::from_env("UPKEEP_HTTP_TEST_UNSET", AuthScheme::GitHub, &scope)
            .unwrap()
            .is_none()
    );

    let err = Token::from_env("UPKEEP_HTTP_TEST_BAD", AuthScheme::GitHub, &scope).unwrap_err();
    assert!(matches!(err, TokenError::Malformed { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("$UPKEEP_HTTP_TEST_BAD"), "{msg}");
    assert!(!msg.contains("two words"), "{msg}");
}
