//! Secrets at TRACE: a full grant-watcher run (alerts, a storm digest, a
//! failed delivery and its retry) with every log turned up
//! (`AWS_LAMBDA_LOG_LEVEL=TRACE`, `RUST_LOG=trace`) and sentinel values for
//! the AWS secret key, the session token and the webhook's path token.
//! Nothing the function writes (stdout, stderr, EMF) or answers (responses,
//! error payloads), nor any message it sends, may carry a sentinel, raw or
//! URL-encoded.

use grantwatch_e2e::slack_stub::Reply;
use grantwatch_e2e::watcher_world::*;

/// Sentinels with characters that change under URL encoding.
const SECRET_KEY: &str = "SENTINEL/secret+access=key0123456789";
const SESSION_TOKEN: &str = "SENTINEL-session/token+value==";

fn url_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every form of every sentinel to look for.
fn sentinels() -> Vec<String> {
    let mut all = Vec::new();
    for secret in [SECRET_KEY, SESSION_TOKEN, WEBHOOK_TOKEN] {
        all.push(secret.to_string());
        all.push(url_encoded(secret));
        all.push(url_encoded(secret).to_lowercase());
        all.push(url_encoded(&url_encoded(secret)));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_any_output_at_trace_level() {
    let world = World::new(&[("StormThreshold", "2"), ("StormWindowSeconds", "2")]).await;
    let mut config = world
        .config
        .clone()
        .env("AWS_LAMBDA_LOG_LEVEL", "TRACE")
        .env("RUST_LOG", "trace")
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_SESSION_TOKEN", SESSION_TOKEN);
    config.timeout = std::time::Duration::from_secs(30);
    let function = grantwatch_e2e::runtime_api::Function::start(&function_binary_path(), config)
        .await
        .expect("start grant-watcher");

    let mut answers: Vec<String> = Vec::new();
    // A failure: Slack is down for the first alert (5xx until the retry).
    world.slack.set_fallback(Reply::ServerError);
    let failed = function.invoke(manual_grant(1)).await.unwrap_err();
    assert_eq!(failed.error_type, "DeliveryFailed", "{failed}");
    answers.push(failed.to_string());
    // Its retry, Slack back.
    world.slack.set_fallback(Reply::Ok);
    let retried = function.invoke(manual_grant(1)).await.unwrap();
    answers.push(retried.to_string());
    // A storm: more alerts than the threshold in one window, a digest.
    for n in 2..=6 {
        let outcome = function.invoke(manual_grant(n)).await.unwrap();
        answers.push(outcome.to_string());
    }
    // A revoked webhook (404): the secret is read again, then rejected.
    world.slack.set_fallback(Reply::NotFound);
    let rejected = function.invoke(manual_grant(7)).await;
    answers.push(format!("{rejected:?}"));

    // The last invocation's log line is in (output is read in the background).
    assert!(function.wait_for_stdout("burst-0007").await);
    let messages = world.inbox.receive().await;
    assert!(
        messages
            .iter()
            .any(|m| m.attributes.get("kind").map(String::as_str) == Some("digest")),
        "the run includes a digest: {:?}",
        messages.iter().map(|m| &m.attributes).collect::<Vec<_>>()
    );
    let lines = function.all_output();
    assert!(
        lines.lines().count() > 50,
        "TRACE logging is on ({} lines)",
        lines.lines().count()
    );
    assert!(!function.emf_lines().is_empty());

    let mut haystacks: Vec<(&str, String)> = vec![("stdout and stderr", lines)];
    haystacks.push(("responses and error payloads", answers.join("\n")));
    haystacks.push((
        "SNS messages",
        messages
            .iter()
            .map(|m| m.envelope.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    ));
    haystacks.push((
        "Slack messages",
        world
            .slack
            .requests()
            .iter()
            .map(|r| r.raw_body.clone())
            .collect::<Vec<_>>()
            .join("\n"),
    ));
    for (place, text) in &haystacks {
        for sentinel in sentinels() {
            assert!(!text.contains(&sentinel), "{sentinel:?} found in {place}");
        }
    }
    // The sentinels were really in use: the webhook's path carried the
    // token, and the SDK signed with the key (moto accepted the calls).
    assert!(world
        .slack
        .requests()
        .iter()
        .all(|r| r.path.contains(WEBHOOK_TOKEN)));
    assert!(!messages.is_empty());
}

fn function_binary_path() -> std::path::PathBuf {
    grantwatch_e2e::runtime_api::function_binary("grant-watcher")
}
