//! The `twinscene` command: `serve` (the viewer, scene, ingest and live data), `simulate`
//! (drive a running server through its public ingest API), and the offline `validate`, `import`
//! and `schema` (docs/cli.md). Everything else lives in the library.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use twinscene_server::storage::{SqliteStorage, Storage};
use twinscene_server::{AppState, LiveTimings, LoadedScene, ServerConfig, StaticDirs, cli, mqtt, simulator};

/// A server request allocates per JSON value it reads and writes (a batch of 10,000 CloudEvents
/// is a few hundred thousand small blocks); with glibc's allocator that was half the CPU of the
/// ingest (perf), with mimalloc much less (docs/server.md, "Ingest").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "twinscene", version, about = "Digital-twin 3D viewer server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the viewer, the scene, twin ingest and live twin updates.
    Serve(ServeArgs),
    /// Drive a running server's twins with random walks and occasional alarms.
    Simulate(simulator::SimulateArgs),
    /// Check a scene file (any supported format): shape, mesh nodes, twins, models, expression
    /// types. Exit code 0: valid (warnings allowed), 1: invalid, 2: cannot read the file.
    Validate(cli::validate::ValidateArgs),
    /// Convert a 3D Scenes configuration, TwinMaker scene or ADT Explorer export into a
    /// twinscene scene file; what is not carried over is listed on stderr.
    Import(cli::import::ImportArgs),
    /// Print the scene file's JSON Schema (as checked in at schema/scene.schema.json).
    Schema(SchemaArgs),
}

#[derive(Args)]
struct SchemaArgs {
    /// Write to this file instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
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
    /// The server config file (TOML): tokens, limits, history retention, MQTT bridge.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The SQLite database that keeps twin state and history across restarts (default:
    /// `twinscene-data/<scene file name>-<hash of its full path>.sqlite` in the working
    /// directory). A database that
    /// already holds state wins over the scene file's twins.
    #[arg(long, conflicts_with = "memory")]
    db: Option<PathBuf>,
    /// Keep state in memory only: every start begins from the scene file's twins.
    #[arg(long)]
    memory: bool,
    /// Twins to merge into the scene's (an ADT twin array, query page or ADT Explorer export):
    /// starting values for a peer scene file that has none.
    #[arg(long)]
    twins: Option<PathBuf>,
    /// DTDL models to merge into the scene's (an array of interfaces or an ADT model page).
    #[arg(long)]
    models: Option<PathBuf>,
    /// Random-walk twin temperatures, for a demo without a data source.
    #[arg(long)]
    simulate: bool,
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    simulate_interval_ms: u64,
}

fn main() -> ExitCode {
    let command = Cli::parse().command;
    // The offline commands print their own reports and need no runtime or log.
    match &command {
        Command::Validate(args) => return ExitCode::from(cli::validate::run(args)),
        Command::Import(args) => return ExitCode::from(cli::import::run(args)),
        Command::Schema(args) => return schema(args),
        Command::Serve(_) | Command::Simulate(_) => {}
    }
    server_main(command)
}

fn schema(args: &SchemaArgs) -> ExitCode {
    let text = cli::schema_text();
    let written = match &args.output {
        Some(path) => std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display())),
        None => std::io::stdout().write_all(text.as_bytes()).map_err(|e| e.to_string()),
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

#[tokio::main]
async fn server_main(command: Command) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match command {
        Command::Serve(args) => serve(args).await,
        Command::Simulate(args) => simulator::run_remote(args).await,
        Command::Validate(_) | Command::Import(_) | Command::Schema(_) => unreachable!("handled in main"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// One database per scene file, so that serving another scene never shows the first one's twins
/// (its stored state wins over the scene's). Files of the same name in other folders, such as
/// the `scene.json` of every generated facility, are told apart by a hash of the full path.
fn default_db_path(scene: &std::path::Path) -> PathBuf {
    let name = scene.file_name().map_or_else(|| "scene".into(), |name| name.to_string_lossy());
    let full = std::fs::canonicalize(scene).unwrap_or_else(|_| scene.to_path_buf());
    // FNV-1a: stable across Rust releases and platforms, unlike the standard library's hasher.
    let hash = full
        .to_string_lossy()
        .bytes()
        .fold(0x811c_9dc5_u32, |hash, byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193));
    PathBuf::from("twinscene-data").join(format!("{name}-{hash:08x}.sqlite"))
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let mut scene = LoadedScene::load(&args.scene).map_err(|error| error.to_string())?;
    for (file, is_twins) in [(&args.twins, true), (&args.models, false)] {
        let Some(file) = file else { continue };
        let text =
            std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let merged =
            if is_twins { scene.scene.merge_twin_file(&text) } else { scene.scene.merge_models_file(&text) };
        merged.map_err(|e| format!("{}: {e}", file.display()))?;
    }
    let config = match &args.config {
        Some(path) => ServerConfig::load(path).map_err(|error| error.to_string())?,
        None => ServerConfig::default(),
    };
    let storage: Arc<dyn Storage> = if args.memory {
        Arc::new(SqliteStorage::in_memory().map_err(|error| error.to_string())?)
    } else {
        let path = args.db.clone().unwrap_or_else(|| default_db_path(&args.scene));
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        tracing::info!("twin state is kept in {}", path.display());
        Arc::new(SqliteStorage::open(&path, config.storage.sync).map_err(|error| error.to_string())?)
    };
    let dirs = StaticDirs { dist: args.dist, web: args.web, ..StaticDirs::default() };
    let state = AppState::with_storage(scene, dirs, LiveTimings::default(), config, storage)
        .map_err(|error| error.to_string())?;
    twinscene_server::warn_about_missing_files(&state);
    if state.config().tokens.is_empty() {
        tracing::info!("no tokens configured: every client may read and write");
    }
    if args.simulate {
        simulator::spawn(state.clone(), Duration::from_millis(args.simulate_interval_ms));
    }
    if let Some(bridge) = state.config().mqtt.clone() {
        mqtt::spawn(state.clone(), bridge);
    }
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .map_err(|error| format!("cannot listen on {}:{}: {error}", args.host, args.port))?;
    let address = listener.local_addr().map_err(|error| error.to_string())?;
    // Scripts and tests wait for this line to learn the port.
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "twinscene listening on http://{address}");
    let _ = stdout.flush();
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    twinscene_server::serve(listener, state, shutdown)
        .await
        .map_err(|error| format!("server failed: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scene_files_of_the_same_name_in_other_folders_get_their_own_database() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (dir.path().join("a/scene.json"), dir.path().join("b/scene.json"));
        for path in [&one, &two] {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "{}").unwrap();
        }
        let (db_one, db_two) = (default_db_path(&one), default_db_path(&two));
        assert_ne!(db_one, db_two);
        assert_eq!(db_one, default_db_path(&one), "the same file keeps its database");
        let name = db_one.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("scene.json-") && name.ends_with(".sqlite"), "{name}");
        assert!(db_one.starts_with("twinscene-data"));
    }
}
