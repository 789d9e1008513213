//! A local stand-in for a Slack incoming webhook: records every POST and
//! answers as scripted.
//!
//! ```no_run
//! # async fn demo() {
//! use grantwatch_e2e::slack_stub::{SlackStub, Reply};
//! let slack = SlackStub::start().await;
//! slack.script([Reply::TooManyRequests { retry_after_secs: 1 }, Reply::Ok]);
//! // give `slack.url()` to the function (through Secrets Manager)
//! let posts = slack.requests();     // every request, with the status answered
//! let accepted = slack.accepted();  // the JSON bodies answered 200 `ok`
//! # }
//! ```

use crate::runtime_api::http::{self, Response};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How the stub answers one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// 200 `ok`.
    Ok,
    /// 429 with `Retry-After: <secs>`.
    TooManyRequests { retry_after_secs: u64 },
    /// 500 (Slack having trouble).
    ServerError,
    /// 404 `no_service` (webhook revoked: a configuration error).
    NotFound,
    /// 403 `invalid_token`.
    Forbidden,
    /// Any status and body.
    Status(u16, String),
}

/// One request the stub received.
#[derive(Debug, Clone)]
pub struct SlackRequest {
    pub path: String,
    pub content_type: Option<String>,
    /// The body as JSON (`Value::Null` if it was not JSON).
    pub body: Value,
    pub raw_body: String,
    /// The status the stub answered.
    pub status: u16,
    pub at: Instant,
}

#[derive(Default)]
struct State {
    script: VecDeque<Reply>,
    fallback: Option<Reply>,
    requests: Vec<SlackRequest>,
}

pub struct SlackStub {
    state: Arc<Mutex<State>>,
    server: http::Server,
    path: String,
}

impl SlackStub {
    /// Listen on 127.0.0.1 (a free port). Answers 200 `ok` unless scripted.
    pub async fn start() -> SlackStub {
        let state = Arc::new(Mutex::new(State::default()));
        let handler_state = state.clone();
        let server = http::serve(Arc::new(move |request| {
            let state = handler_state.clone();
            Box::pin(async move {
                let mut state = lock(&state);
                let reply = state
                    .script
                    .pop_front()
                    .or_else(|| state.fallback.clone())
                    .unwrap_or(Reply::Ok);
                let response = if request.method != "POST" {
                    Response::new(405, "invalid_method")
                } else {
                    respond(&reply)
                };
                let raw_body = String::from_utf8_lossy(&request.body).into_owned();
                state.requests.push(SlackRequest {
                    path: request.path.clone(),
                    content_type: request.header("content-type").map(str::to_string),
                    body: serde_json::from_str(&raw_body).unwrap_or(Value::Null),
                    raw_body,
                    status: response.status,
                    at: Instant::now(),
                });
                response
            })
        }))
        .await
        .expect("bind the Slack stub");
        SlackStub {
            state,
            server,
            path: "/services/T0000TEST/B0000TEST/secretwebhooktoken".to_string(),
        }
    }

    /// The webhook URL (it has a secret-looking path, so tests can check
    /// it never reaches a log).
    pub fn url(&self) -> String {
        format!("http://{}{}", self.server.addr, self.path)
    }

    /// Answer the next requests with these replies, in order (appended to
    /// what is already scripted).
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.state).script.extend(replies);
    }

    /// What to answer when the script is empty (default: `Reply::Ok`).
    pub fn set_fallback(&self, reply: Reply) {
        lock(&self.state).fallback = Some(reply);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<SlackRequest> {
        lock(&self.state).requests.clone()
    }

    /// Bodies of the requests answered 200: the messages Slack "posted".
    pub fn accepted(&self) -> Vec<Value> {
        lock(&self.state)
            .requests
            .iter()
            .filter(|r| r.status == 200)
            .map(|r| r.body.clone())
            .collect()
    }

    /// Forget recorded requests and the script.
    pub fn clear(&self) {
        let mut state = lock(&self.state);
        state.requests.clear();
        state.script.clear();
        state.fallback = None;
    }
}

fn respond(reply: &Reply) -> Response {
    match reply {
        Reply::Ok => Response::new(200, "ok").with_header("Content-Type", "text/plain"),
        Reply::TooManyRequests { retry_after_secs } => Response::new(429, "rate_limited")
            .with_header("Retry-After", &retry_after_secs.to_string()),
        Reply::ServerError => Response::new(500, "internal_error"),
        Reply::NotFound => Response::new(404, "no_service"),
        Reply::Forbidden => Response::new(403, "invalid_token"),
        Reply::Status(status, body) => Response::new(*status, body.clone()),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
