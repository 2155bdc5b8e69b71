//! What the server is given before it starts: the scene (read, checked, its mesh located), the
//! static file directories and the live protocol's timings. main.rs fills it; tests build it directly.

use std::path::{Path, PathBuf};
use std::time::Duration;

use twinscene_core::import::{self, ImportOptions, SourceFormat};
use twinscene_core::scene::{Scene, SceneError};

/// Where the server reads the files it serves as they are. Paths are used as given, so relative
/// ones are relative to the current directory.
#[derive(Clone, Debug)]
pub struct StaticDirs {
    /// The wasm-bindgen output (`twinscene_viewer.js`, `twinscene_viewer_bg.wasm`), at `/pkg`.
    pub dist: PathBuf,
    /// The web page (`index.html` and what it loads), at `/`.
    pub web: PathBuf,
    /// Meshes and other assets, at `/assets`.
    pub assets: PathBuf,
    /// Scene files, at `/scenes`.
    pub scenes: PathBuf,
}

impl Default for StaticDirs {
    fn default() -> Self {
        Self {
            dist: "target/web".into(),
            web: "web".into(),
            assets: "assets".into(),
            scenes: "scenes".into(),
        }
    }
}

/// How the live socket paces a connection.
#[derive(Clone, Copy, Debug)]
pub struct LiveTimings {
    /// A socket that has not said hello by then is closed.
    pub hello_timeout: Duration,
    /// A heartbeat is sent after this long without any other message.
    pub heartbeat: Duration,
}

impl Default for LiveTimings {
    fn default() -> Self {
        Self { hello_timeout: Duration::from_secs(10), heartbeat: Duration::from_secs(5) }
    }
}

/// A scene file, parsed and validated, with its mesh located.
#[derive(Clone, Debug)]
pub struct LoadedScene {
    pub scene: Scene,
    pub mesh: MeshSource,
    /// The scene's id: its file name without the extension (`scenes/demo.json` → `demo`).
    pub id: String,
}

/// Where the scene's mesh comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MeshSource {
    /// A local file, served by the server under its file name.
    File { name: String, path: PathBuf },
    /// A URL the viewer fetches itself; the server passes it on unchanged.
    Url(String),
}

/// A scene that could not be loaded; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read scene file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: {source}", path.display())]
    Scene { path: PathBuf, source: SceneError },
    #[error("{}: /mesh: {mesh:?} does not name a file", path.display())]
    MeshName { path: PathBuf, mesh: String },
    #[error("{}: {source}", path.display())]
    Import { path: PathBuf, source: twinscene_core::import::ImportError },
    #[error("{}: {pointer}: {message}", path.display())]
    Companion { path: PathBuf, pointer: &'static str, message: String },
}

impl LoadedScene {
    /// Reads the scene file and resolves its mesh relative to the file's directory.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
        Self::from_json_str(&text, path)
    }

    /// Parses a scene as if it had been read from `path`. A peer format (3D Scenes, TwinMaker,
    /// ADT Explorer) is imported, and what it does not carry over is logged; `twinsFile` and
    /// `modelsFile` are read relative to `path` and merged in.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self, LoadError> {
        let peer = import::detect(text).ok().filter(|format| *format != SourceFormat::Twinscene);
        let mut scene = match peer {
            // twinscene's own scenes keep their own, more detailed errors.
            None => Scene::from_json_str(text)
                .map_err(|source| LoadError::Scene { path: path.to_owned(), source })?,
            Some(format) => {
                let imported = import::import(text, &ImportOptions::default())
                    .map_err(|source| LoadError::Import { path: path.to_owned(), source })?;
                tracing::info!("{}: imported a {format} scene", path.display());
                for note in &imported.notes {
                    tracing::warn!("{}: not carried over: {note}", path.display());
                }
                imported.scene
            }
        };
        merge_companion_files(&mut scene, path)?;
        let mesh = if scene.mesh.contains("://") {
            MeshSource::Url(scene.mesh.clone())
        } else {
            let relative = Path::new(&scene.mesh);
            let name = relative
                .file_name()
                .and_then(|name| name.to_str())
                .ok_or_else(|| LoadError::MeshName { path: path.to_owned(), mesh: scene.mesh.clone() })?;
            let dir = path.parent().unwrap_or(Path::new(""));
            MeshSource::File { name: name.to_owned(), path: dir.join(relative) }
        };
        let id = path.file_stem().and_then(|stem| stem.to_str()).unwrap_or("scene").to_owned();
        Ok(Self { scene, mesh, id })
    }
}

/// Merges the scene's `twinsFile` and `modelsFile` (paths relative to the scene file) and
/// clears them: the scene the server serves holds their content. URLs are left to the viewer.
fn merge_companion_files(scene: &mut Scene, path: &Path) -> Result<(), LoadError> {
    let dir = path.parent().unwrap_or(Path::new(""));
    for (pointer, is_twins) in [("/twinsFile", true), ("/modelsFile", false)] {
        let file = if is_twins { &scene.twins_file } else { &scene.models_file };
        let Some(file) = file.clone().filter(|file| !file.contains("://")) else { continue };
        let companion = dir.join(&file);
        let error = |message: String| LoadError::Companion { path: path.to_owned(), pointer, message };
        let text = std::fs::read_to_string(&companion)
            .map_err(|e| error(format!("cannot read {}: {e}", companion.display())))?;
        let merged = if is_twins { scene.merge_twin_file(&text) } else { scene.merge_models_file(&text) };
        merged.map_err(|e| error(format!("{}: {e}", companion.display())))?;
        if is_twins {
            scene.twins_file = None;
        } else {
            scene.models_file = None;
        }
    }
    let problems = scene.problems();
    if !problems.is_empty() {
        return Err(LoadError::Scene { path: path.to_owned(), source: SceneError::Invalid(problems) });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCENE: &str = r#"{"version": 1, "mesh": "../assets/room.glb", "elements": [{"id": "e", "twin": "t", "nodes": ["n"]}]}"#;

    #[test]
    fn mesh_is_resolved_next_to_the_scene_file() {
        let loaded = LoadedScene::from_json_str(SCENE, Path::new("scenes/demo.json")).unwrap();
        assert_eq!(
            loaded.mesh,
            MeshSource::File { name: "room.glb".into(), path: "scenes/../assets/room.glb".into() }
        );
    }

    #[test]
    fn mesh_urls_are_passed_on() {
        let text = SCENE.replace("../assets/room.glb", "https://example.com/room.glb");
        let loaded = LoadedScene::from_json_str(&text, Path::new("s.json")).unwrap();
        assert_eq!(loaded.mesh, MeshSource::Url("https://example.com/room.glb".into()));
    }

    #[test]
    fn peer_formats_are_imported_and_companion_files_merged() {
        let dir = tempfile::tempdir().unwrap();
        let twinmaker = r#"{"specVersion": "1.0", "nodes": [{"name": "Tank", "components": [
            {"type": "ModelRef", "uri": "tank.glb"}]}], "rules": {}}"#;
        let loaded = LoadedScene::from_json_str(twinmaker, &dir.path().join("tank.scene.json")).unwrap();
        assert_eq!(
            loaded.mesh,
            MeshSource::File { name: "tank.glb".into(), path: dir.path().join("tank.glb") }
        );

        std::fs::write(
            dir.path().join("twins.json"),
            r#"[{"$dtId": "t", "$metadata": {"$model": "dtmi:x:T;1"}, "temperature": 3}]"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("models.json"),
            r#"[{"@id": "dtmi:x:T;1", "@type": "Interface", "@context": "dtmi:dtdl:context;2"}]"#,
        )
        .unwrap();
        let text = SCENE.replace(
            "\"elements\"",
            "\"twinsFile\": \"twins.json\", \"modelsFile\": \"models.json\", \"elements\"",
        );
        let loaded = LoadedScene::from_json_str(&text, &dir.path().join("s.json")).unwrap();
        assert_eq!(loaded.scene.twins[0].id, "t");
        assert_eq!(loaded.scene.models.len(), 1);
        assert_eq!((loaded.scene.twins_file.as_deref(), loaded.scene.models_file.as_deref()), (None, None));

        let text = SCENE.replace("\"elements\"", "\"twinsFile\": \"missing.json\", \"elements\"");
        let error = LoadedScene::from_json_str(&text, &dir.path().join("s.json")).unwrap_err().to_string();
        assert!(error.contains("/twinsFile: cannot read"), "{error}");
    }

    #[test]
    fn errors_name_the_file_and_the_position() {
        let error =
            LoadedScene::from_json_str("{\n  \"version\": }", Path::new("scenes/bad.json")).unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with("scenes/bad.json: "), "{message}");
        assert!(message.contains("line 2, column 14"), "{message}");
        let error =
            LoadedScene::from_json_str(&SCENE.replace("../assets/room.glb", ".."), Path::new("s.json"));
        assert!(matches!(error, Err(LoadError::MeshName { .. })));
    }
}
