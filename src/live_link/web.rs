//! The browser side of the live link: a WebSocket (gloo-net) in a local async task that
//! reconnects forever with backoff.

use crossbeam_channel::Sender;
use futures_channel::mpsc::UnboundedReceiver;
use futures_util::{SinkExt, StreamExt, future::Either};
use gloo_net::websocket::{Message, futures::WebSocket};
use twinscene_core::live::{ClientMessage, ReconnectBackoff};

use super::{LinkEvent, is_welcome};

/// Connects to `url` and keeps reconnecting; the viewer greets through `commands` after each
/// `Connected`.
pub fn spawn_connection(url: String, events: Sender<LinkEvent>, commands: UnboundedReceiver<ClientMessage>) {
    wasm_bindgen_futures::spawn_local(run(url, events, commands));
}

async fn run(url: String, events: Sender<LinkEvent>, mut commands: UnboundedReceiver<ClientMessage>) {
    let mut backoff = ReconnectBackoff::default();
    loop {
        let reason = match WebSocket::open(&url) {
            Ok(socket) => session(socket, &events, &mut commands, &mut backoff).await,
            Err(error) => format!("cannot open {url}: {error}"),
        };
        let delay = backoff.next_delay_ms(js_sys::Math::random());
        if events.send(LinkEvent::Disconnected { reason, retry_in_ms: delay }).is_err() {
            return; // The viewer is gone.
        }
        gloo_timers::future::TimeoutFuture::new(delay).await;
    }
}

/// Runs one connection until it ends; returns why it ended.
async fn session(
    socket: WebSocket,
    events: &Sender<LinkEvent>,
    commands: &mut UnboundedReceiver<ClientMessage>,
    backoff: &mut ReconnectBackoff,
) -> String {
    let (mut sink, mut stream) = socket.split();
    let _ = events.send(LinkEvent::Connected);
    let mut welcomed = false;
    loop {
        let received = match futures_util::future::select(stream.next(), commands.next()).await {
            Either::Left((Some(Ok(Message::Text(text))), _)) => Some(Ok(text)),
            // The server's JSON in binary frames, as the hello asks: one copy into wasm memory.
            Either::Left((Some(Ok(Message::Bytes(bytes))), _)) => {
                Some(String::from_utf8(bytes).map_err(|e| format!("a binary frame that is not UTF-8: {e}")))
            }
            Either::Left((Some(Err(error)), _)) => return error.to_string(),
            Either::Left((None, _)) => return "the server closed the connection".into(),
            Either::Right((Some(command), _)) => {
                if let Err(error) = send(&mut sink, &command).await {
                    return error;
                }
                None
            }
            Either::Right((None, _)) => return "viewer closed".into(),
        };
        match received {
            None => {}
            Some(Err(error)) => return error,
            Some(Ok(text)) => {
                if !welcomed && is_welcome(&text) {
                    welcomed = true;
                    backoff.reset();
                }
                if events.send(LinkEvent::Message(text)).is_err() {
                    return "viewer closed".into();
                }
            }
        }
    }
}

async fn send(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    message: &ClientMessage,
) -> Result<(), String> {
    let text = serde_json::to_string(message).map_err(|e| e.to_string())?;
    sink.send(Message::Text(text)).await.map_err(|e| e.to_string())
}
