//! `POST /v1/auth/otp` and `POST /v1/auth/otp/verify`.

use actix_web::{HttpRequest, HttpResponse, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use yixin_auth::{Role, is_valid_identifier};
use yixin_domain::{OrgId, PhoneNumber};
use yixin_platform::{ApiError, ErrorBody, JsonBody};
use yixin_store::StoreError;

use crate::{
    Signin,
    rules::{self, Verdict},
    sender::SmsMessage,
};

/// `POST /v1/auth/otp` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct OtpRequest {
    /// A mainland China mobile number.
    #[schema(example = "13812345678", max_length = 40)]
    pub phone: String,
    /// `resident`, `nurse` or `agent`.
    #[schema(example = "resident")]
    pub role: String,
    /// The organisation signed in to.
    #[schema(example = "demo", min_length = 1, max_length = 64)]
    pub org: String,
}

/// `POST /v1/auth/otp/verify` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct OtpVerifyRequest {
    #[schema(example = "13812345678", max_length = 40)]
    pub phone: String,
    /// The 6 digits received by SMS.
    #[schema(example = "042137", max_length = 16)]
    pub code: String,
    #[schema(example = "resident")]
    pub role: String,
    #[schema(example = "demo", min_length = 1, max_length = 64)]
    pub org: String,
}

/// A code is on its way.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OtpSent {
    /// Seconds the code stays valid.
    #[schema(example = 300)]
    pub expires_in: u64,
}

/// A signed-in caller's token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignedIn {
    /// The JWT, to send as `Authorization: Bearer <token>`.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    /// `resident`, `nurse` or `agent`.
    pub role: String,
    /// The token's `sub`: the resident's, the nurse's or the agent's id.
    pub sub: String,
}

/// The roles that sign in by phone.
fn phone_role(raw: &str) -> Result<Role, ApiError> {
    match raw.parse::<Role>() {
        Ok(role @ (Role::Resident | Role::Nurse | Role::Agent)) => Ok(role),
        _ => Err(ApiError::invalid_field(
            "role",
            "unsupported_role",
            "sign-in by phone is for `resident`, `nurse` and `agent`",
        )),
    }
}

fn phone(raw: &str) -> Result<PhoneNumber, ApiError> {
    PhoneNumber::new(raw)
        .map_err(|e| ApiError::invalid_field("phone", "invalid_phone", e.to_string()))
}

fn org(raw: &str) -> Result<OrgId, ApiError> {
    if is_valid_identifier(raw) {
        Ok(OrgId(raw.to_owned()))
    } else {
        Err(ApiError::invalid_field(
            "org",
            "invalid_identifier",
            "`org` must be 1 to 64 characters of A-Z, a-z, 0-9, `_`, `.`, `:`, `@`, `-`",
        ))
    }
}

fn internal(err: StoreError) -> ApiError {
    ApiError::internal(err)
}

fn not_on_roster() -> ApiError {
    ApiError::ForbiddenAs {
        code: "not_on_roster".into(),
        message:
            "this phone is not on the organisation's active roster of nurses or list of agents"
                .to_owned(),
    }
}

fn invalid_code(message: &str) -> ApiError {
    ApiError::UnauthorizedAs {
        code: "invalid_code".into(),
        message: message.to_owned(),
    }
}

/// Send a one-time sign-in code by SMS.
///
/// A resident's first verified sign-in creates the resident; a nurse's phone
/// must be on the organisation's roster and an agent's on its agent list,
/// active (403 `not_on_roster` otherwise).
/// A new code replaces the previous one. One phone gets a code at most once
/// every `signin.resend_after_secs` and `signin.per_phone_per_hour` an hour;
/// one client address `signin.per_address_per_hour` an hour; over that: 429
/// with `Retry-After`.
#[utoipa::path(
    tag = "auth",
    operation_id = "request_otp",
    request_body = OtpRequest,
    responses(
        (status = 202, description = "A code was sent", body = OtpSent),
        (status = 403, description = "`not_on_roster`: a nurse or agent phone not on the roster or agent list", body = ErrorBody),
        (status = 422, description = "A bad `phone`, `role` or `org`, or an unknown organisation; `field` names it", body = ErrorBody),
        (status = 429, description = "Too many codes; `Retry-After` says when to ask again", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The SMS gateway did not take the message", body = ErrorBody),
    )
)]
#[post("/v1/auth/otp")]
pub async fn request_code(
    req: HttpRequest,
    svc: web::Data<Signin>,
    body: JsonBody<OtpRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let role = phone_role(&body.role)?;
    let phone = phone(&body.phone)?;
    let org = org(&body.org)?;
    let address = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    svc.per_address
        .check(&address)
        .map_err(|retry_after_secs| ApiError::RateLimited { retry_after_secs })?;
    let key = format!("{}:{}:{}", org.as_str(), role, phone.as_str());
    let now = Utc::now();
    let previous = svc
        .store
        .otp_code(org.as_str(), role.as_str(), phone.as_str())
        .await
        .map_err(internal)?;
    if let Some(retry_after_secs) = rules::resend_wait(&svc.rules, previous.as_ref(), now) {
        return Err(ApiError::RateLimited { retry_after_secs });
    }
    svc.per_phone
        .check(&key)
        .map_err(|retry_after_secs| ApiError::RateLimited { retry_after_secs })?;
    if !svc
        .store
        .organization_exists(&org)
        .await
        .map_err(internal)?
    {
        return Err(ApiError::invalid_field(
            "org",
            "unknown_org",
            "no such organisation",
        ));
    }
    if role != Role::Resident && listed(&svc, role, &org, &phone).await?.is_none() {
        return Err(not_on_roster());
    }
    // 64 bits of the operating system's randomness (a v4 UUID is 122 of them).
    let random = uuid::Uuid::new_v4().as_u64_pair().0;
    let code = rules::code_from_random(random);
    let stored = rules::new_code(
        &svc.rules,
        &svc.hasher,
        org.as_str(),
        role.as_str(),
        phone.as_str(),
        &code,
        now,
    );
    svc.store.put_otp_code(&stored).await.map_err(internal)?;
    let minutes = svc.rules.ttl.num_minutes().max(1);
    let message = SmsMessage {
        phone: phone.as_str().to_owned(),
        template: svc.template.clone(),
        params: serde_json::json!({"code": code, "minutes": minutes}),
    };
    if let Err(e) = svc.sender.send(&message).await {
        tracing::warn!(error = %e, "sign-in code not sent");
        return Err(ApiError::Unavailable(
            "the text message could not be sent; try again shortly".to_owned(),
        ));
    }
    let expires_in = u64::try_from(svc.rules.ttl.num_seconds()).unwrap_or(0);
    Ok(HttpResponse::Accepted().json(OtpSent { expires_in }))
}

/// Trade a code for a token.
///
/// A wrong, expired or used-up code is 401 `invalid_code` (after
/// `signin.max_attempts` wrong tries even the right code is refused; ask
/// for a new one). A code signs in once.
#[utoipa::path(
    tag = "auth",
    operation_id = "verify_otp",
    request_body = OtpVerifyRequest,
    responses(
        (status = 200, description = "Signed in", body = SignedIn),
        (status = 401, description = "`invalid_code`: wrong, expired, used up, or never sent", body = ErrorBody),
        (status = 403, description = "`not_on_roster`: the nurse left the roster meanwhile", body = ErrorBody),
        (status = 422, description = "A bad `phone`, `role`, `org` or `code`; `field` names it", body = ErrorBody),
    )
)]
#[post("/v1/auth/otp/verify")]
pub async fn verify_code(
    svc: web::Data<Signin>,
    body: JsonBody<OtpVerifyRequest>,
) -> Result<web::Json<SignedIn>, ApiError> {
    let body = body.into_inner();
    let role = phone_role(&body.role)?;
    let phone = phone(&body.phone)?;
    let org = org(&body.org)?;
    let code = body.code.trim();
    if !rules::is_code_shaped(code) {
        return Err(ApiError::invalid_field(
            "code",
            "invalid_code_format",
            "the code is the 6 digits of the text message",
        ));
    }
    let Some(stored) = svc
        .store
        .otp_code(org.as_str(), role.as_str(), phone.as_str())
        .await
        .map_err(internal)?
    else {
        return Err(invalid_code("no code was sent to this phone; ask for one"));
    };
    let given = svc
        .hasher
        .hash(org.as_str(), role.as_str(), phone.as_str(), code);
    match rules::judge(&svc.rules, &stored, &given, Utc::now()) {
        Verdict::Accept => {}
        Verdict::Wrong { left } => {
            svc.store
                .count_otp_failure(&stored)
                .await
                .map_err(internal)?;
            return Err(invalid_code(&format!("wrong code; {left} tries left")));
        }
        Verdict::Expired => {
            svc.store
                .consume_otp_code(&stored)
                .await
                .map_err(internal)?;
            return Err(invalid_code("the code has expired; ask for a new one"));
        }
        Verdict::Exhausted => {
            svc.store
                .consume_otp_code(&stored)
                .await
                .map_err(internal)?;
            return Err(invalid_code("too many wrong codes; ask for a new one"));
        }
    }
    if !svc
        .store
        .consume_otp_code(&stored)
        .await
        .map_err(internal)?
    {
        return Err(invalid_code("the code was already used or replaced"));
    }
    let sub = match role {
        Role::Nurse | Role::Agent => listed(&svc, role, &org, &phone)
            .await?
            .ok_or_else(not_on_roster)?,
        _ => svc
            .store
            .resident_for_phone(&org, &phone)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => {
                    ApiError::invalid_field("org", "unknown_org", "no such organisation")
                }
                other => internal(other),
            })?
            .to_string(),
    };
    let issued = svc
        .auth
        .issue(role, &sub, org.as_str())
        .map_err(ApiError::from)?;
    let expires_at = DateTime::<Utc>::from_timestamp(issued.claims.exp, 0)
        .ok_or_else(|| ApiError::internal(anyhow_free("token expiry out of range")))?;
    tracing::info!(role = %role, sub = %sub, org = %org.as_str(), "signed in by phone");
    Ok(web::Json(SignedIn {
        token: issued.token,
        expires_at,
        role: role.as_str().to_owned(),
        sub,
    }))
}

/// The id of the active nurse (roster) or agent (agent list) with this
/// phone; `None` if the phone is on neither for `role`.
async fn listed(
    svc: &Signin,
    role: Role,
    org: &OrgId,
    phone: &PhoneNumber,
) -> Result<Option<String>, ApiError> {
    Ok(match role {
        Role::Nurse => svc
            .store
            .active_nurse_by_phone(org, phone)
            .await
            .map_err(internal)?
            .map(|id| id.to_string()),
        Role::Agent => svc
            .store
            .active_agent_by_phone(org, phone)
            .await
            .map_err(internal)?
            .map(|id| id.to_string()),
        _ => None,
    })
}

fn anyhow_free(message: &'static str) -> std::io::Error {
    std::io::Error::other(message)
}
