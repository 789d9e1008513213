//! Least privilege, checked against the code: every AWS API action a
//! function's code calls is allowed by that function's role in
//! `infra/template.yaml`, and the role allows nothing else.
//!
//! "The actions the code calls" are read from the source, so they cannot
//! drift from a hand-kept list:
//! - a function's crate is `functions/<Binary>` (the template's
//!   `BuildProperties: Binary`); the adapter modules it uses are the
//!   `grantwatch_aws::<module>` paths in its source, plus the modules those
//!   reach through `crate::<module>`;
//! - in each such file (tests cut off at `#[cfg(test)]`), an SDK fluent call
//!   `.list_grants()` is an action when `list_grants` is an operation of an
//!   SDK crate the file names (`aws_sdk_kms` -> `kms:ListGrants`); the
//!   operation lists come from the SDK crates' own source (`src/operation/`).
//!
//! The template is read as the deployer sends it to CloudFormation (SAM
//! transformed, conditions resolved), once with every optional feature on
//! (Slack, rules file, organization) and once with the defaults.

use grantwatch_e2e::stack;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Adapter modules a function uses only through a narrow entry point:
/// (function binary, adapter module, workspace file of the entry point, the
/// type whose impl calls the module). That function gets only the actions
/// reachable from the methods the impl calls (a call graph of the module's
/// `fn`s). None today: the report used to only read grant records from the
/// ledger, but it now records its files' hashes and, in its daily reconcile
/// mode, replays missed events through the watcher's whole ledger.
const NARROW_USES: &[(&str, &str, &str, &str)] = &[];

/// SDK crates the code may use, with the IAM service prefix of their actions.
const SDK_CRATES: &[(&str, &str)] = &[
    ("aws-sdk-kms", "kms"),
    ("aws-sdk-dynamodb", "dynamodb"),
    ("aws-sdk-sns", "sns"),
    ("aws-sdk-s3", "s3"),
    ("aws-sdk-sts", "sts"),
    ("aws-sdk-secretsmanager", "secretsmanager"),
    ("aws-sdk-organizations", "organizations"),
    ("aws-sdk-eventbridge", "events"),
];

/// Operations whose IAM action is not named after the operation (AWS Service
/// Authorization Reference); `None`: the operation needs no permission.
const ACTION_OF_OPERATION: &[(&str, &str, Option<&str>)] = &[
    ("s3", "list_objects_v2", Some("s3:ListBucket")),
    ("s3", "list_objects", Some("s3:ListBucket")),
    ("s3", "head_object", Some("s3:GetObject")),
    ("s3", "head_bucket", Some("s3:ListBucket")),
    // A multipart upload is authorised as the object's PutObject.
    ("s3", "create_multipart_upload", Some("s3:PutObject")),
    ("s3", "upload_part", Some("s3:PutObject")),
    ("s3", "complete_multipart_upload", Some("s3:PutObject")),
    ("sts", "get_caller_identity", None),
];

/// What the Lambda service itself does with a function's role (not the
/// code): write the function's logs to its log group, and send events the
/// function failed on to the on-failure destination. Action -> the resource
/// it must be limited to (a `Fn::GetAtt` of the template).
const PLATFORM_ACTIONS: &[(&str, &str)] = &[
    ("logs:CreateLogStream", "LogGroup"),
    ("logs:PutLogEvents", "LogGroup"),
    ("sqs:SendMessage", "FailedInvocationQueue"),
];

/// Actions AWS cannot scope to a resource: "*" is the only possible Resource.
const REQUIRES_ANY_RESOURCE: &[&str] = &[
    "kms:ListKeys",
    "kms:ListAliases",
    "organizations:ListAccounts",
];

/// Every optional feature on: each conditional statement is present.
const ALL_FEATURES: &[(&str, &str)] = &[
    (
        "SlackWebhookSecretArn",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:grantwatch/slack-AbCdEf",
    ),
    ("RulesS3Uri", "s3://grantwatch-rules/rules.toml"),
    ("ReportAccounts", "ORG"),
    ("MemberRoleExternalId", "external-id"),
    ("OrganizationId", "o-abcdef1234"),
    ("TrustedAccounts", "ORG"),
    ("EventBusName", "security-bus"),
    ("ReconcileTrailBucket", "org-trail-logs"),
    (
        "ReconcileTrailKeyArn",
        "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    ),
];

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

// ------------------------------------------------------------- the code side

/// `list_grants` -> `ListGrants`.
fn pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

/// The IAM action of an SDK operation, or `None` when it needs no permission.
fn action_of(service: &str, operation: &str) -> Option<String> {
    match ACTION_OF_OPERATION
        .iter()
        .find(|(s, op, _)| *s == service && *op == operation)
    {
        Some((_, _, action)) => action.map(str::to_string),
        None => Some(format!("{service}:{}", pascal_case(operation))),
    }
}

/// The host's target triple (`rustc -vV`), for `cargo metadata --filter-platform`.
fn host_triple() -> String {
    let output = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .trim()
        .to_string()
}

/// Operation names (snake_case) of each SDK crate, from the crates' source
/// as Cargo resolved them for this workspace.
struct SdkOperations {
    by_crate: BTreeMap<&'static str, BTreeSet<String>>,
}

impl SdkOperations {
    fn load() -> SdkOperations {
        // Only this host's dependencies: offline, cargo cannot resolve the
        // packages of other platforms (e.g. Windows-only crates) it never fetched.
        let output = std::process::Command::new(env!("CARGO"))
            .args(["metadata", "--format-version", "1", "--offline"])
            .args(["--filter-platform", &host_triple()])
            .current_dir(workspace())
            .output()
            .expect("run cargo metadata");
        assert!(
            output.status.success(),
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata JSON");
        let packages = metadata["packages"].as_array().expect("packages");
        let mut by_crate = BTreeMap::new();
        for (crate_name, _) in SDK_CRATES {
            let Some(package) = packages.iter().find(|p| p["name"] == *crate_name) else {
                continue; // not a dependency of the workspace: the code cannot call it
            };
            let manifest = Path::new(package["manifest_path"].as_str().expect("manifest path"));
            let operation_dir = manifest.parent().expect("crate dir").join("src/operation");
            let operations: BTreeSet<String> = std::fs::read_dir(&operation_dir)
                .unwrap_or_else(|e| panic!("read {}: {e}", operation_dir.display()))
                .filter_map(|entry| entry.ok())
                .filter(|entry| entry.path().is_dir())
                .filter_map(|entry| entry.file_name().into_string().ok())
                .collect();
            assert!(
                !operations.is_empty(),
                "no operations in {}",
                operation_dir.display()
            );
            by_crate.insert(*crate_name, operations);
        }
        SdkOperations { by_crate }
    }

    /// The actions of the SDK fluent calls in one source text.
    fn actions_in(&self, source: &str) -> BTreeSet<String> {
        let code = code_without_tests_and_comments(source);
        let mut actions = BTreeSet::new();
        // aws-config's credential provider calls STS AssumeRole for the code.
        if code.contains("AssumeRoleProvider") {
            actions.insert("sts:AssumeRole".to_string());
        }
        for (crate_name, service) in SDK_CRATES {
            let crate_path = crate_name.replace('-', "_");
            if !code.contains(&crate_path) {
                continue;
            }
            let Some(operations) = self.by_crate.get(crate_name) else {
                continue;
            };
            for call in fluent_calls(&code) {
                if operations.contains(call) {
                    actions.extend(action_of(service, call));
                }
            }
        }
        actions
    }
}

/// The source before `#[cfg(test)]`, without comment lines (doc examples).
fn code_without_tests_and_comments(source: &str) -> String {
    // Code stops at the first inline test module; a `#[cfg(test)] mod x;`
    // declaration (its file is left out by `rust_files`) is only skipped.
    let mut code = String::new();
    let mut rest = source;
    while let Some(at) = rest.find("#[cfg(test)]") {
        code.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let item = after.trim_start();
        let declaration = item
            .strip_prefix("mod ")
            .and_then(|m| m.split_once(';'))
            .filter(|(name, _)| name.trim().chars().all(|c| c.is_alphanumeric() || c == '_'));
        match declaration {
            Some((_, tail)) => rest = tail,
            None => {
                rest = "";
                break;
            }
        }
    }
    code.push_str(rest);
    code.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Names `x` of every `.x()` (a call without arguments: the SDK's fluent
/// operation builders), e.g. `client.list_grants().key_id(k)` -> `list_grants`.
fn fluent_calls(code: &str) -> BTreeSet<&str> {
    let mut calls = BTreeSet::new();
    for (index, _) in code.match_indices("()") {
        let before = &code[..index];
        let name_start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        if name_start > 0 && before[..name_start].ends_with('.') && name_start < index {
            calls.insert(&code[name_start..index]);
        }
    }
    calls
}

/// Rust files of a directory tree.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            // A module's `tests.rs` (or `tests/`) is test code, not the function's.
            let is_tests = path.file_stem().is_some_and(|s| s == "tests");
            if is_tests {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The adapter modules (`shared/aws/src/<module>.rs` or `<module>/`).
fn adapter_modules() -> BTreeMap<String, Vec<PathBuf>> {
    let src = workspace().join("shared/aws/src");
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(&src)
        .expect("shared/aws/src")
        .filter_map(|e| e.ok())
    {
        let path = entry.path();
        let Some(stem) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if stem == "lib" {
            continue;
        }
        let files = if path.is_dir() {
            rust_files(&path)
        } else if path.extension().is_some_and(|e| e == "rs") {
            vec![path.clone()]
        } else {
            continue;
        };
        modules.entry(stem).or_insert_with(Vec::new).extend(files);
    }
    modules
}

/// Module names `text` uses through `prefix` (`grantwatch_aws::` or
/// `crate::`), including grouped imports `prefix{ledger::X, sns}`.
fn modules_used(
    text: &str,
    prefix: &str,
    known: &BTreeMap<String, Vec<PathBuf>>,
) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for (index, _) in text.match_indices(prefix) {
        let rest = &text[index + prefix.len()..];
        let region = if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let end = group
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map_or(group.len(), |(i, _)| i);
            &group[..end]
        } else {
            rest
        };
        let words = region
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty());
        if rest.starts_with('{') {
            used.extend(words.filter(|w| known.contains_key(*w)).map(str::to_string));
        } else if let Some(first) = words.into_iter().next() {
            if known.contains_key(first) {
                used.insert(first.to_string());
            }
        }
    }
    used
}

/// `fn` items of a source text: name -> text up to the next `fn`.
fn fn_bodies(code: &str) -> BTreeMap<String, &str> {
    let mut starts = Vec::new();
    for (index, _) in code.match_indices("fn ") {
        let preceded_by_space = index == 0 || code[..index].ends_with(|c: char| c.is_whitespace());
        if !preceded_by_space {
            continue;
        }
        let name: String = code[index + 3..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            starts.push((index, name));
        }
    }
    let mut bodies = BTreeMap::new();
    for (i, (start, name)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(code.len(), |(next, _)| *next);
        bodies.insert(name.clone(), &code[*start..end]);
    }
    bodies
}

/// Names `f` called as `self.f(`, `self.0.f(` or a bare `f(` in a text
/// (method calls on other values, `x.f(`, are not calls into the module).
fn own_calls(text: &str) -> BTreeSet<String> {
    let mut calls = BTreeSet::new();
    for (index, _) in text.match_indices('(') {
        let before = &text[..index];
        let start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        let name = &before[start..];
        if name.is_empty() {
            continue;
        }
        let prefix = &before[..start];
        if !prefix.ends_with('.') || prefix.ends_with("self.") || prefix.ends_with("self.0.") {
            calls.insert(name.to_string());
        }
    }
    calls
}

/// Text of the `impl` block(s) for `type_name` in a source text.
fn impl_blocks<'a>(code: &'a str, type_name: &str) -> Vec<&'a str> {
    let mut blocks = Vec::new();
    for (index, _) in code.match_indices("impl") {
        let Some(open) = code[index..].find('{').map(|o| index + o) else {
            continue;
        };
        if !code[index..open].contains(type_name) {
            continue;
        }
        let mut depth = 0;
        for (offset, c) in code[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        blocks.push(&code[open..open + offset]);
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    blocks
}

/// Actions of `module` reachable from what `type_name`'s impl in `entry_file` calls.
fn narrow_actions(
    module_files: &[PathBuf],
    entry_file: &str,
    type_name: &str,
    sdk: &SdkOperations,
) -> BTreeSet<String> {
    let entry = std::fs::read_to_string(workspace().join(entry_file)).expect("entry point source");
    let entry = code_without_tests_and_comments(&entry);
    let blocks = impl_blocks(&entry, type_name);
    assert!(!blocks.is_empty(), "no impl of {type_name} in {entry_file}");
    let mut actions = BTreeSet::new();
    for file in module_files {
        let source = std::fs::read_to_string(file).expect("adapter source");
        let code = code_without_tests_and_comments(&source);
        let crate_header: String = SDK_CRATES
            .iter()
            .map(|(name, _)| name.replace('-', "_"))
            .filter(|path| code.contains(path.as_str()))
            .collect::<Vec<_>>()
            .join(" ");
        let bodies = fn_bodies(&code);
        let mut pending: Vec<String> = blocks.iter().flat_map(|b| own_calls(b)).collect();
        let mut seen = BTreeSet::new();
        while let Some(name) = pending.pop() {
            let Some(body) = bodies.get(&name) else {
                continue;
            };
            if !seen.insert(name) {
                continue;
            }
            // The body alone does not name the SDK crate: give it the file's.
            actions.extend(sdk.actions_in(&format!("{crate_header}\n{body}")));
            pending.extend(own_calls(body));
        }
    }
    actions
}

/// The AWS actions a function's code calls: its own crate and the adapter
/// modules it uses, transitively.
fn code_actions(binary: &str, sdk: &SdkOperations) -> (BTreeSet<String>, BTreeSet<String>) {
    let modules = adapter_modules();
    let crate_files = rust_files(&workspace().join("functions").join(binary).join("src"));
    assert!(
        !crate_files.is_empty(),
        "functions/{binary}/src has no Rust files"
    );
    let mut actions = BTreeSet::new();
    let mut used = BTreeSet::new();
    for file in &crate_files {
        let text = std::fs::read_to_string(file).expect("read function source");
        actions.extend(sdk.actions_in(&text));
        // A module only a test uses is not linked into the function.
        let code = code_without_tests_and_comments(&text);
        used.extend(modules_used(&code, "grantwatch_aws::", &modules));
    }
    let mut pending: Vec<String> = used.iter().cloned().collect();
    while let Some(module) = pending.pop() {
        if let Some((_, _, entry_file, type_name)) = NARROW_USES
            .iter()
            .find(|(b, m, _, _)| *b == binary && *m == module)
        {
            actions.extend(narrow_actions(
                &modules[&module],
                entry_file,
                type_name,
                sdk,
            ));
            continue;
        }
        for file in &modules[&module] {
            let text = std::fs::read_to_string(file).expect("read adapter source");
            actions.extend(sdk.actions_in(&text));
            let code = code_without_tests_and_comments(&text);
            for reached in modules_used(&code, "crate::", &modules) {
                if used.insert(reached.clone()) {
                    pending.push(reached);
                }
            }
        }
    }
    (actions, used)
}

// --------------------------------------------------------- the template side

/// One Allow statement of a role policy: its actions and resources (as
/// template JSON: strings or intrinsics).
#[derive(Debug)]
struct Grant {
    actions: Vec<String>,
    resources: Vec<Value>,
    /// `kms:ViaService`: a service uses the key on the function's behalf
    /// (S3 decrypting the trail's objects), not the function's own code.
    via_service: bool,
}

fn as_list(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// Logical id of a function's role (`Role: !GetAtt X.Arn`).
fn role_of(template: &Value, function: &str) -> String {
    let role = &template["Resources"][function]["Properties"]["Role"];
    role["Fn::GetAtt"][0]
        .as_str()
        .unwrap_or_else(|| {
            panic!("{function}'s Role is not a GetAtt of a role in the template: {role}")
        })
        .to_string()
}

/// Every Allow statement of the role: inline policies and the
/// AWS::IAM::Policy resources attached to it.
fn role_grants(template: &Value, role: &str) -> Vec<Grant> {
    let resources = template["Resources"].as_object().expect("Resources");
    let role_properties = &resources[role]["Properties"];
    assert!(
        role_properties.get("ManagedPolicyArns").is_none(),
        "{role} attaches managed policies: their actions cannot be checked"
    );
    let mut documents: Vec<Value> = as_list(&role_properties["Policies"])
        .into_iter()
        .map(|p| p["PolicyDocument"].clone())
        .collect();
    for body in resources.values() {
        if matches!(
            body["Type"].as_str(),
            Some("AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy")
        ) && as_list(&body["Properties"]["Roles"])
            .iter()
            .any(|r| r["Ref"] == *role)
        {
            documents.push(body["Properties"]["PolicyDocument"].clone());
        }
    }
    let mut grants = Vec::new();
    for document in documents {
        for statement in as_list(&document["Statement"]) {
            assert_eq!(
                statement["Effect"], "Allow",
                "{role}: unexpected statement {statement}"
            );
            assert!(
                statement.get("NotAction").is_none() && statement.get("NotResource").is_none(),
                "{role}: NotAction/NotResource grant too much: {statement}"
            );
            grants.push(Grant {
                actions: as_list(&statement["Action"])
                    .iter()
                    .map(|a| a.as_str().expect("action string").to_string())
                    .collect(),
                resources: as_list(&statement["Resource"]),
                via_service: statement["Condition"]["StringEquals"]
                    .get("kms:ViaService")
                    .is_some(),
            });
        }
    }
    grants
}

fn transformed(parameters: &[(&str, &str)]) -> Value {
    stack::transformed_template(&stack::template_path(), parameters)
        .unwrap_or_else(|e| panic!("transform the template: {e}"))
}

fn functions_of(template: &Value) -> Vec<(String, String)> {
    let resources = template["Resources"].as_object().expect("Resources");
    let mut functions: Vec<(String, String)> = resources
        .iter()
        .filter(|(_, body)| body["Type"] == "AWS::Lambda::Function")
        .map(|(id, body)| {
            let binary = body["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{id} has no Metadata.BuildProperties.Binary"));
            (id.clone(), binary.to_string())
        })
        .collect();
    functions.sort();
    functions
}

/// The function's granted actions that its code does not call, split from
/// the platform actions (checked for their resource).
fn check_platform_and_resources(function: &str, grants: &[Grant]) -> BTreeSet<String> {
    let mut code_level = BTreeSet::new();
    for grant in grants {
        for action in &grant.actions {
            assert!(
                !action.contains('*'),
                "{function}: wildcard action {action}; name the exact actions"
            );
            if grant.via_service && action.starts_with("kms:") {
                continue;
            }
            if let Some((_, target)) = PLATFORM_ACTIONS.iter().find(|(a, _)| a == action) {
                for resource in &grant.resources {
                    let attribute_of = resource["Fn::GetAtt"][0].as_str().unwrap_or_default();
                    assert!(
                        attribute_of.ends_with(target),
                        "{function}: {action} must be limited to its {target}, not {resource}"
                    );
                }
                continue;
            }
            code_level.insert(action.clone());
        }
        let everything = grant.resources.iter().any(|r| r == "*");
        if everything {
            for action in &grant.actions {
                assert!(
                    REQUIRES_ANY_RESOURCE.contains(&action.as_str()),
                    "{function}: {action} is granted on \"*\"; scope it to its resources"
                );
            }
        }
    }
    code_level
}

#[test]
fn scanner_finds_sdk_calls_and_ignores_the_rest() {
    let sdk = SdkOperations::load();
    let source = r#"
        use aws_sdk_kms::Client;
        // client.revoke_grant() in a comment is not a call
        async fn f(c: &Client) { c.list_grants().key_id("k").send().await; c.describe_key().send().await; }
        fn g() { let v = Vec::new(); v.len(); helper().list_keys(); }
        #[cfg(test)]
        mod tests { fn t(c: &aws_sdk_kms::Client) { c.create_grant(); } }
    "#;
    let actions = sdk.actions_in(source);
    let expected: BTreeSet<String> = ["kms:DescribeKey", "kms:ListGrants", "kms:ListKeys"]
        .into_iter()
        .map(str::to_string)
        .collect();
    assert_eq!(actions, expected);
    // A `#[cfg(test)] mod tests;` declaration does not hide the code after it.
    let split_module = "use aws_sdk_kms::Client;\n#[cfg(test)]\nmod tests;\n\
                        fn f(c: &Client) { c.list_keys().send(); }\n\
                        #[cfg(test)]\nmod more { fn t(c: &Client) { c.create_grant(); } }";
    assert_eq!(
        sdk.actions_in(split_module).into_iter().collect::<Vec<_>>(),
        ["kms:ListKeys"]
    );
    // A file that does not name the SDK crate calls none of its operations.
    assert!(sdk
        .actions_in("fn f(x: &X) { x.list_grants(); }")
        .is_empty());
    assert_eq!(
        action_of("s3", "list_objects_v2").as_deref(),
        Some("s3:ListBucket")
    );
    assert_eq!(action_of("sts", "get_caller_identity"), None);
    assert_eq!(
        action_of("secretsmanager", "get_secret_value").as_deref(),
        Some("secretsmanager:GetSecretValue")
    );
}

#[test]
fn module_usage_follows_grouped_imports() {
    let known: BTreeMap<String, Vec<PathBuf>> = ["ledger", "sns", "store"]
        .into_iter()
        .map(|m| (m.to_string(), Vec::new()))
        .collect();
    let text = "use grantwatch_aws::{ledger::DynamoLedger, sns};\nlet s = grantwatch_aws::store::S3Store::new();";
    let used = modules_used(text, "grantwatch_aws::", &known);
    assert_eq!(
        used.into_iter().collect::<Vec<_>>(),
        ["ledger", "sns", "store"]
    );
}

#[test]
fn each_role_allows_exactly_what_its_function_calls() {
    let sdk = SdkOperations::load();
    let template = transformed(ALL_FEATURES);
    let functions = functions_of(&template);
    assert_eq!(
        functions.len(),
        2,
        "expected grant-watcher and grant-report: {functions:?}"
    );
    let mut problems = Vec::new();
    for (function, binary) in &functions {
        let (called, modules) = code_actions(binary, &sdk);
        assert!(
            !called.is_empty(),
            "{binary} calls no AWS API at all (modules used: {modules:?}): is the scan broken?"
        );
        let grants = role_grants(&template, &role_of(&template, function));
        let granted = check_platform_and_resources(function, &grants);
        let missing: Vec<_> = called.difference(&granted).collect();
        let extra: Vec<_> = granted.difference(&called).collect();
        if !missing.is_empty() || !extra.is_empty() {
            problems.push(format!(
                "{function} ({binary}, adapter modules {modules:?}):\n  called but not allowed: {missing:?}\n  allowed but never called: {extra:?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn default_deploy_grants_no_optional_feature() {
    let template = transformed(&[]);
    for (function, _) in functions_of(&template) {
        let grants = role_grants(&template, &role_of(&template, &function));
        let granted = check_platform_and_resources(&function, &grants);
        for optional in [
            "secretsmanager:GetSecretValue",
            "sts:AssumeRole",
            "organizations:ListAccounts",
        ] {
            assert!(
                !granted.contains(optional),
                "{function}: {optional} granted although the feature is off by default"
            );
        }
        // The rules file is read only when configured; the report's own
        // bucket is the only other S3 object it may read.
        for grant in &grants {
            if grant.actions.iter().any(|a| a == "s3:GetObject") {
                let text = serde_json::to_string(&grant.resources).expect("json");
                assert!(
                    text.contains("ReportBucket"),
                    "{function}: s3:GetObject outside the report bucket by default: {text}"
                );
            }
        }
    }
}

#[test]
fn member_reader_role_allows_exactly_the_reports_kms_inventory() {
    let sdk = SdkOperations::load();
    let template = stack::transformed_template(
        &stack::member_template_path(),
        &[
            (
                "CentralReportRoleArn",
                "arn:aws:iam::111111111111:role/grantwatch-ReportRole-ABC",
            ),
            (
                "CentralEventBusArn",
                "arn:aws:events:us-east-1:111111111111:event-bus/grantwatch-grant-events",
            ),
            ("ExternalId", "external-id"),
            ("ReaderRoleRegion", stack::REGION),
        ],
    )
    .unwrap_or_else(|e| panic!("transform member-account.yaml: {e}"));
    let report_binary = functions_of(&transformed(ALL_FEATURES))
        .into_iter()
        .find(|(id, _)| id == stack::REPORT)
        .map(|(_, binary)| binary)
        .expect("report function");
    // In a member account the report reads KMS only (S3, SNS, the ledger are central).
    let (called, _) = code_actions(&report_binary, &sdk);
    let kms_called: BTreeSet<String> = called
        .into_iter()
        .filter(|a| a.starts_with("kms:"))
        .collect();
    let grants = role_grants(&template, "ReportReaderRole");
    let granted = check_platform_and_resources("ReportReaderRole", &grants);
    assert_eq!(granted, kms_called, "reader role vs the report's KMS calls");
}

#[test]
fn narrow_use_follows_the_calls_of_the_entry_point() {
    let sdk = SdkOperations::load();
    let dir = std::env::temp_dir().join(format!("grantwatch-narrow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let module = dir.join("ledger.rs");
    std::fs::write(
        &module,
        "use aws_sdk_dynamodb::Client;\n\
         impl L {\n    async fn get(&self) { self.client.get_item().send().await; }\n\
         async fn read(&self) { let x = self.get().await; helper(x); map.get(\"k\"); }\n\
         async fn write(&self) { self.client.put_item().send().await; }\n}\n\
         fn helper(x: X) { x.client.query(); }\n",
    )
    .expect("write module");
    let entry = dir.join("entry.rs");
    std::fs::write(
        &entry,
        "impl P for Narrow<'_, L> { async fn f(&self) { self.0.read().await } }\n",
    )
    .expect("write entry");
    // An absolute path: `workspace().join` keeps it as it is.
    let actions = narrow_actions(&[module], entry.to_str().expect("utf-8"), "Narrow", &sdk);
    let _ = std::fs::remove_dir_all(&dir);
    // read -> get (GetItem) and helper (Query); `map.get` is not the module's `get`.
    let expected: BTreeSet<String> = ["dynamodb:GetItem", "dynamodb:Query"]
        .into_iter()
        .map(str::to_string)
        .collect();
    assert_eq!(actions, expected);
    assert!(
        !actions.contains("dynamodb:PutItem"),
        "write is never reached: {actions:?}"
    );
}
