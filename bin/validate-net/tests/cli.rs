//! validate-net as a user runs it: the built binary against sim-cluster serving the
//! homelab (with EndpointSlices, testdata/net), a real nginx on loopback standing in for
//! the ingress controller (routing by Host and SNI, a dead backend, a certificate that
//! expires in 3 days), a real dnsmasq answering --resolver, and the simulated kubelet
//! running the probe Jobs and DaemonSet with the logs SIM.yaml gives them.

#[path = "../../snapshot/tests/common/sim.rs"]
mod sim;

use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sim::*;

const BIN: &str = env!("CARGO_BIN_EXE_validate-net");
const API: &str = "kubernetes.default.svc.cluster.local";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A program from PATH or the sbin directories Debian puts servers in.
fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"])
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// A process ended (and reaped) when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// nginx on loopback with testdata/net/nginx.conf.in, its CA and certificates made now.
struct Nginx {
    _server: Server,
    dir: tempfile::TempDir,
    http: u16,
    https: u16,
}

impl Nginx {
    fn start() -> Option<Nginx> {
        let Some(bin) = find("nginx") else {
            eprintln!("SKIP: nginx is not installed (scripts/install-test-deps.sh installs it)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        write_certs(dir.path());
        let (http, https, dead) = (free_port(), free_port(), free_port());
        let conf = std::fs::read_to_string(workspace().join("testdata/net/nginx.conf.in"))
            .unwrap()
            .replace("@DIR@", dir.path().to_str().unwrap())
            .replace("@HTTP@", &http.to_string())
            .replace("@HTTPS@", &https.to_string())
            .replace("@DEAD@", &dead.to_string());
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = Server(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", https)).is_err()
            || TcpStream::connect(("127.0.0.1", http)).is_err()
        {
            if let Ok(Some(status)) = server.0.try_wait() {
                panic!(
                    "nginx exited ({status}): {}",
                    std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "nginx did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Nginx {
            _server: server,
            dir,
            http,
            https,
        })
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    fn flags(&self) -> Vec<String> {
        vec![
            "--ingress-http".into(),
            format!("127.0.0.1:{}", self.http),
            "--ingress-https".into(),
            format!("127.0.0.1:{}", self.https),
        ]
    }
}

/// A CA, `*.home.example.com` valid for 90 days and `secure.test` expiring in 3 days.
fn write_certs(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "upkeep test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
    let now = time::OffsetDateTime::now_utc();
    for (file, names, days) in [
        ("home", vec!["*.home.example.com".to_string()], 90),
        ("secure", vec!["secure.test".to_string()], 3),
    ] {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names.clone()).unwrap();
        p.distinguished_name.push(DnType::CommonName, &names[0]);
        p.not_before = now - time::Duration::days(1);
        p.not_after = now + time::Duration::days(days);
        let cert = p.signed_by(&key, &ca).unwrap();
        // The chain a server sends: the leaf, then its CA.
        std::fs::write(
            dir.join(format!("{file}.crt")),
            format!("{}{}", cert.pem(), ca.pem()),
        )
        .unwrap();
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
    }
}

/// dnsmasq on a loopback port, answering only the names it is given.
struct Dnsmasq {
    _server: Server,
    port: u16,
}

impl Dnsmasq {
    fn start(addresses: &[(&str, &str)]) -> Option<Dnsmasq> {
        let Some(bin) = find("dnsmasq") else {
            eprintln!("SKIP: dnsmasq is not installed (scripts/install-test-deps.sh installs it)");
            return None;
        };
        let port = free_port();
        let mut c = Command::new(bin);
        c.args([
            "--no-daemon",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--pid-file=",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
        ])
        .arg(format!("--port={port}"));
        for (name, ip) in addresses {
            c.arg(format!("--address=/{name}/{ip}"));
        }
        let child = c
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server(child);
        // Ready when it answers a query (any answer).
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let query = [
            0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'x', 0, 0, 1, 0, 1,
        ];
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let _ = sock.send_to(&query, ("127.0.0.1", port));
            let mut buf = [0u8; 512];
            if sock.recv_from(&mut buf).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "dnsmasq did not answer");
        }
        Some(Dnsmasq {
            _server: server,
            port,
        })
    }
}

/// What busybox nslookup prints, between the probe script's markers.
fn nslookup_ok(name: &str, ip: &str) -> String {
    format!(
        "@@upkeep {name}\nServer:\t\t10.43.0.10\nAddress:\t10.43.0.10:53\n\nName:\t{name}\nAddress: {ip}\n\n@@upkeep-end {name}\n"
    )
}

fn nslookup_nx(name: &str) -> String {
    format!(
        "@@upkeep {name}\nServer:\t\t10.43.0.10\nAddress:\t10.43.0.10:53\n\n** server can't find {name}: NXDOMAIN\n\n** server can't find {name}: NXDOMAIN\n\n@@upkeep-end {name}\n"
    )
}

/// `ok`/`fail` lines for every pod IP the simulated kubelet can hand out on three nodes.
fn fetch_lines(word_for: impl Fn(u8) -> &'static str) -> String {
    let mut s = String::new();
    for node in 0..3u8 {
        for n in 100..=120 {
            s.push_str(&format!("{} 10.42.{node}.{n}\n", word_for(node)));
        }
    }
    s
}

/// SIM.yaml (as JSON): the workloads controller with these pod behaviours, first match wins.
fn sim_yaml(pods: Vec<Value>, delay: &str) -> String {
    json!({"controllers": {"workloads": {"interval": "100ms", "delay": delay, "pods": pods}}})
        .to_string()
}

fn healthy_pods(dns_logs: String) -> Vec<Value> {
    vec![
        json!({"match": "upkeep-net-*-dns", "result": "Succeeded", "logs": dns_logs}),
        json!({"match": "upkeep-net-*-from-*", "result": "Succeeded", "logs": fetch_lines(|_| "ok")}),
    ]
}

fn fixture(dir: &Path, with_nettest: bool) -> PathBuf {
    let read = |f: &str| std::fs::read_to_string(workspace().join("testdata/net").join(f)).unwrap();
    let mut extra = read("homelab-endpoints.yaml");
    if with_nettest {
        extra.push_str("\n---\n");
        extra.push_str(&read("nettest.yaml"));
    }
    homelab_with(dir, &extra)
}

fn run(c: &mut Command) -> (i32, Value) {
    let out = c.output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let report = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "not a report ({e}): {stdout:?} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), report)
}

fn checks<'a>(report: &'a Value, name: &str) -> Vec<&'a Value> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == name)
        .collect()
}

/// The one check `name` about object `object`.
fn check<'a>(report: &'a Value, name: &str, object: &str) -> &'a Value {
    checks(report, name)
        .into_iter()
        .find(|c| c["objects"][0]["name"] == object)
        .unwrap_or_else(|| panic!("no {name} for {object} in {report}"))
}

fn detail(c: &Value) -> &str {
    c["detail"].as_str().unwrap()
}

fn leftovers(sim: &Sim) -> String {
    sim.kubectl(&[
        "get",
        "daemonsets,jobs,pods",
        "-A",
        "-l",
        "upkeep.dev/net-test",
        "-o",
        "name",
    ])
}

fn validate(sim: &Sim, home: &Path) -> Command {
    let mut c = tool(BIN, home);
    c.args(["--timeout", "30s", "--kubeconfig"])
        .arg(sim.kubeconfig());
    c
}

#[test]
fn a_healthy_homelab_passes_every_check_and_leaves_nothing_behind() {
    let (Some(nginx), Some(dns)) = (
        Nginx::start(),
        Dnsmasq::start(&[("ok.lan", "192.168.1.10")]),
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dns_logs = nslookup_ok(API, "10.43.0.1") + &nslookup_ok("ok.lan", "192.168.1.10");
    let sim = Sim::start(
        &fixture(tmp.path(), false),
        Some(&sim_yaml(healthy_pods(dns_logs), "0s")),
    );
    let (code, report) = run(validate(&sim, tmp.path())
        .args(nginx.flags())
        .arg("--ca-file")
        .arg(nginx.ca())
        .args(["--resolver", &format!("127.0.0.1:{}", dns.port)])
        .args(["--dns-name", "ok.lan"]));
    assert_eq!(code, 0, "{report}");
    let bad: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] != "pass")
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
    // Every Service with a selector, none without one.
    assert_eq!(checks(&report, "net/service-endpoints").len(), 6);
    assert_eq!(checks(&report, "net/ingress").len(), 4);
    assert!(
        detail(check(&report, "net/ingress", "jellyfin"))
            .contains("https://jellyfin.home.example.com/ answered 200")
    );
    let home = detail(check(&report, "net/tls-expiry", "vaultwarden"));
    assert!(
        home.contains("in 89 days") || home.contains("in 90 days"),
        "{home}"
    );
    assert!(detail(check(&report, "net/dns-resolver", "ok.lan")).contains("192.168.1.10"));
    assert!(detail(check(&report, "net/dns-cluster", API)).contains("10.43.0.1"));
    let nodes: Vec<&str> = checks(&report, "net/node-connectivity")
        .iter()
        .map(|c| c["objects"][0]["name"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["k3s-s1", "k3s-s2", "k3s-s3"]);
    assert_eq!(checks(&report, "net/probe-cleanup")[0]["status"], "pass");
    assert!(report["notRun"].as_array().unwrap().is_empty(), "{report}");
    assert_eq!(leftovers(&sim).trim(), "");
}

#[test]
fn the_outside_checks_against_real_nginx_and_dnsmasq() {
    let (Some(nginx), Some(dns)) = (
        Nginx::start(),
        Dnsmasq::start(&[("ok.lan", "192.168.1.10")]),
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(&fixture(tmp.path(), true), None);
    let outside = |extra: &[&str]| {
        let mut c = validate(&sim, tmp.path());
        c.args(["-n", "nettest", "--no-probes"])
            .args(nginx.flags())
            .args(["--resolver", &format!("127.0.0.1:{}", dns.port)])
            .args(["--dns-name", "ok.lan", "--dns-name", "missing.lan"])
            .args(extra);
        run(&mut c)
    };
    let ca = nginx.ca();
    let ca = ca.to_str().unwrap();
    let (code, report) = outside(&["--ca-file", ca]);
    assert_eq!(code, 1, "{report}");
    // Host routing: each host got its own server block.
    let ok = check(&report, "net/ingress", "ok");
    assert_eq!(ok["status"], "pass");
    assert!(detail(ok).contains("http://ok.test/ answered 200"), "{ok}");
    let broken = check(&report, "net/ingress", "broken");
    assert_eq!(broken["status"], "fail");
    assert!(
        detail(broken).contains("http://broken.test/ answered 502"),
        "{broken}"
    );
    let elsewhere = check(&report, "net/ingress", "elsewhere");
    assert_eq!(
        elsewhere["status"], "pass",
        "a 404 from the default server is not a 5xx"
    );
    assert!(
        detail(elsewhere).contains("unknown.test/ answered 404"),
        "{elsewhere}"
    );
    // TLS: SNI picked the 3-day certificate, verified against the test's CA.
    assert_eq!(check(&report, "net/ingress", "secure")["status"], "pass");
    let tls = check(&report, "net/tls-expiry", "secure");
    assert_eq!(tls["status"], "warn", "{tls}");
    assert!(
        // Whole days left: 3 when checked within the second the certificate was made.
        detail(tls).contains("secure.test")
            && (detail(tls).contains("in 2 days") || detail(tls).contains("in 3 days")),
        "{tls}"
    );
    assert!(detail(tls).contains("--cert-warn-days 14"), "{tls}");
    // dnsmasq: the name it knows resolves, the other does not.
    let good = check(&report, "net/dns-resolver", "ok.lan");
    assert_eq!(good["status"], "pass");
    assert!(detail(good).contains("192.168.1.10"));
    let missing = check(&report, "net/dns-resolver", "missing.lan");
    assert_eq!(missing["status"], "fail");
    assert!(detail(missing).contains("missing.lan"), "{missing}");
    // The Service whose pods are gone.
    assert_eq!(
        check(&report, "net/service-endpoints", "web")["status"],
        "pass"
    );
    let lonely = check(&report, "net/service-endpoints", "lonely");
    assert_eq!(lonely["status"], "fail");
    assert!(detail(lonely).contains("nettest/lonely"), "{lonely}");
    // The probes were asked not to run, and the report says so.
    let not_run: Vec<&str> = report["notRun"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(not_run, ["net/dns-cluster", "net/node-connectivity"]);

    // A stricter threshold turns the 3-day certificate into a failure.
    let (_, report) = outside(&["--ca-file", ca, "--cert-fail-days", "7"]);
    let tls = check(&report, "net/tls-expiry", "secure");
    assert_eq!(tls["status"], "fail");
    assert!(detail(tls).contains("--cert-fail-days 7"), "{tls}");

    // Without the CA the certificate is not trusted: verification is on by default.
    let (_, report) = outside(&[]);
    let tls = check(&report, "net/tls-expiry", "secure");
    assert_eq!(tls["status"], "fail");
    assert!(
        detail(tls).contains("secure.test: the certificate was refused"),
        "{tls}"
    );
    assert_eq!(check(&report, "net/ingress", "secure")["status"], "fail");
}

#[test]
fn with_a_baseline_only_the_new_failure_counts() {
    let Some(nginx) = Nginx::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(&fixture(tmp.path(), true), None);
    let outside = |extra: &[&str]| {
        let mut c = validate(&sim, tmp.path());
        c.args(["-n", "nettest", "--no-probes", "--ca-file"])
            .arg(nginx.ca())
            .args(nginx.flags())
            .args(extra);
        c
    };
    let out = outside(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let before = tmp.path().join("before.json");
    std::fs::write(&before, &out.stdout).unwrap();
    // Nothing changed: the old failures (broken, lonely) are not regressions.
    let (code, report) = run(&mut outside(&["--baseline", before.to_str().unwrap()]));
    assert_eq!(code, 0, "{report}");
    // The web app's pods go away.
    sim.kubectl(&["-n", "nettest", "delete", "endpointslice", "web-4fj2q"]);
    let (code, report) = run(&mut outside(&["--baseline", before.to_str().unwrap()]));
    assert_eq!(code, 1);
    let new: Vec<(&str, &str)> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["regression"] == true)
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["objects"][0]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(new, [("net/service-endpoints", "web")]);
    assert_eq!(check(&report, "net/ingress", "broken")["status"], "fail");
    assert_eq!(check(&report, "net/ingress", "broken")["regression"], false);
    // The text output says the same to a person.
    let out = outside(&["--baseline", before.to_str().unwrap(), "-o", "text"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("FAIL (new) net/service-endpoints"), "{text}");
    assert!(text.contains("1 new since the baseline"), "{text}");
}

#[test]
fn a_pair_of_nodes_that_cannot_talk_and_a_name_that_does_not_resolve_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dns_logs = nslookup_ok(API, "10.43.0.1") + &nslookup_nx("nas.lan");
    let pods = vec![
        json!({"match": "upkeep-net-*-dns", "result": "Succeeded", "logs": dns_logs}),
        // k3s-s3's pod reaches no other node; the others cannot reach k3s-s3 (index 2).
        json!({"match": "upkeep-net-*-from-k3s-s3", "result": "Succeeded", "logs": fetch_lines(|_| "fail")}),
        json!({"match": "upkeep-net-*-from-*", "result": "Succeeded",
            "logs": fetch_lines(|node| if node == 2 { "fail" } else { "ok" })}),
    ];
    let sim = Sim::start(&fixture(tmp.path(), false), Some(&sim_yaml(pods, "0s")));
    let (code, report) =
        run(validate(&sim, tmp.path()).args(["--dns-name", "nas.lan", "-n", "kube-system"]));
    assert_eq!(code, 1, "{report}");
    let s3 = check(&report, "net/node-connectivity", "k3s-s3");
    assert_eq!(s3["status"], "fail");
    assert!(
        detail(s3).contains("k3s-s3 -> k3s-s1") && detail(s3).contains("k3s-s3 -> k3s-s2"),
        "{s3}"
    );
    let s1 = check(&report, "net/node-connectivity", "k3s-s1");
    assert_eq!(s1["status"], "fail");
    assert!(detail(s1).contains("k3s-s1 -> k3s-s3"), "{s1}");
    assert!(!detail(s1).contains("-> k3s-s2"), "{s1}");
    assert_eq!(check(&report, "net/dns-cluster", API)["status"], "pass");
    let nas = check(&report, "net/dns-cluster", "nas.lan");
    assert_eq!(nas["status"], "fail");
    assert!(
        detail(nas).contains("nas.lan") && detail(nas).contains("NXDOMAIN"),
        "{nas}"
    );
    assert_eq!(checks(&report, "net/probe-cleanup")[0]["status"], "pass");
    assert_eq!(leftovers(&sim).trim(), "");
}

#[test]
fn probes_cut_short_by_the_deadline_still_clean_up() {
    let tmp = tempfile::tempdir().unwrap();
    // The kubelet never gets round to starting the pods within the run.
    let sim = Sim::start(
        &fixture(tmp.path(), false),
        Some(&sim_yaml(healthy_pods(String::new()), "10m")),
    );
    let started = Instant::now();
    let (code, report) = run(tool(BIN, tmp.path())
        .args(["--timeout", "6s", "-n", "kube-system", "--kubeconfig"])
        .arg(sim.kubeconfig()));
    assert_eq!(code, 1, "{report}");
    assert!(started.elapsed() < Duration::from_secs(30));
    let dns = checks(&report, "net/dns-cluster");
    assert_eq!(dns.len(), 1, "{report}");
    assert_eq!(dns[0]["status"], "fail");
    assert!(
        detail(dns[0]).contains("Job") || detail(dns[0]).contains("--timeout"),
        "{}",
        dns[0]
    );
    let cleanup = checks(&report, "net/probe-cleanup");
    assert_eq!(cleanup[0]["status"], "pass", "{report}");
    assert_eq!(leftovers(&sim).trim(), "");
}

#[test]
fn a_cluster_dump_runs_what_it_can_and_says_what_it_cannot() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(&fixture(tmp.path(), true), None);
    let dump = tmp.path().join("dump.json");
    std::fs::write(
        &dump,
        sim.kubectl(&[
            "get",
            "services,endpointslices,ingresses",
            "-A",
            "-o",
            "json",
        ]),
    )
    .unwrap();
    let dead = free_port();
    let (code, report) = run(tool(BIN, tmp.path())
        .arg("--cluster-dump")
        .arg(&dump)
        .args(["-n", "nettest", "--request-timeout", "2s"])
        .args(["--ingress-address", "127.0.0.1"])
        .args(["--ingress-http", &format!("127.0.0.1:{dead}")])
        .args(["--ingress-https", &format!("127.0.0.1:{dead}")]));
    assert_eq!(code, 1);
    // Nothing listens: every Ingress fails with the connection error, naming where.
    let ok = check(&report, "net/ingress", "ok");
    assert_eq!(ok["status"], "fail");
    assert!(
        detail(ok).contains(&format!("via 127.0.0.1:{dead}")),
        "{ok}"
    );
    assert_eq!(
        check(&report, "net/service-endpoints", "lonely")["status"],
        "fail"
    );
    let not_run: Vec<&str> = report["notRun"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["detail"].as_str().unwrap())
        .collect();
    assert!(
        not_run.iter().any(|d| d.contains("need a live cluster")),
        "{not_run:?}"
    );
    assert!(
        not_run.iter().any(|d| d.contains("--resolver")),
        "{not_run:?}"
    );
}

#[test]
fn bad_flags_exit_2_with_one_line_naming_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let (kc, _) = unreachable_kubeconfig(tmp.path());
    for (args, says) in [
        (vec!["--resolver", "router.lan"], "--resolver"),
        (
            vec!["--resolver", "127.0.0.1", "--dns-name", "a b"],
            "--dns-name",
        ),
        (vec!["--ingress-https", "127.0.0.1"], "--ingress-https"),
        (vec!["--ca-file", "/nonexistent/ca.pem"], "--ca-file"),
        (vec!["--request-timeout", "soon"], "--request-timeout"),
        (vec!["--cert-warn-days=many"], "--cert-warn-days"),
    ] {
        let out = tool(BIN, tmp.path())
            .arg("--kubeconfig")
            .arg(&kc)
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
    }
    // A CA file that is not PEM.
    let junk = tmp.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let out = tool(BIN, tmp.path())
        .arg("--kubeconfig")
        .arg(&kc)
        .arg("--ca-file")
        .arg(&junk)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ca-file"));
}

#[test]
fn an_unreachable_cluster_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    let (kc, port) = unreachable_kubeconfig(tmp.path());
    let out = tool(BIN, tmp.path())
        .args(["--timeout", "20s", "--kubeconfig"])
        .arg(&kc)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(&port.to_string()), "{stderr}");
    assert!(out.stdout.is_empty());
}
