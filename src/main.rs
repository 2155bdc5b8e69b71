//! The desktop viewer: `twinscene-viewer [SCENE_FILE] [--live ws://host:port/live]`.

use std::process::ExitCode;

use twinscene_viewer::{ViewerConfig, build_app};

const USAGE: &str = "usage: twinscene-viewer [SCENE_FILE] [--live WS_URL]\n\
    Shows SCENE_FILE (default scenes/demo.json); with --live, follows a twinscene server\n\
    (with the access token in the TWINSCENE_TOKEN environment variable, if it needs one).";

fn main() -> ExitCode {
    let mut scene = None;
    let mut live_url = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--live" => match args.next() {
                Some(url) => live_url = Some(url),
                None => return usage_error("--live needs a URL"),
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
    };
    build_app(config).run();
    ExitCode::SUCCESS
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("twinscene-viewer: {message}\n{USAGE}");
    ExitCode::from(2)
}
