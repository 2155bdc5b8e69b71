//! The `twinscene` command: reads the command line, loads the scene, binds, and serves until
//! Ctrl-C. Everything else lives in the library.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use twinscene_server::{AppState, LiveTimings, LoadedScene, StaticDirs, simulator};

#[derive(Parser)]
#[command(name = "twinscene", version, about = "Digital-twin 3D viewer server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the viewer, the scene and live twin updates.
    Serve(ServeArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// The scene file; its mesh path is relative to it.
    #[arg(long, default_value = "scenes/demo.json")]
    scene: PathBuf,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// 0 picks any free port.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The viewer's wasm bundle, as `cargo xtask build-web` writes it.
    #[arg(long, default_value = "target/web")]
    dist: PathBuf,
    /// The web page.
    #[arg(long, default_value = "web")]
    web: PathBuf,
    /// Random-walk twin temperatures, for a demo without a data source.
    #[arg(long)]
    simulate: bool,
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    simulate_interval_ms: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let Command::Serve(args) = Cli::parse().command;
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match serve(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let scene = LoadedScene::load(&args.scene).map_err(|error| error.to_string())?;
    let dirs = StaticDirs { dist: args.dist, web: args.web, ..StaticDirs::default() };
    let state = AppState::new(scene, dirs, LiveTimings::default());
    twinscene_server::warn_about_missing_files(&state);
    if args.simulate {
        simulator::spawn(state.clone(), Duration::from_millis(args.simulate_interval_ms));
    }
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .map_err(|error| format!("cannot listen on {}:{}: {error}", args.host, args.port))?;
    let address = listener.local_addr().map_err(|error| error.to_string())?;
    // Scripts and tests wait for this line to learn the port.
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "twinscene listening on http://{address}");
    let _ = stdout.flush();
    axum::serve(listener, twinscene_server::router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|error| format!("server failed: {error}"))
}
