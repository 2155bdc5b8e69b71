//! ADT's twin routes over real HTTP: twins, relationships and models with ETags, the twin
//! query, property history, and what viewers see of each write.

mod common;

use std::sync::Arc;

use common::{
    Mirror, client, demo_scene_path, demo_state, error_body, get, get_json, patch, send, serve, server_twins,
    set_temperature,
};
use serde_json::{Value, json};
use twinscene_server::storage::{SqliteStorage, Storage, SyncMode};
use twinscene_server::{AppState, LiveTimings, LoadedScene, ServerConfig, StaticDirs};

#[tokio::test]
async fn patch_changes_the_twin_and_its_etag() {
    let base = serve(demo_state()).await;
    let before = get(&format!("{base}/digitaltwins/Room-A101")).await;
    assert_eq!(before.status(), 200);
    let etag_before = before.headers()["etag"].to_str().unwrap().to_owned();
    let twin: Value = before.json().await.unwrap();
    assert_eq!(twin["$dtId"], "Room-A101");
    assert_eq!(twin["$etag"], etag_before.as_str());

    let response =
        patch(&base, "Room-A101", r#"[{"op":"replace","path":"/temperature","value":31.5}]"#).await;
    assert_eq!(response.status(), 204);
    let etag_patched = response.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(etag_patched, etag_before);

    let after = get(&format!("{base}/digitaltwins/Room-A101")).await;
    assert_eq!(after.headers()["etag"].to_str().unwrap(), etag_patched);
    let twin: Value = after.json().await.unwrap();
    assert_eq!(twin["temperature"], 31.5);
    assert!(twin["$metadata"]["temperature"]["lastUpdateTime"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn plain_json_content_type_is_accepted() {
    let base = serve(demo_state()).await;
    let response = reqwest::Client::new()
        .patch(format!("{base}/digitaltwins/Room-A101"))
        .json(&serde_json::json!([{"op": "add", "path": "/occupied", "value": true}]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}

#[tokio::test]
async fn unknown_twin_is_not_found() {
    let base = serve(demo_state()).await;
    let (status, code, message) = error_body(get(&format!("{base}/digitaltwins/Nope")).await).await;
    assert_eq!((status, code.as_str()), (404, "DigitalTwinNotFound"));
    assert!(message.contains("Nope"), "{message}");
    let response = patch(&base, "Nope", r#"[{"op":"replace","path":"/temperature","value":1}]"#).await;
    let (status, code, _) = error_body(response).await;
    assert_eq!((status, code.as_str()), (404, "DigitalTwinNotFound"));
}

#[tokio::test]
async fn malformed_json_is_a_bad_request_with_its_position() {
    let base = serve(demo_state()).await;
    let (status, code, message) =
        error_body(patch(&base, "Room-A101", "[{\"op\": \"replace\",\n oops}]").await).await;
    assert_eq!((status, code.as_str()), (400, "BadRequest"));
    assert!(message.contains("line 2 column"), "{message}");
}

#[tokio::test]
async fn refused_patches_are_bad_requests_and_change_nothing() {
    let base = serve(demo_state()).await;
    let before: Value = get(&format!("{base}/digitaltwins/Room-A101")).await.json().await.unwrap();
    for body in [
        r#"[{"op":"replace","path":"/$dtId","value":"x"}]"#,
        r#"[{"op":"replace","path":"/temperature","value":1},{"op":"test","path":"/name","value":"wrong"}]"#,
        r#"[]"#,
    ] {
        let (status, code, message) = error_body(patch(&base, "Room-A101", body).await).await;
        assert_eq!((status, code.as_str()), (400, "JsonPatchInvalid"), "{body}: {message}");
    }
    let after: Value = get(&format!("{base}/digitaltwins/Room-A101")).await.json().await.unwrap();
    assert_eq!(after, before);
}

#[tokio::test]
async fn oversized_body_is_refused() {
    let base = serve(demo_state()).await;
    let value = "x".repeat(2 << 20);
    let body = format!(r#"[{{"op":"add","path":"/blob","value":"{value}"}}]"#);
    let (status, code, _) = error_body(patch(&base, "Room-A101", &body).await).await;
    assert_eq!((status, code.as_str()), (413, "PayloadTooLarge"));
}

async fn put_json(url: &str, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = client().put(url).json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(request).await
}

#[tokio::test]
async fn twins_are_created_replaced_and_deleted_with_etags() {
    let base = serve(demo_state()).await;
    let mut viewer = Mirror::connect(&base, None).await;
    let url = format!("{base}/digitaltwins/Sensor-1");
    let twin = json!({"$metadata": {"$model": "dtmi:twinscene:demo:Sensor;1"}, "temperature": 19.5});

    let created = put_json(&url, &twin, &[("if-none-match", "*")]).await;
    assert_eq!(created.status(), 201);
    let etag = created.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = created.json().await.unwrap();
    assert_eq!((body["$dtId"].as_str(), body["temperature"].as_f64()), (Some("Sensor-1"), Some(19.5)));
    let (status, code, _) = error_body(put_json(&url, &twin, &[("if-none-match", "*")]).await).await;
    assert_eq!((status, code.as_str()), (412, "PreconditionFailed"));
    viewer.converge(&server_twins(&base, None).await).await;

    // Same model: the replacement is one patch, and viewers get it as a delta.
    let snapshots = viewer.snapshots;
    let replaced = put_json(
        &url,
        &json!({"$metadata": {"$model": "dtmi:twinscene:demo:Sensor;1"}, "humidity": 40}),
        &[("if-match", &etag)],
    )
    .await;
    assert_eq!(replaced.status(), 200);
    let new_etag = replaced.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(new_etag, etag);
    assert_eq!(get_json(&url).await["humidity"], 40);
    assert!(get_json(&url).await.get("temperature").is_none());
    viewer.converge(&server_twins(&base, None).await).await;
    assert_eq!(viewer.snapshots, snapshots, "a property replacement is a delta");

    // A stale etag changes nothing.
    let stale = send(
        client()
            .patch(&url)
            .header("if-match", &etag)
            .json(&json!([{"op": "add", "path": "/x", "value": 1}])),
    )
    .await;
    let (status, code, message) = error_body(stale).await;
    assert_eq!((status, code.as_str()), (412, "PreconditionFailed"), "{message}");
    let fresh = send(
        client()
            .patch(&url)
            .header("if-match", &new_etag)
            .json(&json!([{"op": "add", "path": "/x", "value": 1}])),
    )
    .await;
    assert_eq!(fresh.status(), 204);

    let (status, code, _) = error_body(send(client().delete(&url).header("if-match", &etag)).await).await;
    assert_eq!((status, code.as_str()), (412, "PreconditionFailed"));
    assert_eq!(send(client().delete(&url)).await.status(), 204);
    assert_eq!(get(&url).await.status(), 404);
    viewer.converge(&server_twins(&base, None).await).await;
}

#[tokio::test]
async fn relationships_are_managed_and_guard_their_twins() {
    let base = serve(demo_state()).await;
    let room = format!("{base}/digitaltwins/Room-A101");
    let rel = format!("{room}/relationships/r1");
    let body = json!({"$targetId": "Room-A102", "$relationshipName": "adjacentTo", "wall": "north"});
    let created = put_json(&rel, &body, &[]).await;
    assert_eq!(created.status(), 200);
    let etag = created.headers()["etag"].to_str().unwrap().to_owned();
    let got = get_json(&rel).await;
    assert_eq!((got["$sourceId"].as_str(), got["wall"].as_str()), (Some("Room-A101"), Some("north")));

    let patched = send(
        client()
            .patch(&rel)
            .header("if-match", &etag)
            .json(&json!([{"op": "replace", "path": "/wall", "value": "south"}])),
    )
    .await;
    assert_eq!(patched.status(), 204);
    assert_eq!(get_json(&rel).await["wall"], "south");
    let (status, _, _) = error_body(
        send(client().patch(&rel).json(&json!([{"op": "replace", "path": "/$targetId", "value": "x"}])))
            .await,
    )
    .await;
    assert_eq!(status, 400);

    let list = get_json(&format!("{room}/relationships?relationshipName=adjacentTo")).await;
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    let incoming = get_json(&format!("{base}/digitaltwins/Room-A102/incomingrelationships")).await;
    let sources: Vec<&Value> =
        incoming["value"].as_array().unwrap().iter().map(|r| &r["$sourceId"]).collect();
    assert_eq!(sources, [&json!("Duplex"), &json!("Room-A101")]);

    let (status, code, _) = error_body(
        put_json(
            &format!("{room}/relationships/r2"),
            &json!({"$targetId": "Nope", "$relationshipName": "x"}),
            &[],
        )
        .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "BadRequest"));
    let (status, code, _) = error_body(send(client().delete(&room)).await).await;
    assert_eq!((status, code.as_str()), (409, "Conflict"));
    assert_eq!(send(client().delete(&rel)).await.status(), 204);
    let (status, code, _) = error_body(get(&rel).await).await;
    assert_eq!((status, code.as_str()), (404, "RelationshipNotFound"));
}

#[tokio::test]
async fn twins_are_queried_by_model_and_relationship() {
    let base = serve(demo_state()).await;
    let ids = |value: &Value| -> Vec<String> {
        value["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|twin| twin["$dtId"].as_str().unwrap().to_owned())
            .collect()
    };
    let roofs = get_json(&format!("{base}/query/twins?model=dtmi:twinscene:demo:Roof;1")).await;
    assert_eq!(ids(&roofs), ["Roof-184483"]);
    let contained = get_json(&format!(
        "{base}/query/twins?relatedFrom=Duplex&relationship=contains&model=dtmi:twinscene:demo:Slab;1"
    ))
    .await;
    assert_eq!(ids(&contained).len(), 4);
    let containers = get_json(&format!("{base}/query/twins?relatedTo=Room-A101")).await;
    assert_eq!(ids(&containers), ["Duplex"]);
}

/// The `@id`s of `GET /models`, in the order listed.
async fn model_ids(base: &str) -> Vec<String> {
    let models = get_json(&format!("{base}/models")).await;
    models["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|model| model["@id"].as_str().unwrap().to_owned())
        .collect()
}

fn demo_model_ids() -> Vec<String> {
    let scene = LoadedScene::load(&demo_scene_path()).unwrap().scene;
    let mut ids: Vec<String> =
        scene.models.iter().map(|model| model["@id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn models_are_added_listed_and_deleted() {
    let base = serve(demo_state()).await;
    let model =
        json!({"@id": "dtmi:example:Pump;1", "@type": "Interface", "@context": "dtmi:dtdl:context;3"});
    let added = send(client().post(format!("{base}/models")).json(&json!([model]))).await;
    assert_eq!(added.status(), 201);
    let (status, code, _) =
        error_body(send(client().post(format!("{base}/models")).json(&json!([model]))).await).await;
    assert_eq!((status, code.as_str()), (409, "ModelIdAlreadyExists"));
    let mut expected = demo_model_ids();
    expected.push("dtmi:example:Pump;1".to_owned());
    expected.sort();
    assert_eq!(model_ids(&base).await, expected);
    assert_eq!(get_json(&format!("{base}/models/dtmi:example:Pump;1")).await, model);
    assert_eq!(send(client().delete(format!("{base}/models/dtmi:example:Pump;1"))).await.status(), 204);
    assert_eq!(get(&format!("{base}/models/dtmi:example:Pump;1")).await.status(), 404);
}

#[tokio::test]
async fn the_scene_models_are_served_and_stored_on_the_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite");
    let scene = LoadedScene::load(&demo_scene_path()).unwrap();
    let expected: Vec<Value> = {
        let mut models = scene.scene.models.clone();
        models.sort_by_key(|model| model["@id"].as_str().unwrap().to_owned());
        models
    };
    assert!(!expected.is_empty(), "the demo scene has models");
    let storage = Arc::new(SqliteStorage::open(&path, SyncMode::Normal).unwrap());
    let state = AppState::with_storage(
        scene,
        StaticDirs::default(),
        LiveTimings::default(),
        ServerConfig::default(),
        storage,
    )
    .unwrap();
    let base = serve(state).await;
    assert_eq!(get_json(&format!("{base}/models")).await["value"], json!(expected));
    let room = get_json(&format!("{base}/models/dtmi:twinscene:demo:Room;1")).await;
    assert_eq!(&room, expected.iter().find(|model| model["@id"] == "dtmi:twinscene:demo:Room;1").unwrap());
    // Durable with the seed: a new server on the database finds them without the scene's.
    let stored = SqliteStorage::open(&path, SyncMode::Normal).unwrap().load().unwrap().unwrap();
    assert_eq!(stored.models, expected);

    // In memory, every start seeds them.
    assert_eq!(model_ids(&serve(demo_state()).await).await, demo_model_ids());
}

#[tokio::test]
async fn a_later_start_adds_the_scene_models_storage_lacks_and_keeps_the_stored_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite");
    let start = |models: Option<Vec<Value>>| {
        let mut scene = LoadedScene::load(&demo_scene_path()).unwrap();
        if let Some(models) = models {
            scene.scene.models = models;
        }
        let storage = Arc::new(SqliteStorage::open(&path, SyncMode::Normal).unwrap());
        AppState::with_storage(
            scene,
            StaticDirs::default(),
            LiveTimings::default(),
            ServerConfig::default(),
            storage,
        )
        .unwrap()
    };
    // A database whose first start knew one model, in another version than the scene's now.
    let stored_room =
        json!({"@id": "dtmi:twinscene:demo:Room;1", "@type": "Interface", "displayName": "Stored"});
    let first = start(Some(vec![stored_room.clone()]));
    assert_eq!(first.models(), std::slice::from_ref(&stored_room));
    drop(first);

    let base = serve(start(None)).await;
    assert_eq!(model_ids(&base).await, demo_model_ids());
    assert_eq!(get_json(&format!("{base}/models/dtmi:twinscene:demo:Room;1")).await, stored_room);
    // The added ones are durable: a start from a scene without models still has them.
    let again = start(Some(Vec::new()));
    let ids: Vec<String> =
        again.models().iter().map(|model| model["@id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, demo_model_ids());
}

#[tokio::test]
async fn property_history_is_downsampled_for_trends() {
    let base = serve(demo_state()).await;
    for value in [10.0, 20.0, 30.0, 40.0] {
        set_temperature(&base, "Room-A101", value).await;
    }
    let history = get_json(&format!("{base}/digitaltwins/Room-A101/history/temperature?points=1")).await;
    let points = history["points"].as_array().unwrap();
    assert_eq!(points.len(), 1, "{history}");
    assert_eq!(
        (points[0]["avg"].as_f64(), points[0]["min"].as_f64(), points[0]["max"].as_f64()),
        (Some(25.0), Some(10.0), Some(40.0))
    );
    assert_eq!((points[0]["last"].as_f64(), points[0]["count"].as_u64()), (Some(40.0), Some(4)));
    let fine = get_json(&format!("{base}/digitaltwins/Room-A101/history/temperature")).await;
    assert_eq!(
        fine["points"].as_array().unwrap().iter().map(|p| p["count"].as_u64().unwrap()).sum::<u64>(),
        4
    );
    let (status, _, message) =
        error_body(get(&format!("{base}/digitaltwins/Room-A101/history/temperature?from=yesterday")).await)
            .await;
    assert_eq!(status, 400, "{message}");
}
