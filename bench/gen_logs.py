#!/usr/bin/env python3
"""Seeded synthetic CloudTrail logs for `make bench` (backfill throughput).

    gen_logs.py OUT_DIR --files N [--records-per-file R] [--seed S] [--copies K]

Writes OUT_DIR/AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<stamp>_<id>.json.gz,
gzip level 6, as CloudTrail delivers them. The mix follows a busy account:
mostly S3 data events, STS, KMS Decrypt/GenerateDataKey, EC2/Lambda/DynamoDB
describes and writes; about 1 % KMS grant events (CreateGrant, RetireGrant,
RevokeGrant, some failed). Records are 1-3 KB like real ones (user agents,
request parameters, resources, TLS details). `--copies K` repeats the same
files K times under other account ids (10x input for the RSS check).
"""
import argparse
import gzip
import json
import os
import random
import uuid

SERVICES = [
    # (weight, eventSource, [eventNames], readOnly)
    (30, "s3.amazonaws.com", ["GetObject", "PutObject", "HeadObject", "ListObjects"], None),
    (14, "kms.amazonaws.com", ["Decrypt", "GenerateDataKey", "Encrypt", "DescribeKey", "ListGrants"], None),
    (12, "sts.amazonaws.com", ["AssumeRole", "GetCallerIdentity", "AssumeRoleWithWebIdentity"], None),
    (10, "ec2.amazonaws.com", ["DescribeInstances", "DescribeVolumes", "CreateTags", "DescribeSecurityGroups"], None),
    (8, "lambda.amazonaws.com", ["Invoke", "GetFunction", "ListFunctions20150331"], None),
    (8, "dynamodb.amazonaws.com", ["GetItem", "PutItem", "Query", "DescribeTable"], None),
    (6, "logs.amazonaws.com", ["CreateLogStream", "PutLogEvents", "DescribeLogGroups"], None),
    (5, "iam.amazonaws.com", ["GetRole", "ListRoles", "PutRolePolicy", "ListAttachedRolePolicies"], None),
    (4, "secretsmanager.amazonaws.com", ["GetSecretValue", "DescribeSecret"], None),
    (3, "sqs.amazonaws.com", ["SendMessage", "ReceiveMessage", "DeleteMessage"], None),
]
AGENTS = [
    "aws-sdk-java/2.20.162 Linux/5.10.199-190.747.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/17.0.9+8-LTS Java/17.0.9 vendor/Amazon.com_Inc. exec-env/AWS_ECS_FARGATE io/sync http/Apache cfg/retry-mode/standard",
    "Boto3/1.34.11 md/Botocore#1.34.11 ua/2.0 os/linux#5.10.205-195.807.amzn2.x86_64 md/arch#x86_64 lang/python#3.11.6 md/pyimpl#CPython exec-env/AWS_Lambda_python3.11 cfg/retry-mode#legacy Botocore/1.34.11",
    "aws-cli/2.15.10 Python/3.11.6 Darwin/23.2.0 exe/x86_64 prompt/off command/s3.cp",
    "AWS Internal",
    "ec2.amazonaws.com",
    "aws-sdk-go-v2/1.24.0 os/linux lang/go#1.21.5 md/GOOS#linux md/GOARCH#amd64 api/dynamodb#1.26.7",
]
ROLES = ["app-prod", "etl-nightly", "Admin", "ReadOnly", "ci-deploy", "lambda-exec-orders", "ecs-task-billing"]
REGIONS = ["us-east-1", "eu-west-1"]


def identity(rng, account):
    role = rng.choice(ROLES)
    session = f"{rng.choice(['i-', 'botocore-session-', 'alice@example.com', 'deploy-'])}{rng.randrange(10**9, 10**10)}"
    return {
        "type": "AssumedRole",
        "principalId": f"AROA{rng.randrange(10**15, 10**16)}:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
        "accountId": account,
        "accessKeyId": f"ASIA{rng.randrange(10**15, 10**16)}",
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": f"AROA{rng.randrange(10**15, 10**16)}",
                "arn": f"arn:aws:iam::{account}:role/{role}",
                "accountId": account,
                "userName": role,
            },
            "webIdFederationData": {},
            "attributes": {"creationDate": "2026-01-01T08:00:00Z", "mfaAuthenticated": "false"},
        },
    }


def key_arn(rng, account, region):
    return f"arn:aws:kms:{region}:{account}:key/{uuid.UUID(int=rng.getrandbits(128))}"


def base(rng, account, region, when, source, name):
    return {
        "eventVersion": "1.09",
        "userIdentity": identity(rng, account),
        "eventTime": when,
        "eventSource": source,
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
        "userAgent": rng.choice(AGENTS),
        "requestID": str(uuid.UUID(int=rng.getrandbits(128))),
        # The last 4 hex digits are the copy number (--copies): unique ids.
        "eventID": str(uuid.UUID(int=rng.getrandbits(128)))[:-4] + "{copy}",
        "readOnly": name.startswith(("Get", "Describe", "List", "Head")),
        "eventType": "AwsApiCall",
        "managementEvent": source not in ("s3.amazonaws.com", "lambda.amazonaws.com"),
        "recipientAccountId": account,
        "eventCategory": "Management",
        "tlsDetails": {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": f"{source.split('.')[0]}.{region}.amazonaws.com",
        },
    }


def ordinary(rng, account, region, when):
    weights = [s[0] for s in SERVICES]
    _, source, names, _ = rng.choices(SERVICES, weights)[0]
    name = rng.choice(names)
    record = base(rng, account, region, when, source, name)
    if source == "s3.amazonaws.com":
        bucket = f"{account}-data-{rng.randrange(20)}"
        key = "/".join(f"p{rng.randrange(1000)}" for _ in range(rng.randrange(2, 6))) + ".parquet"
        record["requestParameters"] = {"bucketName": bucket, "Host": f"{bucket}.s3.{region}.amazonaws.com", "key": key}
        record["responseElements"] = None
        record["additionalEventData"] = {"SignatureVersion": "SigV4", "CipherSuite": "TLS_AES_128_GCM_SHA256",
                                         "bytesTransferredIn": 0, "AuthenticationMethod": "AuthHeader",
                                         "x-amz-id-2": "".join(rng.choice("abcdefABCDEF0123456789+/") for _ in range(76)),
                                         "bytesTransferredOut": rng.randrange(10**7)}
        record["resources"] = [{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
                               {"accountId": account, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}]
    elif source == "kms.amazonaws.com":
        arn = key_arn(rng, account, region)
        record["requestParameters"] = {"keyId": arn, "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
                                       "encryptionContext": {"aws:lambda:FunctionArn": f"arn:aws:lambda:{region}:{account}:function:orders-{rng.randrange(50)}"}}
        record["responseElements"] = None
        record["resources"] = [{"accountId": account, "type": "AWS::KMS::Key", "ARN": arn}]
    elif source == "iam.amazonaws.com" and name == "PutRolePolicy":
        doc = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"}]})
        record["requestParameters"] = {"roleName": rng.choice(ROLES), "policyName": "inline", "policyDocument": doc}
        record["responseElements"] = None
    else:
        record["requestParameters"] = {"maxResults": rng.randrange(1, 1000),
                                       "filterSet": {"items": [{"name": "tag:team", "valueSet": {"items": [{"value": rng.choice(ROLES)}]}}]}}
        record["responseElements"] = None
    return record


def grant(rng, account, region, when, created):
    kind = rng.choices(["CreateGrant", "RetireGrant", "RevokeGrant"], [6, 3, 1])[0]
    if kind != "CreateGrant" and not created:
        kind = "CreateGrant"
    record = base(rng, account, region, when, "kms.amazonaws.com", kind)
    if kind == "CreateGrant":
        arn = key_arn(rng, account, region)
        grant_id = "".join(rng.choice("0123456789abcdef") for _ in range(64))
        service = rng.random() < 0.7
        record["requestParameters"] = {
            "keyId": arn,
            "granteePrincipal": f"arn:aws:iam::{account}:role/{rng.choice(ROLES)}" if not service else f"{rng.choice(['ebs', 'rds', 'lambda'])}.{region}.amazonaws.com",
            "retiringPrincipal": f"arn:aws:iam::{account}:role/{rng.choice(ROLES)}",
            "operations": rng.sample(["Decrypt", "Encrypt", "GenerateDataKey", "ReEncryptFrom", "ReEncryptTo", "CreateGrant", "RetireGrant", "DescribeKey"], 3),
            "constraints": {"encryptionContextSubset": {"aws:ebs:id": f"vol-{rng.randrange(16**17):017x}"}} if service else None,
        }
        if record["requestParameters"]["constraints"] is None:
            del record["requestParameters"]["constraints"]
        record["responseElements"] = {"grantId": grant_id, "keyId": arn}
        record["resources"] = [{"accountId": account, "type": "AWS::KMS::Key", "ARN": arn}]
        if rng.random() < 0.05:
            record["errorCode"] = "AccessDenied"
            record["errorMessage"] = "User is not authorized to perform: kms:CreateGrant"
            record["responseElements"] = None
        else:
            created.append((arn, grant_id))
    else:
        arn, grant_id = created.pop(rng.randrange(len(created)))
        record["requestParameters"] = {"keyId": arn, "grantId": grant_id}
        record["responseElements"] = None
        record["resources"] = [{"accountId": account, "type": "AWS::KMS::Key", "ARN": arn}]
    return record


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--records-per-file", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--grant-share", type=float, default=0.01)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    bodies = []
    created = []
    for i in range(args.files):
        region = REGIONS[i % len(REGIONS)]
        day = 1 + (i * 28) // args.files
        stamp = f"2026-01-{day:02d}T{(i % 24):02d}:{(i * 7) % 60:02d}"
        records = []
        for j in range(args.records_per_file):
            when = f"{stamp}:{j % 60:02d}Z"
            if rng.random() < args.grant_share:
                records.append(grant(rng, "{account}", region, when, created))
            else:
                records.append(ordinary(rng, "{account}", region, when))
        bodies.append((region, day, stamp, json.dumps({"Records": records}, separators=(",", ":"))))
    total = 0
    for copy in range(args.copies):
        account = f"{111122223333 + copy:012d}"
        for i, (region, day, stamp, body) in enumerate(bodies):
            folder = os.path.join(args.out, "AWSLogs", account, "CloudTrail", region, "2026", "01", f"{day:02d}")
            os.makedirs(folder, exist_ok=True)
            name = f"{account}_CloudTrail_{region}_{stamp.replace('-', '').replace(':', '')}Z_{i:05d}.json.gz"
            text = body.replace("{account}", account).replace("{copy}", f"{copy:04x}")
            data = gzip.compress(text.encode(), compresslevel=6)
            with open(os.path.join(folder, name), "wb") as f:
                f.write(data)
            total += len(data)
    print(f"gen_logs: {args.files * args.copies} files, {total / 1e6:.1f} MB compressed, seed {args.seed}")


if __name__ == "__main__":
    main()
