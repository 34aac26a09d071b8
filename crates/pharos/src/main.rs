//! The `pharos` binary: the command line and nothing else.
//!
//! `serve` runs the server, `demo` runs it with a synthetic workload,
//! `check-config` validates a file, `version` prints the version. The wiring
//! lives in [`server`], the ingest path in [`ingest`], the workload in
//! [`demo`].

mod blocks;
mod connectors;
mod demo;
mod ingest;
mod scrape;
mod server;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pharos_pipeline::config::Config;
use std::path::PathBuf;

/// jemalloc: the ingest path allocates and frees many small objects (every span's
/// strings and attribute lists), which glibc's allocator spends a fifth of the ingest
/// CPU on (free-list consolidation); jemalloc's thread caches and size classes are made
/// for that pattern, as in TiKV and Materialize.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options (`_RJEM_MALLOC_CONF` in the environment still overrides them):
/// freed pages are given back to the kernel over a minute rather than ten seconds. The
/// head frees and allocates its size again every few seconds under load; with the
/// default, the pages given back were faulted in again at once (on the traces bench, 1.7
/// times the peak memory faulted in over a 4M-span run, and 5% of the CPU), while the
/// peak stays the same.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8; 42] = b"dirty_decay_ms:60000,muzzy_decay_ms:60000\0";

#[derive(Parser)]
#[command(
    name = "pharos",
    version,
    about = "OTLP in; PromQL, LogQL, Tempo and Jaeger APIs out; one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ServeArgs {
    /// A YAML configuration file in the OpenTelemetry Collector's shape; defaults apply without one.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// The data directory; overrides `storage.path`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Log format: `text` or `json`.
    #[arg(long, default_value = "text")]
    log_format: String,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the server.
    Serve(ServeArgs),
    /// Runs the server plus a synthetic workload of six services, and prints what to open.
    Demo {
        #[command(flatten)]
        serve: ServeArgs,
        /// Requests per second the simulated front door receives.
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        /// Seconds between injected payment incidents (each lasts a minute).
        #[arg(long, default_value_t = 300)]
        incident_every_seconds: u64,
    },
    /// Validates a configuration file without starting anything.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Prints the version.
    Version,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("pharos {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::CheckConfig { file } => match Config::load(&file)
            .map_err(|e| e.to_string())
            .and_then(|c| {
                // What only the engines can check: relabel regexes and the like.
                for (id, r) in &c.receivers {
                    if let Some(p) = r.as_prometheus() {
                        scrape::pools(p)
                            .map_err(|e| format!("{}: receivers.{id}: {e}", file.display()))?;
                    }
                }
                Ok(c)
            }) {
            Ok(_) => {
                println!("{}: ok", file.display());
                Ok(())
            }
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        },
        Command::Serve(args) => {
            let config = load(&args)?;
            runtime()?.block_on(server::run(config, None))
        }
        Command::Demo {
            serve,
            rate,
            incident_every_seconds,
        } => {
            let config = load(&serve)?;
            let workload = demo::Workload {
                rate,
                incident_every: std::time::Duration::from_secs(incident_every_seconds),
            };
            runtime()?.block_on(server::run(config, Some(workload)))
        }
    }
}

fn load(args: &ServeArgs) -> anyhow::Result<Config> {
    init_logging(&args.log_format);
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(dir) = &args.data_dir {
        config.storage.path = dir.clone();
    }
    Ok(config)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

fn init_logging(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PHAROS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
