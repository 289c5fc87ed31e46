//! `validate-net`: does the cluster's network still work?
//!
//! - `net/service-endpoints`: every Service with a selector has a ready
//!   endpoint (EndpointSlices, or Endpoints where slices are not served);
//! - `net/ingress`, `net/tls-expiry`: every Ingress answers through the
//!   ingress controller with the right Host and SNI, not with a 5xx, and its
//!   certificate is not about to expire ([`ingress`]);
//! - `net/dns-resolver`: names given with `--dns-name` resolve through the
//!   `--resolver` this machine uses ([`dns`]);
//! - `net/dns-cluster`, `net/node-connectivity`, `net/probe-cleanup`: from
//!   short-lived pods, the cluster DNS answers and pods on each node reach
//!   pods on every other node, and nothing is left behind ([`probe`]).

pub mod dns;
pub mod ingress;
pub mod probe;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use upkeep_contract::{CheckStatus, ObjectRef};
use upkeep_kube::Cluster;

use crate::{Checks, Objects, ValidateError, display, str_at};

const ENDPOINTS: &str = "net/service-endpoints";
const RESOLVER: &str = "net/dns-resolver";
/// How long one DNS question to `--resolver` may take.
const DNS_TIMEOUT: Duration = Duration::from_secs(3);

/// What `validate-net` lists.
pub const KINDS: &[(&str, &str)] = &[
    ("", "Service"),
    ("discovery.k8s.io", "EndpointSlice"),
    ("", "Endpoints"),
    ("networking.k8s.io", "Ingress"),
];

/// `validate-net`'s own flags (the shared ones are [`crate::cli::ValidateArgs`]).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Network checks")]
pub struct NetArgs {
    /// The ingress controller's address (IP or name), http on port 80 and https on 443.
    /// Default: each Ingress's status.loadBalancer address.
    #[arg(long, value_name = "HOST")]
    pub ingress_address: Option<String>,
    /// Where to send the Ingresses' http requests (a port-forward, a NodePort); beats
    /// --ingress-address.
    #[arg(long, value_name = "HOST:PORT")]
    pub ingress_http: Option<String>,
    /// Where to send the Ingresses' https requests; beats --ingress-address.
    #[arg(long, value_name = "HOST:PORT")]
    pub ingress_https: Option<String>,
    /// A CA certificate (PEM) to trust besides the system's, for the Ingresses' certificates.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Warn when an Ingress certificate expires within this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 14)]
    pub cert_warn_days: u32,
    /// Fail when an Ingress certificate expires within this many days (0: only once expired).
    #[arg(long, value_name = "DAYS", default_value_t = 0)]
    pub cert_fail_days: u32,
    /// How long one request to the ingress controller may take.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub request_timeout: String,
    /// A DNS server this machine uses (IP or IP:PORT, port 53 by default): every --dns-name
    /// must resolve through it.
    #[arg(long, value_name = "IP[:PORT]")]
    pub resolver: Option<String>,
    /// A name that must resolve: from a pod through the cluster DNS, and through
    /// --resolver when given (repeatable).
    #[arg(long = "dns-name", value_name = "NAME")]
    pub dns_names: Vec<String>,
    /// The cluster's DNS domain, for the API server's Service name.
    #[arg(long, value_name = "DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Skip the checks that run pods in the cluster (cluster DNS, node-to-node).
    #[arg(long)]
    pub no_probes: bool,
}

/// [`NetArgs`] checked and read.
#[derive(Debug, Clone)]
pub struct NetOptions {
    pub ingress: ingress::IngressOptions,
    pub resolver: Option<SocketAddr>,
    pub dns_names: Vec<String>,
    /// The in-cluster probes, unless `--no-probes`.
    pub probes: Option<probe::ProbeOptions>,
}

impl NetArgs {
    /// Checks the flags; `namespace` and `image` are where and with what the probes run,
    /// `within` the whole run's deadline. Errors name the flag.
    pub fn options(
        &self,
        namespace: &str,
        image: &str,
        within: Duration,
    ) -> Result<NetOptions, String> {
        // Done a little before the run's own deadline, so the clean-up is never cut short by it.
        let until = Instant::now() + within - (within / 10).min(Duration::from_secs(2));
        let target = |flag: &str, v: &Option<String>| {
            v.as_deref()
                .map(ingress::Target::parse)
                .transpose()
                .map_err(|e| format!("--{flag}: {e}"))
        };
        if let Some(a) = &self.ingress_address
            && (a.is_empty() || a.contains(['/', ' ', '@']))
        {
            return Err(format!(
                "--ingress-address: {a:?} is not a host name or IP address"
            ));
        }
        let ca_pem = match &self.ca_file {
            Some(p) => {
                let bytes =
                    std::fs::read(p).map_err(|e| format!("--ca-file {}: {e}", p.display()))?;
                let certs = reqwest::Certificate::from_pem_bundle(&bytes)
                    .map_err(|e| format!("--ca-file {}: not PEM: {e}", p.display()))?;
                if certs.is_empty() {
                    return Err(format!("--ca-file {}: holds no certificate", p.display()));
                }
                Some(bytes)
            }
            None => None,
        };
        let timeout = upkeep_config::parse_duration(&self.request_timeout)
            .map_err(|e| format!("--request-timeout: {e}"))?;
        if timeout.is_zero() {
            return Err("--request-timeout: must be more than zero".to_string());
        }
        let resolver = self.resolver.as_deref().map(parse_resolver).transpose()?;
        let dns_names = self
            .dns_names
            .iter()
            .map(|n| dns::validate_name(n).map_err(|e| format!("--dns-name: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let domain = dns::validate_name(&self.cluster_domain)
            .map_err(|e| format!("--cluster-domain: {e}"))?;
        if resolver.is_some() && dns_names.is_empty() {
            return Err("--resolver: give the names to look up with --dns-name".to_string());
        }
        let mut names = vec![format!("kubernetes.default.svc.{domain}")];
        names.extend(dns_names.iter().cloned());
        Ok(NetOptions {
            ingress: ingress::IngressOptions {
                http: target("ingress-http", &self.ingress_http)?,
                https: target("ingress-https", &self.ingress_https)?,
                address: self.ingress_address.clone(),
                ca_pem,
                warn_days: i64::from(self.cert_warn_days),
                fail_days: i64::from(self.cert_fail_days),
                timeout,
            },
            resolver,
            dns_names,
            probes: (!self.no_probes).then(|| probe::ProbeOptions {
                namespace: namespace.to_string(),
                image: image.to_string(),
                names,
                until,
                // Enough for pods to terminate, and never most of the run.
                cleanup: (within / 3).min(Duration::from_secs(30)),
            }),
        })
    }
}

fn parse_resolver(text: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    text.parse::<SocketAddr>().map_err(|_| {
        format!("--resolver: {text:?} is not IP or IP:PORT (e.g. 192.168.1.1 or 127.0.0.1:5353)")
    })
}

/// A DNS name as the object of a check, so a baseline keys checks per name.
pub(crate) fn dns_ref(name: &str) -> ObjectRef {
    ObjectRef {
        api_version: "upkeep.dev/v1alpha1".to_string(),
        kind: "DNSName".to_string(),
        namespace: None,
        name: name.to_string(),
    }
}

pub(crate) fn node_ref(name: &str) -> ObjectRef {
    ObjectRef {
        api_version: "v1".to_string(),
        kind: "Node".to_string(),
        namespace: None,
        name: name.to_string(),
    }
}

/// The checks read from objects alone: Services without a ready endpoint.
pub fn check(objects: &Objects) -> Checks {
    let mut out = Checks::default();
    let slices_served = objects.served("discovery.k8s.io", "EndpointSlice");
    if !slices_served && !objects.served("", "Endpoints") {
        out.not_run(
            ENDPOINTS,
            "neither EndpointSlices nor Endpoints are served or listed",
        );
        return out;
    }
    let mut any = false;
    for svc in objects.of_kind("", "Service") {
        let has_selector = svc
            .pointer("/spec/selector")
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty());
        // ExternalName and selector-less Services have no endpoints of Kubernetes' making.
        if !has_selector || str_at(svc, "/spec/type") == Some("ExternalName") {
            continue;
        }
        any = true;
        let start = Instant::now();
        let (ns, name) = (
            str_at(svc, "/metadata/namespace").unwrap_or(""),
            str_at(svc, "/metadata/name").unwrap_or(""),
        );
        let (ready, total) = if slices_served {
            slice_counts(objects, ns, name)
        } else {
            endpoints_counts(objects, ns, name)
        };
        let who = format!("Service {}", display(svc));
        let (status, detail) = if ready > 0 {
            (
                CheckStatus::Pass,
                format!("{who}: {ready} ready endpoint(s)"),
            )
        } else if total > 0 {
            (
                CheckStatus::Fail,
                format!("{who}: none of its {total} endpoint(s) is ready"),
            )
        } else {
            (
                CheckStatus::Fail,
                format!("{who}: no endpoints: no ready pod matches its selector"),
            )
        };
        out.push(ENDPOINTS, status, &detail, vec![ObjectRef::of(svc)], start);
    }
    if !any {
        out.not_run(ENDPOINTS, "no Service with a selector in the selection");
    }
    out
}

/// (ready, all) endpoints of the Service's EndpointSlices. A missing
/// `conditions.ready` means ready (the API says to read it so).
fn slice_counts(objects: &Objects, ns: &str, svc: &str) -> (usize, usize) {
    let mut ready = 0;
    let mut total = 0;
    for s in objects
        .of_kind("discovery.k8s.io", "EndpointSlice")
        .filter(|s| {
            str_at(s, "/metadata/namespace") == Some(ns)
                && str_at(s, "/metadata/labels/kubernetes.io~1service-name") == Some(svc)
        })
    {
        for e in s
            .get("endpoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            total += 1;
            if e.pointer("/conditions/ready").and_then(Value::as_bool) != Some(false) {
                ready += 1;
            }
        }
    }
    (ready, total)
}

fn endpoints_counts(objects: &Objects, ns: &str, svc: &str) -> (usize, usize) {
    let mut ready = 0;
    let mut total = 0;
    for e in objects.of_kind("", "Endpoints").filter(|e| {
        str_at(e, "/metadata/namespace") == Some(ns) && str_at(e, "/metadata/name") == Some(svc)
    }) {
        for subset in e
            .get("subsets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let n = |k: &str| subset.get(k).and_then(Value::as_array).map_or(0, Vec::len);
            ready += n("addresses");
            total += n("addresses") + n("notReadyAddresses");
        }
    }
    (ready, total)
}

/// The checks that go over the network: Ingresses and `--resolver` from
/// here (also with `--cluster-dump`), then the in-cluster probes (only
/// with a live cluster).
pub async fn run(
    cluster: Option<&Cluster>,
    objects: &Objects,
    opts: &NetOptions,
    out: &mut Checks,
) -> Result<(), ValidateError> {
    ingress::check(objects, &opts.ingress, out).await;
    match opts.resolver {
        Some(server) => {
            for name in &opts.dns_names {
                let start = Instant::now();
                let (status, detail) = match dns::resolve(server, name, DNS_TIMEOUT).await {
                    Ok(ips) => (
                        CheckStatus::Pass,
                        format!(
                            "{name} resolves to {} through {server}",
                            ips.iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                    Err(e) => (CheckStatus::Fail, format!("through {server}: {e}")),
                };
                out.push(RESOLVER, status, &detail, vec![dns_ref(name)], start);
            }
        }
        None => out.not_run(
            RESOLVER,
            "no --resolver given (the DNS server this machine asks, e.g. the router)",
        ),
    }
    match (&opts.probes, cluster) {
        (Some(p), Some(cluster)) => probe::run(cluster, p, out).await?,
        (Some(_), None) => {
            for name in [probe::DNS_CLUSTER, probe::CONNECTIVITY] {
                out.not_run(
                    name,
                    "the in-cluster probes need a live cluster, not --cluster-dump",
                );
            }
        }
        (None, _) => {
            for name in [probe::DNS_CLUSTER, probe::CONNECTIVITY] {
                out.not_run(name, "--no-probes");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(name: &str, selector: Value, type_: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "apps"},
            "spec": {"type": type_, "selector": selector}})
    }

    fn slice(svc: &str, ready: &[Option<bool>]) -> Value {
        let eps: Vec<Value> = ready
            .iter()
            .map(|r| match r {
                Some(b) => json!({"addresses": ["10.42.0.9"], "conditions": {"ready": b}}),
                None => json!({"addresses": ["10.42.0.9"]}),
            })
            .collect();
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{svc}-abcde"), "namespace": "apps",
                "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "endpoints": eps})
    }

    fn statuses(out: &Checks) -> Vec<(String, CheckStatus)> {
        out.checks
            .iter()
            .map(|c| (c.objects[0].name.clone(), c.status))
            .collect()
    }

    #[test]
    fn services_without_a_ready_endpoint_fail() {
        let objects = Objects::from_values(vec![
            svc("web", json!({"app": "web"}), "ClusterIP"),
            slice("web", &[Some(true), Some(false)]),
            svc("implicit", json!({"app": "i"}), "ClusterIP"),
            slice("implicit", &[None]),
            svc("down", json!({"app": "down"}), "ClusterIP"),
            slice("down", &[Some(false)]),
            svc("gone", json!({"app": "gone"}), "LoadBalancer"),
            svc("manual", json!({}), "ClusterIP"),
            svc("ext", json!({"app": "x"}), "ExternalName"),
        ]);
        let out = check(&objects);
        assert_eq!(
            statuses(&out),
            [
                ("web".to_string(), CheckStatus::Pass),
                ("implicit".to_string(), CheckStatus::Pass),
                ("down".to_string(), CheckStatus::Fail),
                ("gone".to_string(), CheckStatus::Fail),
            ]
        );
        assert!(out.checks[2].detail.to_string().contains("none of its 1"));
        assert!(out.checks[3].detail.to_string().contains("no endpoints"));
    }

    #[test]
    fn endpoints_are_read_where_slices_are_not_served() {
        let mut objects = Objects::from_values(vec![
            svc("web", json!({"app": "web"}), "ClusterIP"),
            json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web", "namespace": "apps"},
                "subsets": [{"addresses": [{"ip": "10.42.0.9"}]}]}),
            svc("down", json!({"app": "down"}), "ClusterIP"),
            json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "down", "namespace": "apps"},
                "subsets": [{"notReadyAddresses": [{"ip": "10.42.0.8"}]}]}),
        ]);
        objects
            .not_served
            .push("EndpointSlice.discovery.k8s.io".into());
        let out = check(&objects);
        assert_eq!(
            statuses(&out),
            [
                ("web".to_string(), CheckStatus::Pass),
                ("down".to_string(), CheckStatus::Fail)
            ]
        );
    }

    fn args() -> NetArgs {
        NetArgs {
            ingress_address: None,
            ingress_http: None,
            ingress_https: None,
            ca_file: None,
            cert_warn_days: 14,
            cert_fail_days: 0,
            request_timeout: "10s".into(),
            resolver: None,
            dns_names: vec![],
            cluster_domain: "cluster.local".into(),
            no_probes: false,
        }
    }

    #[test]
    fn flags_are_checked_and_name_themselves() {
        let err = |a: NetArgs| {
            a.options("default", "busybox", Duration::from_secs(60))
                .unwrap_err()
        };
        let mut a = args();
        a.resolver = Some("127.0.0.1:5353".into());
        assert!(err(a.clone()).contains("--dns-name"));
        a.dns_names = vec!["ok.lan".into()];
        let o = a
            .options("default", "busybox", Duration::from_secs(60))
            .unwrap();
        assert_eq!(o.resolver, Some("127.0.0.1:5353".parse().unwrap()));
        assert_eq!(
            o.probes.unwrap().names,
            ["kubernetes.default.svc.cluster.local", "ok.lan"]
        );
        a.resolver = Some("not-an-ip".into());
        assert!(err(a.clone()).starts_with("--resolver"));
        let mut a = args();
        a.dns_names = vec!["bad name".into()];
        assert!(err(a).starts_with("--dns-name"));
        let mut a = args();
        a.ingress_https = Some("127.0.0.1".into());
        assert!(err(a).starts_with("--ingress-https"));
        let mut a = args();
        a.request_timeout = "soon".into();
        assert!(err(a).starts_with("--request-timeout"));
        let mut a = args();
        a.ca_file = Some("/nonexistent/ca.pem".into());
        assert!(err(a).starts_with("--ca-file"));
        let mut a = args();
        a.no_probes = true;
        assert!(
            a.options("default", "busybox", Duration::from_secs(60))
                .unwrap()
                .probes
                .is_none()
        );
    }
}
