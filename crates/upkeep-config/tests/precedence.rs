//! flag > environment > file > default, and errors that name the key.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use upkeep_config::{
    LonghornSnapshot, Overrides, PolicyComponent, PolicyUpdate, TokenSource, load, resolve,
};

struct FakeEnv(HashMap<&'static str, String>);

impl upkeep_config::Env for FakeEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

fn env(pairs: &[(&'static str, &str)]) -> FakeEnv {
    FakeEnv(pairs.iter().map(|(k, v)| (*k, v.to_string())).collect())
}

fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let p = dir.path().join("upkeep.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

const FILE: &str = "\
apiVersion: upkeep.dev/v1alpha1
kind: Config
upstreams:
  github:
    url: http://file.example/github/
  k3sChannels:
    url: http://file.example/channels
  helmMirrors:
    https://charts.longhorn.io: http://127.0.0.1:9/helm/longhorn
http:
  timeout: 45s
  retries: 5
  maxBodySize: 8MiB
cache:
  dir: /file/cache
";

#[test]
fn precedence_is_flag_env_file_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, FILE);
    let e = env(&[("HOME", "/home/op")]);
    let (found, file) = load(Some(&path), &e).unwrap();
    assert_eq!(found.as_deref(), Some(path.as_path()));

    // file over default
    let s = resolve(found.clone(), &file, &Overrides::default(), &e).unwrap();
    assert_eq!(s.github_api, "http://file.example/github");
    assert_eq!(s.timeout, Duration::from_secs(45));
    assert_eq!(s.connect_timeout, Duration::from_secs(10), "default");
    assert_eq!(s.retries, 5);
    assert_eq!(s.max_body_bytes, 8 << 20);
    assert_eq!(s.cache_dir, PathBuf::from("/file/cache"));
    assert_eq!(s.helm_mirrors.len(), 1);
    assert!(!s.offline);

    // environment over file
    let e = env(&[
        ("HOME", "/home/op"),
        ("UPKEEP_GITHUB_API", "http://env.example"),
        ("UPKEEP_HTTP_TIMEOUT", "5s"),
        ("UPKEEP_OFFLINE", "true"),
        ("GITHUB_TOKEN", "ghp_secret"),
    ]);
    let s = resolve(found.clone(), &file, &Overrides::default(), &e).unwrap();
    assert_eq!(s.github_api, "http://env.example");
    assert_eq!(s.timeout, Duration::from_secs(5));
    assert!(s.offline);
    assert_eq!(s.github_token, TokenSource::Env("GITHUB_TOKEN".into()));
    assert!(
        !format!("{s:?}").contains("ghp_secret"),
        "settings never hold the token"
    );

    // flag over environment
    let flags = Overrides {
        github_api: Some("http://flag.example/".into()),
        cache_dir: Some("/flag/cache".into()),
        ..Default::default()
    };
    let s = resolve(found, &file, &flags, &e).unwrap();
    assert_eq!(s.github_api, "http://flag.example");
    assert_eq!(s.cache_dir, PathBuf::from("/flag/cache"));
}

#[test]
fn environment_beats_file_for_offline_and_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "cache:\n  offline: true\nupstreams:\n  github:\n    tokenFile: /file/token\n",
    );
    let e = env(&[("HOME", "/x")]);
    let (found, file) = load(Some(&path), &e).unwrap();
    let s = resolve(found.clone(), &file, &Overrides::default(), &e).unwrap();
    assert!(s.offline);
    assert_eq!(s.github_token, TokenSource::File("/file/token".into()));
    let e = env(&[
        ("HOME", "/x"),
        ("UPKEEP_OFFLINE", "false"),
        ("GITHUB_TOKEN", "t"),
    ]);
    let s = resolve(found.clone(), &file, &Overrides::default(), &e).unwrap();
    assert!(!s.offline, "UPKEEP_OFFLINE=false beats cache.offline: true");
    assert_eq!(s.github_token, TokenSource::Env("GITHUB_TOKEN".into()));
    let flags = Overrides {
        offline: true,
        github_token_file: Some("/flag/token".into()),
        ..Default::default()
    };
    let s = resolve(found, &file, &flags, &e).unwrap();
    assert!(s.offline);
    assert_eq!(s.github_token, TokenSource::File("/flag/token".into()));
}

#[test]
fn no_home_still_resolves() {
    let s = resolve(None, &Default::default(), &Overrides::default(), &env(&[])).unwrap();
    assert!(s.cache_dir.ends_with("upkeep-cache"), "{:?}", s.cache_dir);
}

#[test]
fn defaults_without_a_file() {
    let home = tempfile::tempdir().unwrap();
    let e = env(&[("HOME", home.path().to_str().unwrap())]);
    let (found, file) = load(None, &e).unwrap();
    assert!(found.is_none());
    let s = resolve(found, &file, &Overrides::default(), &e).unwrap();
    assert_eq!(s.github_api, upkeep_config::DEFAULT_GITHUB_API);
    assert_eq!(s.channels_url, upkeep_config::DEFAULT_CHANNELS_URL);
    assert_eq!(s.cache_dir, home.path().join(".cache/upkeep"));
    assert_eq!(s.github_token, TokenSource::None);
}

#[test]
fn xdg_config_file_is_found() {
    let cfg = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(cfg.path().join("upkeep")).unwrap();
    std::fs::write(
        cfg.path().join("upkeep/upkeep.yaml"),
        "cache:\n  offline: true\n",
    )
    .unwrap();
    let e = env(&[
        ("XDG_CONFIG_HOME", cfg.path().to_str().unwrap()),
        ("HOME", "/x"),
    ]);
    let (found, file) = load(None, &e).unwrap();
    assert!(found.is_some());
    assert!(
        resolve(found, &file, &Overrides::default(), &e)
            .unwrap()
            .offline
    );
}

#[test]
fn errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let e = env(&[("HOME", "/x")]);
    let cases = [
        (
            "http:\n  timeout: ten\n",
            "key `http.timeout`: invalid duration \"ten\"",
        ),
        ("http:\n  retries: many\n", "key `http.retries`"),
        ("htp:\n  timeout: 3s\n", "unknown field `htp`"),
        (
            "upstreams:\n  github:\n    url: ftp://x\n",
            "key `upstreams.github.url`: \"ftp://x\" is not an http(s) URL",
        ),
        (
            "apiVersion: upkeep.dev/v9\n",
            "key `apiVersion`: unknown apiVersion",
        ),
        ("http: [1, 2\n", "invalid YAML"),
        (
            "http:\n  retries: 99\n",
            "key `http.retries`: 99 is more than",
        ),
    ];
    for (text, want) in cases {
        let path = write(&dir, text);
        let err = load(Some(&path), &e)
            .and_then(|(p, f)| resolve(p, &f, &Overrides::default(), &e).map(|_| ()))
            .expect_err(text);
        let line = err.to_string();
        assert!(line.contains(want), "{text:?}: {line}");
        assert!(!line.contains('\n'), "one line: {line}");
    }
    // explicit file that does not exist
    let err = load(Some(&dir.path().join("nope.yaml")), &e).unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
    // bad environment values name the variable
    let bad = env(&[("HOME", "/x"), ("UPKEEP_OFFLINE", "maybe")]);
    let err = resolve(None, &Default::default(), &Overrides::default(), &bad).unwrap_err();
    assert!(
        err.to_string().starts_with("environment UPKEEP_OFFLINE"),
        "{err}"
    );
}

#[test]
fn known_bad_releases_are_read_with_their_origin() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "releases:\n  knownBad:\n    k3s: [v1.31.5+k3s1]\n    longhorn: [v1.9.1, v1.10.0]\n",
    );
    let e = env(&[("HOME", "/home/op")]);
    let (found, file) = load(Some(&path), &e).unwrap();
    let s = resolve(found, &file, &Overrides::default(), &e).unwrap();
    let got: Vec<(&str, &str)> = s
        .known_bad
        .iter()
        .map(|k| (k.component.as_str(), k.version.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("k3s", "v1.31.5+k3s1"),
            ("longhorn", "v1.9.1"),
            ("longhorn", "v1.10.0")
        ]
    );
    assert!(
        s.known_bad[2]
            .origin
            .ends_with("key `releases.knownBad.longhorn[1]`"),
        "{}",
        s.known_bad[2].origin
    );

    let path = write(&dir, "releases:\n  knownBad:\n    traefik: [v3.0.0]\n");
    let (found, file) = load(Some(&path), &e).unwrap();
    let err = resolve(found, &file, &Overrides::default(), &e).unwrap_err();
    assert!(
        err.to_string().contains("releases.knownBad.traefik")
            && err
                .to_string()
                .contains("expected one of k3s, flux, longhorn"),
        "{err}"
    );
}

#[test]
fn run_sections_are_read_and_their_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let e = env(&[("HOME", "/home/op")]);
    let path = write(
        &dir,
        "policy:\n  maxUpdate: {k3s: minor, chart: major}\n  minReleaseAgeDays: 3\n  pins: {podinfo: \"6.x\"}\n\
         windows:\n  - {days: [sat, sun], start: \"02:00\", end: \"05:00\", timeZone: Europe/Berlin}\n\
         snapshot:\n  excludeSecrets: true\n  longhorn: snapshot\n  keep: 5\n\
         run:\n  validators: [flux, apps, storage]\n  stepTimeout: 20m\n",
    );
    let (found, file) = load(Some(&path), &e).unwrap();
    let s = resolve(found, &file, &Overrides::default(), &e).unwrap();
    let max = s.policy.max_update.as_ref().unwrap();
    assert_eq!(max.get(&PolicyComponent::K3s), Some(&PolicyUpdate::Minor));
    assert_eq!(s.policy.pins.as_ref().unwrap()["podinfo"], "6.x");
    assert_eq!(s.windows.len(), 1);
    assert!(
        s.windows[0].0.ends_with("key `windows[0]`"),
        "{}",
        s.windows[0].0
    );
    assert_eq!(s.snapshot.longhorn, Some(LonghornSnapshot::Snapshot));
    assert_eq!(s.run.validators.as_ref().unwrap().len(), 3);
    assert_eq!(s.step_timeout, std::time::Duration::from_secs(1200));
    assert!(
        s.key("policy.pins.podinfo")
            .ends_with("key `policy.pins.podinfo`")
    );

    for (text, want) in [
        (
            "policy:\n  maxUpdate: {traefik: minor}\n",
            "policy.maxUpdate",
        ),
        ("policy:\n  maxUpdate: {k3s: huge}\n", "policy.maxUpdate"),
        ("run:\n  stepTimeout: soon\n", "key `run.stepTimeout`"),
        ("run:\n  validators: [dns]\n", "run.validators"),
        ("snapshot:\n  longhorn: always\n", "snapshot.longhorn"),
        ("windows:\n  - {days: [sat], start: \"02:00\"}\n", "windows"),
    ] {
        let path = write(&dir, text);
        let err = load(Some(&path), &e)
            .and_then(|(p, f)| resolve(p, &f, &Overrides::default(), &e).map(|_| ()))
            .expect_err(text);
        let line = err.to_string();
        assert!(line.contains(want), "{text:?}: {line}");
        assert!(!line.contains('\n'), "one line: {line}");
    }
}
