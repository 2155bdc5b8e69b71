//! `GET` and `PATCH /digitaltwins/{id}` over real HTTP.

mod common;

use common::{demo_state, error_body, get, patch, serve};
use serde_json::Value;

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
