//! The one error for refused dispatch settings (ETA, scoring, matching policy).
//!
//! Settings are loaded from configuration by the binary; every settings type
//! here validates on construction and on deserialisation, so a bad value stops
//! the service at startup, naming the field, instead of skewing dispatch.

/// A settings value out of its allowed range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid dispatch setting `{field}`: {reason}")]
pub struct InvalidSettings {
    /// The field to blame, as spelled in configuration.
    pub field: &'static str,
    /// What is wrong, for the operator.
    pub reason: String,
}

impl InvalidSettings {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}
