//! `cargo xtask bench render`: twinscene against a Babylon.js baseline on generated
//! facilities, in headless Chromium (tests/bench/render.mjs does the measuring).

use std::path::Path;

use crate::facility;

/// The bench's own copies of the server and the web bundle, so that rebuilds during a run do
/// not change what is measured.
const BENCH_DIR: &str = "target/bench";
const RELEASE_SERVER_BIN: &str = "target/release/twinscene";

#[derive(clap::Args)]
pub struct Args {
    /// Facility sizes: tiles per side, comma-separated (N×N copies of the building each).
    #[arg(long, default_value = "1,3", value_delimiter = ',')]
    tiles: Vec<u32>,
    /// Seconds of each steady-state measurement (idle, 1 %/s and 10 %/s changes).
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// The building to tile (see gen-facility).
    #[arg(long, default_value = "office_a")]
    source: String,
    /// Bounding boxes instead of the building's meshes.
    #[arg(long)]
    lowpoly: bool,
    /// The web bundle to measure (copied to target/bench/web on first use when not given).
    #[arg(long)]
    dist: Option<String>,
    /// Which viewers to run, comma-separated: `twinscene,babylon`, or `twinscene` alone for
    /// sizes the baseline cannot load (10^6 elements: `--tiles 31 --lowpoly`).
    #[arg(long, default_value = "twinscene,babylon")]
    viewers: String,
}

pub fn run(args: &Args) -> Result<(), String> {
    let mut scenes = Vec::new();
    for &tiles in &args.tiles {
        let options = facility::Options {
            tiles,
            lowpoly: args.lowpoly,
            source: args.source.clone(),
            out: "target/facility".into(),
        };
        let generated = facility::generate(&options)?;
        eprintln!("xtask: facility {} ({} elements)", generated.scene.display(), generated.elements);
        scenes.push(generated.scene.to_string_lossy().into_owned());
    }
    std::fs::create_dir_all(BENCH_DIR).map_err(|e| format!("cannot create {BENCH_DIR}: {e}"))?;
    // A release build, as deployed: a debug server took 3.5–4 s to answer for the 10^5-element
    // scene, which counted against twinscene's first frame.
    let server = format!("{BENCH_DIR}/twinscene-release");
    if !Path::new(&server).exists() {
        crate::run("cargo", &["build", "--release", "-p", "twinscene-server"])?;
        std::fs::copy(RELEASE_SERVER_BIN, &server).map_err(|e| format!("cannot copy the server: {e}"))?;
    }
    let dist = match &args.dist {
        Some(dist) => dist.clone(),
        None => {
            let dist = format!("{BENCH_DIR}/web");
            if !Path::new(&dist).join("twinscene_viewer_bg.wasm").exists() {
                let built = Path::new(crate::WEB_DIST);
                if !built.join("twinscene_viewer_bg.wasm").exists() {
                    return Err(format!(
                        "no web bundle in {}: run `cargo xtask build-web` first",
                        crate::WEB_DIST
                    ));
                }
                std::fs::create_dir_all(&dist).map_err(|e| format!("cannot create {dist}: {e}"))?;
                for file in ["twinscene_viewer.js", "twinscene_viewer_bg.wasm"] {
                    std::fs::copy(built.join(file), Path::new(&dist).join(file))
                        .map_err(|e| format!("cannot copy {file}: {e}"))?;
                }
            }
            dist
        }
    };
    if !Path::new("node_modules/babylonjs-loaders").exists()
        || !Path::new("node_modules/playwright-core").exists()
    {
        crate::run("npm", &["ci", "--no-audit", "--no-fund"])?;
    }
    let scenes = scenes.join(",");
    let seconds = args.seconds.to_string();
    crate::run_with_env(
        "node",
        &[
            "tests/bench/render.mjs",
            "--scenes",
            &scenes,
            "--seconds",
            &seconds,
            "--out",
            BENCH_DIR,
            "--viewers",
            &args.viewers,
        ],
        &[("TWINSCENE_BIN", &server), ("TWINSCENE_DIST", &dist)],
    )
}
