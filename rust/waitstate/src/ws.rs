//! A small WebSocket client (RFC 6455) for the push channel, over tokio's
//! `TcpStream` (and native TLS for `https` control planes, the TLS reqwest
//! uses). It does what the push channel needs and refuses the rest loudly:
//! text messages (fragmented or not), ping/pong, close codes, masking of
//! every frame it sends, and a bound on what it buffers. No extensions, no
//! subprotocols, no binary messages.
use std::fmt;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The GUID the server appends to our key before hashing it (RFC 6455 §1.3).
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// An upgrade answer's head larger than this is not a WebSocket server we know.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// What we read of a refused upgrade's body: enough for a typed error.
const MAX_ERROR_BODY_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

pub(crate) const CLOSE_NORMAL: u16 = 1000;
pub(crate) const CLOSE_PROTOCOL_ERROR: u16 = 1002;
pub(crate) const CLOSE_UNSUPPORTED_DATA: u16 = 1003;
pub(crate) const CLOSE_INVALID_PAYLOAD: u16 = 1007;
pub(crate) const CLOSE_TOO_BIG: u16 = 1009;

/// Anything a WebSocket can run over: a TCP stream, a TLS stream, a test's duplex.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WsError {
    /// No usable connection: DNS, refused, TLS, reset, or the stream ended.
    Io(String),
    /// The server answered the upgrade with another status; `code` and
    /// `message` come from its typed error body when it has one.
    Http {
        status: u16,
        code: Option<String>,
        message: String,
    },
    /// The server broke the protocol; the connection must be failed with `close_code`.
    Protocol { close_code: u16, message: String },
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsError::Io(m) => f.write_str(m),
            WsError::Http { status, code, message } => match code {
                Some(code) => write!(f, "{} {}: {}", status, code, message),
                None => write!(f, "HTTP {}: {}", status, message),
            },
            WsError::Protocol { close_code, message } => write!(f, "protocol error ({}): {}", close_code, message),
        }
    }
}

fn io_error(what: &str, e: std::io::Error) -> WsError {
    WsError::Io(format!("{}: {}", what, e))
}

fn protocol(close_code: u16, message: impl Into<String>) -> WsError {
    WsError::Protocol {
        close_code,
        message: message.into(),
    }
}

/// One message from the server. Pings are handed to the caller, who answers
/// them with [`WebSocket::pong`] (so that [`WebSocket::recv`] never writes and
/// stays safe to cancel in a `select!`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Message {
    Text(String),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// The server's close frame: its code and reason, `None` for an empty one.
    Close(Option<(u16, String)>),
}

/// Where to connect: `ws`/`http` or `wss`/`https` URLs.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The `Host` header: the host, and the port when it is not the scheme's default.
    pub authority: String,
    /// Path and query of the request line.
    pub resource: String,
}

impl Target {
    pub fn from_url(url: &reqwest::Url) -> Result<Target, WsError> {
        let tls = match url.scheme() {
            "https" | "wss" => true,
            "http" | "ws" => false,
            other => return Err(WsError::Io(format!("cannot open a WebSocket to a {} URL", other))),
        };
        let host_str = match url.host_str() {
            Some(h) => h,
            None => return Err(WsError::Io(format!("{} has no host", url))),
        };
        // An IPv6 literal is bracketed in a URL and in Host, bare for connect().
        let host = host_str.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = url.port_or_known_default().unwrap_or(if tls { 443 } else { 80 });
        let authority = match url.port() {
            Some(p) => format!("{}:{}", host_str, p),
            None => host_str.to_string(),
        };
        let resource = match url.query() {
            Some(q) => format!("{}?{}", url.path(), q),
            None => url.path().to_string(),
        };
        Ok(Target {
            tls,
            host,
            port,
            authority,
            resource,
        })
    }
}

/// Opens TCP (and TLS), then upgrades. The caller bounds it with a timeout.
pub(crate) async fn connect(target: &Target, headers: &[(&str, &str)], max_message: usize) -> Result<WebSocket, WsError> {
    let where_ = format!("{}:{}", target.host, target.port);
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| io_error(&format!("could not connect to {}", where_), e))?;
    // Frames are small and latency is the point of push.
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = if target.tls {
        let connector = native_tls::TlsConnector::new().map_err(|e| WsError::Io(format!("TLS unavailable: {}", e)))?;
        let tls = tokio_native_tls::TlsConnector::from(connector)
            .connect(&target.host, tcp)
            .await
            .map_err(|e| WsError::Io(format!("TLS with {} failed: {}", where_, e)))?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    handshake(io, &target.authority, &target.resource, headers, max_message).await
}

/// The `Sec-WebSocket-Accept` a server must answer to `key`.
pub(crate) fn accept_key(key: &str) -> String {
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(ACCEPT_GUID.as_bytes());
    base64::encode(h.finalize())
}

fn header_safe(value: &str) -> bool {
    value.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// The opening handshake over an established stream (RFC 6455 §4.1).
pub(crate) async fn handshake(
    mut io: Box<dyn Io>,
    authority: &str,
    resource: &str,
    headers: &[(&str, &str)],
    max_message: usize,
) -> Result<WebSocket, WsError> {
    let key = base64::encode(rand::random::<[u8; 16]>());
    let mut request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n",
        resource, authority, key
    );
    for (name, value) in headers {
        // A header value with CR or LF would split the request: refuse it rather than send it.
        if !header_safe(name) || !header_safe(value) {
            return Err(WsError::Io(format!("the {} header holds characters a request cannot carry", name)));
        }
        request.push_str(name);
        request.push_str(": ");
        request.push_str(value);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    io.write_all(request.as_bytes())
        .await
        .map_err(|e| io_error("sending the upgrade", e))?;
    io.flush().await.map_err(|e| io_error("sending the upgrade", e))?;

    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    loop {
        let mut parsed_headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut parsed_headers);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let status = response.code.unwrap_or(0);
                let find = |name: &str| {
                    response
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
                };
                if status != 101 {
                    let length = find("content-length").and_then(|v| v.parse::<usize>().ok());
                    let mut body = buf[head_len..].to_vec();
                    return Err(refused(&mut io, status, length, &mut body).await);
                }
                let upgrade = find("upgrade").unwrap_or_default();
                let connection = find("connection").unwrap_or_default();
                let accept = find("sec-websocket-accept").unwrap_or_default();
                if !upgrade.eq_ignore_ascii_case("websocket") {
                    return Err(protocol(
                        CLOSE_PROTOCOL_ERROR,
                        format!("the server upgraded to {:?}, not websocket", upgrade),
                    ));
                }
                if !connection.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")) {
                    return Err(protocol(CLOSE_PROTOCOL_ERROR, "the upgrade answer lacks Connection: Upgrade"));
                }
                if accept != accept_key(&key) {
                    return Err(protocol(
                        CLOSE_PROTOCOL_ERROR,
                        "the server's Sec-WebSocket-Accept does not match our key",
                    ));
                }
                if find("sec-websocket-extensions").is_some() || find("sec-websocket-protocol").is_some() {
                    return Err(protocol(
                        CLOSE_PROTOCOL_ERROR,
                        "the server chose an extension or subprotocol we did not offer",
                    ));
                }
                // Bytes after the head are already frames.
                let rest = buf.split_off(head_len);
                return Ok(WebSocket::new(io, rest, max_message));
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(protocol(CLOSE_PROTOCOL_ERROR, format!("the upgrade answer is not HTTP: {}", e))),
        }
        if buf.len() >= MAX_HEAD_BYTES {
            return Err(protocol(CLOSE_PROTOCOL_ERROR, "the upgrade answer's head is too large"));
        }
        buf.reserve(1024);
        let n = io.read_buf(&mut buf).await.map_err(|e| io_error("reading the upgrade answer", e))?;
        if n == 0 {
            return Err(WsError::Io("the server closed the connection during the upgrade".into()));
        }
    }
}

/// A refused upgrade: the status with the typed error of its body (`{"error":{"code","message"}}`).
async fn refused(io: &mut Box<dyn Io>, status: u16, length: Option<usize>, body: &mut Vec<u8>) -> WsError {
    let want = length.unwrap_or(MAX_ERROR_BODY_BYTES).min(MAX_ERROR_BODY_BYTES);
    while body.len() < want {
        body.reserve(1024);
        match io.read_buf(body).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    body.truncate(want);
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let code = error.and_then(|e| e.get("code")).and_then(|c| c.as_str()).map(str::to_string);
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(|m| m.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| "the server refused the upgrade".to_string());
    WsError::Http { status, code, message }
}

/// Is `code` one a close frame may carry (RFC 6455 §7.4)?
fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

/// An open WebSocket (client side).
pub(crate) struct WebSocket {
    io: Box<dyn Io>,
    /// Received bytes not yet parsed into frames.
    buf: Vec<u8>,
    /// A fragmented text message being assembled.
    partial: Option<Vec<u8>>,
    max_message: usize,
    close_sent: bool,
}

impl WebSocket {
    fn new(io: Box<dyn Io>, buf: Vec<u8>, max_message: usize) -> WebSocket {
        WebSocket {
            io,
            buf,
            partial: None,
            max_message,
            close_sent: false,
        }
    }

    /// The next message. Safe to cancel: its only await is a read into the
    /// buffer, so a `select!` that drops it loses nothing. A protocol error is
    /// returned for the caller to [`fail`](WebSocket::fail) the connection with.
    pub async fn recv(&mut self) -> Result<Message, WsError> {
        loop {
            while let Some(frame) = self.parse_frame()? {
                if let Some(message) = self.on_frame(frame)? {
                    return Ok(message);
                }
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(4096);
            }
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) => return Err(WsError::Io("the connection ended without a close frame".into())),
                Ok(_) => {}
                Err(e) => return Err(io_error("reading", e)),
            }
        }
    }

    /// One complete frame from the buffer, or `None` until more bytes arrive.
    fn parse_frame(&mut self) -> Result<Option<Frame>, WsError> {
        let b = &self.buf;
        if b.len() < 2 {
            return Ok(None);
        }
        let fin = b[0] & 0x80 != 0;
        let opcode = b[0] & 0x0f;
        if b[0] & 0x70 != 0 {
            return Err(protocol(CLOSE_PROTOCOL_ERROR, "reserved bits set without an extension"));
        }
        if b[1] & 0x80 != 0 {
            return Err(protocol(CLOSE_PROTOCOL_ERROR, "a server must not mask its frames"));
        }
        let (length, head) = match b[1] & 0x7f {
            126 => {
                if b.len() < 4 {
                    return Ok(None);
                }
                (u64::from(u16::from_be_bytes([b[2], b[3]])), 4)
            }
            127 => {
                if b.len() < 10 {
                    return Ok(None);
                }
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(&b[2..10]);
                let n = u64::from_be_bytes(bytes);
                if n >> 63 != 0 {
                    return Err(protocol(CLOSE_PROTOCOL_ERROR, "frame length with its top bit set"));
                }
                (n, 10)
            }
            n => (u64::from(n), 2),
        };
        if opcode >= 8 && (!fin || length > 125) {
            return Err(protocol(
                CLOSE_PROTOCOL_ERROR,
                "a control frame must be whole and at most 125 bytes",
            ));
        }
        // Refuse a message over the limit from its declared length, before buffering it.
        let so_far = self.partial.as_ref().map_or(0, Vec::len) as u64;
        if opcode < 8 && so_far + length > self.max_message as u64 {
            return Err(protocol(CLOSE_TOO_BIG, format!("a message over {} bytes", self.max_message)));
        }
        let total = head + length as usize;
        if b.len() < total {
            return Ok(None);
        }
        let payload = b[head..total].to_vec();
        self.buf.drain(..total);
        Ok(Some(Frame { fin, opcode, payload }))
    }

    fn on_frame(&mut self, frame: Frame) -> Result<Option<Message>, WsError> {
        match frame.opcode {
            0x1 => {
                if self.partial.is_some() {
                    return Err(protocol(CLOSE_PROTOCOL_ERROR, "a new message inside a fragmented one"));
                }
                if frame.fin {
                    return text(frame.payload).map(Some);
                }
                self.partial = Some(frame.payload);
                Ok(None)
            }
            0x0 => {
                let mut partial = match self.partial.take() {
                    Some(p) => p,
                    None => return Err(protocol(CLOSE_PROTOCOL_ERROR, "a continuation frame with nothing to continue")),
                };
                partial.extend_from_slice(&frame.payload);
                if frame.fin {
                    return text(partial).map(Some);
                }
                self.partial = Some(partial);
                Ok(None)
            }
            0x2 => Err(protocol(
                CLOSE_UNSUPPORTED_DATA,
                "binary messages are not part of the push protocol",
            )),
            0x8 => {
                let p = frame.payload;
                match p.len() {
                    0 => Ok(Some(Message::Close(None))),
                    1 => Err(protocol(CLOSE_PROTOCOL_ERROR, "a close frame of one byte")),
                    _ => {
                        let code = u16::from_be_bytes([p[0], p[1]]);
                        if !valid_close_code(code) {
                            return Err(protocol(
                                CLOSE_PROTOCOL_ERROR,
                                format!("close code {} is not allowed on the wire", code),
                            ));
                        }
                        match String::from_utf8(p[2..].to_vec()) {
                            Ok(reason) => Ok(Some(Message::Close(Some((code, reason))))),
                            Err(_) => Err(protocol(CLOSE_INVALID_PAYLOAD, "a close reason that is not UTF-8")),
                        }
                    }
                }
            }
            0x9 => Ok(Some(Message::Ping(frame.payload))),
            0xA => Ok(Some(Message::Pong(frame.payload))),
            other => Err(protocol(CLOSE_PROTOCOL_ERROR, format!("unknown opcode {}", other))),
        }
    }

    async fn send_frame(&mut self, opcode: u8, payload: &[u8]) -> Result<(), WsError> {
        let mut frame = Vec::with_capacity(payload.len() + 14);
        frame.push(0x80 | opcode);
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        // A fresh, unpredictable key per frame (RFC 6455 §5.3): what keeps a
        // proxy on the path from being fed a request of our choosing.
        let mask: [u8; 4] = rand::random();
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.io.write_all(&frame).await.map_err(|e| io_error("sending", e))?;
        self.io.flush().await.map_err(|e| io_error("sending", e))
    }

    pub async fn send_text(&mut self, text: &str) -> Result<(), WsError> {
        self.send_frame(0x1, text.as_bytes()).await
    }

    pub async fn pong(&mut self, payload: &[u8]) -> Result<(), WsError> {
        self.send_frame(0xA, payload).await
    }

    /// Sends our close frame (once), answering the server's or starting the closing handshake.
    pub async fn send_close(&mut self, code: u16, reason: &str) -> Result<(), WsError> {
        if self.close_sent {
            return Ok(());
        }
        self.close_sent = true;
        let mut payload = code.to_be_bytes().to_vec();
        // A close payload is a control frame: at most 125 bytes.
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        payload.extend_from_slice(reason[..end].as_bytes());
        self.send_frame(0x8, &payload).await
    }

    /// Closes cleanly: our close frame, then the server's answer (or the end
    /// of the stream), then the TCP shutdown. The caller bounds it with a timeout.
    pub async fn close(mut self, code: u16, reason: &str) {
        if self.send_close(code, reason).await.is_ok() {
            while let Ok(message) = self.recv().await {
                if let Message::Close(_) = message {
                    break;
                }
            }
        }
        let _ = self.io.shutdown().await;
    }

    /// Fails the connection after a protocol error: a close frame with the error's code, then shutdown.
    pub async fn fail(mut self, code: u16, reason: &str) {
        let _ = self.send_close(code, reason).await;
        let _ = self.io.shutdown().await;
    }

    /// Answers the server's close frame and ends the connection.
    pub async fn finish(mut self, code: Option<u16>) {
        let _ = self.send_close(code.unwrap_or(CLOSE_NORMAL), "").await;
        let _ = self.io.shutdown().await;
    }
}

fn text(payload: Vec<u8>) -> Result<Message, WsError> {
    String::from_utf8(payload)
        .map(Message::Text)
        .map_err(|_| protocol(CLOSE_INVALID_PAYLOAD, "a text message that is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws_server::{self, Handler, Request, Server, ServerSocket};
    use std::sync::Arc;

    async fn open(server: &mut Server, max: usize) -> (WebSocket, ServerSocket) {
        let url = reqwest::Url::parse(&format!("{}/v1/policy/org_1/subscribe?siteId=prod", server.url())).unwrap();
        let target = Target::from_url(&url).unwrap();
        let client = connect(&target, &[("authorization", "Bearer t1")], max).await.unwrap();
        (client, server.accept().await)
    }

    fn accept_all() -> Handler {
        Arc::new(|_: &Request| None)
    }

    #[tokio::test]
    async fn handshake_sends_the_upgrade_and_our_headers_and_checks_the_accept_key() {
        let mut server = ws_server::start(accept_all()).await;
        let (_client, socket) = open(&mut server, 1024).await;
        let r = &socket.request;
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("GET", "/v1/policy/org_1/subscribe?siteId=prod")
        );
        assert_eq!(r.header("authorization"), Some("Bearer t1"));
        assert_eq!(r.header("sec-websocket-version"), Some("13"));
        assert_eq!(r.header("host"), Some(server.addr.to_string().as_str()));
        // 16 random bytes, base64
        assert_eq!(base64::decode(r.header("sec-websocket-key").unwrap()).unwrap().len(), 16);
    }

    #[tokio::test]
    async fn a_wrong_accept_key_or_a_refusal_is_an_error() {
        // A "server" that answers 101 with a made-up accept key.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut b = vec![0u8; 4096];
            let _ = s.read(&mut b).await;
            let _ = s
                .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: bm9wZQ==\r\n\r\n")
                .await;
        });
        let target = Target::from_url(&reqwest::Url::parse(&format!("http://{}/x", addr)).unwrap()).unwrap();
        match connect(&target, &[], 1024).await {
            Err(WsError::Protocol { message, .. }) => assert!(message.contains("Sec-WebSocket-Accept"), "{}", message),
            other => panic!("expected a protocol error, got {:?}", other.map(|_| ())),
        }

        let refuse: Handler = Arc::new(|_: &Request| {
            Some((
                401,
                vec![],
                r#"{"error":{"code":"TOKEN_EXPIRED","message":"the token expired"}}"#.to_string(),
            ))
        });
        let server = ws_server::start(refuse).await;
        let target = Target::from_url(&reqwest::Url::parse(&format!("{}/x", server.url())).unwrap()).unwrap();
        match connect(&target, &[], 1024).await {
            Err(WsError::Http { status, code, message }) => {
                assert_eq!(
                    (status, code.as_deref(), message.as_str()),
                    (401, Some("TOKEN_EXPIRED"), "the token expired")
                )
            }
            other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
        }
        // A header value that would split the request is refused before anything is sent.
        let target = Target::from_url(&reqwest::Url::parse(&format!("{}/x", server.url())).unwrap()).unwrap();
        assert!(matches!(
            connect(&target, &[("authorization", "Bearer a\r\nx: y")], 1024).await,
            Err(WsError::Io(_))
        ));
    }

    #[tokio::test]
    async fn text_of_every_length_encoding_and_fragmented_text_arrive_whole() {
        let mut server = ws_server::start(accept_all()).await;
        let (mut client, mut socket) = open(&mut server, 200_000).await;
        let medium = "m".repeat(300);
        let large = "L".repeat(70_000);
        socket.send_text("small").await;
        socket.send_text(&medium).await;
        socket.send_text(&large).await;
        socket.send_frame(false, 0x1, b"frag").await;
        socket.send_frame(true, 0x9, b"in-between").await; // a control frame may interleave
        socket.send_frame(false, 0x0, "mén".as_bytes()).await;
        socket.send_frame(true, 0x0, b"ted").await;
        assert_eq!(client.recv().await, Ok(Message::Text("small".into())));
        assert_eq!(client.recv().await, Ok(Message::Text(medium)));
        assert_eq!(client.recv().await, Ok(Message::Text(large)));
        assert_eq!(client.recv().await, Ok(Message::Ping(b"in-between".to_vec())));
        assert_eq!(client.recv().await, Ok(Message::Text("fragménted".into())));
    }

    #[tokio::test]
    async fn every_frame_the_client_sends_is_masked_with_a_fresh_key() {
        let mut server = ws_server::start(accept_all()).await;
        let (mut client, mut socket) = open(&mut server, 1024).await;
        client.send_text("ping").await.unwrap();
        client.send_text("ping").await.unwrap();
        client.pong(b"p1").await.unwrap();
        let long = "x".repeat(1000);
        client.send_text(&long).await.unwrap();
        let a = socket.read_frame().await.unwrap();
        let b = socket.read_frame().await.unwrap();
        assert!(a.masked && b.masked && a.fin);
        assert_ne!(a.mask, b.mask, "the same payload, a fresh key each time");
        assert_eq!((a.opcode, a.payload.as_slice()), (0x1, b"ping".as_slice()));
        let pong = socket.read_frame().await.unwrap();
        assert_eq!((pong.opcode, pong.masked, pong.payload.as_slice()), (0xA, true, b"p1".as_slice()));
        let l = socket.read_frame().await.unwrap();
        assert_eq!(l.payload, long.as_bytes());
        let server_side = async {
            let close = socket.read_frame().await.unwrap();
            socket.send_close(1000, "").await;
            close
        };
        // close() waits for the server's answer to its close frame
        let ((), close) = tokio::join!(client.close(CLOSE_NORMAL, "bye"), server_side);
        assert_eq!(close.opcode, 0x8);
        assert_eq!(&close.payload[..2], &1000u16.to_be_bytes());
        assert_eq!(&close.payload[2..], b"bye");
    }

    /// Each broken frame from the server, and the close code the client must fail with.
    #[tokio::test]
    async fn protocol_violations_fail_the_connection_with_the_right_code() {
        let cases: Vec<(&str, Vec<u8>, u16)> = vec![
            (
                "masked frame",
                vec![0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2],
                CLOSE_PROTOCOL_ERROR,
            ),
            ("reserved bit", vec![0xC1, 0x02, b'h', b'i'], CLOSE_PROTOCOL_ERROR),
            ("unknown opcode", vec![0x83, 0x00], CLOSE_PROTOCOL_ERROR),
            ("fragmented ping", vec![0x09, 0x00], CLOSE_PROTOCOL_ERROR),
            ("orphan continuation", vec![0x80, 0x01, b'x'], CLOSE_PROTOCOL_ERROR),
            ("binary message", vec![0x82, 0x01, 0x00], CLOSE_UNSUPPORTED_DATA),
            ("invalid UTF-8", vec![0x81, 0x02, 0xC3, 0x28], CLOSE_INVALID_PAYLOAD),
            ("one-byte close", vec![0x88, 0x01, 0x03], CLOSE_PROTOCOL_ERROR),
            ("close code 1005 on the wire", vec![0x88, 0x02, 0x03, 0xED], CLOSE_PROTOCOL_ERROR),
            // declares 2^20 bytes: refused from the header, before any of it is buffered
            ("too big", vec![0x81, 127, 0, 0, 0, 0, 0, 0x10, 0, 0], CLOSE_TOO_BIG),
        ];
        for (what, bytes, code) in cases {
            let mut server = ws_server::start(accept_all()).await;
            let (mut client, mut socket) = open(&mut server, 64 * 1024).await;
            socket.send_raw(&bytes).await;
            match client.recv().await {
                Err(WsError::Protocol { close_code, message }) => {
                    assert_eq!(close_code, code, "{}: {}", what, message);
                    client.fail(close_code, &message).await;
                    assert_eq!(socket.expect_close().await, Some(code), "{}", what);
                }
                other => panic!("{}: expected a protocol error, got {:?}", what, other),
            }
        }
    }

    #[tokio::test]
    async fn a_message_over_the_limit_across_fragments_is_refused() {
        let mut server = ws_server::start(accept_all()).await;
        let (mut client, mut socket) = open(&mut server, 10).await;
        socket.send_frame(false, 0x1, b"123456").await;
        socket.send_frame(true, 0x0, b"78901").await;
        assert!(matches!(
            client.recv().await,
            Err(WsError::Protocol {
                close_code: CLOSE_TOO_BIG,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn close_frames_carry_code_and_reason_and_the_end_of_the_stream_is_an_error() {
        let mut server = ws_server::start(accept_all()).await;
        let (mut client, mut socket) = open(&mut server, 1024).await;
        socket.send_close(4002, "TOKEN_EXPIRED").await;
        assert_eq!(client.recv().await, Ok(Message::Close(Some((4002, "TOKEN_EXPIRED".into())))));
        client.finish(Some(4002)).await;
        assert_eq!(socket.expect_close().await, Some(4002));

        let (mut client, socket) = open(&mut server, 1024).await;
        socket.drop_connection().await;
        assert!(matches!(client.recv().await, Err(WsError::Io(_))));
    }

    #[test]
    fn the_accept_key_is_the_rfc_example() {
        // RFC 6455 §1.3
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}
