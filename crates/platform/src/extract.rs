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
        let content_type_ok = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let mime = v.split(';').next().unwrap_or("").trim();
                mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")
            })
            .unwrap_or(false);
        let limit = req
            .app_data::<BodyLimit>()
            .map_or(DEFAULT_BODY_LIMIT, |l| l.0);
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !content_type_ok {
                return Err(ApiError::BadRequest {
                    code: "unsupported_content_type".into(),
                    message: "the body must be JSON (Content-Type: application/json)".into(),
                    field: None,
                });
            }
            let bytes = bytes.await.map_err(|e| payload_error(e, limit))?;
            parse_json(&bytes).map(JsonBody)
        })
    }
}

/// Deserialises JSON, mapping failures to the contract's errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        json_error(&path, &inner)
    })?;
    de.end().map_err(|err| json_error(".", &err))?;
    Ok(value)
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
