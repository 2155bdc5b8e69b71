//! `twinscene validate`: everything that can be told about a scene file before it is served —
//! syntax and shape (with JSON pointer, line and column), the scene's own rules, mesh node
//! names against the GLB, twins that elements name, DTDL models, expression types, unused
//! layers, and what an import from a peer format leaves behind. docs/cli.md is its manual.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use twinscene_core::dtdl::ModelSet;
use twinscene_core::import::{self, ImportOptions, SourceFormat};
use twinscene_core::scene::Scene;
use twinscene_core::scene_check::{self, Severity, did_you_mean, near_misses};
use twinscene_core::twin::Twin;

use super::positions::{locate, offset_of, pointer_at, position_of};

/// Exit code of a file that cannot be read or is in no known format.
pub const EXIT_UNREADABLE: u8 = 2;
/// Exit code of a scene with errors.
pub const EXIT_INVALID: u8 = 1;

#[derive(clap::Args, Debug, Clone)]
pub struct ValidateArgs {
    /// The scene file: twinscene, ADT 3D Scenes configuration, TwinMaker scene or ADT Explorer
    /// export (told by content).
    pub file: PathBuf,
    /// The GLB/glTF to check node names against (default: the scene's mesh, relative to it).
    #[arg(long)]
    pub mesh: Option<PathBuf>,
    /// DTDL models: a JSON file (an interface or an array of them) or a directory of them.
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// Twins: an ADT twin array, query page or ADT Explorer export.
    #[arg(long)]
    pub twins: Option<PathBuf>,
    /// 3D Scenes: check only this scene (id or name); default: every scene of the configuration.
    #[arg(long)]
    pub scene: Option<String>,
    /// `text` for people, `json` for scripts and CI.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
}

/// One problem, located in a file.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub severity: Severity,
    /// The file it is in (the scene file, or a twins, models or mesh file).
    pub file: String,
    /// For a scene converted from a peer format: which one; the pointer is then into the
    /// converted scene (`twinscene import` writes it), not into the file.
    pub scene: Option<String>,
    pub pointer: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

/// What `validate` found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub file: String,
    pub format: Option<SourceFormat>,
    pub problems: Vec<Problem>,
    /// What was checked and against what, one line each.
    pub checked: Vec<String>,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.problems.iter().filter(|p| p.severity == Severity::Error).count()
    }

    pub fn warnings(&self) -> usize {
        self.problems.len() - self.errors()
    }

    pub fn valid(&self) -> bool {
        self.errors() == 0
    }

    pub fn exit_code(&self) -> u8 {
        if self.valid() { 0 } else { EXIT_INVALID }
    }

    /// One line per problem (`file:line:col: severity: pointer: message`), then a summary.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for problem in &self.problems {
            let _ = write!(out, "{}", problem.file);
            if let (Some(line), Some(column)) = (problem.line, problem.column) {
                let _ = write!(out, ":{line}:{column}");
            }
            let _ = write!(out, ": {}: ", problem.severity.as_str());
            if let Some(scene) = &problem.scene {
                let _ = write!(out, "[converted scene {scene:?}] ");
            }
            if !problem.pointer.is_empty() {
                let _ = write!(out, "{}: ", problem.pointer);
            }
            let _ = writeln!(out, "{}", problem.message);
        }
        for line in &self.checked {
            let _ = writeln!(out, "{}: note: {line}", self.file);
        }
        let (errors, warnings) = (self.errors(), self.warnings());
        let _ = writeln!(
            out,
            "{}: {} ({}): {errors} error{}, {warnings} warning{}",
            self.file,
            if self.valid() { "valid" } else { "invalid" },
            self.format.map_or("unknown format", SourceFormat::name),
            if errors == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" },
        );
        out
    }

    pub fn to_json(&self) -> Value {
        let list = |severity: Severity| -> Vec<Value> {
            self.problems
                .iter()
                .filter(|p| p.severity == severity)
                .map(|p| {
                    json!({
                        "file": p.file,
                        "scene": p.scene,
                        "pointer": p.pointer,
                        "line": p.line,
                        "column": p.column,
                        "severity": p.severity.as_str(),
                        "message": p.message,
                    })
                })
                .collect()
        };
        json!({
            "valid": self.valid(),
            "file": self.file,
            "format": self.format.map(SourceFormat::name),
            "errors": list(Severity::Error),
            "warnings": list(Severity::Warning),
            "checked": self.checked,
        })
    }
}

/// Runs `validate`, printing the report on stdout; returns the exit code.
pub fn run(args: &ValidateArgs) -> u8 {
    match validate(args) {
        Ok(report) => {
            let text = match args.format {
                OutputFormat::Text => report.to_text(),
                OutputFormat::Json => format!("{:#}\n", report.to_json()),
            };
            // A closed pipe (`| head`) is not a reason to fail or panic.
            let mut stdout = std::io::stdout();
            let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
            report.exit_code()
        }
        Err(message) => {
            match args.format {
                OutputFormat::Text => eprintln!("error: {message}"),
                OutputFormat::Json => println!(
                    "{:#}",
                    json!({"valid": false, "file": args.file.display().to_string(), "format": null,
                           "errors": [{"file": args.file.display().to_string(), "pointer": "", "line": null, "column": null,
                                       "severity": "error", "message": message}],
                           "warnings": [], "checked": [], "unreadable": true})
                ),
            }
            EXIT_UNREADABLE
        }
    }
}

/// Reads a file for checking; the error names it.
pub fn read_text(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() > import::MAX_SCENE_BYTES {
        return Err(format!(
            "{} is {} bytes; scene files are limited to {} bytes",
            path.display(),
            bytes.len(),
            import::MAX_SCENE_BYTES
        ));
    }
    String::from_utf8(bytes).map_err(|e| format!("{} is not UTF-8 text: {e}", path.display()))
}

/// Checks the file. `Err`: it cannot be read, or its format cannot be told (exit 2).
pub fn validate(args: &ValidateArgs) -> Result<Report, String> {
    let text = read_text(&args.file)?;
    let file = args.file.display().to_string();
    let mut report = Report { file: file.clone(), ..Report::default() };
    let mut out = Out { file: file.clone(), text: &text, scene: None, problems: Vec::new() };

    // Not JSON at all: a syntax error with its position, and the pointer it broke off in.
    if let Err(error) = serde_json::from_str::<serde::de::IgnoredAny>(&text) {
        let offset = offset_of(&text, error.line(), error.column());
        out.problems.push(Problem {
            severity: Severity::Error,
            file: file.clone(),
            scene: None,
            pointer: pointer_at(&text, offset),
            line: Some(error.line()),
            column: Some(error.column()),
            message: format!("not valid JSON: {}", without_position(error.to_string())),
        });
        report.problems = out.problems;
        return Ok(report);
    }
    let format = match import::detect(&text) {
        Ok(format) => format,
        // A twinscene scene with a mistake in what tells the format (say `"version": "1"`):
        // check it as one, so that the mistake is reported where it is.
        Err(_) if looks_like_twinscene(&text) => SourceFormat::Twinscene,
        Err(error) => return Err(format!("{file}: {}", error.message)),
    };
    report.format = Some(format);
    let externals = Externals::read(args)?;

    if format == SourceFormat::Twinscene {
        if let Some(scene) = parse_twinscene(&mut out) {
            check(&scene, args, &externals, &mut out, &mut report.checked);
        }
    } else {
        let names = import::scene_names(&text).map_err(|e| format!("{file}: {e}"))?;
        let wanted: Vec<Option<String>> = match (&args.scene, names.is_empty()) {
            (Some(name), _) => vec![Some(name.clone())],
            (None, true) => vec![None],
            (None, false) => names.iter().map(|(id, _)| Some(id.clone())).collect(),
        };
        for scene_id in wanted {
            let label = scene_id.as_ref().map(|id| {
                names.iter().find(|(known, _)| known == id).map_or(id.clone(), |(_, name)| name.clone())
            });
            let options = ImportOptions { scene: scene_id.as_deref(), ..ImportOptions::default() };
            match import::import(&text, &options) {
                Ok(imported) => {
                    for note in &imported.notes {
                        let message = match &label {
                            Some(label) if names.len() > 1 => {
                                format!("scene {label:?}: not carried over: {}", note.message)
                            }
                            _ => format!("not carried over: {}", note.message),
                        };
                        out.at_pointer(Severity::Warning, &note.pointer, message);
                    }
                    out.scene = Some(label.clone().unwrap_or_else(|| format.name().to_owned()));
                    check(&imported.scene, args, &externals, &mut out, &mut report.checked);
                    out.scene = None;
                }
                Err(error) => {
                    let message = match &label {
                        Some(label) => format!("scene {label:?}: {}", error.message),
                        None => error.message.clone(),
                    };
                    match (error.line, error.column) {
                        (Some(line), Some(column)) => out.problems.push(Problem {
                            severity: Severity::Error,
                            file: file.clone(),
                            scene: None,
                            pointer: error.pointer.clone(),
                            line: Some(line),
                            column: Some(column),
                            message,
                        }),
                        _ => out.at_pointer(Severity::Error, &error.pointer, message),
                    }
                }
            }
        }
    }
    report.problems = out.problems;
    report.checked.dedup();
    Ok(report)
}

fn looks_like_twinscene(text: &str) -> bool {
    let Ok(Value::Object(root)) = serde_json::from_str::<Value>(text) else { return false };
    ["version", "mesh", "elements"].iter().filter(|key| root.contains_key(**key)).count() >= 2
}

/// serde_json's message without its " at line L column C" (given separately).
fn without_position(message: String) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message,
    }
}

/// Collects problems, locating pointers in the scene file's text.
struct Out<'t> {
    file: String,
    text: &'t str,
    /// Set while checking a scene converted from a peer format.
    scene: Option<String>,
    problems: Vec<Problem>,
}

impl Out<'_> {
    /// A problem at a pointer into the file being validated.
    fn at_pointer(&mut self, severity: Severity, pointer: &str, message: String) {
        let position = locate(self.text, pointer, None).map(|offset| position_of(self.text, offset));
        self.problems.push(Problem {
            severity,
            file: self.file.clone(),
            scene: None,
            pointer: pointer.to_owned(),
            line: position.map(|p| p.line),
            column: position.map(|p| p.column),
            message,
        });
    }

    /// A problem at a pointer into the scene being checked: the file itself, or a converted scene.
    fn in_scene(&mut self, severity: Severity, pointer: &str, message: String) {
        match &self.scene {
            None => self.at_pointer(severity, pointer, message),
            Some(scene) => self.problems.push(Problem {
                severity,
                file: self.file.clone(),
                scene: Some(scene.clone()),
                pointer: pointer.to_owned(),
                line: None,
                column: None,
                message,
            }),
        }
    }

    /// A problem in another file (twins, models, mesh).
    fn in_file(&mut self, severity: Severity, file: &str, pointer: &str, message: String) {
        self.problems.push(Problem {
            severity,
            file: file.to_owned(),
            scene: None,
            pointer: pointer.to_owned(),
            line: None,
            column: None,
            message,
        });
    }
}

/// Parses a twinscene scene; a shape error is located by the path serde was reading.
fn parse_twinscene(out: &mut Out) -> Option<Scene> {
    let text = out.text;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let error = match serde_path_to_error::deserialize::<_, Scene>(&mut deserializer) {
        Ok(scene) => {
            for problem in scene.problems() {
                out.at_pointer(Severity::Error, &problem.pointer, problem.message);
            }
            return Some(scene);
        }
        Err(error) => error,
    };
    let mut pointer = String::new();
    for segment in error.path().iter() {
        use serde_path_to_error::Segment;
        match segment {
            Segment::Seq { index } => {
                let _ = write!(pointer, "/{index}");
            }
            Segment::Map { key } => {
                let _ = write!(pointer, "/{}", scene_check::escape_pointer(key));
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    let inner = error.into_inner();
    let message = without_position(inner.to_string());
    // An unknown field: point at its key. Otherwise at the value serde was reading, which is
    // more exact than serde's position inside buffered (tagged) values.
    let unknown = message.strip_prefix("unknown field `").and_then(|rest| rest.split('`').next());
    let offset = match unknown {
        Some(field) if !pointer.ends_with(&format!("/{}", scene_check::escape_pointer(field))) => {
            let offset = locate(text, &pointer, Some(field));
            pointer = format!("{pointer}/{}", scene_check::escape_pointer(field));
            offset
        }
        Some(_) => {
            let parent = &pointer[..pointer.rfind('/').unwrap_or(0)];
            let field = &pointer[pointer.rfind('/').map_or(0, |i| i + 1)..];
            locate(text, parent, Some(&field.replace("~1", "/").replace("~0", "~")))
        }
        None if inner.classify() == serde_json::error::Category::Data && !pointer.is_empty() => {
            locate(text, &pointer, None)
        }
        None => None,
    };
    let position = match offset {
        Some(offset) => position_of(text, offset),
        None => super::positions::Position { line: inner.line(), column: inner.column() },
    };
    out.problems.push(Problem {
        severity: Severity::Error,
        file: out.file.clone(),
        scene: None,
        pointer,
        line: Some(position.line),
        column: Some(position.column),
        message,
    });
    None
}

/// Twins and models given on the command line.
struct Externals {
    twins: Option<(String, Scene)>,
    models: Vec<(String, Value)>,
}

impl Externals {
    fn read(args: &ValidateArgs) -> Result<Self, String> {
        let twins = match &args.twins {
            Some(path) => {
                let text = read_text(path)?;
                let mut holder = import_free_scene();
                holder.merge_twin_file(&text).map_err(|e| format!("{}: {e}", path.display()))?;
                Some((path.display().to_string(), holder))
            }
            None => None,
        };
        let mut models = Vec::new();
        if let Some(path) = &args.models {
            let files = if path.is_dir() {
                let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                    .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                    .filter(|path| path.extension().is_some_and(|ext| ext.eq_ignore_ascii_case("json")))
                    .collect();
                files.sort();
                files
            } else {
                vec![path.clone()]
            };
            for file in files {
                let text = read_text(&file)?;
                let value: Value = serde_json::from_str(&text).map_err(|e| {
                    format!("{}:{}:{}: not valid JSON: {e}", file.display(), e.line(), e.column())
                })?;
                models.push((file.display().to_string(), value));
            }
        }
        Ok(Self { twins, models })
    }
}

/// A scene to merge twin files into (its twins, relationships and models are what is read).
fn import_free_scene() -> Scene {
    serde_json::from_value(json!({"version": 1, "mesh": "", "elements": []}))
        .expect("an empty scene is valid")
}

/// The twins file and models file a scene names, read relative to the scene file.
fn scene_files(scene: &Scene, base: &Path, out: &mut Out) -> (Vec<Twin>, Vec<(String, Value)>) {
    let mut twins = Vec::new();
    let mut models = Vec::new();
    for (pointer, name, is_twins) in [
        ("/twinsFile", scene.twins_file.as_deref(), true),
        ("/modelsFile", scene.models_file.as_deref(), false),
    ] {
        let Some(name) = name else { continue };
        if name.contains("://") {
            out.in_scene(
                Severity::Warning,
                pointer,
                format!(
                    "{name} is a URL and is not checked; pass --{} FILE to check a copy",
                    if is_twins { "twins" } else { "models" }
                ),
            );
            continue;
        }
        let path = base.join(name);
        let text = match read_text(&path) {
            Ok(text) => text,
            Err(message) => {
                out.in_scene(Severity::Error, pointer, message);
                continue;
            }
        };
        let mut holder = import_free_scene();
        let merged = if is_twins { holder.merge_twin_file(&text) } else { holder.merge_models_file(&text) };
        match merged {
            Ok(()) => {
                twins.extend(holder.twins);
                let label = path.display().to_string();
                models.extend(holder.models.into_iter().map(|model| (label.clone(), model)));
            }
            Err(error) => {
                out.in_file(Severity::Error, &path.display().to_string(), &error.pointer, error.to_string())
            }
        }
    }
    (twins, models)
}

/// Everything beyond the scene's own rules.
fn check(scene: &Scene, args: &ValidateArgs, externals: &Externals, out: &mut Out, report: &mut Vec<String>) {
    let mut lines = Vec::new();
    check_inner(scene, args, externals, out, &mut lines);
    match &out.scene {
        Some(label) => {
            report.extend(lines.into_iter().map(|line| format!("[converted scene {label:?}] {line}")))
        }
        None => report.extend(lines),
    }
}

fn check_inner(
    scene: &Scene,
    args: &ValidateArgs,
    externals: &Externals,
    out: &mut Out,
    checked: &mut Vec<String>,
) {
    let base = args.file.parent().unwrap_or(Path::new("")).to_owned();
    check_mesh(scene, args, &base, out, checked);

    let (mut extra_twins, mut model_documents) = scene_files(scene, &base, out);
    if let Some((file, holder)) = &externals.twins {
        extra_twins.extend(holder.twins.iter().cloned());
        model_documents.extend(holder.models.iter().map(|model| (file.clone(), model.clone())));
    }
    model_documents.extend(externals.models.iter().cloned());

    // The scene's own models first: their errors are the scene's (reported by its problems).
    let mut documents: Vec<Value> = scene.models.clone();
    let own = documents.len();
    documents.extend(model_documents.iter().map(|(_, model)| model.clone()));
    let models = if documents.is_empty() {
        checked.push("no DTDL models: property types are taken from twin values (warnings only)".into());
        None
    } else {
        match ModelSet::from_documents(&documents) {
            Ok(models) => {
                checked.push(format!("expressions type-checked against {} DTDL interfaces", models.len()));
                Some(models)
            }
            Err(errors) => {
                for error in errors {
                    let index: usize = error
                        .document_pointer
                        .trim_start_matches('/')
                        .split('/')
                        .next()
                        .and_then(|d| d.parse().ok())
                        .unwrap_or(0);
                    if index >= own
                        && let Some((file, _)) = model_documents.get(index - own)
                    {
                        out.in_file(Severity::Error, file, &error.pointer, error.to_string());
                    }
                }
                checked.push(
                    "the DTDL models have errors: expressions are not type-checked against them".into(),
                );
                None
            }
        }
    };

    for finding in scene_check::check_scene(scene, &extra_twins, models.as_ref()) {
        out.in_scene(finding.severity, &finding.pointer, finding.message);
    }
    if let Some(models) = &models {
        for twin in &extra_twins {
            if models.interface(&twin.model).is_some()
                && let Err(message) = models.check_twin(twin)
            {
                let file =
                    externals.twins.as_ref().map_or("twins file", |(file, _)| file.as_str()).to_owned();
                out.in_file(Severity::Error, &file, "", format!("twin {:?}: {message}", twin.id));
            }
        }
    }
    let twin_count = scene.twins.len() + extra_twins.len();
    checked.push(format!(
        "{} elements, {} behaviors, {twin_count} twins",
        scene.elements.len(),
        scene.behaviors.len()
    ));
}

fn check_mesh(scene: &Scene, args: &ValidateArgs, base: &Path, out: &mut Out, checked: &mut Vec<String>) {
    let path = match &args.mesh {
        Some(path) => path.clone(),
        None if scene.mesh.is_empty() => {
            out.in_scene(
                Severity::Warning,
                "/mesh",
                "the scene names no mesh: node names are not checked; pass --mesh FILE.glb to check them"
                    .into(),
            );
            return;
        }
        None if scene.mesh.contains("://") => {
            out.in_scene(
                Severity::Warning,
                "/mesh",
                format!(
                    "mesh {} is a URL: node names are not checked; download it and pass --mesh FILE.glb to check them",
                    scene.mesh
                ),
            );
            return;
        }
        None => base.join(&scene.mesh),
    };
    let shown = path.display().to_string();
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) => {
            // A converted scene's mesh is the peer's; only a twinscene scene promises one here.
            let severity = if out.scene.is_some() { Severity::Warning } else { Severity::Error };
            let hint = if out.scene.is_some() { "; pass --mesh FILE.glb to check node names" } else { "" };
            out.in_scene(severity, "/mesh", format!("cannot read mesh {shown}: {error}{hint}"));
            return;
        }
    };
    let names = match twinscene_core::model_nodes::node_names(&bytes) {
        Ok(names) => names,
        Err(error) => {
            out.in_scene(Severity::Error, "/mesh", format!("mesh {shown}: {error}"));
            return;
        }
    };
    let known: HashSet<&str> = names.iter().map(String::as_str).collect();
    let mut suggested = 0;
    for (e, element) in scene.elements.iter().enumerate() {
        for (n, node) in element.nodes.iter().enumerate() {
            if known.contains(node.as_str()) {
                continue;
            }
            // Near misses cost a pass over every name: only for the first few.
            suggested += 1;
            let hint = if suggested <= 50 {
                did_you_mean(&near_misses(node, known.iter().copied()))
            } else {
                String::new()
            };
            out.in_scene(
                Severity::Error,
                &format!("/elements/{e}/nodes/{n}"),
                format!("node {node:?} of element {:?} is not in the mesh {shown}{hint}", element.id),
            );
        }
    }
    checked.push(format!("mesh node names checked against {shown} ({} named nodes)", names.len()));
}
