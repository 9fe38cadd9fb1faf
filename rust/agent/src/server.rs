//! The agent's HTTP shell: a hyper server around one client. It reads bodies
//! (bounded while streaming), looks the route up and writes the reply; the
//! routes themselves are in `routes.rs`.
use std::convert::Infallible;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use hyper::body::HttpBody;
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use hyper::{Body, Method, Request, Response, StatusCode};

use crate::routes::{error_reply, AgentClient, ErrorCode, Reply, Route, ROUTES};

/// A request body may be this long, bytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

/// What every connection shares.
pub struct Agent {
    pub client: Arc<dyn AgentClient>,
    pub max_body_bytes: usize,
}

enum BodyRead {
    Read(Vec<u8>),
    TooLarge,
    /// The caller hung up mid-body: nobody to answer.
    Aborted,
}

impl Agent {
    /// Answers one request. Never fails: every outcome is a reply.
    pub async fn handle(self: Arc<Self>, req: Request<Body>) -> Result<Response<Body>, Infallible> {
        let path = req.uri().path().to_string();
        // Answers given without reading the body close the connection, so it is never read to its end.
        let unread = has_body(&req);
        let route = match Route::find(&path) {
            Some(route) => route,
            None => {
                let routes: Vec<&str> = ROUTES.iter().map(|(p, _)| *p).collect();
                let message = format!("no route {} {}; routes: {}", req.method(), path, routes.join(", "));
                return Ok(respond(error_reply(ErrorCode::NotFound, &message), unread));
            }
        };
        let method_ok = if route.takes_get() {
            req.method() == Method::GET || req.method() == Method::HEAD
        } else {
            req.method() == Method::POST
        };
        if !method_ok {
            let allow = if route.takes_get() { "GET, HEAD" } else { "POST" };
            let mut reply = error_reply(
                ErrorCode::MethodNotAllowed,
                &format!("{} takes {}, not {}", path, allow, req.method()),
            );
            reply.allow = Some(allow);
            return Ok(respond(reply, unread));
        }
        if route.takes_get() {
            return Ok(respond(self.run(route, ""), unread));
        }
        match read_body(req, self.max_body_bytes).await {
            BodyRead::Aborted => Ok(respond(error_reply(ErrorCode::InvalidBody, "body: the caller hung up"), true)),
            BodyRead::TooLarge => {
                let message = format!("body: larger than {} bytes", self.max_body_bytes);
                Ok(respond(error_reply(ErrorCode::BodyTooLarge, &message), true))
            }
            BodyRead::Read(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                Ok(respond(self.run(route, &text), false))
            }
        }
    }

    /// A route that panics (the client must never) answers 500 `INTERNAL`;
    /// the panic hook has logged it, and the agent keeps serving.
    fn run(&self, route: Route, raw: &str) -> Reply {
        let client = &*self.client;
        catch_unwind(AssertUnwindSafe(|| route.handle(client, raw)))
            .unwrap_or_else(|_| error_reply(ErrorCode::Internal, "the agent failed to handle this request; see its log"))
    }
}

/// Whether the request announces a body (a Content-Length above 0, or chunked).
fn has_body(req: &Request<Body>) -> bool {
    req.headers().contains_key(TRANSFER_ENCODING) || content_length(req).map_or(false, |n| n > 0)
}

fn content_length(req: &Request<Body>) -> Option<u64> {
    req.headers().get(CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Reads the body, counting bytes as they stream in: past `limit` it stops at
/// once (a declared Content-Length past it is refused before reading anything).
async fn read_body(req: Request<Body>, limit: usize) -> BodyRead {
    let declared = content_length(&req);
    if declared.map_or(false, |n| n > limit as u64) {
        return BodyRead::TooLarge;
    }
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0) as usize);
    let mut body = req.into_body();
    while let Some(chunk) = body.data().await {
        match chunk {
            Ok(chunk) => {
                if bytes.len() + chunk.len() > limit {
                    return BodyRead::TooLarge;
                }
                bytes.extend_from_slice(&chunk);
            }
            Err(_) => return BodyRead::Aborted,
        }
    }
    BodyRead::Read(bytes)
}

/// Writes a reply as JSON. With `unread` (a body not read to its end), the
/// reply says `Connection: close`: hyper then closes the connection after the
/// answer instead of reading the rest, and an oversize upload is cut off.
fn respond(reply: Reply, unread: bool) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if let Some(allow) = reply.allow {
        headers.insert(ALLOW, HeaderValue::from_static(allow));
    }
    if unread {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    if let Some(json) = reply.body {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(json.len()));
        *response.body_mut() = Body::from(json);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::Health;

    struct Panics;

    impl AgentClient for Panics {
        fn gate(&self, _: Option<&str>, _: Option<f64>) -> (bool, &'static str) {
            panic!("gate exploded")
        }
        fn report_latency(&self, _: f64, _: Option<&str>) {}
        fn report_error(&self, _: Option<&str>) {}
        fn report(&self, _: &str, _: f64, _: Option<&str>) {}
        fn health(&self) -> Health {
            Health {
                instance_id: "stub".into(),
                synced: false,
                policy_version: None,
                safe_mode: false,
            }
        }
    }

    async fn call(agent: &Arc<Agent>, method: Method, path: &str, body: &str) -> (u16, String, Option<String>) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::from(body.to_string()))
            .unwrap();
        let res = agent.clone().handle(req).await.unwrap();
        let status = res.status().as_u16();
        let connection = res.headers().get(CONNECTION).map(|v| v.to_str().unwrap().to_string());
        let bytes = hyper::body::to_bytes(res.into_body()).await.unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap(), connection)
    }

    #[tokio::test]
    async fn a_client_that_panics_gives_500_internal_and_the_agent_keeps_serving() {
        let agent = Arc::new(Agent {
            client: Arc::new(Panics),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        });
        let (status, body, _) = call(&agent, Method::POST, "/gate", "{\"tag\":\"a\"}").await;
        assert_eq!(status, 500);
        assert_eq!(
            body,
            r#"{"error":{"code":"INTERNAL","message":"the agent failed to handle this request; see its log"}}"#
        );
        let (status, body, _) = call(&agent, Method::GET, "/health", "").await;
        assert_eq!(status, 200);
        assert_eq!(body, r#"{"status":"ok","instanceId":"stub","synced":false,"safeMode":false}"#);
    }

    #[tokio::test]
    async fn a_smaller_limit_is_enforced_to_the_byte() {
        let agent = Arc::new(Agent {
            client: Arc::new(Panics),
            max_body_bytes: 16,
        });
        let (status, _, _) = call(&agent, Method::POST, "/report-error", "{\"tag\":\"abcdef\"}").await;
        assert_eq!(status, 204);
        let (status, body, connection) = call(&agent, Method::POST, "/report-error", "{\"tag\":\"abcdefg\"}").await;
        assert_eq!(status, 400);
        assert_eq!(
            body,
            r#"{"error":{"code":"BODY_TOO_LARGE","message":"body: larger than 16 bytes"}}"#
        );
        assert_eq!(connection.as_deref(), Some("close"));
    }
}
