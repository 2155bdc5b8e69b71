//! Project tasks, run as `cargo xtask <task>` (the cargo-xtask convention): building the web
//! bundle, running the demo, and running every test the project has.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};

mod bench_live;
mod bench_render;
mod bench_size;
mod facility;

/// The wasm-bindgen CLI must match the `wasm-bindgen` crate version exactly.
const WASM_BINDGEN_VERSION: &str = "0.2.130";
const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// Where `build-web` puts the bundle; the server serves it at /pkg.
const WEB_DIST: &str = "target/web";
/// Where `build-web --ship` puts the size-optimized bundle (`twinscene serve --dist target/ship`).
/// Not `target/web-ship`: cargo keeps the host artifacts of the `web-ship` profile there.
const WEB_SHIP: &str = "target/ship";

#[derive(Parser)]
#[command(about = "twinscene project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build the viewer for the browser (wasm32, release) and run wasm-bindgen into target/web.
    BuildWeb {
        /// Build the bundle to ship instead (profile `web-ship`: size-optimized, link-time
        /// optimized, no name section, brotli and gzip copies) into target/ship. Slow: a
        /// clean build takes ~10 minutes on two cores.
        #[arg(long)]
        ship: bool,
    },
    /// Build the web bundle, then serve a demo scene with simulated live data.
    Demo {
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// `duplex` (the twinscene demo building), `water-tank` (an AWS IoT TwinMaker scene,
        /// served as published, with starting values from scenes/water-tank/twins.json), or the
        /// path of a scene file, such as a facility from `gen-facility`.
        #[arg(long, default_value = "duplex")]
        scene: String,
    },
    /// Run the workspace tests and the browser tests.
    Test {
        /// Skip the browser tests (no wasm build, no Chromium).
        #[arg(long)]
        no_browser: bool,
    },
    /// Check formatting and run clippy with warnings as errors.
    Lint,
    /// Run the kiosk page in headless Chromium for N minutes against a simulated, periodically
    /// restarted server; fail if memory or DOM size grows after warm-up (tests/soak/soak.mjs).
    Soak {
        #[arg(long, default_value_t = 3.0)]
        minutes: f64,
        /// Seconds between server restarts.
        #[arg(long, default_value_t = 60)]
        restart_every: u32,
        /// Seconds between samples.
        #[arg(long, default_value_t = 10)]
        sample_every: u32,
    },
    /// Tile a shared IFC building N×N into a facility GLB with a scene file and twin graph.
    GenFacility {
        #[arg(long, default_value_t = 1)]
        tiles: u32,
        /// One shared box per element (its bounds) instead of the building's meshes.
        #[arg(long)]
        lowpoly: bool,
        /// office_a, duplex, fzk (from ../shared/data/glb) or a path to a .glb.
        #[arg(long, default_value = "office_a")]
        source: String,
        /// Parent directory; the facility goes to OUT/<source>-<N>x<N>[-lowpoly]/.
        #[arg(long, default_value = "target/facility")]
        out: PathBuf,
        /// Check the result with `twinscene validate` (builds the server when missing).
        #[arg(long)]
        validate: bool,
    },
    /// Benchmarks (see docs/performance.md).
    Bench {
        #[command(subcommand)]
        what: Bench,
    },
}

#[derive(Subcommand)]
enum Bench {
    /// twinscene against a Babylon.js baseline on generated facilities, in headless Chromium.
    Render(bench_render::Args),
    /// Build the bundle to ship and check its compressed size against the budget.
    Size(bench_size::Args),
    /// The live-data load test: N viewers × M updates/s against a release server on loopback
    /// (docs/server.md, "Load test"); arguments go to the `live_load` example.
    Live(bench_live::Args),
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
        Task::BuildWeb { ship: false } => build_web(),
        Task::BuildWeb { ship: true } => build_web_ship().map(|_| ()),
        Task::Demo { port, scene } => demo(port, &scene),
        Task::Test { no_browser } => test(no_browser),
        Task::Lint => lint(),
        Task::Soak { minutes, restart_every, sample_every } => soak(minutes, restart_every, sample_every),
        Task::GenFacility { tiles, lowpoly, source, out, validate } => {
            gen_facility(&facility::Options { tiles, lowpoly, source, out }, validate)
        }
        Task::Bench { what: Bench::Render(args) } => bench_render::run(&args),
        Task::Bench { what: Bench::Size(args) } => bench_size::run(&args),
        Task::Bench { what: Bench::Live(args) } => bench_live::run(&args),
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

/// One built web bundle: where its files are and how large the wasm is.
struct WebBundle {
    wasm_raw: u64,
    wasm_gzip: u64,
    /// Only the shipped bundle has a brotli copy (quality 11 takes minutes on the test build).
    wasm_brotli: Option<u64>,
    seconds: f64,
}

/// The test and demo bundle: the `release` profile (fast to rebuild), gzip copies.
fn build_web() -> TaskResult {
    build_bundle("release", WEB_DIST, &[], false).map(|_| ())
}

/// The bundle to ship: the `web-ship` profile (opt-level "z", fat LTO, one codegen unit), the
/// wasm name section removed (panic messages keep their file:line; stack traces lose function
/// names), gzip and brotli copies.
fn build_web_ship() -> Result<WebBundle, String> {
    build_bundle("web-ship", WEB_SHIP, &["--remove-name-section"], true)
}

fn build_bundle(
    profile: &str,
    out_dir: &str,
    bindgen_args: &[&str],
    brotli: bool,
) -> Result<WebBundle, String> {
    ensure_web_toolchain()?;
    let started = std::time::Instant::now();
    run(
        "cargo",
        &["build", "--profile", profile, "--target", WASM_TARGET, "-p", "twinscene-viewer", "--lib"],
    )?;
    let wasm = format!("target/{WASM_TARGET}/{profile}/twinscene_viewer.wasm");
    let bundle = format!("{out_dir}/twinscene_viewer_bg.wasm");
    let glue = format!("{out_dir}/twinscene_viewer.js");
    // The server sends these compressed files to browsers that accept them; a stale one must
    // never outlive the file it was made from.
    for file in [&bundle, &glue] {
        for suffix in ["gz", "br"] {
            let _ = std::fs::remove_file(format!("{file}.{suffix}"));
        }
    }
    let mut args = vec!["--target", "web", "--no-typescript", "--out-dir", out_dir];
    args.extend_from_slice(bindgen_args);
    args.push(&wasm);
    run("wasm-bindgen", &args)?;
    run("gzip", &["-9", "--keep", "--force", &bundle, &glue])?;
    if brotli {
        for file in [&bundle, &glue] {
            compress_brotli(Path::new(file))?;
        }
    }
    let size = |path: String| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let built = WebBundle {
        wasm_raw: size(bundle.clone()),
        wasm_gzip: size(format!("{bundle}.gz")),
        wasm_brotli: brotli.then(|| size(format!("{bundle}.br"))),
        seconds: started.elapsed().as_secs_f64(),
    };
    let brotli_text =
        built.wasm_brotli.map(|b| format!(", {:.1} MB brotli", b as f64 / 1e6)).unwrap_or_default();
    eprintln!(
        "xtask: web bundle in {out_dir}: wasm {:.1} MB raw, {:.1} MB gzip{brotli_text}; built in {:.0} s",
        built.wasm_raw as f64 / 1e6,
        built.wasm_gzip as f64 / 1e6,
        built.seconds
    );
    Ok(built)
}

/// Writes `FILE.br` beside `file` (brotli at its highest quality, as static servers ship).
fn compress_brotli(file: &Path) -> TaskResult {
    let input = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let mut output = Vec::with_capacity(input.len() / 4);
    let params = brotli::enc::BrotliEncoderParams { quality: 11, lgwin: 24, ..Default::default() };
    brotli::BrotliCompress(&mut input.as_slice(), &mut output, &params)
        .map_err(|e| format!("cannot compress {}: {e}", file.display()))?;
    let target = format!("{}.br", file.display());
    std::fs::write(&target, output).map_err(|e| format!("cannot write {target}: {e}"))
}

fn demo(port: u16, scene: &str) -> TaskResult {
    let (scene_args, profile): (&[&str], &[&str]) = match scene {
        "duplex" => (&["--scene", "scenes/demo.json"], &[]),
        "water-tank" => (
            &[
                "--scene",
                "scenes/water-tank/CookieFactoryWaterTank.scene.json",
                "--twins",
                "scenes/water-tank/twins.json",
            ],
            &[],
        ),
        // A scene file of one's own, e.g. a generated facility: served by the release build, as
        // deployed (the debug server takes seconds to answer a scene of 10^5 twins).
        path if Path::new(path).is_file() => (&["--scene", path], &["--release"]),
        other => {
            return Err(format!(
                "no demo scene {other:?}; choose duplex, water-tank or the path of a scene file"
            ));
        }
    };
    build_web()?;
    let port = port.to_string();
    let mut args = vec!["run"];
    args.extend_from_slice(profile);
    args.extend_from_slice(&["-p", "twinscene-server", "--", "serve", "--simulate", "--port", &port]);
    args.extend_from_slice(scene_args);
    run("cargo", &args)
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

fn soak(minutes: f64, restart_every: u32, sample_every: u32) -> TaskResult {
    build_web()?;
    run("cargo", &["build", "-p", "twinscene-server"])?;
    if !Path::new("node_modules/playwright-core").exists() {
        run("npm", &["ci", "--no-audit", "--no-fund"])?;
    }
    let (minutes, restart_every, sample_every) =
        (minutes.to_string(), restart_every.to_string(), sample_every.to_string());
    run_with_env(
        "node",
        &[
            "tests/soak/soak.mjs",
            "--minutes",
            &minutes,
            "--restart-every",
            &restart_every,
            "--sample-every",
            &sample_every,
        ],
        &[("TWINSCENE_BIN", "target/debug/twinscene"), ("TWINSCENE_DIST", WEB_DIST)],
    )
}

fn gen_facility(options: &facility::Options, validate: bool) -> TaskResult {
    let started = std::time::Instant::now();
    let generated = facility::generate(options)?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len() as f64 / 1e6).unwrap_or(0.0);
    eprintln!(
        "xtask: {} elements on {} floors per building in {:.1} s: {} ({:.1} MB), {} ({:.1} MB)",
        generated.elements,
        generated.floors,
        started.elapsed().as_secs_f64(),
        generated.glb.display(),
        size(&generated.glb),
        generated.scene.display(),
        size(&generated.scene),
    );
    if validate {
        if !Path::new(SERVER_BIN).exists() {
            run("cargo", &["build", "-p", "twinscene-server"])?;
        }
        let scene = generated.scene.to_string_lossy();
        run(SERVER_BIN, &["validate", &scene])?;
    }
    Ok(())
}

/// The server binary `cargo build -p twinscene-server` writes.
const SERVER_BIN: &str = "target/debug/twinscene";

fn lint() -> TaskResult {
    run("cargo", &["fmt", "--all", "--check"])?;
    run("cargo", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])
}
