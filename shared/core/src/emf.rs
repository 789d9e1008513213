//! CloudWatch Embedded Metric Format (EMF): one JSON object per stdout
//! line, which CloudWatch turns into metrics. Both Lambdas build their
//! lines here, so namespace and dimensions are written once.

use serde_json::Value;

/// The EMF namespace of every grantwatch metric.
pub const METRICS_NAMESPACE: &str = "grantwatch";

/// One EMF object: dimension `FunctionName` plus `dimensions`, and
/// `values` as (name, value, unit).
pub fn line(
    function_name: &str,
    now_ms: i64,
    dimensions: &[(&str, &str)],
    values: &[(&str, u64, &str)],
) -> Value {
    let definitions: Vec<Value> = values
        .iter()
        .map(|(name, _, unit)| serde_json::json!({ "Name": name, "Unit": unit }))
        .collect();
    let mut dimension_names = vec!["FunctionName"];
    dimension_names.extend(dimensions.iter().map(|(name, _)| *name));
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": METRICS_NAMESPACE,
                "Dimensions": [dimension_names],
                "Metrics": definitions,
            }],
        },
        "FunctionName": function_name,
    });
    if let Some(object) = line.as_object_mut() {
        for (name, value) in dimensions {
            object.insert(name.to_string(), (*value).into());
        }
        for (name, value, _) in values {
            object.insert(name.to_string(), (*value).into());
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_declared_and_every_declared_metric_has_a_value() {
        let l = line(
            "grant-report",
            5,
            &[("Channel", "sns")],
            &[("Keys", 3, "Count"), ("DurationMs", 40, "Milliseconds")],
        );
        let directive = &l["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "grantwatch");
        assert_eq!(
            directive["Dimensions"],
            serde_json::json!([["FunctionName", "Channel"]])
        );
        assert_eq!(l["_aws"]["Timestamp"], 5);
        assert_eq!(l["FunctionName"], "grant-report");
        assert_eq!(l["Channel"], "sns");
        assert_eq!(l["Keys"], 3);
        assert_eq!(l["DurationMs"], 40);
        assert_eq!(
            directive["Metrics"],
            serde_json::json!([
                {"Name": "Keys", "Unit": "Count"},
                {"Name": "DurationMs", "Unit": "Milliseconds"}
            ])
        );
    }
}
