//! `sim-cluster`: serve a simulated Kubernetes API from a fixture directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sim_cluster::{ServeConfig, ServeError, SimCluster, SimConfig};

#[derive(Parser)]
#[command(
    name = "sim-cluster",
    version,
    about = "A local Kubernetes API server for tests and demos"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load a fixture directory and serve it until SIGTERM/SIGINT.
    Serve {
        /// Directory (or file) of YAML/JSON manifests, read recursively.
        #[arg(long)]
        fixture: PathBuf,
        /// Where to write the kubeconfig for this server.
        #[arg(long)]
        kubeconfig_out: PathBuf,
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Serve HTTPS with a generated CA and require the kubeconfig's bearer token.
        #[arg(long)]
        tls: bool,
        /// The gitVersion `/version` reports.
        #[arg(long, default_value = "v1.31.4+k3s1")]
        server_version: String,
        /// On shutdown, write every object as JSON under this directory.
        #[arg(long)]
        state_out: Option<PathBuf>,
        /// SIM.yaml: simulated controllers (flux, longhorn, upgrades, workloads) with their
        /// delays and failures, the chart catalogue, and faults to inject. See
        /// testdata/sim-cluster/README.md for the format.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// An error with the exit code it maps to.
struct Failure(u8, String);

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line, as every upkeep tool says it.
            let rendered = e.render().to_string();
            let first = rendered
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            eprintln!("sim-cluster: error: {first} (see --help)");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sim-cluster: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, msg)) => {
            eprintln!("sim-cluster: {msg}");
            ExitCode::from(code)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let Command::Serve {
        fixture,
        kubeconfig_out,
        listen,
        tls,
        server_version,
        state_out,
        config,
    } = cli.command;
    let sim = match &config {
        Some(path) => SimConfig::load(path).map_err(|e| Failure(2, e.to_string()))?,
        None => SimConfig::default(),
    };
    if !fixture.exists() {
        return Err(Failure(
            2,
            format!("{}: fixture directory does not exist", fixture.display()),
        ));
    }
    let store = sim_cluster::load_dir(&fixture).map_err(|e| Failure(2, e.to_string()))?;
    let cfg = ServeConfig {
        listen,
        git_version: server_version,
        tls,
        kubeconfig: kubeconfig_out,
        sim,
    };
    let cluster = SimCluster::start(store, cfg).await.map_err(|e| match e {
        ServeError::Kubeconfig { .. } => Failure(2, e.to_string()),
        _ => Failure(3, e.to_string()),
    })?;
    let ready = serde_json::json!({
        "address": cluster.address().to_string(),
        "kubeconfig": cluster.kubeconfig_path().display().to_string(),
    });
    // Handlers are in place before the ready line: a client that signals
    // as soon as it reads it must find them, not the default action.
    let signals =
        Signals::install().map_err(|e| Failure(3, format!("cannot wait for signals: {e}")))?;
    println!("{ready}");
    signals.wait().await;
    let store = cluster.store().clone();
    cluster.shutdown().await;
    if let Some(dir) = state_out {
        sim_cluster::write_state(&store, &dir).map_err(|e| Failure(3, e.to_string()))?;
    }
    Ok(())
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
