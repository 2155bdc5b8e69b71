//! The desktop viewer: `twinscene-viewer [SCENE_FILE] [--live WS_URL] [--mesh FILE] [--scene NAME]`.

use std::process::ExitCode;

use twinscene_viewer::{ViewerConfig, build_app};

const USAGE: &str = "usage: twinscene-viewer [SCENE_FILE] [--live WS_URL] [--mesh FILE] [--scene NAME]\n\
    Shows SCENE_FILE (default scenes/demo.json): a twinscene scene, an ADT 3D Scenes\n\
    configuration (--scene picks one of its scenes) or a TwinMaker scene; --mesh replaces its\n\
    mesh. With --live, follows a twinscene server (with the access token in the\n\
    TWINSCENE_TOKEN environment variable, if it needs one).";

fn main() -> ExitCode {
    let mut scene = None;
    let mut live_url = None;
    let mut mesh_url = None;
    let mut scene_name = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--live" => match args.next() {
                Some(url) => live_url = Some(url),
                None => return usage_error("--live needs a URL"),
            },
            "--mesh" => match args.next() {
                // Relative to where the command runs, not to the scene file.
                Some(file) => mesh_url = Some(absolute(&file)),
                None => return usage_error("--mesh needs a file"),
            },
            "--scene" => match args.next() {
                Some(name) => scene_name = Some(name),
                None => return usage_error("--scene needs a scene id or name"),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other if other.starts_with('-') => return usage_error(&format!("unknown option {other}")),
            other if scene.is_none() => scene = Some(other.to_owned()),
            other => return usage_error(&format!("unexpected argument {other}")),
        }
    }
    let config = ViewerConfig {
        canvas: None,
        scene_url: scene.unwrap_or_else(|| "scenes/demo.json".into()),
        live_url,
        token: std::env::var("TWINSCENE_TOKEN").ok(),
        mesh_url,
        scene_name,
        screen_positions_up_to: twinscene_viewer::state_publishing::ALL_SCREEN_POSITIONS_UP_TO,
        stale_markers_up_to: twinscene_viewer::state_publishing::STALE_MARKERS_UP_TO,
        min_fps: twinscene_viewer::detail_levels::DEFAULT_MIN_FPS,
    };
    build_app(config).run();
    ExitCode::SUCCESS
}

fn absolute(path: &str) -> String {
    std::path::absolute(path).map_or_else(|_| path.to_owned(), |p| p.to_string_lossy().into_owned())
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("twinscene-viewer: {message}\n{USAGE}");
    ExitCode::from(2)
}
