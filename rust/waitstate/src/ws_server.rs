//! A real WebSocket server for the push tests, on 127.0.0.1: it answers plain
//! HTTP requests (token exchange, pulses, reads) with a handler and hands each
//! accepted upgrade to the test as a [`ServerSocket`] the test drives frame by
//! frame, masked frames unmasked, raw bytes when a test needs a broken frame.
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// A request as the server read it.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn is_upgrade(&self) -> bool {
        self.header("upgrade").map_or(false, |v| v.eq_ignore_ascii_case("websocket"))
    }
}

/// What the handler answers: `Some((status, headers, body))`, or `None` to
/// accept an upgrade (and answer 404 to anything else).
pub(crate) type Answer = Option<(u16, Vec<(String, String)>, String)>;
pub(crate) type Handler = Arc<dyn Fn(&Request) -> Answer + Send + Sync>;

pub(crate) struct Server {
    pub addr: SocketAddr,
    pub sockets: mpsc::UnboundedReceiver<ServerSocket>,
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next accepted upgrade, within 10 s.
    pub async fn accept(&mut self) -> ServerSocket {
        tokio::time::timeout(Duration::from_secs(10), self.sockets.recv())
            .await
            .expect("no upgrade within 10 s")
            .expect("server gone")
    }

    pub fn requests(&self, method: &str, path_prefix: &str) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(path_prefix))
            .cloned()
            .collect()
    }
}

pub(crate) async fn start(handler: Handler) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, sockets) = mpsc::unbounded_channel();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            let tx = tx.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let _ = serve(stream, handler, tx, log).await;
            });
        }
    });
    Server { addr, sockets, requests }
}

async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Request> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(n)) = req.parse(buf) {
            let request_headers: Vec<(String, String)> = req
                .headers
                .iter()
                .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).to_string()))
                .collect();
            let method = req.method.unwrap_or("").to_string();
            let path = req.path.unwrap_or("").to_string();
            let length = request_headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse::<usize>().ok())
                .unwrap_or(0);
            buf.drain(..n);
            while buf.len() < length {
                if stream.read_buf(buf).await.ok()? == 0 {
                    return None;
                }
            }
            // The body (a token exchange's, empty or `{}`) is read past; no test looks at it.
            buf.drain(..length);
            return Some(Request {
                method,
                path,
                headers: request_headers,
            });
        }
        if stream.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
}

async fn serve(
    mut stream: TcpStream,
    handler: Handler,
    tx: mpsc::UnboundedSender<ServerSocket>,
    log: Arc<Mutex<Vec<Request>>>,
) -> Option<()> {
    let mut buf = Vec::new();
    loop {
        let request = read_request(&mut stream, &mut buf).await?;
        log.lock().unwrap().push(request.clone());
        let answer = handler(&request);
        match answer {
            None if request.is_upgrade() => {
                let key = request.header("sec-websocket-key").unwrap_or("").to_string();
                let head = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                    crate::ws::accept_key(&key)
                );
                stream.write_all(head.as_bytes()).await.ok()?;
                let _ = tx.send(ServerSocket { stream, buf, request });
                return Some(());
            }
            answer => {
                let (status, headers, body) = answer.unwrap_or((404, vec![], "{}".into()));
                let mut head = format!(
                    "HTTP/1.1 {} X\r\ncontent-length: {}\r\ncontent-type: application/json\r\n",
                    status,
                    body.len()
                );
                for (k, v) in headers {
                    let _ = write!(head, "{}: {}\r\n", k, v);
                }
                head.push_str("\r\n");
                stream.write_all(head.as_bytes()).await.ok()?;
                stream.write_all(body.as_bytes()).await.ok()?;
            }
        }
    }
}

/// A frame as the client sent it.
#[derive(Debug)]
pub(crate) struct ClientFrame {
    pub fin: bool,
    pub opcode: u8,
    pub masked: bool,
    pub mask: Option<[u8; 4]>,
    pub payload: Vec<u8>,
}

/// The server's end of one accepted WebSocket.
pub(crate) struct ServerSocket {
    stream: TcpStream,
    buf: Vec<u8>,
    pub request: Request,
}

impl ServerSocket {
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// An unmasked frame, as a server sends it.
    pub async fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let mut f = vec![(if fin { 0x80 } else { 0 }) | opcode];
        match payload.len() {
            n if n < 126 => f.push(n as u8),
            n if n <= 0xffff => {
                f.push(126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(payload);
        self.send_raw(&f).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.send_frame(true, 0x1, text.as_bytes()).await;
    }

    pub async fn send_close(&mut self, code: u16, reason: &str) {
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice(reason.as_bytes());
        self.send_frame(true, 0x8, &p).await;
    }

    /// The client's next frame within 10 s, unmasked; `None` when the connection ended.
    pub async fn read_frame(&mut self) -> Option<ClientFrame> {
        tokio::time::timeout(Duration::from_secs(10), self.read_frame_inner())
            .await
            .expect("no frame from the client within 10 s")
    }

    async fn read_frame_inner(&mut self) -> Option<ClientFrame> {
        loop {
            if let Some(frame) = self.parse() {
                return Some(frame);
            }
            if self.stream.read_buf(&mut self.buf).await.ok()? == 0 {
                return None;
            }
        }
    }

    fn parse(&mut self) -> Option<ClientFrame> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        let masked = b[1] & 0x80 != 0;
        let (len, mut at) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => {
                let mut x = [0u8; 8];
                x.copy_from_slice(&b[2..10]);
                (u64::from_be_bytes(x) as usize, 10)
            }
            126 | 127 => return None,
            n => (n as usize, 2),
        };
        let mask = if masked {
            if b.len() < at + 4 {
                return None;
            }
            let m = [b[at], b[at + 1], b[at + 2], b[at + 3]];
            at += 4;
            Some(m)
        } else {
            None
        };
        if b.len() < at + len {
            return None;
        }
        let mut payload = b[at..at + len].to_vec();
        if let Some(m) = mask {
            for (i, x) in payload.iter_mut().enumerate() {
                *x ^= m[i % 4];
            }
        }
        let frame = ClientFrame {
            fin: b[0] & 0x80 != 0,
            opcode: b[0] & 0x0f,
            masked,
            mask,
            payload,
        };
        self.buf.drain(..at + len);
        Some(frame)
    }

    /// Reads frames until the client's close frame; its code.
    pub async fn expect_close(&mut self) -> Option<u16> {
        while let Some(f) = self.read_frame().await {
            if f.opcode == 0x8 {
                return if f.payload.len() >= 2 {
                    Some(u16::from_be_bytes([f.payload[0], f.payload[1]]))
                } else {
                    Some(1005)
                };
            }
        }
        None
    }

    /// Ends the TCP connection without a close frame.
    pub async fn drop_connection(mut self) {
        let _ = self.stream.shutdown().await;
    }
}
