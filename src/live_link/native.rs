//! The desktop side of the live link: a blocking WebSocket (tungstenite) on its own thread that
//! reconnects forever with backoff.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::time::Duration;

use crossbeam_channel::Sender;
use futures_channel::mpsc::UnboundedReceiver;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};
use twinscene_core::live::{ClientMessage, ReconnectBackoff};

use super::{LinkEvent, is_welcome};

/// How long a read waits before the thread checks for messages to send.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Connects to `url` and keeps reconnecting; the viewer greets through `commands` after each
/// `Connected`.
pub fn spawn_connection(url: String, events: Sender<LinkEvent>, commands: UnboundedReceiver<ClientMessage>) {
    std::thread::spawn(move || run(url, events, commands));
}

fn run(url: String, events: Sender<LinkEvent>, mut commands: UnboundedReceiver<ClientMessage>) {
    let mut backoff = ReconnectBackoff::default();
    loop {
        let reason = match tungstenite::connect(url.as_str()) {
            Ok((socket, _)) => session(socket, &events, &mut commands, &mut backoff),
            Err(error) => format!("cannot open {url}: {error}"),
        };
        let delay = backoff.next_delay_ms(jitter());
        if events.send(LinkEvent::Disconnected { reason, retry_in_ms: delay }).is_err() {
            return; // The viewer is gone.
        }
        std::thread::sleep(Duration::from_millis(u64::from(delay)));
    }
}

fn session(
    mut socket: WebSocket<MaybeTlsStream<TcpStream>>,
    events: &Sender<LinkEvent>,
    commands: &mut UnboundedReceiver<ClientMessage>,
    backoff: &mut ReconnectBackoff,
) -> String {
    if let MaybeTlsStream::Plain(stream) = socket.get_mut()
        && let Err(error) = stream.set_read_timeout(Some(POLL_INTERVAL))
    {
        return error.to_string();
    }
    let _ = events.send(LinkEvent::Connected);
    let mut welcomed = false;
    loop {
        while let Ok(command) = commands.try_recv() {
            if let Err(error) = send(&mut socket, &command) {
                return error;
            }
        }
        match socket.read() {
            Ok(Message::Text(text)) => {
                if !welcomed && is_welcome(&text) {
                    welcomed = true;
                    backoff.reset();
                }
                if events.send(LinkEvent::Message(text.to_string())).is_err() {
                    return "viewer closed".into();
                }
            }
            Ok(Message::Close(_)) => return "the server closed the connection".into(),
            Ok(_) => {}
            Err(tungstenite::Error::Io(error))
                if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(error) => return error.to_string(),
        }
    }
}

fn send(socket: &mut WebSocket<MaybeTlsStream<TcpStream>>, message: &ClientMessage) -> Result<(), String> {
    let text = serde_json::to_string(message).map_err(|e| e.to_string())?;
    socket.send(Message::text(text)).map_err(|e| e.to_string())
}

/// A number in [0, 1) that differs between processes and attempts; good enough for jitter.
fn jitter() -> f64 {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1_000_000) / 1_000_000.0
}
