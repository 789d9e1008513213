#!/usr/bin/env python3
"""Deploy a SAM template into moto_server, the way CloudFormation would.

Offline: parse the template (short-form intrinsics included), resolve its
Conditions and Fn::If with the parameter values, transform it with
samtranslator, point the functions' code at a placeholder zip in a moto S3
bucket, send KMS key policies as JSON strings, then CreateStack into the
moto server at --endpoint and wait for it.

Why resolve conditions here: moto's CreateStack answers HTTP 500 when an
Fn::If yields AWS::NoValue inside a list (a conditional policy statement),
and stores a KMS key whose KeyPolicy is an object so that every later call
on that key fails. See shared/docs/design-notes.md, "Local emulation".

Prints one JSON object on stdout:
  {"stack_name", "stack_id", "region", "outputs": {name: value},
   "resources": {logical id: {"type", "physical_id"}},
   "functions": {logical id: {"function_name", "function_arn", "role",
                 "runtime", "handler", "architectures", "memory_size",
                 "timeout", "environment": {name: value}}},
   "rules": {logical id: {"name", "arn", "event_bus_name", "state",
             "event_pattern", "targets"}},
   "template": <the template sent to moto>}
Diagnostics go to stderr; the exit status is non-zero on any failure.

Usage: deploy_stack.py --endpoint http://127.0.0.1:PORT --template infra/template.yaml
                       [--stack-name NAME] [--region R] [--parameter Key=Value ...]
"""

import argparse
import io
import json
import os
import sys
import time
import zipfile

import yaml

NO_VALUE = object()  # AWS::NoValue once resolved: dropped from its container
PLACEHOLDER_BUCKET = "grantwatch-deploy-artifacts"
PLACEHOLDER_KEY = "placeholder.zip"


class TemplateError(Exception):
    """The template uses something this deployer cannot resolve offline."""


# ------------------------------------------------------------------ parsing
class _CfnLoader(yaml.SafeLoader):
    """YAML loader that understands CloudFormation's short-form intrinsics."""


def _construct_intrinsic(loader, tag_suffix, node):
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            logical_id, _, attribute = value.partition(".")
            value = [logical_id, attribute]
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Condition":
        return {"Condition": value}
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path):
    with open(path, encoding="utf-8") as handle:
        template = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 (SafeLoader subclass)
    if not isinstance(template, dict) or "Resources" not in template:
        raise TemplateError(f"{path}: not a CloudFormation template (no Resources)")
    return template


# ------------------------------------------------------ parameters, conditions
def parameter_values(template, overrides):
    """Every declared parameter's value: the override, else the default."""
    declared = template.get("Parameters", {})
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise TemplateError(f"unknown parameter(s): {', '.join(unknown)}")
    values = {}
    for name, spec in declared.items():
        if name in overrides:
            raw = overrides[name]
        elif "Default" in spec:
            raw = str(spec["Default"])
        else:
            raise TemplateError(f"parameter {name} has no default and no value was given")
        allowed = spec.get("AllowedValues")
        if allowed is not None and raw not in [str(v) for v in allowed]:
            raise TemplateError(f"parameter {name}={raw!r} is not one of {allowed}")
        if spec.get("Type") == "CommaDelimitedList":
            values[name] = [] if raw == "" else [part.strip() for part in raw.split(",")]
        else:
            values[name] = raw
    return values


def _evaluate(node, params, conditions):
    """Value of an expression inside Conditions (the intrinsics CFN allows there)."""
    if isinstance(node, dict) and len(node) == 1:
        (key, arg), = node.items()
        if key == "Ref":
            if arg in params:
                return params[arg]
            raise TemplateError(f"condition refers to {arg}, which is not a parameter")
        if key == "Condition":
            return conditions(arg)
        if key == "Fn::Equals":
            left, right = (_evaluate(x, params, conditions) for x in arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not _evaluate(arg[0], params, conditions)
        if key == "Fn::And":
            return all(_evaluate(x, params, conditions) for x in arg)
        if key == "Fn::Or":
            return any(_evaluate(x, params, conditions) for x in arg)
        if key == "Fn::Join":
            separator, items = arg
            items = _evaluate(items, params, conditions)
            return separator.join(str(_evaluate(x, params, conditions)) for x in items)
        if key == "Fn::Select":
            index, items = arg
            return _evaluate(items, params, conditions)[int(index)]
        raise TemplateError(f"cannot evaluate {key} in a condition")
    if isinstance(node, list):
        return [_evaluate(x, params, conditions) for x in node]
    return node


def evaluate_conditions(template, params):
    declared = template.get("Conditions", {})
    results = {}

    def condition(name):
        if name not in declared:
            raise TemplateError(f"unknown condition {name}")
        if name not in results:
            results[name] = bool(_evaluate(declared[name], params, condition))
        return results[name]

    for name in declared:
        condition(name)
    return results


def _resolve(node, conditions):
    """Fn::If picked, AWS::NoValue dropped from maps and lists."""
    if isinstance(node, dict):
        if len(node) == 1 and "Fn::If" in node:
            name, when_true, when_false = node["Fn::If"]
            if name not in conditions:
                raise TemplateError(f"Fn::If on unknown condition {name}")
            return _resolve(when_true if conditions[name] else when_false, conditions)
        if node == {"Ref": "AWS::NoValue"}:
            return NO_VALUE
        resolved = {}
        for key, value in node.items():
            value = _resolve(value, conditions)
            if value is not NO_VALUE:
                resolved[key] = value
        return resolved
    if isinstance(node, list):
        return [v for v in (_resolve(x, conditions) for x in node) if v is not NO_VALUE]
    return node


MOTO_ACCOUNT_ID = "123456789012"  # moto's default account


def pseudo_parameters(region, stack_name):
    return {
        "AWS::Region": region,
        "AWS::AccountId": MOTO_ACCOUNT_ID,
        "AWS::Partition": "aws",
        "AWS::StackName": stack_name,
        "AWS::URLSuffix": "amazonaws.com",
    }


def resolve_conditions(template, params, pseudo):
    """The template as CloudFormation would see it with these parameter values:
    no Conditions, no Fn::If, no resource or output whose condition is false."""
    conditions = evaluate_conditions(template, {**pseudo, **params})
    original_resources = list(template["Resources"])
    template = dict(template)
    template.pop("Conditions", None)
    for section in ("Resources", "Outputs"):
        kept = {}
        for logical_id, body in template.get(section, {}).items():
            name = body.get("Condition")
            if name is not None and not conditions[name]:
                continue
            body = {k: v for k, v in body.items() if k != "Condition"}
            kept[logical_id] = _resolve(body, conditions)
        template[section] = kept
    dropped = set(original_resources) - set(template["Resources"])
    for body in template["Resources"].values():
        depends = body.get("DependsOn")
        if isinstance(depends, str):
            depends = [depends]
        if depends is not None:
            kept_depends = [d for d in depends if d not in dropped]
            if kept_depends:
                body["DependsOn"] = kept_depends
            else:
                body.pop("DependsOn")
    if "Globals" in template:
        template["Globals"] = _resolve(template["Globals"], conditions)
    return template, conditions


# -------------------------------------------------------- moto-specific fixes
def point_code_at_placeholder(template):
    """SAM functions' CodeUri (the workspace root) becomes the placeholder zip."""
    function_globals = template.get("Globals", {}).get("Function", {})
    function_globals.pop("CodeUri", None)
    for body in template["Resources"].values():
        if body.get("Type") == "AWS::Serverless::Function":
            body["Properties"]["CodeUri"] = {"Bucket": PLACEHOLDER_BUCKET, "Key": PLACEHOLDER_KEY}


def _as_json_string(node):
    """A JSON document that may contain intrinsics (each yielding a string), as
    one string expression: Fn::Join of the JSON text around the intrinsics."""
    intrinsics = []

    def swap(value):
        if isinstance(value, dict):
            if len(value) == 1 and (next(iter(value)) == "Ref" or next(iter(value)).startswith("Fn::")):
                intrinsics.append(value)
                return f"@@intrinsic{len(intrinsics) - 1}@@"
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [swap(v) for v in value]
        return value

    text = json.dumps(swap(node), separators=(",", ":"))
    if not intrinsics:
        return text
    parts = []
    rest = text
    for index, intrinsic in enumerate(intrinsics):
        before, _, rest = rest.partition(f"@@intrinsic{index}@@")
        parts.extend([before, intrinsic])
    parts.append(rest)
    return {"Fn::Join": ["", [p for p in parts if p != ""]]}


def key_policies_as_strings(template):
    for body in template["Resources"].values():
        if body.get("Type") == "AWS::KMS::Key" and isinstance(body["Properties"].get("KeyPolicy"), dict):
            body["Properties"]["KeyPolicy"] = _as_json_string(body["Properties"]["KeyPolicy"])


def _contains(node, key):
    if isinstance(node, dict):
        return key in node or any(_contains(v, key) for v in node.values())
    if isinstance(node, list):
        return any(_contains(v, key) for v in node)
    return False


# ----------------------------------------------------------------- transform
class _NoManagedPolicies:
    """The templates name no AWS managed policies; the translator never asks."""

    def load(self):
        return {}


def sam_transform(template, params):
    from samtranslator.translator.transform import transform

    cfn_params = {k: (",".join(v) if isinstance(v, list) else v) for k, v in params.items()}
    return transform(template, cfn_params, _NoManagedPolicies())


def prepare(template_path, overrides, region, stack_name):
    """The CloudFormation template to send to moto, and the parameter values."""
    template = load_template(template_path)
    params = parameter_values(template, overrides)
    template, _ = resolve_conditions(template, params, pseudo_parameters(region, stack_name))
    point_code_at_placeholder(template)
    if "Transform" in template:
        template = sam_transform(template, params)
    key_policies_as_strings(template)
    if _contains(template, "Fn::If") or _contains(template, "Conditions"):
        raise TemplateError("an Fn::If survived the transform; moto cannot take it")
    return template, params


# -------------------------------------------------------------------- deploy
def _placeholder_zip():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        archive.writestr(info, "#!/bin/sh\necho 'placeholder: the tests run the real binary' >&2\nexit 1\n")
    return buffer.getvalue()


def deploy(endpoint, region, stack_name, template, params, timeout_seconds):
    import boto3

    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
    )
    client = lambda service: session.client(service, endpoint_url=endpoint)  # noqa: E731
    s3 = client("s3")
    if region == "us-east-1":
        s3.create_bucket(Bucket=PLACEHOLDER_BUCKET)
    else:
        s3.create_bucket(
            Bucket=PLACEHOLDER_BUCKET, CreateBucketConfiguration={"LocationConstraint": region}
        )
    s3.put_object(Bucket=PLACEHOLDER_BUCKET, Key=PLACEHOLDER_KEY, Body=_placeholder_zip())

    cfn = client("cloudformation")
    declared = template.get("Parameters", {})
    stack_id = cfn.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(template),
        Parameters=[
            {"ParameterKey": k, "ParameterValue": ",".join(v) if isinstance(v, list) else v}
            for k, v in params.items()
            if k in declared
        ],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )["StackId"]

    deadline = time.monotonic() + timeout_seconds
    while True:
        stack = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
        status = stack["StackStatus"]
        if status == "CREATE_COMPLETE":
            break
        if not status.endswith("IN_PROGRESS") or time.monotonic() > deadline:
            events = cfn.describe_stack_events(StackName=stack_id)["StackEvents"]
            reasons = [
                f"{e['LogicalResourceId']}: {e['ResourceStatus']} {e.get('ResourceStatusReason', '')}"
                for e in events
                if "FAILED" in e["ResourceStatus"]
            ]
            raise TemplateError(f"stack {stack_name} ended in {status}: {reasons}")
        time.sleep(0.2)

    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    resources = {
        r["LogicalResourceId"]: {"type": r["ResourceType"], "physical_id": r.get("PhysicalResourceId", "")}
        for r in cfn.list_stack_resources(StackName=stack_id)["StackResourceSummaries"]
        if r.get("LogicalResourceId")  # moto lists types it does not create without one
    }
    lambda_client = client("lambda")
    functions = {}
    for logical_id, resource in resources.items():
        if resource["type"] != "AWS::Lambda::Function":
            continue
        config = lambda_client.get_function_configuration(FunctionName=resource["physical_id"])
        functions[logical_id] = {
            "function_name": config["FunctionName"],
            "function_arn": config["FunctionArn"],
            "role": config.get("Role", ""),
            "runtime": config.get("Runtime", ""),
            "handler": config.get("Handler", ""),
            "architectures": config.get("Architectures", []),
            "memory_size": config.get("MemorySize"),
            "timeout": config.get("Timeout"),
            # Lambda's variables are strings; moto keeps a Number parameter's type.
            "environment": {
                name: str(value)
                for name, value in config.get("Environment", {}).get("Variables", {}).items()
            },
        }
    events = client("events")
    rule_ids = {r["physical_id"]: logical_id for logical_id, r in resources.items() if r["type"] == "AWS::Events::Rule"}
    rules = {}
    for bus in events.list_event_buses()["EventBuses"]:
        for rule in events.list_rules(EventBusName=bus["Name"])["Rules"]:
            logical_id = rule_ids.get(rule["Name"])
            if logical_id is None:
                continue
            targets = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus["Name"])
            rules[logical_id] = {
                "name": rule["Name"],
                "arn": rule["Arn"],
                "event_bus_name": bus["Name"],
                "state": rule.get("State", ""),
                "event_pattern": json.loads(rule.get("EventPattern", "null")),
                "targets": targets["Targets"],
            }
    return {
        "stack_name": stack_name,
        "stack_id": stack_id,
        "region": region,
        "outputs": outputs,
        "resources": resources,
        "functions": functions,
        "rules": rules,
        "template": template,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", required=True, help="moto_server URL, e.g. http://127.0.0.1:5000")
    parser.add_argument("--template", required=True)
    parser.add_argument("--stack-name", default="grantwatch")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    parser.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--timeout-seconds", type=float, default=60.0)
    parser.add_argument(
        "--print-template", action="store_true", help="only print the template moto would get"
    )
    args = parser.parse_args(argv)

    overrides = {}
    for pair in args.parameter:
        key, sep, value = pair.partition("=")
        if not sep:
            parser.error(f"--parameter {pair!r}: expected KEY=VALUE")
        overrides[key] = value

    # samtranslator builds ARNs from the region boto3 sees.
    os.environ["AWS_DEFAULT_REGION"] = args.region
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    try:
        template, params = prepare(args.template, overrides, args.region, args.stack_name)
        if args.print_template:
            json.dump(template, sys.stdout, indent=1)
            return 0
        result = deploy(
            args.endpoint, args.region, args.stack_name, template, params, args.timeout_seconds
        )
    except TemplateError as error:
        print(f"deploy_stack: {error}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
