//! Each channel against a real server: the six webhook formats against a
//! local HTTP receiver (method, path, headers and body checked), mail
//! through aiosmtpd over STARTTLS with a CA the test makes, and what a dead
//! or failing endpoint costs.

mod common;

use std::time::Duration;

use common::{Server, closed_port, notify_config, record};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::Value;
use upkeep_config::NotifyEvent;
use upkeep_notify::{Deliverer, render, run_events};

fn rolled_back_message(config: &upkeep_notify::NotifyConfig) -> upkeep_notify::Message {
    let before = record("r-42", "running", "completed", "rolling-back");
    let after = record("r-42", "running", "completed", "rolled-back");
    let event = run_events(Some(&before), &after)
        .into_iter()
        .find(|e| e.kind == NotifyEvent::RolledBack)
        .expect("a rolled-back event");
    render(config, &event, Some(&after))
}

fn find<'a>(reqs: &'a [Value], path_prefix: &str) -> &'a Value {
    reqs.iter()
        .find(|r| r["path"].as_str().unwrap().starts_with(path_prefix))
        .unwrap_or_else(|| panic!("no request to {path_prefix}: {reqs:#?}"))
}

fn body(r: &Value) -> Value {
    serde_json::from_str(r["body"].as_str().unwrap()).unwrap()
}

#[test]
fn every_webhook_format_reaches_a_real_http_server() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Server::http(dir.path());
    std::fs::write(dir.path().join("hook.token"), "hook-bearer-1\n").unwrap();
    std::fs::write(dir.path().join("gotify.token"), "gotify-app-token-1").unwrap();
    std::fs::write(
        dir.path().join("slack.url"),
        rec.url("/services/T000/B000/slacksecret1"),
    )
    .unwrap();
    let yaml = format!(
        r#"notify:
  contacts:
    - {{name: Alice, role: primary, phone: "+49 170 0000000"}}
  channels:
    hook: {{type: webhook, url: "{hook}", tokenFile: hook.token}}
    slack: {{type: slack, urlFile: slack.url}}
    discord: {{type: discord, url: "{discord}"}}
    ntfy: {{type: ntfy, url: "{ntfy}", tokenEnv: NTFY_TOKEN}}
    gotify: {{type: gotify, url: "{gotify}", tokenFile: gotify.token}}
    matrix: {{type: matrix, url: "{matrix}", room: "!ops:example.org", tokenEnv: MATRIX_TOKEN}}
"#,
        hook = rec.url("/hook"),
        discord = rec.url("/api/webhooks/123/discordsecret1"),
        ntfy = rec.url("/upkeep-alerts"),
        gotify = rec.url("/gotify/"),
        matrix = rec.url(""),
    );
    let config = notify_config(
        dir.path(),
        &yaml,
        &[("NTFY_TOKEN", "tk_ntfy1"), ("MATRIX_TOKEN", "syt_matrix1")],
    );
    let msg = rolled_back_message(&config);
    assert_eq!(msg.title, "upkeep: apps/podinfo rolled back to 6.7.0");
    let deliveries = Deliverer::new(&config).send_all(&config, &msg);
    assert_eq!(deliveries.len(), 6);
    for d in &deliveries {
        assert!(d.ok && d.attempts == 1, "{d:?}");
    }
    let reqs = rec.records();
    assert_eq!(reqs.len(), 6, "{reqs:#?}");

    let hook = find(&reqs, "/hook");
    assert_eq!(hook["method"], "POST");
    assert_eq!(hook["headers"]["authorization"], "Bearer hook-bearer-1");
    assert_eq!(hook["headers"]["content-type"], "application/json");
    let b = body(hook);
    assert_eq!(b["apiVersion"], "upkeep.dev/v1alpha1");
    assert_eq!(b["kind"], "Notification");
    assert_eq!(b["event"], "rolled-back");
    assert_eq!(b["key"], "run/r-42/step/1/rolled-back");
    assert_eq!(b["severity"], "critical");
    assert_eq!(b["escalation"], true);
    assert_eq!(b["title"], msg.title);
    assert_eq!(b["data"]["step"]["component"], "apps/podinfo");
    assert_eq!(b["data"]["run"]["id"], "r-42");
    // The rollback message carries the runbook and the contacts.
    let text = b["body"].as_str().unwrap();
    assert!(text.contains("EMERGENCY RUNBOOK"), "{text}");
    assert!(
        text.contains("Alice (primary), phone +49 170 0000000"),
        "{text}"
    );
    assert!(text.contains("upkeep rollback r-42"), "{text}");

    let slack = find(&reqs, "/services/T000/B000/slacksecret1");
    assert_eq!(slack["method"], "POST");
    assert_eq!(slack["headers"]["content-type"], "application/json");
    let t = body(slack)["text"].as_str().unwrap().to_string();
    assert!(
        t.starts_with("*upkeep: apps/podinfo rolled back to 6.7.0*\n"),
        "{t}"
    );
    assert!(t.contains("0 of 1 replicas ready"), "{t}");

    let discord = find(&reqs, "/api/webhooks/123/discordsecret1");
    assert_eq!(discord["method"], "POST");
    let d = body(discord);
    assert!(
        d["content"]
            .as_str()
            .unwrap()
            .starts_with("**upkeep: apps/podinfo rolled back to 6.7.0**\n")
    );
    assert_eq!(d["allowed_mentions"]["parse"], Value::Array(vec![]));
    assert_eq!(d["username"], "upkeep");

    let ntfy = find(&reqs, "/upkeep-alerts");
    assert_eq!(ntfy["method"], "POST");
    assert_eq!(
        ntfy["headers"]["title"],
        "upkeep: apps/podinfo rolled back to 6.7.0"
    );
    assert_eq!(ntfy["headers"]["priority"], "5");
    assert_eq!(ntfy["headers"]["tags"], "upkeep,rotating_light,rolled-back");
    assert_eq!(ntfy["headers"]["authorization"], "Bearer tk_ntfy1");
    assert!(
        ntfy["body"]
            .as_str()
            .unwrap()
            .contains("rolled apps/podinfo back from 6.8.0 to 6.7.0")
    );

    let gotify = find(&reqs, "/gotify/message");
    assert_eq!(gotify["method"], "POST");
    assert_eq!(
        gotify["path"], "/gotify/message",
        "the token is never in the URL"
    );
    assert_eq!(gotify["headers"]["x-gotify-key"], "gotify-app-token-1");
    let g = body(gotify);
    assert_eq!(g["title"], msg.title);
    assert_eq!(g["priority"], 9);
    assert!(g["message"].as_str().unwrap().contains("EMERGENCY RUNBOOK"));

    let matrix = find(&reqs, "/_matrix/client/v3/rooms/");
    assert_eq!(matrix["method"], "PUT");
    let path = matrix["path"].as_str().unwrap();
    assert!(
        path.starts_with("/_matrix/client/v3/rooms/!ops:example.org/send/m.room.message/upkeep-"),
        "{path}"
    );
    assert_eq!(matrix["headers"]["authorization"], "Bearer syt_matrix1");
    let m = body(matrix);
    assert_eq!(m["msgtype"], "m.text");
    assert!(
        m["body"]
            .as_str()
            .unwrap()
            .starts_with("upkeep: apps/podinfo rolled back to 6.7.0\n\n")
    );
}

#[test]
fn failing_endpoints_are_retried_only_when_it_can_help_and_never_raise() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Server::http(dir.path());
    let yaml = format!(
        "notify:\n  timeout: 5s\n  retries: 2\n  channels:\n    busy: {{type: webhook, url: \"{}\"}}\n    refused: {{type: webhook, url: \"{}\"}}\n",
        rec.url("/status/503/hook"),
        rec.url("/status/401/hook"),
    );
    let config = notify_config(dir.path(), &yaml, &[]);
    let msg = rolled_back_message(&config);
    let deliveries = Deliverer::new(&config).send_all(&config, &msg);
    let busy = deliveries.iter().find(|d| d.channel == "busy").unwrap();
    assert!(!busy.ok);
    assert_eq!(busy.attempts, 3, "503 is retried, twice");
    assert!(busy.error.as_deref().unwrap().contains("503"), "{busy:?}");
    let refused = deliveries.iter().find(|d| d.channel == "refused").unwrap();
    assert_eq!(
        refused.attempts, 1,
        "401 will not get better by trying again"
    );
    let reqs = rec.records();
    assert_eq!(
        reqs.iter()
            .filter(|r| r["path"] == "/status/503/hook")
            .count(),
        3
    );
    assert_eq!(
        reqs.iter()
            .filter(|r| r["path"] == "/status/401/hook")
            .count(),
        1
    );
}

#[test]
fn a_dead_endpoint_costs_at_most_timeout_times_attempts_and_its_secret_stays_masked() {
    let dir = tempfile::tempdir().unwrap();
    // Accepts connections (the kernel does) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let closed = closed_port();
    let yaml = format!(
        "notify:\n  timeout: 1s\n  retries: 1\n  channels:\n    silent: {{type: webhook, url: \"http://127.0.0.1:{silent_port}/hook\"}}\n    closed: {{type: slack, url: \"http://127.0.0.1:{closed}/services/T1/B1/deadsecret77\"}}\n"
    );
    let config = notify_config(dir.path(), &yaml, &[]);
    let msg = rolled_back_message(&config);
    let deliverer = Deliverer::new(&config);
    let attempts = 1 + config.retries;
    // Each attempt may take the timeout; between attempts one pause (200 ms).
    let bound = config.timeout * attempts + Duration::from_millis(200) + Duration::from_secs(1);

    let d = deliverer.deliver(
        &config
            .channels
            .iter()
            .find(|c| c.name == "silent")
            .unwrap()
            .clone(),
        &msg,
    );
    assert!(!d.ok);
    assert_eq!(d.attempts, 2);
    assert!(d.error.as_deref().unwrap().contains("timed out"), "{d:?}");
    assert!(
        d.elapsed >= config.timeout * attempts,
        "each attempt waited its timeout: {d:?}"
    );
    assert!(d.elapsed <= bound, "{:?} > {bound:?}", d.elapsed);

    let c = config
        .channels
        .iter()
        .find(|c| c.name == "closed")
        .unwrap()
        .clone();
    let d = deliverer.deliver(&c, &msg);
    assert!(!d.ok);
    assert_eq!(d.attempts, 2);
    assert!(d.elapsed <= bound);
    let shown = format!("{} {} {}", d.shown, d.error.as_deref().unwrap(), c.shown());
    assert!(!shown.contains("deadsecret77"), "{shown}");
    assert!(
        shown.contains(&format!("127.0.0.1:{closed}")),
        "the server is still named: {shown}"
    );
    // And anything else that passes the URL through the log redaction.
    let logged = upkeep_redact::redact(&format!(
        "posting to http://127.0.0.1:{closed}/services/T1/B1/deadsecret77"
    ));
    assert!(!logged.contains("deadsecret77"), "{logged}");
    drop(silent);
}

/// A CA as a homelab has one, and a server certificate for 127.0.0.1 it signed.
fn test_ca(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let (ca_pem, cert, key_path) = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&ca_pem, ca.pem()).unwrap();
    std::fs::write(&cert, format!("{}{}", leaf.pem(), ca.pem())).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (ca_pem, cert, key_path)
}

#[test]
fn mail_goes_through_aiosmtpd_over_starttls_with_the_configured_ca_only() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = test_ca(dir.path());
    let smtp = Server::smtp(dir.path(), &cert, &key);
    let yaml = format!(
        r#"notify:
  timeout: 5s
  retries: 0
  contacts: [{{name: Bob, email: bob@home.lan}}]
  channels:
    mail:
      type: email
      host: 127.0.0.1
      port: {port}
      tls: starttls
      from: "upkeep <upkeep@home.lan>"
      to: [ops@home.lan, alice@home.lan]
      caFile: ca.pem
    untrusted:
      type: email
      host: 127.0.0.1
      port: {port}
      from: upkeep@home.lan
      to: [ops@home.lan]
"#,
        port = smtp.port
    );
    let config = notify_config(dir.path(), &yaml, &[]);
    let msg = rolled_back_message(&config);
    let deliveries = Deliverer::new(&config).send_all(&config, &msg);
    let mail = deliveries.iter().find(|d| d.channel == "mail").unwrap();
    assert!(mail.ok, "{mail:?}");
    // Verification is on: the same server without its CA is refused.
    let untrusted = deliveries
        .iter()
        .find(|d| d.channel == "untrusted")
        .unwrap();
    assert!(!untrusted.ok, "{untrusted:?}");
    let why = untrusted.error.as_deref().unwrap().to_lowercase();
    assert!(
        why.contains("certificate") || why.contains("issuer"),
        "{why}"
    );

    let mails = smtp.records();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    let m = &mails[0];
    assert_eq!(m["tls"], true, "STARTTLS before the mail");
    assert_eq!(m["mail_from"], "upkeep@home.lan");
    assert_eq!(
        m["rcpt_tos"],
        serde_json::json!(["ops@home.lan", "alice@home.lan"])
    );
    // Long lines come quoted-printable: undo the soft line breaks.
    let data = m["data"]
        .as_str()
        .unwrap()
        .replace("=\r\n", "")
        .replace("=\n", "");
    let data = data.as_str();
    assert!(
        data.contains("Subject: upkeep: apps/podinfo rolled back to 6.7.0"),
        "{data}"
    );
    assert!(data.contains("Bob, email bob@home.lan"), "{data}");
    assert!(data.contains("upkeep rollback r-42"), "{data}");
}
