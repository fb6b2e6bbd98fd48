//! Request extraction whose every failure is an [`ApiError`] in the JSON
//! error body, naming the offending field where there is one.

use std::{future::Future, pin::Pin};

use actix_web::{
    FromRequest, HttpRequest,
    dev::Payload,
    error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError},
    http::header,
    web,
};
use serde::de::DeserializeOwned;

use crate::ApiError;

/// A JSON request body, like `web::Json`, but a bad body says which field is
/// wrong: malformed JSON is a 400 `malformed_json`; a missing field or a
/// value of the wrong type or range is a 422 naming the field's path
/// (`contact.phone`, `fixes[3].lat`).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T> JsonBody<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(req, payload);
        Box::pin(async move {
            let (content_type_ok, bytes) = body.await?;
            if !content_type_ok {
                return Err(unsupported_content_type());
            }
            parse_json(&bytes).map(JsonBody)
        })
    }
}

/// The body's bytes (within the configured limit) and whether its content
/// type says JSON.
fn read_body(
    req: &HttpRequest,
    payload: &mut Payload,
) -> impl Future<Output = Result<(bool, web::Bytes), ApiError>> + use<> {
    let content_type_ok = is_json(req);
    let limit = req
        .app_data::<BodyLimit>()
        .map_or(DEFAULT_BODY_LIMIT, |l| l.0);
    let bytes = web::Bytes::from_request(req, payload);
    async move {
        let bytes = bytes.await.map_err(|e| payload_error(e, limit))?;
        Ok((content_type_ok, bytes))
    }
}

/// An optional JSON body: none at all (empty) is `None`; one that is there
/// is read exactly as [`JsonBody`] reads it, so a bad one is still refused
/// (never silently dropped).
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub Option<T>);

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(req, payload);
        Box::pin(async move {
            let (content_type_ok, bytes) = body.await?;
            if bytes.is_empty() {
                return Ok(OptionalJsonBody(None));
            }
            if !content_type_ok {
                return Err(unsupported_content_type());
            }
            parse_json(&bytes).map(|v| OptionalJsonBody(Some(v)))
        })
    }
}

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let mime = v.split(';').next().unwrap_or("").trim();
            mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")
        })
        .unwrap_or(false)
}

fn unsupported_content_type() -> ApiError {
    ApiError::BadRequest {
        code: "unsupported_content_type".into(),
        message: "the body must be JSON (Content-Type: application/json)".into(),
        field: None,
    }
}

/// Deserialises JSON, mapping failures to the contract's errors. Text
/// holding a control character is refused first ([`control_characters`]).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    control_characters(bytes)?;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        json_error(&path, &inner)
    })?;
    de.end().map_err(|err| json_error(".", &err))?;
    Ok(value)
}

/// Whether `c` may not appear in text we take in: every control character
/// (C0 with NUL, DEL, C1) but tab, line feed and carriage return, which
/// multi-line text (notes, a visit record) legitimately holds. PostgreSQL
/// refuses NUL in text outright; the others garble logs, CSV exports and
/// screens.
pub fn forbidden_char(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// The one check of text coming in as JSON (HTTP bodies and WebSocket
/// frames): a string or object key holding a [`forbidden_char`] is a 422
/// `control_character` naming the field's path (`contact.name`,
/// `fixes[2].note`, `answers` for a key). A quick scan of the raw bytes
/// finds the (rare) bodies that need the full look.
pub fn control_characters(bytes: &[u8]) -> Result<(), ApiError> {
    match control_character_field(bytes) {
        Some(path) => Err(control_character_error(path)),
        None => Ok(()),
    }
}

/// The path of the first string or key of the JSON in `bytes` holding a
/// [`forbidden_char`] (`""` for the top level); `None` if there is none
/// or `bytes` is not JSON (the parse that follows says so).
pub fn control_character_field(bytes: &[u8]) -> Option<String> {
    if !may_hold_control_characters(bytes) {
        return None;
    }
    let value = serde_json::from_slice::<serde_json::Value>(bytes).ok()?;
    control_character_path(&value)
}

/// The 422 of text holding a control character at `path`.
pub fn control_character_error(path: String) -> ApiError {
    ApiError::Unprocessable {
        code: "control_character".into(),
        message: format!(
            "`{}` must not contain control characters (NUL and the like)",
            if path.is_empty() { "the body" } else { &path }
        ),
        field: (!path.is_empty()).then_some(path),
    }
}

/// The path of the first string or key in `value` holding a
/// [`forbidden_char`] (`""` for the top level), if any.
pub fn control_character_path(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    fn join(parent: &str, key: &str) -> String {
        if parent.is_empty() {
            key.to_owned()
        } else {
            format!("{parent}.{key}")
        }
    }
    fn walk(value: &Value, path: &str) -> Option<String> {
        match value {
            Value::String(s) => s.chars().any(forbidden_char).then(|| path.to_owned()),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, v)| walk(v, &format!("{path}[{i}]"))),
            Value::Object(map) => map.iter().find_map(|(k, v)| {
                if k.chars().any(forbidden_char) {
                    Some(path.to_owned())
                } else {
                    walk(v, &join(path, k))
                }
            }),
            _ => None,
        }
    }
    walk(value, "")
}

/// Whether raw JSON may carry a forbidden character: an escape of a C0
/// control other than `\t` `\n` `\r` (`\u0000`–`\u001f`, `\b`, `\f`), of
/// DEL or C1 (`\u007f`–`\u009f`), or those raw (DEL; C1 as UTF-8 `C2 80`–`C2 9F`).
/// Raw C0 bytes inside strings are not JSON, and the parser refuses them.
fn may_hold_control_characters(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                match bytes.get(i + 1) {
                    Some(b'b' | b'f') => return true,
                    Some(b'u') => {
                        if let Some(hex) = bytes.get(i + 2..i + 6)
                            && let Ok(hex) = std::str::from_utf8(hex)
                            && let Ok(code) = u32::from_str_radix(hex, 16)
                            && let Some(c) = char::from_u32(code)
                            && forbidden_char(c)
                        {
                            return true;
                        }
                    }
                    _ => {}
                }
                // Skip the escaped character (`\\` must not start another escape).
                i += 2;
                continue;
            }
            0x7f => return true,
            0xc2 if bytes.get(i + 1).is_some_and(|b| (0x80..=0x9f).contains(b)) => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

fn json_error(path: &str, err: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::BadRequest {
            code: "malformed_json".into(),
            message: format!("the body is not valid JSON: {err}"),
            field: None,
        },
        Category::Data => {
            let message = strip_position(&err.to_string());
            // serde reports a missing field at its parent's path; name the
            // field itself.
            let field = match missing_field_name(&message) {
                Some(name) if path == "." => name.to_owned(),
                Some(name) => format!("{path}.{name}"),
                None if path == "." => String::new(),
                None => path.to_owned(),
            };
            let code = if message.starts_with("missing field") {
                "missing_field"
            } else {
                "invalid_field"
            };
            ApiError::Unprocessable {
                code: code.into(),
                message,
                field: (!field.is_empty()).then_some(field),
            }
        }
    }
}

fn missing_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

/// serde_json appends " at line 1 column 42"; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn payload_error(err: actix_web::Error, limit: usize) -> ApiError {
    match err.as_error::<PayloadError>() {
        Some(PayloadError::Overflow) => ApiError::PayloadTooLarge { limit },
        Some(other) => ApiError::bad_request("bad_body", other.to_string()),
        None => ApiError::bad_request("bad_body", err.to_string()),
    }
}

/// The configured request body limit, as app data, so errors can say it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// actix's own default, used when no [`BodyLimit`] is registered.
const DEFAULT_BODY_LIMIT: usize = 256 * 1024;

/// For handlers that use actix's own `web::Json`.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |err, _req| {
            match err {
                JsonPayloadError::Overflow { .. }
                | JsonPayloadError::OverflowKnownLength { .. } => {
                    ApiError::PayloadTooLarge { limit }
                }
                JsonPayloadError::ContentType => ApiError::BadRequest {
                    code: "unsupported_content_type".into(),
                    message: "the body must be JSON (Content-Type: application/json)".into(),
                    field: None,
                },
                JsonPayloadError::Deserialize(e) => json_error(".", &e),
                other => ApiError::bad_request("bad_body", other.to_string()),
            }
            .into()
        })
}

/// Raw bodies (`web::Bytes`, and so [`JsonBody`]) obey the same limit.
pub fn payload_config(limit: usize) -> web::PayloadConfig {
    web::PayloadConfig::new(limit)
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let message = match &err {
            QueryPayloadError::Deserialize(e) => e.to_string(),
            other => other.to_string(),
        };
        ApiError::BadRequest {
            code: "invalid_query".into(),
            message,
            field: None,
        }
        .into()
    })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _req| {
        let message = match &err {
            PathError::Deserialize(e) => e.to_string(),
            other => other.to_string(),
        };
        // A path segment that cannot be an id names nothing that exists.
        ApiError::NotFound(message).into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Contact {
        name: String,
        phone: String,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        service_code: String,
        contact: Contact,
        stars: Option<u8>,
    }

    fn field_of(err: &ApiError) -> Option<&str> {
        err.field()
    }

    #[test]
    fn malformed_json_is_400() {
        let err = parse_json::<Body>(b"{\"service_code\": ").unwrap_err();
        assert_eq!(err.code(), "malformed_json");
        assert!(matches!(err, ApiError::BadRequest { .. }));
    }

    #[test]
    fn trailing_garbage_is_malformed() {
        let err =
            parse_json::<Body>(br#"{"service_code":"x","contact":{"name":"a","phone":"b"}} tail"#)
                .unwrap_err();
        assert_eq!(err.code(), "malformed_json");
    }

    #[test]
    fn missing_top_level_field_is_named() {
        let err = parse_json::<Body>(br#"{"service_code":"x"}"#).unwrap_err();
        assert_eq!(err.code(), "missing_field");
        assert_eq!(field_of(&err), Some("contact"));
    }

    #[test]
    fn missing_nested_field_is_named_with_its_path() {
        let err =
            parse_json::<Body>(br#"{"service_code":"x","contact":{"name":"a"}}"#).unwrap_err();
        assert_eq!(field_of(&err), Some("contact.phone"));
    }

    #[test]
    fn control_characters_are_refused_naming_the_field() {
        let cases: [(&[u8], &str); 6] = [
            (
                br#"{"service_code":"x","contact":{"name":"a\u0000b","phone":"b"}}"#,
                "contact.name",
            ),
            (
                br#"{"service_code":"x\u001B","contact":{"name":"a","phone":"b"}}"#,
                "service_code",
            ),
            (
                br#"{"service_code":"x","contact":{"name":"a","phone":"\b"}}"#,
                "contact.phone",
            ),
            (br#"{"list":["ok","\u007f"]}"#, "list[1]"),
            ("{\"c1\":\"a\u{85}b\"}".as_bytes(), "c1"),
            (br#"{"answers":{"k\u0000":true}}"#, "answers"),
        ];
        for (body, field) in cases {
            let err = parse_json::<serde_json::Value>(body).unwrap_err();
            assert_eq!(err.code(), "control_character", "{field}");
            assert_eq!(field_of(&err), Some(field));
        }
    }

    #[test]
    fn multi_line_text_and_escaped_backslashes_pass() {
        let ok: serde_json::Value =
            parse_json(br#"{"notes":"line 1\nline 2\r\n\tindented","path":"C:\\u0000"}"#).unwrap();
        assert_eq!(ok["path"], "C:\\u0000");
        assert!(!may_hold_control_characters(br#"{"a":"\\b \\f \\u0000"}"#));
    }

    #[test]
    fn wrong_type_is_named() {
        let err = parse_json::<Body>(
            br#"{"service_code":"x","contact":{"name":"a","phone":"b"},"stars":900}"#,
        )
        .unwrap_err();
        assert_eq!(err.code(), "invalid_field");
        assert_eq!(field_of(&err), Some("stars"));
        assert!(!err.to_string().contains("line 1"), "{err}");
    }
}
