//! The `/live` WebSocket: after the viewer's hello, a snapshot, then every delta in seq order,
//! and a heartbeat when idle. A viewer that falls behind or says hello again gets a new snapshot.

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{self, Instant, MissedTickBehavior};
use twinscene_core::live::{ClientMessage, PROTOCOL_VERSION, ServerMessage};

use crate::state::{AppState, Delta, Subscription};

/// Viewers only ever send a hello; anything much larger is not one.
const MAX_CLIENT_MESSAGE_BYTES: usize = 64 * 1024;

pub async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    ws.max_message_size(MAX_CLIENT_MESSAGE_BYTES).on_upgrade(move |socket| async move {
        if let Err(error) = serve_viewer(socket, state).await {
            tracing::debug!("live socket ended: {error}");
        }
    })
}

async fn serve_viewer(mut socket: WebSocket, state: AppState) -> Result<(), axum::Error> {
    let timings = state.timings();
    let hello_deadline = Instant::now() + timings.hello_timeout;
    let mut heartbeat = time::interval_at(Instant::now() + timings.heartbeat, timings.heartbeat);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // None until the viewer says hello: nothing is streamed before it.
    let mut subscription: Option<Subscription> = None;
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let Some(incoming) = incoming else { return Ok(()) };
                match incoming? {
                    Message::Text(text) => match serde_json::from_str::<ClientMessage>(&text) {
                        Ok(ClientMessage::Hello { protocol, .. }) if protocol != PROTOCOL_VERSION => {
                            let message = format!(
                                "protocol version {protocol} is not supported; this server speaks {PROTOCOL_VERSION}"
                            );
                            send(&mut socket, &ServerMessage::Error { message }).await?;
                            return close(socket, "unsupported protocol version").await;
                        }
                        Ok(ClientMessage::Hello { .. }) => {
                            subscription = Some(send_snapshot(&mut socket, &state).await?);
                            heartbeat.reset();
                        }
                        Err(error) => {
                            let message = format!("not a twinscene client message: {error}");
                            send(&mut socket, &ServerMessage::Error { message }).await?;
                        }
                    },
                    Message::Binary(_) => {
                        let message = "binary messages are not supported; send JSON text".to_owned();
                        send(&mut socket, &ServerMessage::Error { message }).await?;
                    }
                    Message::Close(_) => return Ok(()),
                    // axum answers pings itself.
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
            received = next_delta(&mut subscription) => match received {
                Ok(delta) => {
                    let Some(current) = subscription.as_mut() else { continue };
                    if delta.seq <= current.seq {
                        // Already part of the snapshot this viewer was sent.
                        continue;
                    }
                    if delta.seq == current.seq + 1 {
                        current.seq = delta.seq;
                        socket.send(Message::Text(delta.text)).await?;
                    } else {
                        // A gap cannot happen with the subscription taken under the writers'
                        // lock, but if it did, a snapshot is still correct.
                        subscription = Some(send_snapshot(&mut socket, &state).await?);
                    }
                    heartbeat.reset();
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "a live viewer fell behind; sending it a new snapshot");
                    subscription = Some(send_snapshot(&mut socket, &state).await?);
                    heartbeat.reset();
                }
                // The server is shutting down.
                Err(RecvError::Closed) => return close(socket, "server shutting down").await,
            },
            _ = heartbeat.tick(), if subscription.is_some() => {
                let seq = subscription.as_ref().map_or(0, |current| current.seq);
                send(&mut socket, &ServerMessage::Heartbeat { seq }).await?;
            }
            _ = time::sleep_until(hello_deadline), if subscription.is_none() => {
                return close(socket, "no hello received in time").await;
            }
        }
    }
}

/// The next delta once subscribed; never completes before the hello.
async fn next_delta(subscription: &mut Option<Subscription>) -> Result<Delta, RecvError> {
    match subscription {
        Some(current) => current.deltas.recv().await,
        None => std::future::pending().await,
    }
}

async fn send_snapshot(socket: &mut WebSocket, state: &AppState) -> Result<Subscription, axum::Error> {
    let (snapshot, subscription) = state.subscribe();
    send(socket, &snapshot).await?;
    Ok(subscription)
}

async fn send(socket: &mut WebSocket, message: &ServerMessage) -> Result<(), axum::Error> {
    let text = serde_json::to_string(message).map_err(axum::Error::new)?;
    socket.send(Message::Text(text.into())).await
}

async fn close(mut socket: WebSocket, reason: &str) -> Result<(), axum::Error> {
    let frame = CloseFrame { code: close_code::POLICY, reason: reason.into() };
    socket.send(Message::Close(Some(frame))).await
}
