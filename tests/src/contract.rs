//! The served documents as a contract the suite enforces: every HTTP
//! response the helpers receive must match the schema `/openapi.json` gives
//! for its path, method and status, and every WebSocket frame the helpers
//! receive the frame of its `type` in `/asyncapi.json`. So neither document
//! can drift from what the server sends without a test failing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jsonschema::Validator;
use serde_json::{Value, json};

/// The two documents of one running platform, with the validators compiled
/// so far (each at most once).
pub struct Contract {
    openapi: Value,
    asyncapi: Value,
    /// The OpenAPI components with every object closed (see [`closed`]).
    http_components: Value,
    validators: Mutex<HashMap<String, Arc<Validator>>>,
}

impl Contract {
    pub fn new(openapi: Value, asyncapi: Value) -> Self {
        let mut http_components = openapi["components"].clone();
        closed(&mut http_components);
        Self {
            openapi,
            asyncapi,
            http_components,
            validators: Mutex::new(HashMap::new()),
        }
    }

    /// Checks one HTTP response (`path` without the query). `Err` says the
    /// method, path, status and what does not match.
    pub fn check_response(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: Option<&str>,
        body: &str,
    ) -> Result<(), String> {
        let at = format!("{method} {path} → {status}");
        let paths = self.openapi["paths"]
            .as_object()
            .ok_or("the OpenAPI document has no paths")?;
        let operation = template_for(paths.keys().map(String::as_str), path)
            .and_then(|t| Some((t, paths[t].get(method.to_ascii_lowercase())?)));
        let Some((template, operation)) = operation else {
            // Unknown paths and methods get actix's 404/405, in the error body.
            return match status {
                404 | 405 => self.check_json(
                    "#/components/schemas/ErrorBody",
                    &json!({"$ref": "#/components/schemas/ErrorBody"}),
                    body,
                    &at,
                ),
                _ => Err(format!("{at}: no such operation in /openapi.json")),
            };
        };
        let Some(response) = operation["responses"].get(status.to_string()) else {
            return Err(format!(
                "{at}: status {status} is not documented for {method} {template}"
            ));
        };
        let Some(content) = response.get("content").and_then(Value::as_object) else {
            return if body.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{at}: documented without a body, but one came: {}",
                    clip(body)
                ))
            };
        };
        let mime = content_type
            .and_then(|c| c.split(';').next())
            .unwrap_or("")
            .trim();
        let Some(media) = content.get(mime) else {
            return Err(format!(
                "{at}: content type `{mime}` is not documented (documented: {})",
                content.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        };
        if mime != "application/json" {
            return Ok(());
        }
        let key = format!("http {} {template} {status}", method.to_ascii_lowercase());
        self.check_json(&key, &media["schema"], body, &at)
    }

    fn check_json(&self, key: &str, schema: &Value, body: &str, at: &str) -> Result<(), String> {
        let instance: Value = serde_json::from_str(body).map_err(|e| {
            format!(
                "{at}: documented as JSON, but the body is not ({e}): {}",
                clip(body)
            )
        })?;
        let validator = self.validator(key, schema, &self.http_components)?;
        validate(&validator, &instance, at)
    }

    /// Checks one frame received on the socket at `path` (without the
    /// query) against the frame of its `type` the server sends there.
    pub fn check_frame(&self, path: &str, frame: &Value) -> Result<(), String> {
        let kind = frame["type"].as_str().unwrap_or_default();
        let at = format!("frame `{kind}` on {path}");
        let channels = self.asyncapi["channels"]
            .as_object()
            .ok_or("the AsyncAPI document has no channels")?;
        let addresses: HashMap<&str, &str> = channels
            .iter()
            .filter_map(|(key, c)| Some((c["address"].as_str()?, key.as_str())))
            .collect();
        let channel = template_for(addresses.keys().copied(), path)
            .and_then(|a| addresses.get(a).copied())
            .ok_or_else(|| format!("{at}: no channel for {path} in /asyncapi.json"))?;
        let channel_ref = format!("#/channels/{channel}");
        // The messages of the operations in which the server sends.
        let sent = self.asyncapi["operations"]
            .as_object()
            .into_iter()
            .flat_map(|ops| ops.values())
            .filter(|op| op["action"] == "send" && op["channel"]["$ref"] == channel_ref.as_str())
            .flat_map(|op| op["messages"].as_array().cloned().unwrap_or_default());
        for message in sent {
            let message = message["$ref"]
                .as_str()
                .and_then(|r| self.resolve(&self.asyncapi, r))
                .ok_or_else(|| format!("{at}: a dangling message reference in {channel}"))?;
            if message["name"] != kind {
                continue;
            }
            let key = format!("frame {channel} {kind}");
            let validator =
                self.validator(&key, &message["payload"], &self.asyncapi["components"])?;
            return validate(&validator, frame, &at);
        }
        Err(format!(
            "{at}: the server sends no such frame there per /asyncapi.json: {frame}"
        ))
    }

    /// Follows `$ref`s (local ones only) until a non-reference.
    fn resolve<'a>(&self, doc: &'a Value, reference: &str) -> Option<&'a Value> {
        let mut target = doc.pointer(reference.strip_prefix('#')?)?;
        for _ in 0..8 {
            match target["$ref"].as_str() {
                Some(next) => target = doc.pointer(next.strip_prefix('#')?)?,
                None => return Some(target),
            }
        }
        None
    }

    fn validator(
        &self,
        key: &str,
        schema: &Value,
        components: &Value,
    ) -> Result<Arc<Validator>, String> {
        let mut cache = self.validators.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = cache.get(key) {
            return Ok(v.clone());
        }
        // The schema refers to `#/components/…`: give it those as its root's.
        let root = json!({"allOf": [schema], "components": components});
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&root)
            .map_err(|e| format!("{key}: the documented schema does not compile: {e}"))?;
        let validator = Arc::new(validator);
        cache.insert(key.to_owned(), validator.clone());
        Ok(validator)
    }
}

fn validate(validator: &Validator, instance: &Value, at: &str) -> Result<(), String> {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("at `{}`: {e}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{at}: does not match the documented schema:\n  {}\nbody: {}",
            errors.join("\n  "),
            clip(&instance.to_string())
        ))
    }
}

/// The documented template a concrete path matches (`/v1/orders/{id}` for
/// `/v1/orders/0190…`), preferring the one with most literal segments, so
/// `/v1/dispatch/orders/export` would beat `/v1/dispatch/orders/{id}`.
fn template_for<'a>(templates: impl IntoIterator<Item = &'a str>, path: &str) -> Option<&'a str> {
    let segments: Vec<&str> = path.split('/').collect();
    templates
        .into_iter()
        .filter_map(|t| {
            let parts: Vec<&str> = t.split('/').collect();
            if parts.len() != segments.len() {
                return None;
            }
            let mut literal = 0;
            for (part, segment) in parts.iter().zip(&segments) {
                if part.starts_with('{') && part.ends_with('}') {
                    if segment.is_empty() {
                        return None;
                    }
                } else if part == segment {
                    literal += 1;
                } else {
                    return None;
                }
            }
            Some((literal, t))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, t)| t)
}

/// Closes every object schema that lists its properties and says nothing of
/// others (`additionalProperties: false`), so a field the server sends but
/// the document does not name fails too. utoipa leaves them open.
fn closed(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let is_object_schema = map.get("properties").is_some_and(Value::is_object)
                && !map.contains_key("additionalProperties")
                && !map.contains_key("allOf")
                && !map.contains_key("oneOf")
                && !map.contains_key("anyOf");
            if is_object_schema {
                map.insert("additionalProperties".to_owned(), Value::Bool(false));
            }
            for v in map.values_mut() {
                closed(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(closed),
        _ => {}
    }
}

fn clip(text: &str) -> String {
    const MAX: usize = 600;
    if text.len() <= MAX {
        text.to_owned()
    } else {
        let cut = (0..=MAX)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        format!("{}…", &text[..cut])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract() -> Contract {
        let openapi = json!({
            "openapi": "3.1.0",
            "paths": {
                "/v1/orders/{id}": {"get": {"responses": {
                    "200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Order"}}}},
                    "404": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
                }}},
                "/v1/orders/export": {"get": {"responses": {
                    "200": {"content": {"text/csv": {"schema": {"type": "string"}}}}
                }}},
                "/healthz": {"delete": {"responses": {"204": {"description": "gone"}}}}
            },
            "components": {"schemas": {
                "Order": {
                    "type": "object",
                    "required": ["id", "status", "at"],
                    "properties": {
                        "id": {"type": "string"},
                        "status": {"type": "string", "enum": ["pending", "completed"]},
                        "at": {"type": "string", "format": "date-time"},
                        "stars": {"type": ["integer", "null"], "minimum": 1, "maximum": 5}
                    }
                },
                "ErrorBody": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "object", "required": ["code"], "properties": {"code": {"type": "string"}}}}
                }
            }}
        });
        let asyncapi = json!({
            "channels": {"live": {"address": "/v1/orders/{id}/live", "messages": {
                "order": {"$ref": "#/components/messages/order"}
            }}},
            "operations": {"gets": {
                "action": "send",
                "channel": {"$ref": "#/channels/live"},
                "messages": [{"$ref": "#/channels/live/messages/order"}]
            }},
            "components": {
                "messages": {"order": {"name": "order", "payload": {"$ref": "#/components/schemas/OrderFrame"}}},
                "schemas": {"OrderFrame": {
                    "type": "object",
                    "required": ["type", "id"],
                    "properties": {"type": {"const": "order"}, "id": {"type": "string"}}
                }}
            }
        });
        Contract::new(openapi, asyncapi)
    }

    const GOOD: &str =
        r#"{"id":"o-1","status":"pending","at":"2026-11-30T16:00:00Z","stars":null}"#;
    const JSON: Option<&str> = Some("application/json");

    #[test]
    fn a_documented_body_passes() {
        let c = contract();
        c.check_response("GET", "/v1/orders/o-1", 200, JSON, GOOD)
            .expect("valid");
        c.check_response(
            "GET",
            "/v1/orders/o-1",
            404,
            JSON,
            r#"{"error":{"code":"not_found"}}"#,
        )
        .expect("valid");
        c.check_response(
            "GET",
            "/v1/orders/export",
            200,
            Some("text/csv; charset=utf-8"),
            "a,b",
        )
        .expect("a literal segment beats a parameter");
        c.check_response("DELETE", "/healthz", 204, None, "")
            .expect("no body");
    }

    #[test]
    fn a_wrong_body_fails_naming_the_path_status_and_field() {
        let c = contract();
        for (body, needle) in [
            (
                r#"{"id":"o-1","status":"lost","at":"2026-11-30T16:00:00Z"}"#,
                "/status",
            ),
            (
                r#"{"id":"o-1","status":"pending"}"#,
                "\"at\" is a required property",
            ),
            (r#"{"id":"o-1","status":"pending","at":"yesterday"}"#, "/at"),
            (
                r#"{"id":"o-1","status":"pending","at":"2026-11-30T16:00:00Z","stars":9}"#,
                "/stars",
            ),
            (
                r#"{"id":"o-1","status":"pending","at":"2026-11-30T16:00:00Z","phone":"138"}"#,
                "phone",
            ),
            (r#"[1,2]"#, "not of type"),
            ("not json", "not"),
        ] {
            let err = c
                .check_response("GET", "/v1/orders/o-1", 200, JSON, body)
                .expect_err(body);
            assert!(err.contains("GET /v1/orders/o-1 → 200"), "{err}");
            assert!(err.contains(needle), "{body}: {err}");
        }
    }

    #[test]
    fn undocumented_statuses_types_and_bodies_fail() {
        let c = contract();
        let err = c
            .check_response(
                "GET",
                "/v1/orders/o-1",
                409,
                JSON,
                r#"{"error":{"code":"x"}}"#,
            )
            .expect_err("409 is not documented");
        assert!(err.contains("409 is not documented"), "{err}");
        assert!(
            c.check_response("GET", "/v1/orders/o-1", 200, Some("text/html"), GOOD)
                .is_err()
        );
        assert!(
            c.check_response("DELETE", "/healthz", 204, None, "{}")
                .is_err()
        );
        assert!(
            c.check_response("GET", "/v1/nothing", 200, JSON, "{}")
                .is_err()
        );
        // An unknown route's 404 still has to be the error body.
        c.check_response(
            "GET",
            "/v1/nothing",
            404,
            JSON,
            r#"{"error":{"code":"not_found"}}"#,
        )
        .expect("the error body");
        assert!(
            c.check_response("GET", "/v1/nothing", 404, JSON, "{}")
                .is_err()
        );
    }

    #[test]
    fn frames_are_checked_by_type() {
        let c = contract();
        c.check_frame(
            "/v1/orders/o-1/live",
            &json!({"type": "order", "id": "o-1"}),
        )
        .expect("valid");
        let err = c
            .check_frame("/v1/orders/o-1/live", &json!({"type": "order"}))
            .expect_err("no id");
        assert!(
            err.contains("frame `order` on /v1/orders/o-1/live"),
            "{err}"
        );
        assert!(
            c.check_frame("/v1/orders/o-1/live", &json!({"type": "gossip"}))
                .is_err()
        );
        assert!(
            c.check_frame("/v1/elsewhere", &json!({"type": "order", "id": "o"}))
                .is_err()
        );
    }
}

/// The contract against the platform's own documents: the checks run on
/// the real paths, and the names that used to collide are apart.
#[cfg(test)]
mod served {
    use super::*;

    #[tokio::test]
    async fn the_served_documents_are_the_contract() {
        let app = crate::spawn_app().await;
        let c = &app.contract;
        let schemas = c.openapi["components"]["schemas"]
            .as_object()
            .expect("schemas");
        for name in [
            "ResidentNurse",
            "RosterNurse",
            "NurseOffer",
            "DispatchOffer",
            "OrderStatus",
        ] {
            assert!(schemas.contains_key(name), "{name} missing");
        }
        for gone in ["NurseView", "OfferView", "Step"] {
            assert!(!schemas.contains_key(gone), "{gone} is ambiguous");
        }
        let order = &schemas["OrderView"]["properties"];
        assert!(
            order["nurse"].to_string().contains("ResidentNurse"),
            "{order}"
        );

        // A real answer passes; the same answer with a field broken fails.
        let token = app.resident_token().await;
        let placed = app.order_jaundice_test(&token, (29.39, 106.32)).await;
        assert_eq!(
            placed.status,
            reqwest::StatusCode::CREATED,
            "{}",
            placed.text
        );
        let path = format!("/v1/orders/{}", placed.json["id"].as_str().expect("id"));
        let reply = app.get(&path, Some(&token)).await;
        let json = Some("application/json");
        c.check_response("GET", &path, 200, json, &reply.text)
            .expect("the real answer");
        let mut broken = reply.json.clone();
        broken["status"] = json!("lost");
        let err = c
            .check_response("GET", &path, 200, json, &broken.to_string())
            .expect_err("an unknown status");
        assert!(err.contains("/status"), "{err}");
        broken = reply.json.clone();
        broken["contact"]["phone"] = json!("138****5678");
        assert!(
            c.check_response("GET", &path, 200, json, &broken.to_string())
                .is_err()
        );

        // Frames: a real one passes, a wrong one fails, every schema resolves.
        let mut live = app.ws(&format!("{path}/live"), &token).await;
        let frame = live
            .expect_type("order", std::time::Duration::from_secs(5))
            .await;
        let mut wrong = frame.clone();
        wrong["promised_by"] = json!(42);
        assert!(c.check_frame(&format!("{path}/live"), &wrong).is_err());
        let frames = c.asyncapi["components"]["schemas"]
            .as_object()
            .expect("frames");
        for (name, schema) in frames {
            c.validator(
                &format!("frame schema {name}"),
                schema,
                &c.asyncapi["components"],
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
