//! The MQTT bridge: subscribes to the broker in the server config and turns each message on a
//! mapped topic into a twin property write; reconnects forever, acknowledges only durable writes.

use std::time::Duration;

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};
use tokio::task::JoinHandle;

use crate::auth::Grant;
use crate::json_input::parse_json;
use crate::server_config::{MqttConfig, MqttRoute};
use crate::state::{AppState, Source};

/// A route with its topic split into levels.
#[derive(Clone, Debug)]
struct CompiledRoute {
    levels: Vec<Level>,
    twin: Option<String>,
    property: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
enum Level {
    Literal(String),
    Twin,
    Property,
    Any,
}

impl CompiledRoute {
    fn new(route: &MqttRoute) -> Self {
        let levels = route
            .topic
            .split('/')
            .map(|level| match level {
                "{twin}" => Level::Twin,
                "{property}" => Level::Property,
                "+" => Level::Any,
                literal => Level::Literal(literal.to_owned()),
            })
            .collect();
        Self { levels, twin: route.twin.clone(), property: route.property.clone() }
    }

    /// The subscription filter: captured levels become `+`.
    fn filter(&self) -> String {
        let levels: Vec<&str> = self
            .levels
            .iter()
            .map(|level| match level {
                Level::Literal(text) => text.as_str(),
                _ => "+",
            })
            .collect();
        levels.join("/")
    }

    /// The twin and property a topic writes, if it matches this route.
    fn target(&self, topic: &str) -> Option<(String, String)> {
        let parts: Vec<&str> = topic.split('/').collect();
        if parts.len() != self.levels.len() {
            return None;
        }
        let (mut twin, mut property) = (self.twin.clone(), self.property.clone());
        for (level, part) in self.levels.iter().zip(parts) {
            match level {
                Level::Literal(text) if text != part => return None,
                Level::Twin => twin = Some(part.to_owned()),
                Level::Property => property = Some(part.to_owned()),
                _ => {}
            }
        }
        Some((twin?, property?))
    }
}

/// Runs the bridge until the process ends.
pub fn spawn(state: AppState, config: MqttConfig) -> JoinHandle<()> {
    tokio::spawn(run(state, config))
}

async fn run(state: AppState, config: MqttConfig) {
    let routes: Vec<CompiledRoute> = config.routes.iter().map(CompiledRoute::new).collect();
    let mut options = MqttOptions::new(&config.client_id, &config.host, config.port);
    options.set_keep_alive(Duration::from_secs(5));
    // A persistent session: the broker keeps QoS 1 messages for us while we are away, and a
    // message is acknowledged only once its write is durable.
    options.set_clean_session(false);
    options.set_manual_acks(true);
    if let (Some(user), Some(password)) = (&config.username, &config.password) {
        options.set_credentials(user, password);
    }
    let (client, mut events) = AsyncClient::new(options, 1024);
    let mut backoff = Duration::from_millis(100);
    let mut connected = false;
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                tracing::info!(host = %config.host, port = config.port, "MQTT bridge connected");
                connected = true;
                backoff = Duration::from_millis(100);
                for route in &routes {
                    if let Err(error) = client.try_subscribe(route.filter(), QoS::AtLeastOnce) {
                        tracing::warn!("MQTT subscribe to {} failed: {error}", route.filter());
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                handle(&state, &routes, &publish).await;
                if let Err(error) = client.try_ack(&publish) {
                    tracing::warn!("MQTT ack failed: {error}");
                }
            }
            Ok(_) => {}
            Err(error) => {
                if connected {
                    tracing::warn!("MQTT bridge lost the broker: {error}; reconnecting");
                    connected = false;
                } else {
                    tracing::debug!("MQTT broker not reachable: {error}");
                }
                // The next poll reconnects; wait a little more each time the broker is away.
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// One message: a JSON value written to the mapped property. Anything malformed is counted,
/// logged and dropped; it never reaches the twin.
async fn handle(state: &AppState, routes: &[CompiledRoute], publish: &Publish) {
    let Some((twin, property)) = routes.iter().find_map(|route| route.target(&publish.topic)) else {
        tracing::debug!(topic = %publish.topic, "MQTT message on an unmapped topic");
        return;
    };
    let limits = &state.config().limits;
    if publish.payload.len() > limits.max_body_bytes {
        crate::metrics::refused("body_too_large");
        tracing::warn!(topic = %publish.topic, "MQTT payload larger than {} bytes dropped", limits.max_body_bytes);
        return;
    }
    let value = match parse_json(&publish.payload, limits.max_json_depth) {
        Ok(value) => value,
        Err(error) => {
            tracing::warn!(topic = %publish.topic, "MQTT payload dropped: {error}");
            return;
        }
    };
    let patch = Patch(vec![PatchOperation::Add(AddOperation {
        path: PointerBuf::from_tokens([property.as_str()]),
        value,
    })]);
    if let Err(error) = state.patch_twin(&Grant::open(), &twin, patch, None, Source::Mqtt).await {
        tracing::warn!(topic = %publish.topic, "MQTT write to twin {twin:?} refused: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(topic: &str, twin: Option<&str>, property: Option<&str>) -> CompiledRoute {
        CompiledRoute::new(&MqttRoute {
            topic: topic.to_owned(),
            twin: twin.map(str::to_owned),
            property: property.map(str::to_owned),
        })
    }

    #[test]
    fn topics_map_to_twin_properties() {
        let route_a = route("plant/{twin}/{property}", None, None);
        assert_eq!(route_a.filter(), "plant/+/+");
        assert_eq!(route_a.target("plant/Room-1/temperature"), Some(("Room-1".into(), "temperature".into())));
        assert_eq!(route_a.target("plant/Room-1"), None);
        assert_eq!(route_a.target("other/Room-1/temperature"), None);
        let route_b = route("ahu/+/temp", Some("AHU-1"), Some("temperature"));
        assert_eq!(route_b.filter(), "ahu/+/temp");
        assert_eq!(route_b.target("ahu/x/temp"), Some(("AHU-1".into(), "temperature".into())));
    }
}
