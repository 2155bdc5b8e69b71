//! `twinscene import FORMAT FILE -o scene.json`: converts an ADT 3D Scenes configuration, a
//! TwinMaker scene or an ADT Explorer export into a twinscene scene file, and says on stderr
//! what was not carried over. docs/cli.md is its manual.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use twinscene_core::import::{self, ImportOptions, SourceFormat};
use twinscene_core::schema::SCHEMA_ID;

use super::positions::{locate, position_of};
use super::validate::read_text;

/// Exit code when the input cannot be imported (its content, or the format named).
pub const EXIT_NOT_IMPORTED: u8 = 1;
/// Exit code when a file cannot be read or written.
pub const EXIT_IO: u8 = 2;

#[derive(clap::Args, Debug, Clone)]
pub struct ImportArgs {
    /// The format of FILE: adt-3dscenes, twinmaker, adt-explorer (or twinscene). It must match
    /// what the content says.
    #[arg(value_parser = parse_format)]
    pub format: SourceFormat,
    /// The file to convert.
    pub file: PathBuf,
    /// Where to write the scene (`-` for stdout).
    #[arg(short, long)]
    pub output: PathBuf,
    /// 3D Scenes: the scene to convert (id or name); default: the first.
    #[arg(long)]
    pub scene: Option<String>,
    /// Twins to put into the scene: an ADT twin array, query page or ADT Explorer export.
    #[arg(long)]
    pub twins: Option<PathBuf>,
    /// DTDL models to put into the scene (a JSON file).
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// The mesh the scene should use instead of the source's (a path relative to the written
    /// scene, or a URL).
    #[arg(long)]
    pub mesh: Option<String>,
    /// Overwrite the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

fn parse_format(text: &str) -> Result<SourceFormat, String> {
    text.parse().map_err(|error: import::ImportError| error.message)
}

/// Runs `import`; messages go to stderr. Returns the exit code.
pub fn run(args: &ImportArgs) -> u8 {
    match convert(args) {
        Ok(()) => 0,
        Err((code, message)) => {
            eprintln!("error: {message}");
            code
        }
    }
}

fn convert(args: &ImportArgs) -> Result<(), (u8, String)> {
    let io = |message: String| (EXIT_IO, message);
    let input = args.file.display().to_string();
    let text = read_text(&args.file).map_err(io)?;
    let to_stdout = args.output.as_os_str() == "-";
    if !to_stdout && args.output.exists() && !args.force {
        return Err(io(format!("{} exists; pass --force to overwrite it", args.output.display())));
    }
    let not_imported = |error: import::ImportError| {
        let position = match (error.line, error.column) {
            (Some(line), Some(column)) => format!(":{line}:{column}"),
            _ => String::new(),
        };
        let pointer = if error.pointer.is_empty() { String::new() } else { format!("{}: ", error.pointer) };
        (EXIT_NOT_IMPORTED, format!("{input}{position}: {pointer}{}", error.message))
    };
    let detected = import::detect(&text).map_err(not_imported)?;
    if detected != args.format {
        return Err((
            EXIT_NOT_IMPORTED,
            format!(
                "{input} is a {detected} file, not {}: run `twinscene import {detected} {input} ...`",
                args.format
            ),
        ));
    }
    let twins = args.twins.as_deref().map(read_text).transpose().map_err(io)?;
    let models = args.models.as_deref().map(read_text).transpose().map_err(io)?;
    let options = ImportOptions {
        scene: args.scene.as_deref(),
        twins: twins.as_deref(),
        models: models.as_deref(),
        mesh: args.mesh.as_deref(),
    };
    let imported = import::import(&text, &options).map_err(not_imported)?;
    for note in &imported.notes {
        let position = locate(&text, &note.pointer, None)
            .map(|offset| position_of(&text, offset))
            .map_or(String::new(), |p| format!(":{}:{}", p.line, p.column));
        eprintln!("{input}{position}: not carried over: {note}");
    }
    let mut scene = imported.scene;
    scene.schema = Some(schema_reference(&args.output));
    // A relative mesh was relative to the source file: keep it pointing at the same file.
    if args.mesh.is_none() && !to_stdout && !scene.mesh.is_empty() && !scene.mesh.contains("://") {
        let source = args.file.parent().unwrap_or(Path::new("")).join(&scene.mesh);
        if let Some(relative) = relative_to_output(&args.output, &source) {
            scene.mesh = relative;
        }
    }
    let mut json = serde_json::to_string_pretty(&scene).map_err(|e| io(e.to_string()))?;
    json.push('\n');
    if to_stdout {
        let mut stdout = std::io::stdout();
        stdout.write_all(json.as_bytes()).and_then(|()| stdout.flush()).map_err(|e| io(e.to_string()))?;
    } else {
        std::fs::write(&args.output, json)
            .map_err(|e| io(format!("cannot write {}: {e}", args.output.display())))?;
    }
    eprintln!(
        "{}: {} scene from {input} ({}): {} elements, {} behaviors, {} twins; {} note{} on what was not carried over",
        if to_stdout { "stdout".to_owned() } else { args.output.display().to_string() },
        if to_stdout { "the" } else { "wrote the" },
        imported.format,
        scene.elements.len(),
        scene.behaviors.len(),
        scene.twins.len(),
        imported.notes.len(),
        if imported.notes.len() == 1 { "" } else { "s" },
    );
    Ok(())
}

/// `$schema` of a written scene: the checked-in schema relative to the output when the output
/// is inside a twinscene checkout (`schema/scene.schema.json` in it or a parent), else its `$id`.
pub fn schema_reference(output: &Path) -> String {
    let directory = std::path::absolute(output)
        .ok()
        .and_then(|path| path.parent().map(Path::to_owned))
        .unwrap_or_default();
    let mut ups = String::new();
    for ancestor in directory.ancestors() {
        if ancestor.join("schema/scene.schema.json").is_file() {
            return format!("{ups}schema/scene.schema.json");
        }
        ups.push_str("../");
    }
    SCHEMA_ID.to_owned()
}

/// `target` as a path relative to the directory of `output` (`/`-separated).
fn relative_to_output(output: &Path, target: &Path) -> Option<String> {
    let from = std::path::absolute(output).ok()?.parent()?.to_owned();
    let to = std::path::absolute(target).ok()?;
    let from: Vec<_> = from.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect();
    let to: Vec<_> = to.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    if common == 0 {
        return None;
    }
    let mut parts: Vec<String> = vec!["..".to_owned(); from.len() - common];
    parts.extend(to[common..].iter().map(|c| c.as_os_str().to_string_lossy().into_owned()));
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_meshes_follow_the_output() {
        assert_eq!(
            relative_to_output(Path::new("/a/out/scene.json"), Path::new("/a/in/./tank.glb")).as_deref(),
            Some("../in/tank.glb")
        );
        assert_eq!(
            relative_to_output(Path::new("/a/s.json"), Path::new("/a/m.glb")).as_deref(),
            Some("m.glb")
        );
    }
}
