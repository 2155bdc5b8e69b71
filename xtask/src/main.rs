//! Project tasks, run as `cargo xtask <task>` (the cargo-xtask convention): building the web
//! bundle, running the demo, and running every test the project has.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};

/// The wasm-bindgen CLI must match the `wasm-bindgen` crate version exactly.
const WASM_BINDGEN_VERSION: &str = "0.2.130";
const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// Where `build-web` puts the bundle; the server serves it at /pkg.
const WEB_DIST: &str = "target/web";

#[derive(Parser)]
#[command(about = "twinscene project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build the viewer for the browser (wasm32, release) and run wasm-bindgen into target/web.
    BuildWeb,
    /// Build the web bundle, then serve the demo scene with simulated live data.
    Demo {
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
    /// Run the workspace tests and the browser tests.
    Test {
        /// Skip the browser tests (no wasm build, no Chromium).
        #[arg(long)]
        no_browser: bool,
    },
    /// Check formatting and run clippy with warnings as errors.
    Lint,
}

type TaskResult = Result<(), String>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = project_root();
    if let Err(error) = std::env::set_current_dir(&root) {
        eprintln!("xtask: cannot enter {}: {error}", root.display());
        return ExitCode::FAILURE;
    }
    let result = match cli.task {
        Task::BuildWeb => build_web(),
        Task::Demo { port } => demo(port),
        Task::Test { no_browser } => test(no_browser),
        Task::Lint => lint(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error}");
            ExitCode::FAILURE
        }
    }
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn run(program: &str, args: &[&str]) -> TaskResult {
    run_with_env(program, args, &[])
}

fn run_with_env(program: &str, args: &[&str], env: &[(&str, &str)]) -> TaskResult {
    eprintln!("xtask: $ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .status()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("`{program} {}` failed ({status})", args.join(" "))) }
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ensure_web_toolchain() -> TaskResult {
    let installed = output("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if !installed.lines().any(|line| line.trim() == WASM_TARGET) {
        run("rustup", &["target", "add", WASM_TARGET])?;
    }
    let version = output("wasm-bindgen", &["--version"]).unwrap_or_default();
    if !version.contains(WASM_BINDGEN_VERSION) {
        // Not --locked: the CLI's own lockfile pins crates that no longer build on our rustc.
        run("cargo", &["install", "wasm-bindgen-cli", "--version", WASM_BINDGEN_VERSION])?;
    }
    Ok(())
}

fn build_web() -> TaskResult {
    ensure_web_toolchain()?;
    let started = std::time::Instant::now();
    run("cargo", &["build", "--release", "--target", WASM_TARGET, "-p", "twinscene-viewer", "--lib"])?;
    let wasm = format!("target/{WASM_TARGET}/release/twinscene_viewer.wasm");
    run("wasm-bindgen", &["--target", "web", "--no-typescript", "--out-dir", WEB_DIST, &wasm])?;
    let bundle = format!("{WEB_DIST}/twinscene_viewer_bg.wasm");
    let raw = std::fs::metadata(&bundle).map(|m| m.len()).unwrap_or(0);
    let gzip = output("sh", &["-c", &format!("gzip -9 -c {bundle} | wc -c")])
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    eprintln!(
        "xtask: web bundle in {WEB_DIST}: wasm {:.1} MB raw, {:.1} MB gzip; built in {:.0} s",
        raw as f64 / 1e6,
        gzip as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn demo(port: u16) -> TaskResult {
    build_web()?;
    let port = port.to_string();
    run(
        "cargo",
        &[
            "run",
            "-p",
            "twinscene-server",
            "--",
            "serve",
            "--scene",
            "scenes/demo.json",
            "--simulate",
            "--port",
            &port,
        ],
    )
}

fn test(no_browser: bool) -> TaskResult {
    if !no_browser {
        // Build the bundle first so a broken wasm build fails fast, before the long native tests.
        build_web()?;
    }
    run("cargo", &["test", "--workspace"])?;
    if no_browser {
        return Ok(());
    }
    run("cargo", &["build", "-p", "twinscene-server"])?;
    if !Path::new("node_modules/playwright-core").exists() {
        run("npm", &["ci", "--no-audit", "--no-fund"])?;
    }
    run_with_env(
        "node",
        &["--test", "--test-concurrency=1", "tests/e2e/"],
        &[("TWINSCENE_BIN", "target/debug/twinscene"), ("TWINSCENE_DIST", WEB_DIST)],
    )
}

fn lint() -> TaskResult {
    run("cargo", &["fmt", "--all", "--check"])?;
    run("cargo", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])
}
