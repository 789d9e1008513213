#!/usr/bin/env python3
"""Cold start baseline (make bench): a Python/boto3 grant watcher doing the
Rust watcher's work for one grant event, with the same AWS calls.

Per event: parse the EventBridge CloudTrail event, claim its event id in the
ledger (one DynamoDB UpdateItem, the same expression as the Rust ledger),
judge it (a grant made by an AWS service for itself is not alerted), and
record the grant (a second UpdateItem with the same attributes). A grant
that would alert is answered with an error: the bench sends a service grant
only, and this baseline has no channels.

It runs under its own minimal Lambda runtime loop (the Runtime API at
AWS_LAMBDA_RUNTIME_API, as Lambda's Python runtime uses it), so the bench
harness (tests/examples/coldstart.rs) starts it exactly as it starts the Rust
binary. The client is built at import, as a Python Lambda would.
"""

import json
import os
import time
import urllib.request

import boto3

TABLE = os.environ["LEDGER_TABLE"]
RETENTION_DAYS = int(os.environ.get("LEDGER_RETENTION_DAYS", "400"))
DYNAMODB = boto3.client("dynamodb")
GRANT_EVENTS = {"CreateGrant", "RetireGrant", "RevokeGrant"}


def claim_event(event_id, now):
    """The Rust ledger's claim_event: first sight of this event id or not."""
    old = DYNAMODB.update_item(
        TableName=TABLE,
        Key={"pk": {"S": f"EVENT#{event_id}"}, "sk": {"S": "EVENT"}},
        UpdateExpression=(
            "SET kind = :kind, event_id = :id, first_seen = if_not_exists(first_seen, :now), "
            "last_seen = :now, expires_at = if_not_exists(expires_at, :expires) ADD times_seen :one"
        ),
        ExpressionAttributeValues={
            ":kind": {"S": "event"},
            ":id": {"S": event_id},
            ":now": {"N": str(now)},
            ":expires": {"N": str(now + RETENTION_DAYS * 86400)},
            ":one": {"N": "1"},
        },
        ReturnValues="ALL_OLD",
    ).get("Attributes", {})
    return "first_seen" not in old


def judge(detail):
    """Service grants (made by an AWS service on a caller's behalf) are info."""
    identity = detail.get("userIdentity") or {}
    invoked_by = identity.get("invokedBy") or ""
    service = invoked_by if invoked_by.endswith(".amazonaws.com") else None
    return {"severity": "info" if service else "high", "alert": service is None, "service": service}


def record_grant(detail, verdict):
    """The Rust ledger's record_grant: readable facts plus the exact record."""
    params = detail.get("requestParameters") or {}
    response = detail.get("responseElements") or {}
    identity = detail.get("userIdentity") or {}
    key_arn = params.get("keyId") or response.get("keyId")
    grant_id = response["grantId"]
    record = {
        "key_arn": key_arn,
        "grant_id": grant_id,
        "created_event_id": detail["eventID"],
        "origin": "event",
        "account": detail.get("recipientAccountId") or identity.get("accountId"),
        "region": detail.get("awsRegion"),
        "created_at": detail.get("eventTime"),
        "created_by": {"arn": identity.get("arn")},
        "service": verdict["service"],
        "grant": params,
    }
    sets = [
        ("kind", {"S": "grant"}),
        ("key_arn", {"S": key_arn}),
        ("grant_id", {"S": grant_id}),
        ("created_event_id", {"S": detail["eventID"]}),
        ("origin", {"S": "event"}),
        ("creation", {"S": json.dumps(record)}),
    ]
    optional = [
        ("account", record["account"]),
        ("region", record["region"]),
        ("created_at", record["created_at"]),
        ("created_by", identity.get("arn")),
        ("service", verdict["service"]),
        ("grantee", params.get("granteePrincipal")),
        ("retiring_principal", params.get("retiringPrincipal")),
        ("grant_name", params.get("name")),
    ]
    sets.extend((name, {"S": value}) for name, value in optional if value)
    sets.append(("operations", {"L": [{"S": op} for op in params.get("operations", [])]}))
    DYNAMODB.update_item(
        TableName=TABLE,
        Key={"pk": {"S": f"GRANT#{key_arn}"}, "sk": {"S": grant_id}},
        UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(sets))),
        ExpressionAttributeNames={f"#a{i}": name for i, (name, _) in enumerate(sets)},
        ExpressionAttributeValues={f":v{i}": value for i, (_, value) in enumerate(sets)},
    )


def handler(event):
    detail = event["detail"]
    if detail.get("eventSource") != "kms.amazonaws.com" or detail.get("eventName") not in GRANT_EVENTS:
        raise ValueError("not a KMS grant event")
    first_seen = claim_event(detail["eventID"], int(time.time()))
    verdict = judge(detail)
    if detail["eventName"] == "CreateGrant":
        record_grant(detail, verdict)
    if verdict["alert"]:
        raise RuntimeError("this baseline has no channels: send it service grants only")
    return {
        "event_id": detail["eventID"],
        "event_name": detail["eventName"],
        "severity": verdict["severity"],
        "alert": False,
        "first_seen": first_seen,
    }


def main():
    api = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2018-06-01/runtime/invocation"
    while True:
        with urllib.request.urlopen(f"{api}/next") as next_invocation:
            request_id = next_invocation.headers["Lambda-Runtime-Aws-Request-Id"]
            event = json.load(next_invocation)
        try:
            path, body = "response", handler(event)
        except Exception as error:  # reported to the Runtime API, as Lambda does
            path, body = "error", {"errorType": type(error).__name__, "errorMessage": str(error)}
        post = urllib.request.Request(
            f"{api}/{request_id}/{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(post).close()


if __name__ == "__main__":
    main()
