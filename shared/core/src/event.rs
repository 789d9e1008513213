//! CloudTrail / EventBridge / log-file input → [`GrantEvent`].
//!
//! Parsing is lenient: unknown fields, newer `eventVersion`s and unknown
//! operations are fine. A grant event missing what it needs is a
//! [`ParseError`] naming what is wrong; a record about something other than
//! grants is [`Parsed::NotAGrantEvent`], to be skipped and counted.

use crate::grant::{Constraints, GrantFacts, Operation};
use crate::principal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::Read;
use std::mem::take;

/// Which grant call this event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GrantAction {
    CreateGrant,
    RetireGrant,
    RevokeGrant,
}

impl GrantAction {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantAction::CreateGrant => "CreateGrant",
            GrantAction::RetireGrant => "RetireGrant",
            GrantAction::RevokeGrant => "RevokeGrant",
        }
    }

    pub fn from_event_name(name: &str) -> Option<GrantAction> {
        match name {
            "CreateGrant" => Some(GrantAction::CreateGrant),
            "RetireGrant" => Some(GrantAction::RetireGrant),
            "RevokeGrant" => Some(GrantAction::RevokeGrant),
            _ => None,
        }
    }

    pub fn is_removal(self) -> bool {
        !matches!(self, GrantAction::CreateGrant)
    }
}

/// Who made the call, and from where: CloudTrail's `userIdentity` plus the
/// request's source. The same shape is kept in the ledger as provenance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// `userIdentity.arn` (absent for some service identities).
    pub arn: Option<String>,
    /// `userIdentity.type`: IAMUser, AssumedRole, Root, AWSService, ...
    #[serde(rename = "type")]
    pub identity_type: Option<String>,
    /// `userIdentity.accountId`.
    pub account: Option<String>,
    /// `userIdentity.invokedBy`: a service DNS name or `AWS Internal`.
    pub invoked_by: Option<String>,
    /// `userIdentity.principalId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    /// For assumed roles: `sessionContext.sessionIssuer.arn` (the role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_issuer_arn: Option<String>,
    /// `sessionCredentialFromConsole == "true"`.
    #[serde(default)]
    pub from_console: bool,
    /// `sourceIPAddress`: an IP, a service DNS name, or `AWS Internal`.
    pub source_ip: Option<String>,
    /// `userAgent`, as given (untrusted).
    pub user_agent: Option<String>,
}

/// One grant call recorded by CloudTrail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantEvent {
    /// CloudTrail `eventID` (idempotency key).
    pub event_id: String,
    pub action: GrantAction,
    /// `eventTime`, as given (RFC 3339).
    pub event_time: Option<String>,
    /// `recipientAccountId` (the key's account), else the caller's.
    pub account: Option<String>,
    pub region: Option<String>,
    /// `eventVersion`, as given.
    pub event_version: Option<String>,
    pub caller: Caller,
    /// The key as the request named it (key id, key ARN, alias name or
    /// alias ARN), else the response's or resources' key ARN.
    pub key: Option<String>,
    /// The key's ARN when known (response, resources) or derivable from a
    /// bare key id, region and account.
    pub key_arn: Option<String>,
    /// The grant id: response (CreateGrant), request (RevokeGrant, RetireGrant)
    /// or `additionalEventData.grantId` (RetireGrant by token). `None` when the
    /// call failed before a grant existed.
    pub grant_id: Option<String>,
    /// What the CreateGrant asked for. `None` for Retire/Revoke.
    pub grant: Option<GrantFacts>,
    /// `requestParameters.dryRun == true`.
    pub dry_run: bool,
    /// `errorCode` (AccessDenied, DryRunOperationException, ...).
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// `requestParameters.grantTokens` was non-empty.
    pub used_grant_token: bool,
    /// `sharedEventID`: the same cross-account call is written into both
    /// accounts with this id (see `correlate::second_copy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_event_id: Option<String>,
}

impl GrantEvent {
    pub fn succeeded(&self) -> bool {
        self.error_code.is_none()
    }
}

/// The outcome of parsing one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Grant(Box<GrantEvent>),
    /// A valid record about something else (e.g. `Decrypt`): skip it.
    NotAGrantEvent {
        event_name: Option<String>,
        event_source: Option<String>,
    },
}

/// What is wrong with an input. The message names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not valid JSON: {0}")]
    InvalidJson(String),
    #[error("not a CloudTrail record, EventBridge event or CloudTrail log file: {0}")]
    UnrecognisedShape(String),
    #[error("{event_name} event {event_id}: {problem}")]
    BadGrantEvent {
        event_name: String,
        event_id: String,
        problem: String,
    },
    #[error("cannot read gzip input: {0}")]
    BadGzip(String),
    #[error("input too large: {0}")]
    TooLarge(String),
}

/// The operation recorded for a CreateGrant whose record lists none (older
/// event versions): unknown, judged conservatively.
pub const OPERATIONS_NOT_RECORDED: &str = "(operations not recorded)";

/// The largest input accepted, before and after gzip decompression (a
/// CloudTrail log file is far smaller; anything bigger is an attack or a
/// mistake).
pub const MAX_INPUT_BYTES: usize = 64 * 1024 * 1024;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const EVENTBRIDGE_CLOUDTRAIL_DETAIL_TYPE: &str = "AWS API Call via CloudTrail";

/// Parse one input (a file, stdin): JSON or gzip-compressed JSON holding
/// one or more documents, each an EventBridge event, a bare CloudTrail
/// record, a CloudTrail log file (`{"Records": [...]}`) or a JSON list of
/// those. The outer error means nothing could be read; the inner results
/// are per record (a log file with one bad record still yields the others).
pub fn parse_document(bytes: &[u8]) -> Result<Vec<Result<Parsed, ParseError>>, ParseError> {
    let data = decompress(bytes)?;
    let mut documents = serde_json::Deserializer::from_slice(&data).into_iter::<Value>();
    let mut out = Vec::new();
    let mut count = 0usize;
    loop {
        match documents.next() {
            None => break,
            Some(Ok(document)) => {
                count += 1;
                match parse_value(&document) {
                    Ok(mut records) => out.append(&mut records),
                    Err(e) if count == 1 => return Err(e),
                    Err(e) => out.push(Err(e)),
                }
            }
            Some(Err(e)) => {
                let error = ParseError::InvalidJson(e.to_string());
                if count == 0 {
                    return Err(error);
                }
                // A stream of documents with a broken tail: keep what was read.
                out.push(Err(error));
                break;
            }
        }
    }
    if count == 0 {
        return Err(ParseError::InvalidJson("the input is empty".to_string()));
    }
    Ok(out)
}

/// Parse one event as the watcher Lambda receives it: an EventBridge event
/// (`detail-type: "AWS API Call via CloudTrail"`) or, leniently, a bare
/// CloudTrail record.
pub fn parse_eventbridge_event(event: &Value) -> Result<Parsed, ParseError> {
    let obj = event.as_object().ok_or_else(|| {
        ParseError::UnrecognisedShape(format!("the event is {}, not an object", kind_of(event)))
    })?;
    if !is_eventbridge_envelope(obj) {
        return parse_record(event, &Envelope::default());
    }
    let detail_type = obj.get("detail-type").and_then(Value::as_str);
    if detail_type.is_some_and(|t| t != EVENTBRIDGE_CLOUDTRAIL_DETAIL_TYPE) {
        return Ok(Parsed::NotAGrantEvent {
            event_name: detail_type.map(str::to_string),
            event_source: obj
                .get("source")
                .and_then(Value::as_str)
                .map(str::to_string),
        });
    }
    let detail = obj.get("detail").unwrap_or(&Value::Null);
    if !detail.is_object() {
        return Err(ParseError::UnrecognisedShape(format!(
            "EventBridge event: detail is {}, not a CloudTrail record",
            kind_of(detail)
        )));
    }
    let envelope = Envelope {
        account: obj
            .get("account")
            .and_then(Value::as_str)
            .map(str::to_string),
        region: obj
            .get("region")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    parse_record(detail, &envelope)
}

/// Epoch milliseconds of an RFC 3339 time (CloudTrail's `eventTime`, the
/// report's timestamps); `None` when it is not one.
pub fn epoch_ms(t: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Gzip (magic bytes) is inflated, plain input passed through; both
/// bounded by `MAX_INPUT_BYTES` (gzip bombs included).
pub(crate) fn decompress(bytes: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, ParseError> {
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(ParseError::TooLarge(format!(
            "{} bytes, more than the {} MiB limit",
            bytes.len(),
            MAX_INPUT_BYTES / (1024 * 1024)
        )));
    }
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Ok(std::borrow::Cow::Borrowed(bytes));
    }
    let mut out = Vec::new();
    // Read one byte past the limit to tell "exactly at" from "over" (gzip bombs).
    flate2::read::MultiGzDecoder::new(bytes)
        .take(MAX_INPUT_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ParseError::BadGzip(e.to_string()))?;
    if out.len() > MAX_INPUT_BYTES {
        return Err(ParseError::TooLarge(format!(
            "decompresses to more than the {} MiB limit",
            MAX_INPUT_BYTES / (1024 * 1024)
        )));
    }
    Ok(std::borrow::Cow::Owned(out))
}

fn is_eventbridge_envelope(obj: &Map<String, Value>) -> bool {
    obj.contains_key("detail-type") || (obj.contains_key("detail") && obj.contains_key("source"))
}

/// One JSON document → its records.
fn parse_value(document: &Value) -> Result<Vec<Result<Parsed, ParseError>>, ParseError> {
    match document {
        Value::Object(obj) if obj.contains_key("Records") => match obj.get("Records") {
            Some(Value::Array(records)) => Ok(records
                .iter()
                .enumerate()
                .map(|(i, record)| {
                    parse_record(record, &Envelope::default()).map_err(|e| in_record(i, e))
                })
                .collect()),
            Some(other) => Err(ParseError::UnrecognisedShape(format!(
                "CloudTrail log file: Records is {}, not a list",
                kind_of(other)
            ))),
            None => Ok(Vec::new()),
        },
        Value::Object(obj) if is_eventbridge_envelope(obj) => {
            Ok(vec![parse_eventbridge_event(document)])
        }
        Value::Object(obj) if obj.contains_key("eventName") || obj.contains_key("eventID") => {
            Ok(vec![parse_record(document, &Envelope::default())])
        }
        Value::Array(items) => Ok(items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let parsed = match item {
                    Value::Object(obj) if is_eventbridge_envelope(obj) => {
                        parse_eventbridge_event(item)
                    }
                    _ => parse_record(item, &Envelope::default()),
                };
                parsed.map_err(|e| in_record(i, e))
            })
            .collect()),
        Value::Object(_) => Err(ParseError::UnrecognisedShape(
            "a JSON object without Records, detail-type or eventName".to_string(),
        )),
        other => Err(ParseError::UnrecognisedShape(format!(
            "the document is {}, not an object",
            kind_of(other)
        ))),
    }
}

/// Say which record of a list an unlocated error comes from.
fn in_record(index: usize, error: ParseError) -> ParseError {
    match error {
        ParseError::UnrecognisedShape(msg) => {
            ParseError::UnrecognisedShape(format!("record {index}: {msg}"))
        }
        other => other,
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The stable id of a record: `sha256:` + the lower-case hex SHA-256 of the
/// record's canonical JSON (object keys sorted by their UTF-8 bytes, no
/// whitespace, strings escaped as `serde_json` escapes them, numbers as
/// `serde_json` prints them). Used as the event id of a record without
/// `eventID`. Pinned by a golden test: it must never change between
/// releases (the ledger and the never-silent path key on it).
pub fn record_hash(record: &Value) -> String {
    use sha2::{Digest, Sha256};
    let mut canonical = String::new();
    write_canonical(record, &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in digest.iter() {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Canonical JSON: sorted keys, no whitespace (independent of whether
/// `serde_json` preserves insertion order in this build).
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Fallbacks from an EventBridge envelope.
#[derive(Default)]
struct Envelope {
    account: Option<String>,
    region: Option<String>,
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// The caller's fields of a CloudTrail record, as serde reads them.
/// Lenient like the rest: a field of the wrong type (an ARN as a number,
/// `sessionContext` as a string) counts as absent, unknown fields are
/// ignored, and a missing `userIdentity` is an unknown caller.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CallerFields {
    #[serde(rename = "userIdentity")]
    identity: Lenient<UserIdentity>,
    #[serde(rename = "sourceIPAddress", deserialize_with = "loose")]
    source_ip: Option<String>,
    #[serde(rename = "userAgent", deserialize_with = "loose")]
    user_agent: Option<String>,
    #[serde(rename = "sessionCredentialFromConsole", deserialize_with = "flag")]
    from_console: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct UserIdentity {
    #[serde(deserialize_with = "loose")]
    arn: Option<String>,
    #[serde(rename = "type", deserialize_with = "loose")]
    identity_type: Option<String>,
    #[serde(deserialize_with = "loose")]
    account_id: Option<String>,
    #[serde(deserialize_with = "loose")]
    invoked_by: Option<String>,
    #[serde(deserialize_with = "loose")]
    principal_id: Option<String>,
    session_context: Lenient<SessionContext>,
    #[serde(deserialize_with = "flag")]
    session_credential_from_console: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct SessionContext {
    session_issuer: Lenient<SessionIssuer>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SessionIssuer {
    #[serde(deserialize_with = "loose")]
    arn: Option<String>,
}

/// An object field that is the default when it has another shape.
#[derive(Debug, Default)]
struct Lenient<T>(T);

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Ok(Lenient(T::deserialize(value).unwrap_or_default()))
    }
}

/// A string, or absent when it is anything else (cosmetic fields: not
/// worth failing a record for).
fn loose<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

/// `true` or `"true"` (any case); anything else is false.
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(truthy(Some(&Value::deserialize(d)?)))
}

fn parse_caller(record: &Map<String, Value>) -> Caller {
    // A map of JSON values always deserializes: every field is lenient.
    let fields = CallerFields::deserialize(record).unwrap_or_default();
    let identity = fields.identity.0;
    Caller {
        arn: identity.arn,
        identity_type: identity.identity_type,
        account: identity.account_id,
        invoked_by: identity.invoked_by,
        principal_id: identity.principal_id,
        session_issuer_arn: identity.session_context.0.session_issuer.0.arn,
        from_console: fields.from_console || identity.session_credential_from_console,
        source_ip: fields.source_ip,
        user_agent: fields.user_agent,
    }
}

/// One CloudTrail record → a grant event, or "not a grant event".
fn parse_record(record: &Value, envelope: &Envelope) -> Result<Parsed, ParseError> {
    let obj = record.as_object().ok_or_else(|| {
        ParseError::UnrecognisedShape(format!("the record is {}, not an object", kind_of(record)))
    })?;
    let event_name = obj.get("eventName").and_then(Value::as_str);
    let event_source = obj.get("eventSource").and_then(Value::as_str);
    let not_grant = || Parsed::NotAGrantEvent {
        event_name: event_name.map(str::to_string),
        event_source: event_source.map(str::to_string),
    };
    if event_name.is_none() && event_source.is_none() {
        return Err(ParseError::UnrecognisedShape(
            "the record has neither eventName nor eventSource".to_string(),
        ));
    }
    let Some(action) = event_name.and_then(GrantAction::from_event_name) else {
        return Ok(not_grant());
    };
    if event_source.is_some_and(|s| !s.starts_with("kms.")) {
        return Ok(not_grant());
    }
    let event_id = obj
        .get("eventID")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let bad = |event_id: &str, problem: String| ParseError::BadGrantEvent {
        event_name: action.as_str().to_string(),
        event_id: event_id.to_string(),
        problem,
    };
    // A record without an id (older trails, hand-built records) gets the
    // stable hash of its content, so a retry is still recognised.
    let hashed;
    let event_id = match event_id {
        Some(id) => id,
        None => {
            hashed = record_hash(record);
            hashed.as_str()
        }
    };
    parse_grant_record(obj, action, event_id, envelope)
        .map(|event| Parsed::Grant(Box::new(event)))
        .map_err(|problem| bad(event_id, problem))
}

fn parse_grant_record(
    obj: &Map<String, Value>,
    action: GrantAction,
    event_id: &str,
    envelope: &Envelope,
) -> Result<GrantEvent, String> {
    let caller = parse_caller(obj);
    // Every field is a `Field`, which never fails to deserialize.
    let fields = RecordFields::deserialize(obj).unwrap_or_default();
    let error_code = fields.error_code.loose().filter(|s| !s.is_empty());
    let failed = error_code.is_some();
    let request = fields
        .request
        .strict("requestParameters", "an object")?
        .map(|Object(request)| request);
    let response = fields
        .response
        .loose()
        .map(|Object(ids)| ids)
        .unwrap_or_default();
    let additional = fields
        .additional
        .loose()
        .map(|Object(ids)| ids)
        .unwrap_or_default();
    let has_request = request.is_some();
    let mut req = request.unwrap_or_default();

    let account = fields
        .recipient_account
        .loose()
        .or_else(|| caller.account.clone())
        .or_else(|| envelope.account.clone());
    let region = fields.region.loose().or_else(|| envelope.region.clone());

    // The key: as the request named it, else the response's or the resources' ARN.
    let requested_key = take(&mut req.key_id)
        .strict("requestParameters.keyId", "a string")?
        .filter(|k| !k.trim().is_empty());
    let response_key = response.key_id.loose();
    let resource_key = fields
        .resources
        .loose()
        .into_iter()
        .flatten()
        .filter_map(|resource| resource.loose()?.0.arn.loose())
        .find(|arn| principal::is_key_arn(arn));
    let key = requested_key
        .as_ref()
        .or(response_key.as_ref())
        .or(resource_key.as_ref())
        .cloned();
    let partition = caller.arn.as_deref().and_then(principal::arn_partition);
    // KMS writes the response's and resources' key ARN itself: prefer them
    // to what the caller typed.
    let key_arn = [&response_key, &resource_key, &requested_key]
        .into_iter()
        .flatten()
        .find(|k| principal::is_key_arn(k))
        .cloned()
        .or_else(|| {
            key.as_deref().and_then(|k| {
                principal::key_arn_for(k, region.as_deref(), account.as_deref(), partition)
            })
        });

    let grant_id = [
        response.grant_id,
        take(&mut req.grant_id),
        additional.grant_id,
    ]
    .into_iter()
    .find_map(|id| id.loose().filter(|s| !s.is_empty()));
    let used_grant_token = take(&mut req.grant_tokens)
        .loose()
        .is_some_and(|tokens| !tokens.is_empty())
        || take(&mut req.grant_token)
            .loose()
            .is_some_and(|t| !t.is_empty());
    let dry_run = req.dry_run;

    let grant = match action {
        GrantAction::CreateGrant if has_request => Some(grant_facts(req, failed)?),
        GrantAction::CreateGrant if failed => Some(GrantFacts::default()),
        GrantAction::CreateGrant => return Err("CreateGrant without requestParameters".to_string()),
        GrantAction::RetireGrant | GrantAction::RevokeGrant => None,
    };
    if action.is_removal() && !failed && grant_id.is_none() && !used_grant_token {
        return Err(format!(
            "{} names no grant (no grantId in requestParameters, responseElements or additionalEventData)",
            action.as_str()
        ));
    }

    Ok(GrantEvent {
        event_id: event_id.to_string(),
        action,
        event_time: fields.event_time.loose(),
        account,
        region,
        event_version: fields.event_version.loose(),
        caller,
        key,
        key_arn,
        grant_id,
        grant,
        dry_run,
        error_code,
        error_message: fields.error_message.loose(),
        used_grant_token,
        shared_event_id: fields
            .shared_event_id
            .loose()
            .filter(|s| !s.trim().is_empty()),
    })
}

/// A CreateGrant's `requestParameters` → the grant's facts. `failed`
/// relaxes the fields a successful call must have.
fn grant_facts(req: RequestFields, failed: bool) -> Result<GrantFacts, String> {
    let operations = match req.operations {
        Field::Present(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, op)| {
                op.required(&format!("requestParameters.operations[{i}]"), "a string")
                    .map(|op| Operation::parse(&op))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Field::Absent if failed => Vec::new(),
        // Older event versions leave operations out: judged as unknown
        // operations (conservatively), never refused.
        Field::Absent => vec![Operation::Unknown(OPERATIONS_NOT_RECORDED.to_string())],
        Field::Wrong(kind) => {
            return Err(format!(
                "requestParameters.operations is {kind}, not a list"
            ))
        }
    };
    let constraints = req
        .constraints
        .strict("requestParameters.constraints", "an object")?
        .map(|Object(map)| constraints(map))
        .transpose()?;
    let principal = |field: Field<String>, name: &str| {
        field.strict(&format!("requestParameters.{name}"), "a string")
    };
    Ok(GrantFacts {
        grantee: principal(req.grantee_principal, "granteePrincipal")?,
        grantee_service_principal: principal(
            req.grantee_service_principal,
            "granteeServicePrincipal",
        )?,
        retiring_principal: principal(req.retiring_principal, "retiringPrincipal")?,
        retiring_service_principal: principal(
            req.retiring_service_principal,
            "retiringServicePrincipal",
        )?,
        operations,
        constraints,
        name: req.name.loose(),
    })
}

/// `requestParameters.constraints`, whose keys come in any case
/// (CloudTrail writes `encryptionContextEquals`, the API
/// `EncryptionContextEquals`): the keys are lower-cased first, an exact
/// spelling winning over another case of the same name.
fn constraints(map: Map<String, Value>) -> Result<Constraints, String> {
    const NAMES: [&str; 3] = [
        "encryptionContextEquals",
        "encryptionContextSubset",
        "sourceArn",
    ];
    let mut lowered = Map::new();
    let (exact, other): (Vec<_>, Vec<_>) = map
        .into_iter()
        .partition(|(k, _)| NAMES.contains(&k.as_str()));
    for (key, value) in exact.into_iter().chain(other) {
        lowered.entry(key.to_ascii_lowercase()).or_insert(value);
    }
    let fields = ConstraintFields::deserialize(&lowered).unwrap_or_default();
    let context = |field: Field<BTreeMap<String, Field<String>>>, name: &str| {
        let path = format!("requestParameters.constraints.{name}");
        field
            .strict(&path, "an object")?
            .map(|pairs| {
                pairs
                    .into_iter()
                    .map(|(k, v)| {
                        Ok((
                            k.clone(),
                            v.required(&format!("{path}[{k:?}]"), "a string")?,
                        ))
                    })
                    .collect::<Result<BTreeMap<_, _>, String>>()
            })
            .transpose()
    };
    Ok(Constraints {
        encryption_context_equals: context(fields.equals, NAMES[0])?,
        encryption_context_subset: context(fields.subset, NAMES[1])?,
        source_arn: fields
            .source_arn
            .strict("requestParameters.constraints.sourceArn", "a string")?,
    })
}

/// The fields of a grant record grantwatch reads besides the caller's
/// ([`CallerFields`]). Each is a [`Field`]: serde reads the shapes, and
/// `parse_grant_record` decides which wrong shape fails the record (with
/// the field's path) and which is only ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RecordFields {
    #[serde(rename = "eventTime")]
    event_time: Field<String>,
    #[serde(rename = "eventVersion")]
    event_version: Field<String>,
    #[serde(rename = "recipientAccountId")]
    recipient_account: Field<String>,
    #[serde(rename = "awsRegion")]
    region: Field<String>,
    #[serde(rename = "errorCode")]
    error_code: Field<String>,
    #[serde(rename = "errorMessage")]
    error_message: Field<String>,
    #[serde(rename = "sharedEventID")]
    shared_event_id: Field<String>,
    #[serde(rename = "requestParameters")]
    request: Field<Object<RequestFields>>,
    #[serde(rename = "responseElements")]
    response: Field<Object<IdFields>>,
    #[serde(rename = "additionalEventData")]
    additional: Field<Object<IdFields>>,
    resources: Field<Vec<Field<Object<ResourceFields>>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RequestFields {
    key_id: Field<String>,
    grantee_principal: Field<String>,
    grantee_service_principal: Field<String>,
    retiring_principal: Field<String>,
    retiring_service_principal: Field<String>,
    operations: Field<Vec<Field<String>>>,
    constraints: Field<Object<Map<String, Value>>>,
    name: Field<String>,
    #[serde(deserialize_with = "flag")]
    dry_run: bool,
    grant_id: Field<String>,
    grant_tokens: Field<Vec<Value>>,
    grant_token: Field<String>,
}

/// `responseElements` and `additionalEventData`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct IdFields {
    key_id: Field<String>,
    grant_id: Field<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ResourceFields {
    #[serde(rename = "ARN")]
    arn: Field<String>,
}

/// `requestParameters.constraints`, keys lower-cased.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ConstraintFields {
    #[serde(rename = "encryptioncontextequals")]
    equals: Field<BTreeMap<String, Field<String>>>,
    #[serde(rename = "encryptioncontextsubset")]
    subset: Field<BTreeMap<String, Field<String>>>,
    #[serde(rename = "sourcearn")]
    source_arn: Field<String>,
}

/// A field as serde reads it: absent (or `null`), of the expected type, or
/// of another type, whose kind the error names. It never fails to
/// deserialize: whether a wrong shape fails the record is decided where
/// the field's path is known ([`Field::strict`], [`Field::loose`]).
#[derive(Debug, Default)]
enum Field<T> {
    #[default]
    Absent,
    Present(T),
    Wrong(&'static str),
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Field<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        if value.is_null() {
            return Ok(Field::Absent);
        }
        let kind = kind_of(&value);
        Ok(T::deserialize(value).map_or(Field::Wrong(kind), Field::Present))
    }
}

impl<T> Field<T> {
    /// The value, `None` when absent, an error naming `path` and what it
    /// holds when it has another type.
    fn strict(self, path: &str, expected: &str) -> Result<Option<T>, String> {
        match self {
            Field::Absent => Ok(None),
            Field::Present(value) => Ok(Some(value)),
            Field::Wrong(kind) => Err(format!("{path} is {kind}, not {expected}")),
        }
    }

    /// The value; absent or `null` is an error too.
    fn required(self, path: &str, expected: &str) -> Result<T, String> {
        self.strict(path, expected)?
            .ok_or_else(|| format!("{path} is null, not {expected}"))
    }

    /// The value, or `None` when it has another type (fields not worth
    /// failing a record for).
    fn loose(self) -> Option<T> {
        match self {
            Field::Present(value) => Some(value),
            Field::Absent | Field::Wrong(_) => None,
        }
    }
}

/// A JSON object read as `T`: serde would also build a struct from a list.
#[derive(Debug, Default)]
struct Object<T>(T);

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            value @ Value::Object(_) => T::deserialize(value).map(Object).map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "{} is not an object",
                kind_of(&other)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(v: Value) -> Result<Parsed, ParseError> {
        let mut out = parse_document(v.to_string().as_bytes()).expect("document");
        assert_eq!(out.len(), 1);
        out.remove(0)
    }

    fn grant(v: Value) -> GrantEvent {
        match one(v) {
            Ok(Parsed::Grant(e)) => *e,
            other => panic!("expected a grant event, got {other:?}"),
        }
    }

    fn create_grant() -> Value {
        json!({
            "eventVersion": "1.11",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice", "accountId": "111122223333"},
            "eventTime": "2026-11-28T10:00:00Z",
            "eventSource": "kms.amazonaws.com",
            "eventName": "CreateGrant",
            "awsRegion": "us-east-1",
            "sourceIPAddress": "198.51.100.7",
            "userAgent": "aws-cli/2.15.0",
            "requestParameters": {
                "keyId": "1234abcd-12ab-34cd-56ef-1234567890ab",
                "granteePrincipal": "arn:aws:iam::111122223333:role/app",
                "operations": ["Decrypt", "FutureOp"],
                "constraints": {"encryptionContextSubset": {"app": "x"}},
                "someNewField": {"nested": true}
            },
            "responseElements": {"grantId": "g1"},
            "eventID": "e1",
            "recipientAccountId": "111122223333"
        })
    }

    #[test]
    fn the_caller_is_read_leniently() {
        let mut v = create_grant();
        v["userIdentity"] = json!({
            "type": "AssumedRole", "arn": 42, "accountId": ["x"], "principalId": "AROAEXAMPLE:s",
            "sessionContext": {"sessionIssuer": {"arn": "arn:aws:iam::111122223333:role/Admin", "type": "Role"},
                               "attributes": {"creationDate": "2026-11-28T09:00:00Z"}},
            "sessionCredentialFromConsole": "TRUE", "somethingNew": {"a": 1}
        });
        v["userAgent"] = json!({"not": "a string"});
        let c = grant(v.clone()).caller;
        assert_eq!(c.identity_type.as_deref(), Some("AssumedRole"));
        assert_eq!((c.arn, c.account, c.user_agent), (None, None, None));
        assert_eq!(c.principal_id.as_deref(), Some("AROAEXAMPLE:s"));
        assert_eq!(
            c.session_issuer_arn.as_deref(),
            Some("arn:aws:iam::111122223333:role/Admin")
        );
        assert!(c.from_console);
        assert_eq!(c.source_ip.as_deref(), Some("198.51.100.7"));
        // A session context of another shape, or no userIdentity at all: an
        // unknown caller, never a failed record.
        v["userIdentity"]["sessionContext"] = json!("opaque");
        assert_eq!(grant(v.clone()).caller.session_issuer_arn, None);
        v["userIdentity"] = json!(null);
        let c = grant(v).caller;
        assert_eq!((c.identity_type, c.from_console), (None, false));
    }

    #[test]
    fn bare_create_grant_with_bare_key_id() {
        let e = grant(create_grant());
        assert_eq!(e.action, GrantAction::CreateGrant);
        assert_eq!(
            e.key.as_deref(),
            Some("1234abcd-12ab-34cd-56ef-1234567890ab")
        );
        assert_eq!(
            e.key_arn.as_deref(),
            Some("arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab")
        );
        let g = e.grant.unwrap();
        assert_eq!(
            g.operations,
            vec![Operation::Decrypt, Operation::Unknown("FutureOp".into())]
        );
        assert_eq!(g.constraints.unwrap().context_value("APP"), Some("x"));
        assert_eq!(e.grant_id.as_deref(), Some("g1"));
    }

    #[test]
    fn eventbridge_and_log_file_and_gzip() {
        let eb = json!({"version": "0", "detail-type": "AWS API Call via CloudTrail", "source": "aws.kms",
                        "account": "111122223333", "region": "us-east-1", "detail": create_grant()});
        assert!(matches!(parse_eventbridge_event(&eb), Ok(Parsed::Grant(_))));
        assert!(matches!(one(eb), Ok(Parsed::Grant(_))));
        let log = json!({"Records": [create_grant(), {"eventName": "Decrypt", "eventSource": "kms.amazonaws.com", "eventID": "x"}]});
        let out = parse_document(log.to_string().as_bytes()).unwrap();
        assert!(matches!(out[0], Ok(Parsed::Grant(_))));
        assert!(matches!(out[1], Ok(Parsed::NotAGrantEvent { .. })));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, log.to_string().as_bytes()).unwrap();
        let out = parse_document(&gz.finish().unwrap()).unwrap();
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn other_eventbridge_detail_types_are_not_grant_events() {
        let eb = json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
        assert!(matches!(
            parse_eventbridge_event(&eb),
            Ok(Parsed::NotAGrantEvent { .. })
        ));
    }

    #[test]
    fn retire_grant_with_null_request_parameters() {
        let e = grant(json!({
            "eventName": "RetireGrant", "eventSource": "kms.amazonaws.com", "eventID": "r1",
            "awsRegion": "us-east-1", "recipientAccountId": "111122223333",
            "requestParameters": null, "responseElements": null,
            "additionalEventData": {"grantId": "g1"},
            "resources": [{"accountId": "111122223333", "type": "AWS::KMS::Key",
                           "ARN": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}]
        }));
        assert_eq!(e.grant_id.as_deref(), Some("g1"));
        assert_eq!(
            e.key_arn.as_deref(),
            Some("arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab")
        );
        assert!(e.grant.is_none());
    }

    #[test]
    fn partition_comes_from_the_caller() {
        let mut v = create_grant();
        v["userIdentity"]["arn"] = json!("arn:aws-us-gov:iam::111122223333:user/alice");
        v["awsRegion"] = json!("us-gov-west-1");
        let e = grant(v);
        assert!(e
            .key_arn
            .unwrap()
            .starts_with("arn:aws-us-gov:kms:us-gov-west-1:"));
    }

    #[test]
    fn aliases_keep_the_key_but_have_no_arn() {
        let mut v = create_grant();
        v["requestParameters"]["keyId"] = json!("alias/payments");
        let e = grant(v);
        assert_eq!(e.key.as_deref(), Some("alias/payments"));
        assert_eq!(e.key_arn, None);
    }

    #[test]
    fn service_principal_grant_2026() {
        let mut v = create_grant();
        let req = v["requestParameters"].as_object_mut().unwrap();
        req.remove("granteePrincipal");
        req.insert(
            "granteeServicePrincipal".into(),
            json!("logs.us-east-1.amazonaws.com"),
        );
        req.insert(
            "retiringServicePrincipal".into(),
            json!("logs.us-east-1.amazonaws.com"),
        );
        req.insert(
            "constraints".into(),
            json!({"sourceArn": "arn:aws:logs:us-east-1:111122223333:log-group:x"}),
        );
        let g = grant(v).grant.unwrap();
        assert_eq!(g.effective_grantee(), Some("logs.us-east-1.amazonaws.com"));
        assert_eq!(
            g.constraints.unwrap().source_arn.as_deref(),
            Some("arn:aws:logs:us-east-1:111122223333:log-group:x")
        );
    }

    #[test]
    fn failed_and_dry_run_calls() {
        let mut v = create_grant();
        v["errorCode"] = json!("DryRunOperationException");
        v["requestParameters"]["dryRun"] = json!(true);
        v["responseElements"] = Value::Null;
        let e = grant(v);
        assert!(e.dry_run);
        assert!(!e.succeeded());
        assert_eq!(e.grant_id, None);
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let mut v = create_grant();
        v["requestParameters"] = Value::Null;
        let e = one(v).unwrap_err().to_string();
        assert!(
            e.contains("CreateGrant")
                && e.contains("e1")
                && e.contains("without requestParameters"),
            "{e}"
        );

        let mut v = create_grant();
        v["requestParameters"]["operations"] = json!("Decrypt");
        let e = one(v).unwrap_err().to_string();
        assert!(e.contains("operations is a string, not a list"), "{e}");

        let mut v = create_grant();
        v["requestParameters"]["constraints"] = json!({"encryptionContextEquals": {"k": 1}});
        assert!(one(v).unwrap_err().to_string().contains("not a string"));

        let e = parse_document(br#"{"Records": 3}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("Records is a number"), "{e}");
        assert!(matches!(
            parse_document(b"{not json"),
            Err(ParseError::InvalidJson(_))
        ));
        assert!(matches!(
            parse_document(b""),
            Err(ParseError::InvalidJson(_))
        ));
        assert!(matches!(parse_document(b"[1]"), Ok(v) if v[0].is_err()));
        assert!(matches!(
            parse_document(b"{\"a\": 1}"),
            Err(ParseError::UnrecognisedShape(_))
        ));
    }

    #[test]
    fn shapes_serde_would_accept_are_still_named_errors() {
        // A struct deserializes from a list too: requestParameters must be an object.
        let mut v = create_grant();
        v["requestParameters"] = json!([]);
        let e = one(v).unwrap_err().to_string();
        assert!(
            e.contains("requestParameters is a list, not an object"),
            "{e}"
        );

        let mut v = create_grant();
        v["requestParameters"]["operations"] = json!(["Decrypt", null]);
        let e = one(v).unwrap_err().to_string();
        assert!(e.contains("operations[1] is null, not a string"), "{e}");

        let mut v = create_grant();
        v["requestParameters"]["granteePrincipal"] = json!(7);
        let e = one(v).unwrap_err().to_string();
        assert!(
            e.contains("requestParameters.granteePrincipal is a number, not a string"),
            "{e}"
        );

        let mut v = create_grant();
        v["requestParameters"]["constraints"] = json!({"sourceArn": ["x"]});
        let e = one(v).unwrap_err().to_string();
        assert!(
            e.contains("constraints.sourceArn is a list, not a string"),
            "{e}"
        );
    }

    #[test]
    fn constraint_keys_in_any_case_and_the_exact_spelling_wins() {
        let mut v = create_grant();
        v["requestParameters"]["constraints"] = json!({
            "ENCRYPTIONCONTEXTSUBSET": {"a": "1"},
            "EncryptionContextEquals": {"b": "2"},
            "encryptionContextEquals": {"c": "3"},
        });
        let constraints = grant(v)
            .grant
            .and_then(|g| g.constraints)
            .expect("constraints");
        assert_eq!(
            constraints.encryption_context_subset,
            Some(BTreeMap::from([("a".to_string(), "1".to_string())]))
        );
        assert_eq!(
            constraints.encryption_context_equals,
            Some(BTreeMap::from([("c".to_string(), "3".to_string())]))
        );
    }

    #[test]
    fn wrong_shapes_of_cosmetic_fields_are_ignored() {
        let mut v = create_grant();
        v["eventTime"] = json!(12);
        v["responseElements"] = json!("grantId");
        v["requestParameters"]["name"] = json!({"x": 1});
        v["requestParameters"]["dryRun"] = json!("TRUE");
        let event = grant(v);
        assert_eq!(event.event_time, None);
        assert_eq!(event.grant.and_then(|g| g.name), None);
        assert!(event.dry_run);
    }

    #[test]
    fn record_hash_is_pinned() {
        // Golden values: these must never change between releases.
        assert_eq!(
            record_hash(&json!({})),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let record = json!({"eventName": "CreateGrant", "b": [1, 2.5, "x\u{e9}\"", null, true],
                            "a": {"z": 1, "y": {}}});
        let reordered = json!({"a": {"y": {}, "z": 1}, "eventName": "CreateGrant",
                               "b": [1, 2.5, "x\u{e9}\"", null, true]});
        let mut canonical = String::new();
        write_canonical(&record, &mut canonical);
        assert_eq!(
            canonical,
            "{\"a\":{\"y\":{},\"z\":1},\"b\":[1,2.5,\"x\u{e9}\\\"\",null,true],\"eventName\":\"CreateGrant\"}"
        );
        assert_eq!(record_hash(&record), record_hash(&reordered));
        assert_eq!(
            record_hash(&record),
            "sha256:dfffe8d781d2b4d6cd23930967d66a8223fcc8f53506e6c521e1b7ed1a1566e4"
        );
        assert_ne!(
            record_hash(&record),
            record_hash(&json!({"eventName": "CreateGrant"}))
        );
    }

    #[test]
    fn a_record_without_event_id_gets_its_hash_as_id() {
        let mut v = create_grant();
        v.as_object_mut().unwrap().remove("eventID");
        let e = grant(v.clone());
        assert_eq!(e.event_id, record_hash(&v));
        assert!(e.event_id.starts_with("sha256:") && e.event_id.len() == 7 + 64);
        // Through EventBridge the id is the hash of the CloudTrail record (detail).
        let eb = json!({"detail-type": "AWS API Call via CloudTrail", "source": "aws.kms", "detail": v.clone()});
        match parse_eventbridge_event(&eb) {
            Ok(Parsed::Grant(g)) => assert_eq!(g.event_id, record_hash(&v)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn shared_event_id_is_kept() {
        let mut v = create_grant();
        v["sharedEventID"] = json!("57f5dbee-16da-413e-979f-2c4c6663475e");
        assert_eq!(
            grant(v).shared_event_id.as_deref(),
            Some("57f5dbee-16da-413e-979f-2c4c6663475e")
        );
        assert_eq!(grant(create_grant()).shared_event_id, None);
    }

    #[test]
    fn revoke_without_grant_id_is_an_error() {
        let e = one(
            json!({"eventName": "RevokeGrant", "eventSource": "kms.amazonaws.com", "eventID": "v1",
                           "requestParameters": {"keyId": "k"}}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("names no grant"), "{e}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            parse_document(deep.as_bytes()),
            Err(ParseError::InvalidJson(_))
        ));
        let deep_field = format!(
            "{{\"eventName\":\"CreateGrant\",\"x\":{}{}}}",
            "{\"a\":".repeat(50_000),
            "}".repeat(50_000)
        );
        assert!(parse_document(deep_field.as_bytes()).is_err());
    }

    #[test]
    fn gzip_bombs_and_bad_gzip_are_refused() {
        // 65 MiB of zeros compresses to ~65 KiB.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let chunk = vec![b' '; 1024 * 1024];
        for _ in 0..65 {
            std::io::Write::write_all(&mut gz, &chunk).unwrap();
        }
        let bomb = gz.finish().unwrap();
        assert!(matches!(
            parse_document(&bomb),
            Err(ParseError::TooLarge(_))
        ));
        assert!(matches!(
            parse_document(&[0x1f, 0x8b, 1, 2, 3]),
            Err(ParseError::BadGzip(_))
        ));
    }

    #[test]
    fn several_documents_in_one_input() {
        let text = format!("{}\n{}\n", create_grant(), create_grant());
        assert_eq!(parse_document(text.as_bytes()).unwrap().len(), 2);
    }
}
