//! Fault tests: dropped sockets, duplicated and reordered ingest, a server killed mid-stream,
//! a broker restart. After recovery every viewer's twins equal the server's, twin by twin.

mod common;

use common::{
    Binary, Broker, Mirror, client, demo_state, demo_state_configured, eventually, get_json, mqtt_publish,
    send, serve, server_twins, set_temperature,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::{Value, json};
use twinscene_server::mqtt;

const ROOMS: [&str; 6] = ["Room-A101", "Room-A102", "Room-A103", "Room-B101", "Room-B102", "Room-B103"];

#[tokio::test]
async fn viewers_whose_sockets_drop_mid_stream_recover_the_servers_state() {
    let base = serve(demo_state()).await;
    let mut viewers = Vec::new();
    for _ in 0..4 {
        viewers.push(Mirror::connect(&base, None).await);
    }
    for round in 0..6 {
        for i in 0..40 {
            set_temperature(&base, ROOMS[(round + i) % ROOMS.len()], (round * 100 + i) as f64).await;
        }
        // Each round one viewer loses its socket without a close; half resume with since_seq.
        let dropped = &mut viewers[round % 4];
        dropped.reconnect(&base, round % 2 == 0).await;
        let expected = server_twins(&base, None).await;
        for viewer in &mut viewers {
            viewer.converge(&expected).await;
        }
    }
    let resumed_without_snapshot = viewers[0].snapshots;
    assert!(resumed_without_snapshot <= 2, "since_seq resumed without snapshots: {resumed_without_snapshot}");
}

fn update(id: usize, twin: &str, value: f64) -> Value {
    json!({
        "specversion": "1.0", "id": format!("ev-{id}"), "source": "faults", "type": "Microsoft.DigitalTwins.Twin.Update",
        "subject": twin, "data": {"patch": [{"op": "add", "path": "/reading", "value": value}]}
    })
}

#[tokio::test]
async fn duplicated_and_reordered_ingest_leaves_viewers_equal_to_the_server() {
    let base = serve(demo_state()).await;
    let mut viewers = vec![Mirror::connect(&base, None).await, Mirror::connect(&base, None).await];
    let mut events: Vec<Value> = (0..300).map(|i| update(i, ROOMS[i % ROOMS.len()], i as f64)).collect();
    // Every event twice, in shuffled order, over concurrent requests.
    events.extend(events.clone());
    events.shuffle(&mut StdRng::seed_from_u64(42));
    let posts = events.chunks(25).map(|chunk| {
        let body = Value::Array(chunk.to_vec()).to_string();
        let request = client()
            .post(format!("{base}/ingest/cloudevents"))
            .header("content-type", "application/cloudevents-batch+json")
            .body(body);
        tokio::spawn(async move { send(request).await.json::<Value>().await.unwrap() })
    });
    let (mut applied, mut duplicates) = (0, 0);
    for post in posts.collect::<Vec<_>>() {
        let report = post.await.unwrap();
        applied += report["applied"].as_u64().unwrap();
        duplicates += report["duplicates"].as_u64().unwrap();
    }
    assert_eq!((applied, duplicates), (300, 300));
    let expected = server_twins(&base, None).await;
    for viewer in &mut viewers {
        viewer.converge(&expected).await;
    }
}

#[tokio::test]
async fn viewers_recover_after_the_server_is_killed_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.sqlite");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let args = ["--db", db.to_str().unwrap(), "--port", &port];
    let server = Binary::serve(&args);
    let base = server.base.clone();
    let mut viewers = vec![Mirror::connect(&base, None).await, Mirror::connect(&base, None).await];
    let writer = {
        let base = base.clone();
        tokio::spawn(async move {
            for value in 0.. {
                let body = json!([{"op": "replace", "path": "/temperature", "value": value}]).to_string();
                let request = client()
                    .patch(format!("{base}/digitaltwins/{}", ROOMS[value % ROOMS.len()]))
                    .header("content-type", "application/json")
                    .body(body);
                if request.send().await.is_err() {
                    break;
                }
            }
        })
    };
    viewers[0].step().await;
    eventually("writes to be under way", async || {
        get_json(&format!("{base}/digitaltwins/Room-A101")).await["temperature"]
            .as_f64()
            .is_some_and(|t| t > 50.0)
    })
    .await;
    server.kill();
    writer.await.unwrap();

    // Restarted on the same port from the same database; the viewers come back, one asking to
    // resume from its old seq (which the new run must not honour).
    let server = Binary::serve(&args);
    assert_eq!(server.base, base);
    viewers[0].reconnect(&base, true).await;
    viewers[1].reconnect(&base, false).await;
    for value in 0..20 {
        set_temperature(&base, ROOMS[value % ROOMS.len()], 1000.0 + value as f64).await;
    }
    let expected = server_twins(&base, None).await;
    for viewer in &mut viewers {
        viewer.converge(&expected).await;
    }
}

#[tokio::test]
async fn mqtt_messages_write_mapped_twin_properties_across_a_broker_restart() {
    let broker = Broker::start();
    let port = broker.port;
    let config = format!(
        "[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"twinscene-test-{}\"\nroutes = [{{ topic = \"plant/{{twin}}/{{property}}\" }}, {{ topic = \"ahu/temp\", twin = \"Room-B205\", property = \"supply\" }}]\n",
        std::process::id()
    );
    let state = demo_state_configured(&config);
    let bridge = mqtt::spawn(state.clone(), state.config().mqtt.clone().unwrap());
    let base = serve(state).await;
    let mut viewer = Mirror::connect(&base, None).await;
    let twin = |id: &'static str| {
        let base = base.clone();
        async move { get_json(&format!("{base}/digitaltwins/{id}")).await }
    };

    // The bridge subscribes after connecting; publish until a message lands.
    eventually("the bridge to write a published value", async || {
        mqtt_publish(port, "plant/Room-A101/temperature", "41.5").await;
        twin("Room-A101").await["temperature"] == 41.5
    })
    .await;
    mqtt_publish(port, "ahu/temp", "{\"celsius\": 17}").await;
    eventually("a fixed route", async || twin("Room-B205").await["supply"] == json!({"celsius": 17})).await;
    // Malformed payloads and unknown twins are dropped without touching state.
    let before = server_twins(&base, None).await;
    mqtt_publish(port, "plant/Room-A101/temperature", "not json").await;
    mqtt_publish(port, "plant/Nope/temperature", "1").await;
    mqtt_publish(port, "plant/Room-A102/temperature", "22.25").await;
    eventually("the next good message", async || twin("Room-A102").await["temperature"] == 22.25).await;
    let after = server_twins(&base, None).await;
    assert_eq!(before.len(), after.len());
    assert_eq!(before["Room-A101"], after["Room-A101"]);

    // The broker goes away and comes back on the same port; the bridge reconnects.
    drop(broker);
    let broker = Broker::start_on(port);
    eventually("the bridge to reconnect and write again", async || {
        mqtt_publish(broker.port, "plant/Room-A103/temperature", "9.75").await;
        twin("Room-A103").await["temperature"] == 9.75
    })
    .await;
    viewer.converge(&server_twins(&base, None).await).await;
    bridge.abort();
}
