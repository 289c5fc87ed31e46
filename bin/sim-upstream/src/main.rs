//! `sim-upstream serve`: replay recorded GitHub releases, k3s channels and Helm repositories
//! from a fixture directory. Prints one JSON line on stdout when ready; logs go to stderr.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sim_upstream::{SimOptions, SimUpstream};

#[derive(Parser)]
#[command(
    name = "sim-upstream",
    version,
    about = "Serve recorded upstream release data for tests and demos"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a fixture directory until SIGTERM or SIGINT.
    Serve {
        /// Fixture directory (layout: testdata/upstream/README.md).
        #[arg(long)]
        fixture: PathBuf,
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// GitHub-path requests allowed per hour before 403 (default: SIM.yaml's, else 60).
        #[arg(long)]
        rate_limit: Option<u64>,
        /// Append every request to this file as a JSON line.
        #[arg(long)]
        request_log: Option<PathBuf>,
        /// SIM.yaml with `rateLimit`, `seed` and `faults`.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

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
            eprintln!("sim-upstream: error: {first} (see --help)");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(
            std::env::var_os("NO_COLOR").is_none()
                && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        )
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sim-upstream: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let Command::Serve {
        fixture,
        listen,
        rate_limit,
        request_log,
        config,
    } = cli.command;
    runtime.block_on(serve(SimOptions {
        fixture,
        listen,
        rate_limit,
        request_log,
        config,
    }))
}

async fn serve(opts: SimOptions) -> ExitCode {
    // Handlers go in before the ready line: a test may send SIGTERM as soon as it reads it.
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sim-upstream: cannot install signal handlers: {e}");
            return ExitCode::from(3);
        }
    };
    let sim = match SimUpstream::start(opts).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sim-upstream: {e}");
            return ExitCode::from(if e.is_bad_input() { 2 } else { 3 });
        }
    };
    println!("{}", sim.ready_info());
    signals.wait().await;
    tracing::info!("signal received; shutting down");
    sim.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(unix)]
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

#[cfg(unix)]
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

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals)
    }

    async fn wait(self) {
        if let Err(e) = tokio::signal::ctrl_c().await {
            eprintln!("sim-upstream: cannot wait for Ctrl-C: {e}");
        }
    }
}
