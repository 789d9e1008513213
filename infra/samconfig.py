#!/usr/bin/env python3
"""Read and tidy infra/samconfig.toml for `make package` / `make deploy`.

    samconfig.py get NAME [--env ENV] [--default VALUE]
        print a parameter from [ENV.deploy.parameters].parameter_overrides
    samconfig.py has-target [--env ENV]
        exit 0 when [ENV.deploy.parameters] names a region and a stack
    samconfig.py strip-empty [--env ENV]
        drop `Name=""` entries from the saved parameter_overrides
    samconfig.py deploy [--env ENV] [--arch ARCH] [--unattended]
        run `sam deploy` with the saved non-empty overrides and the build's
        architecture; guided the first time (then strip-empty); with
        --unattended never prompts nor waits for change-set confirmation
    samconfig.py check-recipient [--env ENV]
        fail when AlertEmail and SlackWebhookSecretArn would both be sent
        empty (alerts would go nowhere); warn when neither is given

Why strip-empty: `sam deploy --guided` saves every parameter, empty ones
included, and a later `sam deploy` sends them again: a value given once with
`--parameter-overrides` (the Slack secret, the e-mail address) is then reset
to "". A parameter absent from the overrides keeps its previous value (SAM
sends UsePreviousValue), which is what a re-deploy should do.
"""
import argparse
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

CONFIG = Path(__file__).with_name("samconfig.toml")
RECIPIENTS = ("AlertEmail", "SlackWebhookSecretArn")


def deploy_section(env):
    with CONFIG.open("rb") as f:
        data = tomllib.load(f)
    section = dict(data.get("default", {}).get("global", {}).get("parameters", {}))
    section.update(data.get(env, {}).get("global", {}).get("parameters", {}))
    section.update(data.get(env, {}).get("deploy", {}).get("parameters", {}))
    return section


def overrides(env):
    raw = deploy_section(env).get("parameter_overrides", [])
    items = shlex.split(raw) if isinstance(raw, str) else list(raw)
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if sep:
            out[name] = value
    return out


def strip_empty(env):
    text = CONFIG.read_text()
    header = re.compile(r"^\[([^\]]+)\]\s*$")
    lines, current = [], None
    for line in text.splitlines(keepends=True):
        m = header.match(line)
        if m:
            current = m.group(1)
        if current == f"{env}.deploy.parameters" and line.lstrip().startswith("parameter_overrides"):
            value = tomllib.loads("v = " + line.partition("=")[2])["v"]
            # Both forms SAM writes: one string of Name="value" pairs, or a list.
            items = shlex.split(value) if isinstance(value, str) else list(value)
            kept = [i for i in items if i.partition("=")[2] != ""]
            if isinstance(value, str):
                pairs = " ".join('{}="{}"'.format(*i.split("=", 1)) for i in kept)
                line = f"parameter_overrides = {json.dumps(pairs)}\n"
            else:
                line = f"parameter_overrides = {json.dumps(kept)}\n"
        lines.append(line)
    CONFIG.write_text("".join(lines))


def deploy(env, arch, unattended):
    if not (deploy_section(env).get("region") and deploy_section(env).get("stack_name")):
        if unattended:
            sys.exit(
                f"deploy: unattended mode needs region and stack_name in [{env}.deploy.parameters] "
                f"of {CONFIG} (parameters come only from that committed file)"
            )
        subprocess.run(["sam", "deploy", "--guided", "--config-env", env], check=True)
        strip_empty(env)
        return
    pairs = {name: value for name, value in overrides(env).items() if value != ""}
    pairs["Architecture"] = arch
    quoted = " ".join('{}="{}"'.format(n, v.replace('"', '\\"')) for n, v in pairs.items())
    argv = ["sam", "deploy", "--config-env", env, "--parameter-overrides", quoted]
    if unattended:
        argv += ["--no-confirm-changeset", "--no-fail-on-empty-changeset", "--no-progressbar"]
    print("deploy:", " ".join(shlex.quote(a) for a in argv), file=sys.stderr)
    sys.exit(subprocess.run(argv).returncode)


def main():
    global CONFIG
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["get", "has-target", "strip-empty", "check-recipient", "deploy"])
    parser.add_argument("name", nargs="?")
    parser.add_argument("--env", default="default")
    parser.add_argument("--default", default="")
    parser.add_argument("--arch", default="arm64", choices=["arm64", "x86_64"])
    parser.add_argument("--unattended", action="store_true")
    parser.add_argument("--config", type=Path, default=CONFIG, help="samconfig.toml to read")
    args = parser.parse_args()
    CONFIG = args.config
    if args.command == "get":
        print(overrides(args.env).get(args.name, args.default) or args.default)
    elif args.command == "has-target":
        section = deploy_section(args.env)
        sys.exit(0 if section.get("region") and section.get("stack_name") else 1)
    elif args.command == "strip-empty":
        strip_empty(args.env)
    elif args.command == "deploy":
        deploy(args.env, args.arch, args.unattended)
    elif args.command == "check-recipient":
        given = overrides(args.env)
        sent_empty = [name for name in RECIPIENTS if name in given and not given[name]]
        if len(sent_empty) == len(RECIPIENTS):
            sys.exit(
                "samconfig.toml sends AlertEmail and SlackWebhookSecretArn empty: alerts would go "
                "nowhere. Set one of them in parameter_overrides (docs/deploy.md, step 1)."
            )
        if not any(given.get(name) for name in RECIPIENTS):
            print(
                "note: samconfig.toml names no alert recipient; the stack keeps the ones it has "
                "(a first deploy would have none: docs/deploy.md, step 1).",
                file=sys.stderr,
            )


if __name__ == "__main__":
    main()
