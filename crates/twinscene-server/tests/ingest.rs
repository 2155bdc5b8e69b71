//! `POST /ingest/cloudevents`: ADT Twin.Update events, structured and batched, duplicates
//! skipped, malformed requests refused whole.

mod common;

use common::{Mirror, client, demo_state, error_body, get_json, send, serve, server_twins};
use serde_json::{Value, json};

fn update(id: &str, twin: &str, value: f64) -> Value {
    json!({
        "specversion": "1.0", "id": id, "source": "test", "type": "Microsoft.DigitalTwins.Twin.Update",
        "subject": twin, "datacontenttype": "application/json",
        "data": {"modelId": "dtmi:twinscene:demo:Room;1", "patch": [{"op": "replace", "path": "/temperature", "value": value}]}
    })
}

async fn post(base: &str, content_type: &str, body: &Value) -> reqwest::Response {
    send(
        client()
            .post(format!("{base}/ingest/cloudevents"))
            .header("content-type", content_type)
            .body(body.to_string()),
    )
    .await
}

fn temperature(twin: &Value) -> Option<f64> {
    twin["temperature"].as_f64()
}

#[tokio::test]
async fn a_structured_event_updates_its_twin_and_reaches_viewers() {
    let base = serve(demo_state()).await;
    let mut viewer = Mirror::connect(&base, None).await;
    let response = post(&base, "application/cloudevents+json", &update("e1", "Room-A101", 33.0)).await;
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    assert_eq!(
        (report["applied"].as_u64(), report["results"][0]["status"].as_str()),
        (Some(1), Some("applied"))
    );
    assert_eq!(temperature(&get_json(&format!("{base}/digitaltwins/Room-A101")).await), Some(33.0));
    viewer.converge(&server_twins(&base, None).await).await;
}

#[tokio::test]
async fn a_batch_applies_each_event_and_skips_duplicates() {
    let base = serve(demo_state()).await;
    let batch = json!([
        update("b1", "Room-A101", 1.0),
        update("b2", "Room-A102", 2.0),
        update("b1", "Room-A101", 99.0),
        update("b3", "Nope", 3.0),
    ]);
    let report: Value = post(&base, "application/cloudevents-batch+json", &batch).await.json().await.unwrap();
    assert_eq!(report["applied"], 2, "{report}");
    assert_eq!(report["duplicates"], 1, "{report}");
    assert_eq!(report["rejected"], 1, "{report}");
    assert_eq!(report["results"][3]["error"]["code"], "DigitalTwinNotFound");
    assert_eq!(temperature(&get_json(&format!("{base}/digitaltwins/Room-A101")).await), Some(1.0));
    // Delivered again later (a retry): still a duplicate.
    let again: Value =
        post(&base, "application/cloudevents-batch+json", &json!([update("b2", "Room-A102", 7.0)]))
            .await
            .json()
            .await
            .unwrap();
    assert_eq!(again["duplicates"], 1);
    assert_eq!(temperature(&get_json(&format!("{base}/digitaltwins/Room-A102")).await), Some(2.0));
}

#[tokio::test]
async fn a_malformed_batch_changes_nothing() {
    let base = serve(demo_state()).await;
    let before = server_twins(&base, None).await;
    let mut broken = update("m2", "Room-A102", 2.0);
    broken["data"]["patch"] = json!([{"op": "jump"}]);
    let batch = json!([update("m1", "Room-A101", 1.0), broken]);
    let (status, code, message) =
        error_body(post(&base, "application/cloudevents-batch+json", &batch).await).await;
    assert_eq!((status, code.as_str()), (400, "BadRequest"));
    assert!(message.starts_with("event 1: "), "{message}");
    for (content_type, body) in [
        ("application/cloudevents-batch+json", update("m3", "Room-A101", 1.0)),
        ("application/cloudevents+json", json!([update("m4", "Room-A101", 1.0)])),
        ("text/plain", update("m5", "Room-A101", 1.0)),
    ] {
        let (status, _, message) = error_body(post(&base, content_type, &body).await).await;
        assert_eq!(status, 400, "{content_type}: {message}");
    }
    let mut wrong_model = update("m6", "Room-A101", 1.0);
    wrong_model["data"]["modelId"] = json!("dtmi:other;1");
    let report: Value = post(&base, "application/cloudevents+json", &wrong_model).await.json().await.unwrap();
    assert_eq!(report["rejected"], 1);
    assert_eq!(server_twins(&base, None).await, before);
}
