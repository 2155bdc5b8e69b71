//! The demo shipped in the repository stays consistent: the scene parses, every element's mesh
//! nodes exist in the model, and every element's twin exists and gets a color.

use std::path::Path;

use twinscene_core::model_nodes::node_names;
use twinscene_core::runtime::SceneRuntime;
use twinscene_core::scene::Scene;

fn repo_file(relative: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative)
}

#[test]
fn demo_scene_binds_every_element_to_model_nodes_and_twins() {
    let scene_path = repo_file("scenes/demo.json");
    let text = std::fs::read_to_string(&scene_path).unwrap();
    let scene = Scene::from_json_str(&text).unwrap();
    assert!(scene.elements.len() >= 20, "the demo maps at least 20 elements");

    let mesh_path = scene_path.parent().unwrap().join(&scene.mesh);
    let nodes = node_names(&std::fs::read(&mesh_path).unwrap()).unwrap();
    for element in &scene.elements {
        for node in &element.nodes {
            assert!(
                nodes.contains(node),
                "element {} names node {node}, missing from {}",
                element.id,
                mesh_path.display()
            );
        }
    }

    let runtime = SceneRuntime::new(scene).unwrap();
    for (index, element) in runtime.elements().iter().enumerate() {
        let style = runtime.style(index);
        assert!(style.twin_found, "element {} has no twin", element.id);
        assert!(style.color.is_some(), "element {} gets no color", element.id);
    }
    let colors: std::collections::HashSet<_> = runtime.styles().iter().filter_map(|s| s.color).collect();
    assert!(colors.len() >= 3, "the demo starts with several temperature colors, got {colors:?}");
}
