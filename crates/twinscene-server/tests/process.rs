//! The real `twinscene` binary: acknowledged writes survive `kill -9`, secrets stay out of the
//! logs, and `twinscene simulate` drives a server through its public ingest API.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{
    Binary, client, demo_state, eventually, get_json, patch, send, serve, server_twins, set_temperature,
};
use serde_json::json;

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.sqlite");
    let db_arg = db.to_str().unwrap();
    let server = Binary::serve(&["--db", db_arg]);
    let base = server.base.clone();

    let twin = json!({"$metadata": {"$model": "dtmi:twinscene:demo:Sensor;1"}, "temperature": 1.5});
    assert_eq!(send(client().put(format!("{base}/digitaltwins/Sensor-9")).json(&twin)).await.status(), 201);
    let relationship = json!({"$targetId": "Sensor-9", "$relationshipName": "hasSensor"});
    let url = format!("{base}/digitaltwins/Room-A101/relationships/has-9");
    assert_eq!(send(client().put(url).json(&relationship)).await.status(), 200);
    let model = json!([{"@id": "dtmi:twinscene:demo:Sensor;1", "@type": "Interface"}]);
    assert_eq!(send(client().post(format!("{base}/models")).json(&model)).await.status(), 201);

    // Writes keep coming while the server is killed; each value is higher than the last, so
    // the stored value must be at least the last one acknowledged.
    let acknowledged = Arc::new(AtomicU64::new(0));
    let writer = {
        let (base, acknowledged) = (base.clone(), acknowledged.clone());
        tokio::spawn(async move {
            for value in 1.. {
                let body = json!([{"op": "replace", "path": "/temperature", "value": value}]).to_string();
                let sent = client()
                    .patch(format!("{base}/digitaltwins/Room-A102"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status() == 204 => acknowledged.store(value, Ordering::SeqCst),
                    _ => break,
                }
            }
        })
    };
    eventually("50 acknowledged writes", async || acknowledged.load(Ordering::SeqCst) >= 50).await;
    server.kill();
    let last_acknowledged = acknowledged.load(Ordering::SeqCst);
    writer.await.unwrap();

    let server = Binary::serve(&["--db", db_arg]);
    let base = &server.base;
    let room = get_json(&format!("{base}/digitaltwins/Room-A102")).await;
    let stored = room["temperature"].as_u64().unwrap();
    assert!(stored >= last_acknowledged, "stored {stored} < acknowledged {last_acknowledged}");
    assert_eq!(get_json(&format!("{base}/digitaltwins/Sensor-9")).await["temperature"], 1.5);
    let relationship = get_json(&format!("{base}/digitaltwins/Room-A101/relationships/has-9")).await;
    assert_eq!(relationship["$targetId"], "Sensor-9");
    let models = get_json(&format!("{base}/models")).await;
    assert!(
        models["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|model| model["@id"] == "dtmi:twinscene:demo:Sensor;1")
    );
    let history = get_json(&format!("{base}/digitaltwins/Room-A102/history/temperature?points=1")).await;
    assert!(history["points"][0]["count"].as_u64().unwrap() >= last_acknowledged, "{history}");
    assert!(history["points"][0]["last"].as_f64().unwrap() >= last_acknowledged as f64, "{history}");
}

#[tokio::test]
async fn no_secret_reaches_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("twinscene.toml");
    std::fs::write(
        &config,
        "[[tokens]]\nname = \"writer\"\nsecret = \"sup3r-s3cret-writer\"\naccess = \"write\"\n",
    )
    .unwrap();
    let server = Binary::serve(&["--config", config.to_str().unwrap()]);
    let base = &server.base;
    let body = r#"[{"op":"replace","path":"/temperature","value":21}]"#;
    for secret in ["sup3r-s3cret-writer", "sup3r-s3cret-wrong"] {
        let request = client()
            .patch(format!("{base}/digitaltwins/Room-A101"))
            .bearer_auth(secret)
            .header("content-type", "application/json")
            .body(body);
        send(request).await;
    }
    assert_eq!(patch(base, "Room-A101", body).await.status(), 401);
    let mut viewer = common::Viewer::connect(base).await;
    let hello = json!({"type": "hello", "protocol": twinscene_core::live::PROTOCOL_VERSION, "token": "sup3r-s3cret-writer"});
    viewer.send(&hello.to_string()).await;
    assert_eq!(viewer.next().await["type"], "snapshot");
    viewer.send(&hello.to_string().replace("writer", "wrong")).await;
    assert_eq!(viewer.next().await["type"], "error");
    let logs = server.logs();
    assert!(logs.contains("PATCH"), "the requests were logged: {logs}");
    assert!(!logs.contains("s3cret"), "a secret reached the logs:\n{logs}");
}

#[tokio::test]
async fn simulate_drives_the_twins_through_the_ingest_api() {
    let base = serve(demo_state()).await;
    let before = server_twins(&base, None).await;
    set_temperature(&base, "Room-A101", 20.0).await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_twinscene"))
        .args(["simulate", "--url", &base, "--rate", "200", "--seconds", "1"])
        .output();
    let output = common::within("twinscene simulate to finish", output).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let sent: u64 = stdout.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(sent >= 100, "{stdout}");
    assert!(stdout.contains(" 0 refused"), "{stdout}");
    let after = server_twins(&base, None).await;
    let changed = before.iter().filter(|(id, twin)| after.get(*id) != Some(twin)).count();
    assert!(changed >= 10, "only {changed} twins changed");
}

#[tokio::test]
async fn the_binary_bridges_mqtt_from_its_config_file() {
    let broker = common::Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("twinscene.toml");
    let text = format!(
        "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"twinscene-binary-{}\"\nroutes = [{{ topic = \"site/{{twin}}/{{property}}\" }}]\n",
        broker.port,
        std::process::id()
    );
    std::fs::write(&config, text).unwrap();
    let server = Binary::serve(&["--config", config.to_str().unwrap()]);
    let url = format!("{}/digitaltwins/Room-B104", server.base);
    eventually("an MQTT message to reach the twin", async || {
        common::mqtt_publish(broker.port, "site/Room-B104/co2", "612").await;
        get_json(&url).await["co2"] == 612
    })
    .await;
}
