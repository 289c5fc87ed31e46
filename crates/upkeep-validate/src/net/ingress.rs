//! Each Ingress, asked through the ingress controller as a browser would:
//! every rule's host and path, over https when the host is in `spec.tls`,
//! connecting to the controller's address while Host and SNI carry the
//! rule's host. A 5xx or no answer fails; the certificate's expiry is read
//! from what the server presented.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use upkeep_contract::{CheckStatus, ObjectRef};

use crate::{Checks, Objects, display, str_at};

pub(super) const CHECK: &str = "net/ingress";
pub(super) const TLS: &str = "net/tls-expiry";
/// Requests in flight at once.
const PARALLEL: usize = 8;

/// `HOST:PORT` of the ingress controller for one scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

impl Target {
    /// `HOST:PORT`, `IP:PORT` or `[IPv6]:PORT`.
    pub fn parse(text: &str) -> Result<Target, String> {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("{text:?} is not HOST:PORT"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{text:?}: {port:?} is not a port"))?;
        let bracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
        let host = bracketed.unwrap_or(host);
        // An IPv6 address needs its brackets, or the port could not be told apart.
        let v6_ok = !host.contains(':') || (bracketed.is_some() && host.parse::<IpAddr>().is_ok());
        if host.is_empty() || host.contains(['/', ' ', '@']) || !v6_ok {
            return Err(format!(
                "{text:?}: {host:?} is not a host name or IP address"
            ));
        }
        Ok(Target {
            host: host.to_string(),
            port,
        })
    }

    fn shown(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Clone)]
pub struct IngressOptions {
    /// `--ingress-http`, `--ingress-https`: where to connect for each scheme.
    pub http: Option<Target>,
    pub https: Option<Target>,
    /// `--ingress-address`: the controller's address, ports 80 and 443.
    pub address: Option<String>,
    /// PEM of an extra trusted CA (`--ca-file`), added to the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Warn when a certificate expires within this many days.
    pub warn_days: i64,
    /// Fail when it expires within this many days (0: only when expired).
    pub fail_days: i64,
    /// Per request, from connecting to the response head.
    pub timeout: Duration,
}

/// One request to make.
#[derive(Debug, Clone)]
struct Probe {
    ingress: usize,
    /// The rule's host; `None` for a rule (or default backend) without one.
    host: Option<String>,
    path: String,
    tls: bool,
    target: Target,
}

/// What came back.
#[derive(Debug, Clone)]
enum Answer {
    Status {
        code: u16,
        /// notAfter (Unix seconds) and subject of the presented leaf certificate.
        cert: Option<(i64, String)>,
    },
    Error {
        message: String,
        tls: bool,
    },
}

/// Checks every Ingress of `objects`, adding `net/ingress` and `net/tls-expiry` per Ingress.
pub async fn check(objects: &Objects, opts: &IngressOptions, out: &mut Checks) {
    let ingresses: Vec<&Value> = objects.of_kind("networking.k8s.io", "Ingress").collect();
    if !objects.served("networking.k8s.io", "Ingress") {
        out.not_run(CHECK, "networking.k8s.io/v1 Ingresses are not served");
        return;
    }
    if ingresses.is_empty() {
        out.not_run(CHECK, "no Ingress in the selection");
        return;
    }
    let mut probes = Vec::new();
    for (i, ing) in ingresses.iter().enumerate() {
        match probes_of(i, ing, opts) {
            Ok(p) => probes.extend(p),
            Err(why) => out.not_run(CHECK, &format!("Ingress {}: {why}", display(ing))),
        }
    }
    let started = Instant::now();
    let answers = ask_all(&probes, opts).await;
    let mut by_ingress: BTreeMap<usize, Vec<(&Probe, &Answer)>> = BTreeMap::new();
    for (p, a) in probes.iter().zip(&answers) {
        by_ingress.entry(p.ingress).or_default().push((p, a));
    }
    for (i, results) in by_ingress {
        let ing = ingresses[i];
        report(ing, &results, opts, started, out);
    }
}

fn report(
    ing: &Value,
    results: &[(&Probe, &Answer)],
    opts: &IngressOptions,
    started: Instant,
    out: &mut Checks,
) {
    let who = format!("Ingress {}", display(ing));
    let refs = vec![ObjectRef::of(ing)];
    let mut bad = Vec::new();
    let mut good = Vec::new();
    for (p, a) in results {
        let url = format!(
            "{}://{}{}",
            if p.tls { "https" } else { "http" },
            p.host.as_deref().unwrap_or(&p.target.host),
            p.path
        );
        match a {
            Answer::Status { code, .. } if *code >= 500 => {
                bad.push(format!("{url} answered {code} (via {})", p.target.shown()))
            }
            Answer::Status { code, .. } => good.push(format!("{url} answered {code}")),
            Answer::Error { message, .. } => {
                bad.push(format!("{url} via {}: {message}", p.target.shown()))
            }
        }
    }
    if bad.is_empty() {
        out.push(
            CHECK,
            CheckStatus::Pass,
            &format!("{who}: {}", good.join("; ")),
            refs.clone(),
            started,
        );
    } else {
        out.push(
            CHECK,
            CheckStatus::Fail,
            &format!("{who}: {}", bad.join("; ")),
            refs.clone(),
            started,
        );
    }
    // One expiry verdict per TLS host, from its first answer.
    let mut hosts: BTreeMap<String, &Answer> = BTreeMap::new();
    for (p, a) in results.iter().filter(|(p, _)| p.tls) {
        hosts
            .entry(p.host.clone().unwrap_or_else(|| p.target.host.clone()))
            .or_insert(a);
    }
    if hosts.is_empty() {
        return;
    }
    let now = jiff::Timestamp::now().as_second();
    let mut worst = CheckStatus::Pass;
    let mut lines = Vec::new();
    for (host, a) in hosts {
        let (status, line) = match a {
            Answer::Status {
                cert: Some((not_after, subject)),
                ..
            } => expiry(&host, *not_after, subject, now, opts),
            Answer::Status { cert: None, .. } => (
                CheckStatus::Fail,
                format!("{host}: the server presented no certificate"),
            ),
            Answer::Error { message, tls: true } => (
                CheckStatus::Fail,
                format!("{host}: the certificate was refused: {message}"),
            ),
            Answer::Error {
                message,
                tls: false,
            } => (
                CheckStatus::Fail,
                format!("{host}: no TLS connection: {message}"),
            ),
        };
        worst = worst.max(status);
        lines.push(line);
    }
    out.push(
        TLS,
        worst,
        &format!("{who}: {}", lines.join("; ")),
        refs,
        started,
    );
}

/// The verdict on a certificate valid until `not_after` (Unix seconds).
fn expiry(
    host: &str,
    not_after: i64,
    subject: &str,
    now: i64,
    opts: &IngressOptions,
) -> (CheckStatus, String) {
    let left = not_after - now;
    let days = left.div_euclid(86_400);
    let when = jiff::Timestamp::from_second(not_after)
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|_| not_after.to_string());
    if left <= 0 {
        return (
            CheckStatus::Fail,
            format!("{host}: certificate ({subject}) expired {when}"),
        );
    }
    let text = format!("{host}: certificate ({subject}) expires {when}, in {days} days");
    if opts.fail_days > 0 && left < opts.fail_days * 86_400 {
        (
            CheckStatus::Fail,
            format!("{text}, within --cert-fail-days {}", opts.fail_days),
        )
    } else if left < opts.warn_days * 86_400 {
        (
            CheckStatus::Warn,
            format!("{text}, within --cert-warn-days {}", opts.warn_days),
        )
    } else {
        (CheckStatus::Pass, text)
    }
}

/// Does `host` match a `spec.tls[].hosts` entry (which may be a `*.` wildcard)?
fn tls_covers(ing: &Value, host: Option<&str>) -> bool {
    let Some(host) = host else {
        return false;
    };
    ing.pointer("/spec/tls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("hosts").and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .any(|h| {
            h.eq_ignore_ascii_case(host)
                || h.strip_prefix("*.").is_some_and(|suffix| {
                    host.split_once('.')
                        .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(suffix))
                })
        })
}

/// The part of a path a request can use: nginx's regex paths
/// (`/api(/|$)(.*)`) are cut at the first metacharacter.
fn request_path(path: &str) -> String {
    let cut = path
        .find(['(', ')', '*', '$', '^', '[', '|', '?', '+', '\\', '{'])
        .unwrap_or(path.len());
    let p = &path[..cut];
    if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    }
}

/// A wildcard host gets a made-up first label: a request needs a real name.
fn request_host(host: &str) -> String {
    match host.strip_prefix("*.") {
        Some(rest) => format!("upkeep-probe.{rest}"),
        None => host.to_string(),
    }
}

fn target_for(ing: &Value, tls: bool, opts: &IngressOptions) -> Option<Target> {
    let explicit = if tls { &opts.https } else { &opts.http };
    if let Some(t) = explicit {
        return Some(t.clone());
    }
    let port = if tls { 443 } else { 80 };
    let host = opts.address.clone().or_else(|| {
        let lb = ing.pointer("/status/loadBalancer/ingress/0")?;
        str_at(lb, "/ip")
            .or_else(|| str_at(lb, "/hostname"))
            .map(str::to_string)
    })?;
    Some(Target { host, port })
}

fn probes_of(index: usize, ing: &Value, opts: &IngressOptions) -> Result<Vec<Probe>, String> {
    let mut wanted: Vec<(Option<String>, String)> = Vec::new();
    let rules = ing
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for rule in &rules {
        let host = str_at(rule, "/host").map(request_host);
        let paths: Vec<String> = rule
            .pointer("/http/paths")
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .map(|p| request_path(str_at(p, "/path").unwrap_or("/")))
                    .collect()
            })
            .unwrap_or_default();
        let paths = if paths.is_empty() {
            vec!["/".to_string()]
        } else {
            paths
        };
        for path in paths {
            if !wanted.contains(&(host.clone(), path.clone())) {
                wanted.push((host.clone(), path));
            }
        }
    }
    if wanted.is_empty() {
        wanted.push((None, "/".to_string()));
    }
    let mut probes = Vec::new();
    for (host, path) in wanted {
        let tls = tls_covers(ing, host.as_deref())
            || host
                .as_deref()
                .is_some_and(|h| h.starts_with("upkeep-probe.") && tls_covers_wildcard(ing, h));
        let target = target_for(ing, tls, opts).ok_or_else(|| {
            format!(
                "no address to reach the ingress controller: the Ingress has no status.loadBalancer address; give --ingress-address or --ingress-{}",
                if tls { "https" } else { "http" }
            )
        })?;
        probes.push(Probe {
            ingress: index,
            host,
            path,
            tls,
            target,
        });
    }
    Ok(probes)
}

fn tls_covers_wildcard(ing: &Value, probe_host: &str) -> bool {
    probe_host
        .strip_prefix("upkeep-probe.")
        .is_some_and(|rest| tls_covers(ing, Some(&format!("x.{rest}"))))
}

async fn resolve(target: &Target) -> Result<SocketAddr, String> {
    if let Ok(ip) = target.host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, target.port));
    }
    tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", target.host))?
        .next()
        .ok_or_else(|| format!("{} resolves to no address", target.host))
}

/// One client per controller address, shared by its requests. Not
/// upkeep-http's client: that one is for upstreams (retries, cache, 2xx
/// only), while a probe must see a 5xx as it is, connect to an address of
/// our choosing under the rule's host name (`resolve`), and read the peer
/// certificate (`tls_info`); timeouts and the no-body rule are the same.
fn client(
    addr: SocketAddr,
    hosts: &[&str],
    opts: &IngressOptions,
) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(opts.timeout)
        .timeout(opts.timeout)
        .user_agent(concat!("upkeep-validate-net/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .tls_info(true);
    for h in hosts {
        b = b.resolve(h, addr);
    }
    if let Some(pem) = &opts.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| e.to_string())?;
        b = b.tls_certs_merge(certs);
    }
    b.build().map_err(|e| chain(&e))
}

async fn ask_all(probes: &[Probe], opts: &IngressOptions) -> Vec<Answer> {
    // Resolve each controller address once, then one client per address.
    let mut addrs: BTreeMap<String, Result<SocketAddr, String>> = BTreeMap::new();
    for p in probes {
        let key = p.target.shown();
        if let std::collections::btree_map::Entry::Vacant(e) = addrs.entry(key) {
            e.insert(resolve(&p.target).await);
        }
    }
    let mut clients: BTreeMap<SocketAddr, Result<reqwest::Client, String>> = BTreeMap::new();
    for addr in addrs.values().flatten() {
        if clients.contains_key(addr) {
            continue;
        }
        let hosts: Vec<&str> = probes
            .iter()
            .filter(|p| {
                addrs
                    .get(&p.target.shown())
                    .is_some_and(|a| a.as_ref() == Ok(addr))
            })
            .filter_map(|p| p.host.as_deref())
            .collect();
        clients.insert(*addr, client(*addr, &hosts, opts));
    }
    let work = probes.iter().map(|p| {
        let addr = addrs.get(&p.target.shown()).cloned();
        let client = match &addr {
            Some(Ok(a)) => clients.get(a).cloned(),
            _ => None,
        };
        async move {
            let addr = match addr {
                Some(Ok(a)) => a,
                Some(Err(e)) => {
                    return Answer::Error {
                        message: e,
                        tls: false,
                    };
                }
                None => return unreachable_answer(),
            };
            match client {
                Some(Ok(c)) => ask(&c, p, addr).await,
                Some(Err(e)) => Answer::Error {
                    message: format!("cannot build the HTTP client: {e}"),
                    tls: false,
                },
                None => unreachable_answer(),
            }
        }
    });
    futures_util::stream::iter(work)
        .buffered(PARALLEL)
        .collect()
        .await
}

fn unreachable_answer() -> Answer {
    Answer::Error {
        message: "no address resolved".to_string(),
        tls: false,
    }
}

async fn ask(client: &reqwest::Client, p: &Probe, addr: SocketAddr) -> Answer {
    let scheme = if p.tls { "https" } else { "http" };
    let host = match &p.host {
        Some(h) => h.clone(),
        None if addr.is_ipv6() => format!("[{}]", addr.ip()),
        None => addr.ip().to_string(),
    };
    let url = format!("{scheme}://{host}:{}{}", addr.port(), p.path);
    // Only the status line and headers are read: the body is dropped unread.
    match client.get(&url).send().await {
        Ok(resp) => {
            let cert = resp
                .extensions()
                .get::<reqwest::tls::TlsInfo>()
                .and_then(|i| i.peer_certificate())
                .and_then(leaf_expiry);
            Answer::Status {
                code: resp.status().as_u16(),
                cert,
            }
        }
        Err(e) => {
            let message = chain(&e);
            let tls = p.tls && message.to_ascii_lowercase().contains("certificate");
            Answer::Error { message, tls }
        }
    }
}

/// notAfter and subject of a DER certificate.
fn leaf_expiry(der: &[u8]) -> Option<(i64, String)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some((
        cert.validity().not_after.timestamp(),
        cert.subject().to_string(),
    ))
}

/// An error and its sources, the innermost saying most ("invalid peer
/// certificate: Expired" under "error sending request").
fn chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    // reqwest's outer text repeats the URL, which the check already names.
    if parts.len() > 1 {
        parts.remove(0);
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts() -> IngressOptions {
        IngressOptions {
            http: None,
            https: None,
            address: None,
            ca_pem: None,
            warn_days: 14,
            fail_days: 0,
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn targets_parse_with_a_port_and_refuse_the_rest() {
        assert_eq!(
            Target::parse("127.0.0.1:8443").unwrap(),
            Target {
                host: "127.0.0.1".into(),
                port: 8443
            }
        );
        assert_eq!(Target::parse("[::1]:80").unwrap().host, "::1");
        assert_eq!(Target::parse("lb.lan:80").unwrap().host, "lb.lan");
        for bad in [
            "127.0.0.1",
            "host:",
            ":80",
            "h:0",
            "h:99999",
            "a/b:80",
            "::1:80",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_rule_host_and_path_is_asked_over_the_scheme_its_tls_says() {
        let ing = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "namespace": "apps"},
            "spec": {"rules": [
                {"host": "a.lan", "http": {"paths": [{"path": "/"}, {"path": "/api(/|$)(.*)"}]}},
                {"host": "b.lan"},
                {"host": "c.wild.lan", "http": {"paths": [{"path": "/x"}]}}],
                "tls": [{"hosts": ["a.lan", "*.wild.lan"]}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.168.1.200"}]}}});
        let p = probes_of(0, &ing, &opts()).unwrap();
        let got: Vec<(String, String, bool, u16)> = p
            .iter()
            .map(|p| {
                (
                    p.host.clone().unwrap(),
                    p.path.clone(),
                    p.tls,
                    p.target.port,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a.lan".into(), "/".into(), true, 443),
                ("a.lan".into(), "/api".into(), true, 443),
                ("b.lan".into(), "/".into(), false, 80),
                ("c.wild.lan".into(), "/x".into(), true, 443),
            ]
        );
        assert!(p.iter().all(|p| p.target.host == "192.168.1.200"));
        // The flags win over the Ingress's status.
        let mut o = opts();
        o.http = Some(Target::parse("127.0.0.1:8080").unwrap());
        o.address = Some("10.0.0.1".into());
        let p = probes_of(0, &ing, &o).unwrap();
        assert_eq!(p[2].target.shown(), "127.0.0.1:8080");
        assert_eq!(p[0].target.shown(), "10.0.0.1:443");
    }

    #[test]
    fn an_ingress_without_an_address_cannot_be_asked() {
        let ing = json!({"spec": {"rules": [{"host": "a.lan"}]}});
        let e = probes_of(0, &ing, &opts()).unwrap_err();
        assert!(e.contains("--ingress-address"), "{e}");
    }

    #[test]
    fn wildcard_hosts_get_a_name_a_request_can_use() {
        let ing = json!({"spec": {"rules": [{"host": "*.apps.lan"}], "tls": [{"hosts": ["*.apps.lan"]}]},
            "status": {"loadBalancer": {"ingress": [{"hostname": "lb.lan"}]}}});
        let p = probes_of(0, &ing, &opts()).unwrap();
        assert_eq!(p[0].host.as_deref(), Some("upkeep-probe.apps.lan"));
        assert!(p[0].tls);
        assert_eq!(p[0].target.host, "lb.lan");
    }

    #[test]
    fn expiry_thresholds() {
        let day = 86_400;
        let now = 1_800_000_000;
        let o = opts();
        assert_eq!(
            expiry("h", now + 90 * day, "CN=h", now, &o).0,
            CheckStatus::Pass
        );
        let (s, text) = expiry("h", now + 3 * day, "CN=h", now, &o);
        assert_eq!(s, CheckStatus::Warn);
        assert!(
            text.contains("in 3 days") && text.contains("--cert-warn-days 14"),
            "{text}"
        );
        assert_eq!(expiry("h", now - 1, "CN=h", now, &o).0, CheckStatus::Fail);
        let strict = IngressOptions {
            fail_days: 7,
            ..opts()
        };
        let (s, text) = expiry("h", now + 3 * day, "CN=h", now, &strict);
        assert_eq!(s, CheckStatus::Fail);
        assert!(text.contains("--cert-fail-days 7"), "{text}");
    }
}
