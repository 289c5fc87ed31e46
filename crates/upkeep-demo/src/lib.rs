//! `upkeep demo`: the job users come for, end to end, with nothing of
//! theirs touched. It starts sim-upstream (the recorded GitHub releases,
//! k3s channels and Longhorn chart repository) and sim-cluster (two k3s
//! nodes, Flux reconciling a temporary GitOps repository with Longhorn,
//! podinfo and the system-upgrade-controller Plans) in this process, then
//! runs `scan`, `plan` and `run` exactly as on a real cluster: a restore
//! point per step, the validators, one commit per step through Git and
//! Flux, the validators again. Every stage is printed.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use upkeep_cli::{CliError, ClusterArgs, ConfigArgs, Outcome, Output};
use upkeep_contract::{RunStatus, Timestamp};
use upkeep_kube::{Cluster, ClusterRead, ConnectOptions, ResourceRef};
use upkeep_validate::cli::Validator;

const SIM: &str = r#"
controllers:
  flux:
    interval: 200ms
    charts:
      - name: longhorn
        versions:
          - {version: 1.9.0, appVersion: v1.9.0}
          - {version: 1.9.2, appVersion: v1.9.2}
      - name: podinfo
        versions:
          - {version: 6.7.0, appVersion: 6.7.0}
  upgrades:
    interval: 200ms
    delay: 300ms
"#;

const NODES: &str = r#"apiVersion: v1
kind: Node
metadata:
  name: k3s-server
  labels: {kubernetes.io/hostname: k3s-server, node-role.kubernetes.io/control-plane: "true"}
status:
  nodeInfo: {kubeletVersion: v1.31.4+k3s1, kubeProxyVersion: v1.31.4+k3s1, containerRuntimeVersion: "containerd://1.7.23-k3s2"}
  conditions: [{type: Ready, status: "True"}]
---
apiVersion: v1
kind: Node
metadata:
  name: k3s-agent
  labels: {kubernetes.io/hostname: k3s-agent}
status:
  nodeInfo: {kubeletVersion: v1.31.4+k3s1, kubeProxyVersion: v1.31.4+k3s1, containerRuntimeVersion: "containerd://1.7.23-k3s2"}
  conditions: [{type: Ready, status: "True"}]
"#;

/// The GitOps repository: (path, text).
const REPO: &[(&str, &str)] = &[
    (
        "apps/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - namespaces.yaml\n  - longhorn.yaml\n  - podinfo.yaml\n  - system-upgrade.yaml\n",
    ),
    (
        "apps/namespaces.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: longhorn-system\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: podinfo\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: system-upgrade\n",
    ),
    (
        "apps/longhorn.yaml",
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\nmetadata:\n  name: longhorn\n  namespace: longhorn-system\nspec:\n  interval: 1h\n  url: https://charts.longhorn.io\n---\napiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: longhorn\n  namespace: longhorn-system\nspec:\n  interval: 30m\n  chart:\n    spec:\n      chart: longhorn\n      version: 1.9.0 # storage: one minor at a time\n      sourceRef:\n        kind: HelmRepository\n        name: longhorn\n",
    ),
    (
        "apps/podinfo.yaml",
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: podinfo\n  namespace: podinfo\nspec:\n  interval: 30m\n  chart:\n    spec:\n      chart: podinfo\n      version: 6.7.0\n      sourceRef:\n        kind: HelmRepository\n        name: podinfo\n        namespace: flux-system\n",
    ),
    (
        "apps/system-upgrade.yaml",
        "# k3s, upgraded by system-upgrade-controller: servers first, then agents\napiVersion: upgrade.cattle.io/v1\nkind: Plan\nmetadata:\n  name: server\n  namespace: system-upgrade\nspec:\n  version: v1.31.4+k3s1\n  concurrency: 1\n  cordon: true\n  serviceAccountName: system-upgrade\n  nodeSelector:\n    matchExpressions:\n      - {key: node-role.kubernetes.io/control-plane, operator: Exists}\n  upgrade:\n    image: rancher/k3s-upgrade\n---\napiVersion: upgrade.cattle.io/v1\nkind: Plan\nmetadata:\n  name: agent\n  namespace: system-upgrade\nspec:\n  version: v1.31.4+k3s1\n  concurrency: 1\n  cordon: true\n  serviceAccountName: system-upgrade\n  nodeSelector:\n    matchExpressions:\n      - {key: node-role.kubernetes.io/control-plane, operator: DoesNotExist}\n  prepare:\n    image: rancher/k3s-upgrade\n    args: [prepare, server]\n  upgrade:\n    image: rancher/k3s-upgrade\n",
    ),
];

fn env(e: impl std::fmt::Display) -> CliError {
    CliError::environment(format!("demo: {e}"))
}

fn git(dir: &Path, args: &[&str]) -> Result<String, CliError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "upkeep demo")
        .env("GIT_AUTHOR_EMAIL", "demo@upkeep.invalid")
        .env("GIT_COMMITTER_NAME", "upkeep demo")
        .env("GIT_COMMITTER_EMAIL", "demo@upkeep.invalid")
        .output()
        .map_err(|e| env(format!("git: {e}")))?;
    if !out.status.success() {
        return Err(env(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn stage(title: &str) {
    eprintln!("\n== {title}");
}

/// Runs the demo; exit 0 when the run completed. With `keep`, the demo's
/// folder (the GitOps repository, the run folder, the restore points) is
/// left for a look; otherwise it is deleted at the end.
pub fn demo(keep: bool) -> Result<Outcome, CliError> {
    let started = Instant::now();
    let tmp = tempfile::Builder::new()
        .prefix("upkeep-demo-")
        .tempdir()
        .map_err(env)?;
    let root = tmp.path().to_path_buf();
    let root = root.as_path();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(env)?;

    stage("the demo world: sim-upstream, a GitOps repository, sim-cluster with Flux");
    let upstream = runtime
        .block_on(sim_upstream::SimUpstream::start(
            sim_upstream::SimOptions::new(sim_upstream::workspace_fixture()),
        ))
        .map_err(env)?;
    let base = upstream.base_url();
    let origin = root.join("origin.git");
    let checkout = root.join("home-ops");
    std::fs::create_dir_all(&origin).map_err(env)?;
    git(&origin, &["init", "-q", "--bare", "-b", "main"])?;
    for (p, text) in REPO {
        let path = checkout.join(p);
        std::fs::create_dir_all(path.parent().unwrap_or(&checkout)).map_err(env)?;
        std::fs::write(&path, text).map_err(env)?;
    }
    git(&checkout, &["init", "-q", "-b", "main"])?;
    git(&checkout, &["config", "user.name", "upkeep demo"])?;
    git(&checkout, &["config", "user.email", "demo@upkeep.invalid"])?;
    git(&checkout, &["add", "-A"])?;
    git(&checkout, &["commit", "-q", "-m", "the homelab"])?;
    git(
        &checkout,
        &["remote", "add", "origin", &origin.display().to_string()],
    )?;
    git(&checkout, &["push", "-q", "origin", "main"])?;

    let fixture = root.join("fixture");
    std::fs::create_dir_all(fixture.join("crds")).map_err(env)?;
    let crds = sim_upstream::workspace_fixture().join("../clusters/homelab/crds");
    for sub in ["flux", "system-upgrade"] {
        for e in std::fs::read_dir(crds.join(sub)).map_err(env)? {
            let p = e.map_err(env)?.path();
            if let Some(name) = p.file_name() {
                std::fs::copy(&p, fixture.join("crds").join(name)).map_err(env)?;
            }
        }
    }
    std::fs::write(fixture.join("nodes.yaml"), NODES).map_err(env)?;
    std::fs::write(
        fixture.join("flux.yaml"),
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: flux-system\n---\n\
             apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: home-ops\n  namespace: flux-system\n\
             spec:\n  interval: 1h\n  url: file://{}\n  ref:\n    branch: main\n---\n\
             apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\n  namespace: flux-system\n\
             spec:\n  interval: 1h\n  path: ./apps\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: home-ops\n",
            origin.display()
        ),
    )
    .map_err(env)?;
    let store = sim_cluster::load_dir(&fixture).map_err(env)?;
    let cfg = sim_cluster::ServeConfig::new(root.join("kubeconfig"))
        .with_sim(sim_cluster::SimConfig::parse(SIM).map_err(env)?);
    let sim = runtime
        .block_on(sim_cluster::SimCluster::start(store, cfg))
        .map_err(env)?;
    let kubeconfig = sim.kubeconfig_path().to_path_buf();
    let cluster = runtime
        .block_on(Cluster::connect(&ConnectOptions {
            kubeconfig: Some(kubeconfig.clone()),
            ..ConnectOptions::default()
        }))
        .map_err(env)?;
    runtime.block_on(installed(&cluster))?;
    eprintln!(
        "sim-cluster at {} (kubeconfig {}), GitOps repository {}; Flux has installed Longhorn 1.9.0 and podinfo 6.7.0",
        cluster.server(),
        kubeconfig.display(),
        checkout.display()
    );

    // upkeep.yaml for the demo: the recorded upstreams, this checkout, a
    // restore point per step encrypted to a key made now.
    let public = upkeep_snapshot::keygen(&root.join("age-identity.txt")).map_err(env)?;
    let config = root.join("upkeep.yaml");
    std::fs::write(
        &config,
        format!(
            "upstreams:\n  github:\n    url: {base}\n  k3sChannels:\n    url: {base}/v1-release/channels\n  \
             helmMirrors:\n    https://charts.longhorn.io: {base}/helm/longhorn\n\
             http:\n  retries: 0\n  timeout: 10s\ncache:\n  dir: {cache}\nstateDir: {state}\n\
             gitops:\n  dir: {checkout}\n\
             policy:\n  maxUpdate: {{k3s: patch, longhorn: patch}}\n\
             snapshot:\n  ageRecipients: [{public}]\n\
             run:\n  validators: [flux, apps]\n  stepTimeout: 60s\n",
            cache = root.join("cache").display(),
            state = root.join("state").display(),
            checkout = checkout.display(),
        ),
    )
    .map_err(env)?;
    let config_args = ConfigArgs {
        config: Some(config.clone()),
    };
    let cluster_args = ClusterArgs {
        kubeconfig: Some(kubeconfig.clone()),
        context: None,
    };
    let settings = upkeep_cli::load_settings(&config_args, None, Some(&cluster_args), None)?;

    stage("upkeep scan: every detector, merged into one report");
    let (report, _degraded) = upkeep_run::scan(&config_args, &cluster_args, &settings)?;
    let mut out = Output::new();
    out.text(&upkeep_report::render_text(&report))?;
    out.flush()?;

    stage("upkeep plan: the report and the policy (k3s and Longhorn: patch updates only)");
    let policy = upkeep_run::policy::from_settings(&settings).map_err(env)?;
    let plan = upkeep_plan::plan(&report, &policy, Timestamp::now());
    for s in &plan.steps {
        out.text(&format!(
            "{:>2}. {} {} {} -> {}  ({})\n",
            s.index, s.component.kind, s.component, s.from, s.to, s.reason
        ))?;
    }
    for u in &plan.unreachable {
        out.text(&format!("  not planned: {} {}\n", u.component, u.version))?;
    }
    out.flush()?;
    if plan.steps.is_empty() {
        return Err(env("the plan has no steps: the recorded world changed?"));
    }

    stage(
        "upkeep run: per step a restore point, validators, the update through Git and Flux, validators again",
    );
    let opts = upkeep_run::RunOptions {
        gitops: Some(checkout.clone()),
        push: true,
        validators: vec![Validator::Flux, Validator::Apps],
        prove: upkeep_validate::ProveOptions::default(),
        step_timeout: settings.step_timeout,
        poll: Duration::from_millis(300),
        snapshot_dir: Some(root.join("state/restore-points")),
        age_recipients: vec![public],
        exclude_secrets: false,
        longhorn: upkeep_snapshot::LonghornMode::None,
        actor: "upkeep demo".to_string(),
        emergency: None,
        lease_ttl: Duration::from_secs(60),
        maintenance: true,
        upstream: Some(upkeep_upstream::Upstream::from_settings(&settings).map_err(env)?),
        k3s: Default::default(),
    };
    let store = upkeep_run::RunStore::new(&settings.state_dir);
    let record = runtime
        .block_on(upkeep_run::run(&cluster, &store, &plan, &opts))
        .map_err(env)?;

    stage("what happened");
    out.text(&format!("{}: {:?}\n", record.run_id, record.status))?;
    for st in &record.steps {
        out.text(&format!(
            "{:>2}. {:?} {} {} {} -> {}{}\n",
            st.index,
            st.status,
            st.component.kind,
            st.component,
            st.from,
            st.to,
            st.error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ))?;
    }
    out.text("\nthe GitOps repository (one commit per step, each diff its version lines):\n")?;
    out.text(&git(&checkout, &["log", "--oneline", "-n", "5"])?)?;
    let nodes = runtime.block_on(node_versions(&cluster))?;
    out.text(&format!("\nnodes: {nodes}\n"))?;
    out.text(&format!(
        "run folder: {} (every stage's document){}\ndemo took {:.1} s\n",
        store.run_dir(&record.run_id).display(),
        if keep {
            ""
        } else {
            "; deleted now: `upkeep demo --keep` leaves it"
        },
        started.elapsed().as_secs_f64()
    ))?;
    out.flush()?;
    drop(sim);
    drop(upstream);
    if keep {
        let kept = tmp.keep();
        eprintln!("kept {}", kept.display());
    }
    Ok(if record.status == RunStatus::Completed {
        Outcome::Done
    } else {
        Outcome::Negative
    })
}

/// Waits until Flux has installed both releases, as the detectors read them.
async fn installed(cluster: &Cluster) -> Result<(), CliError> {
    let res = cluster
        .resource(&ResourceRef::preferred(
            "helm.toolkit.fluxcd.io",
            "HelmRelease",
        ))
        .await
        .map_err(env)?;
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let mut ready = 0;
        for (ns, name) in [("longhorn-system", "longhorn"), ("podinfo", "podinfo")] {
            if let Some(o) = cluster.get(&res, Some(ns), name).await.map_err(env)?
                && upkeep_kube::condition(&o, "Ready").is_some_and(|c| c.status == "True")
            {
                ready += 1;
            }
        }
        if ready == 2 {
            return Ok(());
        }
        if Instant::now() > until {
            return Err(env("Flux did not install the demo's releases within 60 s"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn node_versions(cluster: &Cluster) -> Result<String, CliError> {
    let res = cluster
        .resource(&ResourceRef::preferred("", "Node"))
        .await
        .map_err(env)?;
    let nodes =
        upkeep_kube::list_values(cluster, &res, &upkeep_kube::ListOptions::all_namespaces())
            .await
            .map_err(env)?;
    Ok(nodes
        .iter()
        .filter_map(|v| {
            Some(format!(
                "{} {}",
                v.pointer("/metadata/name")?.as_str()?,
                v.pointer("/status/nodeInfo/kubeletVersion")?.as_str()?
            ))
        })
        .collect::<Vec<_>>()
        .join(", "))
}
