//! Reading back what moto's Security Hub holds (GetFindings): the watcher's
//! and the report's imports are checked against it.

use serde_json::{json, Value};

/// moto's findings in `region`. moto reads the service and region from
/// the Authorization header's scope and checks no signature.
pub async fn findings(moto_endpoint: &str, region: &str) -> Vec<Value> {
    let answer: Value = reqwest::Client::new()
        .post(format!("{moto_endpoint}/findings"))
        .header(
            "Authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential=testing/20261130/{region}/securityhub/aws4_request, SignedHeaders=host, Signature=0"
            ),
        )
        .json(&json!({"MaxResults": 100}))
        .send()
        .await
        .expect("GetFindings")
        .json()
        .await
        .expect("GetFindings answer");
    answer["Findings"].as_array().cloned().unwrap_or_default()
}
