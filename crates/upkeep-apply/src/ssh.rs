//! k3s without system-upgrade-controller: the release binary, verified
//! against the release's sha256 checksums, rolled over SSH one node at a
//! time, servers first. Each node is cordoned and drained (through the
//! eviction API, so PodDisruptionBudgets hold), gets the new binary (its
//! checksum checked again on the node, the old one kept beside it as
//! `.upkeep-prev`), is restarted, and must come back Ready at the new
//! version with the API answering before it is uncordoned and the next one
//! starts. The first node that does not come back stops the roll, left
//! cordoned, so nothing else is put on it.
//!
//! Nodes already at the version are skipped, so a roll that was stopped
//! goes on where it left off. Nodes are cordoned with an annotation naming
//! upkeep, so a node an operator had cordoned stays cordoned.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use upkeep_config::{K3sMethodName, Settings};
use upkeep_contract::{ApplyMode, ApplyResult, ApplyStatus, ObjectRef, Timestamp, Version};
use upkeep_kube::{Cluster, ClusterRead, KubeError, ListOptions, ResourceRef, condition_of};
use upkeep_ssh::{Host, SshConfig, quote};
use upkeep_upstream::{GithubRepo, Upstream};

use crate::target::same;
use crate::wait::{State, WaitError, list, poll, str_at};
use crate::{ApplyError, Options, Step, doc_error, result};

/// Marks a cordon upkeep made (and so may undo).
const CORDONED_BY: &str = "upkeep.dev/cordoned-by";
/// The largest k3s binary accepted (they are about 70 MB).
const MAX_BINARY: u64 = 512 << 20;
const MAX_SUMS: u64 = 64 << 10;
/// Copying the binary to a node over a slow link.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// A restart command that hangs is not a restart.
const RESTART_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// How often a node and its drain are looked at.
const NODE_POLL: Duration = Duration::from_secs(2);

/// How k3s itself is upgraded.
#[derive(Debug, Clone, Default)]
pub enum K3sMethod {
    /// system-upgrade-controller Plans (edited in Git, or patched).
    #[default]
    Plan,
    /// The binary over SSH.
    Ssh(Box<SshOptions>),
}

/// Where and how the nodes are reached (upkeep.yaml `k3s.ssh`).
#[derive(Debug, Clone)]
pub struct SshOptions {
    pub ssh: SshConfig,
    pub user: String,
    pub port: u16,
    pub sudo: bool,
    pub binary_path: String,
    pub server_restart: String,
    pub agent_restart: String,
    pub drain_timeout: Duration,
    pub node_timeout: Duration,
    pub nodes: BTreeMap<String, NodeOverride>,
}

/// What differs for one node.
#[derive(Debug, Clone, Default)]
pub struct NodeOverride {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub binary_path: Option<String>,
    pub restart: Option<String>,
}

impl K3sMethod {
    /// The method upkeep.yaml asks for; `flag` (`--k3s-method`) wins.
    /// Errors name the key that is wrong.
    pub fn from_settings(
        settings: &Settings,
        flag: Option<K3sMethodName>,
    ) -> Result<K3sMethod, String> {
        let k3s = &settings.k3s;
        match flag.or(k3s.method).unwrap_or(K3sMethodName::Plan) {
            K3sMethodName::Plan => Ok(K3sMethod::Plan),
            K3sMethodName::Ssh => {
                let s = k3s.ssh.clone().unwrap_or_default();
                let duration = |key: &str, v: &Option<String>, default: u64| match v {
                    Some(text) => upkeep_config::parse_duration(text)
                        .map_err(|e| format!("{}: {e}", settings.key(key))),
                    None => Ok(Duration::from_secs(default)),
                };
                let command = |key: &str, v: &Option<String>, default: &str| {
                    let c = v.clone().unwrap_or_else(|| default.to_string());
                    if c.trim().is_empty() {
                        Err(format!("{}: is empty", settings.key(key)))
                    } else {
                        Ok(c)
                    }
                };
                let path = |key: &str, v: &Option<String>| -> Result<Option<String>, String> {
                    match v {
                        Some(p) if !p.starts_with('/') => Err(format!(
                            "{}: {p:?} is not an absolute path",
                            settings.key(key)
                        )),
                        other => Ok(other.clone()),
                    }
                };
                let user = s.user.clone().unwrap_or_else(|| "root".to_string());
                let nodes = s
                    .nodes
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(name, n)| {
                        let key = format!("k3s.ssh.nodes.{name}");
                        Ok((
                            name,
                            NodeOverride {
                                host: n.host,
                                port: n.port,
                                user: n.user,
                                binary_path: path(&format!("{key}.binaryPath"), &n.binary_path)?,
                                restart: n.restart,
                            },
                        ))
                    })
                    .collect::<Result<_, String>>()?;
                Ok(K3sMethod::Ssh(Box::new(SshOptions {
                    ssh: SshConfig {
                        identity_file: s.identity_file.clone(),
                        known_hosts_file: s.known_hosts_file.clone(),
                        connect_timeout: duration(
                            "k3s.ssh.connectTimeout",
                            &s.connect_timeout,
                            10,
                        )?,
                        ..SshConfig::default()
                    },
                    sudo: s.sudo.unwrap_or(user != "root"),
                    user,
                    port: s.port.unwrap_or(22),
                    binary_path: path("k3s.ssh.binaryPath", &s.binary_path)?
                        .unwrap_or_else(|| "/usr/local/bin/k3s".to_string()),
                    server_restart: command(
                        "k3s.ssh.serverRestart",
                        &s.server_restart,
                        "systemctl restart k3s",
                    )?,
                    agent_restart: command(
                        "k3s.ssh.agentRestart",
                        &s.agent_restart,
                        "systemctl restart k3s-agent",
                    )?,
                    drain_timeout: duration("k3s.ssh.drainTimeout", &s.drain_timeout, 300)?,
                    node_timeout: duration("k3s.ssh.nodeTimeout", &s.node_timeout, 600)?,
                    nodes,
                })))
            }
        }
    }
}

/// One node to roll, as the cluster and the config describe it.
struct Node {
    name: String,
    server: bool,
    arch: String,
    version: Option<Version>,
    host: Host,
    binary_path: String,
    restart: String,
}

/// The release asset of the k3s binary for a node architecture.
fn asset_for(arch: &str) -> Option<(&'static str, String)> {
    let binary = match arch {
        "amd64" => "k3s",
        "arm64" => "k3s-arm64",
        "arm" => "k3s-armhf",
        "s390x" => "k3s-s390x",
        _ => return None,
    };
    Some((binary, format!("sha256sum-{arch}.txt")))
}

fn is_server(node: &Value) -> bool {
    ["control-plane", "master"].iter().any(|role| {
        node.pointer("/metadata/labels")
            .and_then(|l| l.get(format!("node-role.kubernetes.io/{role}")))
            .is_some()
    })
}

fn internal_ip(node: &Value) -> Option<&str> {
    node.pointer("/status/addresses")?
        .as_array()?
        .iter()
        .find(|a| a.get("type").and_then(Value::as_str) == Some("InternalIP"))?
        .get("address")?
        .as_str()
}

fn nodes(listed: &[Value], o: &SshOptions) -> Result<Vec<Node>, ApplyError> {
    let mut out = Vec::new();
    for n in listed {
        let name = str_at(n, "/metadata/name").unwrap_or_default().to_string();
        let over = o.nodes.get(&name).cloned().unwrap_or_default();
        let address = match over.host.as_deref().or_else(|| internal_ip(n)) {
            Some(a) => a.to_string(),
            None => {
                return Err(ApplyError::Input(format!(
                    "node {name} has no InternalIP: set k3s.ssh.nodes.{name}.host in upkeep.yaml"
                )));
            }
        };
        let host = Host::new(
            &address,
            over.port.unwrap_or(o.port),
            over.user.as_deref().unwrap_or(&o.user),
        )
        .map_err(|e| ApplyError::Input(format!("node {name}: {e}")))?;
        let server = is_server(n);
        out.push(Node {
            server,
            arch: str_at(n, "/status/nodeInfo/architecture")
                .unwrap_or("amd64")
                .to_string(),
            version: str_at(n, "/status/nodeInfo/kubeletVersion")
                .and_then(|v| Version::parse(v).ok()),
            host,
            binary_path: over.binary_path.unwrap_or_else(|| o.binary_path.clone()),
            restart: over.restart.unwrap_or_else(|| {
                if server {
                    o.server_restart.clone()
                } else {
                    o.agent_restart.clone()
                }
            }),
            name,
        });
    }
    // k3s upgrades servers before agents; by name within each for a stable order.
    out.sort_by(|a, b| b.server.cmp(&a.server).then(a.name.cmp(&b.name)));
    for n in &o.nodes {
        if !out.iter().any(|x| &x.name == n.0) {
            tracing::warn!("k3s.ssh.nodes.{} names no node of the cluster", n.0);
        }
    }
    Ok(out)
}

fn node_ref(name: &str) -> ObjectRef {
    ObjectRef {
        api_version: "v1".to_string(),
        kind: "Node".to_string(),
        namespace: None,
        name: name.to_string(),
    }
}

/// The binary for each architecture the nodes run, verified.
async fn binaries(
    upstream: &Upstream,
    tag: &str,
    archs: &BTreeSet<String>,
) -> Result<BTreeMap<String, (bytes::Bytes, String)>, ApplyError> {
    let mut out = BTreeMap::new();
    for arch in archs {
        let (binary, sums) = asset_for(arch).ok_or_else(|| {
            ApplyError::Input(format!("k3s publishes no binary for architecture {arch}"))
        })?;
        let download = |name: &str, e: upkeep_upstream::UpstreamError| {
            let what = format!("k3s {tag} {name}: {e}");
            if e.is_environment() {
                ApplyError::Environment(what)
            } else {
                ApplyError::Input(what)
            }
        };
        let sums_body = upstream
            .release_asset(GithubRepo::K3S, tag, &sums, MAX_SUMS)
            .await
            .map_err(|e| download(&sums, e))?;
        tracing::info!("downloading k3s {tag} {binary} for {arch} nodes");
        let body = upstream
            .release_asset(GithubRepo::K3S, tag, binary, MAX_BINARY)
            .await
            .map_err(|e| download(binary, e))?;
        upkeep_upstream::verify_sha256(&sums_body, binary, &body)
            .map_err(|e| ApplyError::Input(format!("k3s {tag}: {e}; nothing was changed")))?;
        use sha2::Digest;
        let digest = hex::encode(sha2::Sha256::digest(&body));
        tracing::info!(
            "k3s {tag} {binary}: {} bytes, sha256 {digest} as published",
            body.len()
        );
        out.insert(arch.clone(), (body, digest));
    }
    Ok(out)
}

/// Applies a k3s step over SSH.
pub(crate) async fn apply(
    step: &Step,
    opts: &Options,
    o: &SshOptions,
    cluster: Option<&Cluster>,
    started: Timestamp,
) -> Result<ApplyResult, ApplyError> {
    let mut out = result(step, ApplyMode::Ssh, started);
    out.dry_run = opts.dry_run;
    let Some(cluster) = cluster else {
        if opts.dry_run {
            // `upkeep run --dry-run` shows Git edits only; there are none here.
            return Ok(out);
        }
        return Err(ApplyError::Input(
            "k3s over SSH drains and watches the nodes: give a kubeconfig".to_string(),
        ));
    };
    let listed = list(cluster, "", "Node").await?;
    let all = nodes(&listed, o)?;
    if all.is_empty() {
        return Err(ApplyError::Input("the cluster has no nodes".to_string()));
    }
    for n in &all {
        let at = n.version.as_ref();
        if !at.is_some_and(|v| same(v, &step.from) || same(v, &step.to)) {
            return Err(ApplyError::Input(format!(
                "node {} runs {}, but the step goes from {} to {}: re-plan",
                n.name,
                at.map(|v| v.to_string())
                    .unwrap_or_else(|| "an unknown version".into()),
                step.from,
                step.to
            )));
        }
    }
    let todo: Vec<&Node> = all
        .iter()
        .filter(|n| !n.version.as_ref().is_some_and(|v| same(v, &step.to)))
        .collect();
    out.objects = todo.iter().map(|n| node_ref(&n.name)).collect();
    if todo.is_empty() {
        out.status = ApplyStatus::NoOp;
        out.finished_at = Timestamp::now();
        return Ok(out);
    }
    if opts.dry_run {
        for n in &todo {
            tracing::info!(
                "would roll {} ({}, {}) over SSH at {}: cordon, drain, {} -> {}, `{}`",
                n.name,
                if n.server { "server" } else { "agent" },
                n.arch,
                n.host,
                n.binary_path,
                step.to,
                n.restart
            );
        }
        out.finished_at = Timestamp::now();
        return Ok(out);
    }
    let upstream = opts.upstream.as_ref().ok_or_else(|| {
        ApplyError::Input("k3s over SSH downloads the release: no upstream configured".to_string())
    })?;
    let tag = step.to.to_string();
    let tag = if tag.starts_with('v') {
        tag
    } else {
        format!("v{tag}")
    };
    // Every binary is in hand and verified, and every node answers, before
    // the first node is touched.
    let archs: BTreeSet<String> = todo.iter().map(|n| n.arch.clone()).collect();
    let bins = binaries(upstream, &tag, &archs).await?;
    for n in &todo {
        preflight(n, o).await?;
    }

    let nodes_res = cluster
        .resource(&ResourceRef::new("", "v1", "Node"))
        .await?;
    for (i, n) in todo.iter().enumerate() {
        tracing::info!(
            "node {} of {}: {} ({})",
            i + 1,
            todo.len(),
            n.name,
            if n.server { "server" } else { "agent" }
        );
        let (binary, digest) = &bins[&n.arch];
        if let Err(why) = roll_node(cluster, &nodes_res, n, o, step, binary, digest).await {
            let rest: Vec<&str> = todo[i + 1..].iter().map(|n| n.name.as_str()).collect();
            out.status = ApplyStatus::Failed;
            out.errors.push(doc_error(
                "ssh",
                &format!(
                    "node {}: {why}. It is left cordoned; its previous binary is at {}.upkeep-prev.{}",
                    n.name,
                    n.binary_path,
                    if rest.is_empty() {
                        String::new()
                    } else {
                        format!(" Not started: {}.", rest.join(", "))
                    }
                ),
            ));
            out.finished_at = Timestamp::now();
            return Ok(out);
        }
    }
    out.finished_at = Timestamp::now();
    Ok(out)
}

fn as_root(o: &SshOptions, script: &str) -> String {
    if o.sudo {
        format!("sudo -n sh -c {}", quote(script))
    } else {
        format!("sh -c {}", quote(script))
    }
}

/// The node answers over SSH (host key known, key accepted), the commands
/// run as root where asked, and the binary's directory and `sha256sum` are
/// there: found out before anything is cordoned.
async fn preflight(n: &Node, o: &SshOptions) -> Result<(), ApplyError> {
    let path = quote(&n.binary_path);
    let check = format!(
        "command -v sha256sum >/dev/null || {{ echo 'sha256sum is missing' >&2; exit 1; }}; \
         dir=$(dirname {path}); [ -d \"$dir\" ] && [ -w \"$dir\" ] || {{ echo \"$dir is not a writable directory\" >&2; exit 1; }}"
    );
    upkeep_ssh::run(&o.ssh, &n.host, &as_root(o, &check), None, RESTART_TIMEOUT)
        .await
        .map(|_| ())
        .map_err(|e| {
            ApplyError::Environment(format!(
                "node {} cannot be upgraded over SSH: {e}; nothing was changed",
                n.name
            ))
        })
}

/// What stopped a node, for the result: a sentence, not a type.
type NodeFailure = String;

async fn roll_node(
    cluster: &Cluster,
    nodes_res: &upkeep_kube::Resource,
    n: &Node,
    o: &SshOptions,
    step: &Step,
    binary: &[u8],
    digest: &str,
) -> Result<(), NodeFailure> {
    cordon(cluster, nodes_res, &n.name)
        .await
        .map_err(|e| format!("cordon: {e}"))?;
    drain(cluster, &n.name, o.drain_timeout).await?;

    let sudo = |script: &str| as_root(o, script);
    let path = quote(&n.binary_path);
    // The bytes are checked again where they land: a cut upload never
    // replaces the binary, and the old one stays beside it.
    let install = format!(
        "set -e; new={path}.upkeep-new; cat > \"$new\"; \
         echo {digest}'  '\"$new\" | sha256sum -c --status -; chmod 0755 \"$new\"; \
         if [ -e {path} ]; then cp -p {path} {path}.upkeep-prev; fi; mv -f \"$new\" {path}"
    );
    tracing::info!(
        "  {}: installing k3s {} at {}",
        n.name,
        step.to,
        n.binary_path
    );
    upkeep_ssh::run(
        &o.ssh,
        &n.host,
        &sudo(&install),
        Some(binary),
        UPLOAD_TIMEOUT,
    )
    .await
    .map_err(|e| format!("installing the binary: {e}"))?;
    tracing::info!("  {}: {}", n.name, n.restart);
    upkeep_ssh::run(&o.ssh, &n.host, &sudo(&n.restart), None, RESTART_TIMEOUT)
        .await
        .map_err(|e| format!("restarting k3s: {e}"))?;

    let what = format!("  {} Ready at {}", n.name, step.to);
    poll(&what, o.node_timeout, NODE_POLL, || {
        back_at(cluster, nodes_res, &n.name, &step.to)
    })
    .await
    .map_err(|e| match e {
        WaitError::Timeout { after, last } => {
            format!("did not come back within {}s ({last})", after.as_secs())
        }
        other => other.to_string(),
    })?;
    uncordon(cluster, nodes_res, &n.name)
        .await
        .map_err(|e| format!("uncordon: {e}"))?;
    Ok(())
}

async fn cordon(
    cluster: &Cluster,
    res: &upkeep_kube::Resource,
    name: &str,
) -> Result<(), KubeError> {
    let node = match cluster.get(res, None, name).await? {
        Some(n) => upkeep_kube::object_value(&n, res)?,
        None => return Ok(()),
    };
    if node.pointer("/spec/unschedulable") == Some(&json!(true)) {
        // Cordoned already: by an operator (left so afterwards) or by an
        // earlier, interrupted roll (the annotation says so).
        return Ok(());
    }
    tracing::info!("  {name}: cordon");
    cluster
        .patch_merge(
            res,
            None,
            name,
            &json!({"metadata": {"annotations": {CORDONED_BY: "upkeep"}},
                    "spec": {"unschedulable": true}}),
        )
        .await?;
    Ok(())
}

async fn uncordon(
    cluster: &Cluster,
    res: &upkeep_kube::Resource,
    name: &str,
) -> Result<(), KubeError> {
    let node = match cluster.get(res, None, name).await? {
        Some(n) => upkeep_kube::object_value(&n, res)?,
        None => return Ok(()),
    };
    let ours = node
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(CORDONED_BY))
        .is_some();
    if !ours {
        tracing::info!("  {name}: was cordoned before upkeep; left cordoned");
        return Ok(());
    }
    tracing::info!("  {name}: uncordon");
    cluster
        .patch_merge(
            res,
            None,
            name,
            &json!({"metadata": {"annotations": {CORDONED_BY: null}},
                    "spec": {"unschedulable": null}}),
        )
        .await?;
    Ok(())
}

/// Pods a drain moves: not DaemonSet pods (they stay with their node), not
/// static (mirror) pods, not pods that already finished.
fn evictable(pod: &Value) -> bool {
    let daemon = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|o| {
            o.iter()
                .any(|r| r.get("kind").and_then(Value::as_str) == Some("DaemonSet"))
        });
    let mirror = pod
        .pointer("/metadata/annotations")
        .and_then(|a| a.get("kubernetes.io/config.mirror"))
        .is_some();
    let done = matches!(
        str_at(pod, "/status/phase"),
        Some("Succeeded") | Some("Failed")
    );
    !daemon && !mirror && !done
}

async fn drain(cluster: &Cluster, node: &str, within: Duration) -> Result<(), NodeFailure> {
    let pods_res = cluster
        .resource(&ResourceRef::new("", "v1", "Pod"))
        .await
        .map_err(|e| e.to_string())?;
    let on_node = ListOptions::all_namespaces().fields(&format!("spec.nodeName={node}"));
    let started = Instant::now();
    let mut said = String::new();
    loop {
        let pods: Vec<Value> = upkeep_kube::list_values(cluster, &pods_res, &on_node)
            .await
            .map_err(|e| format!("listing its pods: {e}"))?
            .into_iter()
            .filter(evictable)
            .collect();
        if pods.is_empty() {
            tracing::info!("  {node}: drained");
            return Ok(());
        }
        let mut blocked = Vec::new();
        for p in &pods {
            let ns = str_at(p, "/metadata/namespace").unwrap_or("default");
            let name = str_at(p, "/metadata/name").unwrap_or_default();
            if p.pointer("/metadata/deletionTimestamp").is_some() {
                continue;
            }
            match cluster.evict(ns, name).await {
                Ok(()) => tracing::info!("  {node}: evicted {ns}/{name}"),
                Err(e) if e.status_code() == Some(429) => blocked.push(format!("{ns}/{name}")),
                Err(e) => return Err(format!("evicting {ns}/{name}: {e}")),
            }
        }
        let now = if blocked.is_empty() {
            format!("{} pod(s) leaving", pods.len())
        } else {
            format!("a PodDisruptionBudget holds {}", blocked.join(", "))
        };
        if now != said {
            tracing::info!("  {node}: drain: {now}");
            said = now;
        }
        if started.elapsed() >= within {
            return Err(format!(
                "drain not done within {}s: {said}",
                within.as_secs()
            ));
        }
        tokio::time::sleep(NODE_POLL).await;
    }
}

/// The node Ready at `to`, and the API answering. While k3s restarts (a
/// single server takes the API with it) errors mean "not yet".
async fn back_at(
    cluster: &Cluster,
    res: &upkeep_kube::Resource,
    name: &str,
    to: &Version,
) -> Result<State, WaitError> {
    if let Err(e) = cluster.server_version().await {
        return Ok(State::Waiting(format!("the API does not answer yet ({e})")));
    }
    let node = match cluster.get(res, None, name).await {
        Ok(Some(n)) => upkeep_kube::object_value(&n, res)?,
        Ok(None) => {
            return Ok(State::Failed(
                "the node is gone from the cluster".to_string(),
            ));
        }
        Err(e) if e.is_environment() => {
            return Ok(State::Waiting(format!("the API does not answer yet ({e})")));
        }
        Err(e) => return Err(e.into()),
    };
    let at = str_at(&node, "/status/nodeInfo/kubeletVersion").unwrap_or("unknown");
    let at_version = Version::parse(at).is_ok_and(|v| same(&v, to));
    let ready = condition_of(&node, "Ready").is_some_and(|c| c.status == "True");
    Ok(match (at_version, ready) {
        (true, true) => State::Done,
        (true, false) => State::Waiting(format!("at {at}, not Ready yet")),
        (false, _) => State::Waiting(format!("still at {at}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_follow_k3s_release_names() {
        assert_eq!(
            asset_for("amd64").unwrap(),
            ("k3s", "sha256sum-amd64.txt".to_string())
        );
        assert_eq!(
            asset_for("arm64").unwrap(),
            ("k3s-arm64", "sha256sum-arm64.txt".to_string())
        );
        assert_eq!(asset_for("arm").unwrap().0, "k3s-armhf");
        assert!(asset_for("riscv64").is_none());
    }

    #[test]
    fn drains_leave_daemonsets_mirrors_and_finished_pods() {
        let pod = |extra: Value| {
            let mut p = json!({"metadata": {"name": "p"}, "status": {"phase": "Running"}});
            if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
                for (k, v) in e {
                    p.insert(k.clone(), v.clone());
                }
            }
            p
        };
        assert!(evictable(&pod(json!({}))));
        assert!(!evictable(&pod(json!({"metadata": {"name": "p",
            "ownerReferences": [{"kind": "DaemonSet", "name": "x"}]}}))));
        assert!(!evictable(&pod(json!({"metadata": {"name": "p",
            "annotations": {"kubernetes.io/config.mirror": "abc"}}}))));
        assert!(!evictable(&pod(json!({"status": {"phase": "Succeeded"}}))));
    }

    #[test]
    fn servers_come_first_then_agents_by_name() {
        let node = |name: &str, server: bool| {
            let mut labels = json!({});
            if server {
                labels["node-role.kubernetes.io/control-plane"] = json!("true");
            }
            json!({"metadata": {"name": name, "labels": labels},
                   "status": {"addresses": [{"type": "InternalIP", "address": format!("10.0.0.{}", name.len())}],
                              "nodeInfo": {"kubeletVersion": "v1.31.4+k3s1", "architecture": "arm64"}}})
        };
        let o = SshOptions {
            ssh: SshConfig::default(),
            user: "root".into(),
            port: 22,
            sudo: false,
            binary_path: "/usr/local/bin/k3s".into(),
            server_restart: "systemctl restart k3s".into(),
            agent_restart: "systemctl restart k3s-agent".into(),
            drain_timeout: Duration::from_secs(1),
            node_timeout: Duration::from_secs(1),
            nodes: BTreeMap::from([(
                "b-agent".to_string(),
                NodeOverride {
                    host: Some("pi4.lan".into()),
                    port: Some(2222),
                    ..NodeOverride::default()
                },
            )]),
        };
        let listed = vec![
            node("b-agent", false),
            node("z-server", true),
            node("a-agent", false),
        ];
        let ns = nodes(&listed, &o).unwrap();
        let names: Vec<&str> = ns.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["z-server", "a-agent", "b-agent"]);
        assert_eq!(ns[0].restart, "systemctl restart k3s");
        assert_eq!(ns[1].restart, "systemctl restart k3s-agent");
        assert_eq!(ns[1].host.to_string(), "root@10.0.0.7:22");
        assert_eq!(ns[2].host.to_string(), "root@pi4.lan:2222");
        assert_eq!(ns[2].arch, "arm64");
    }
}
