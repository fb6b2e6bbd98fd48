//! Test support for end-to-end tests: [`spawn_app`] starts the real platform
//! on a random port, with its own database and its own Redis key prefix, so
//! tests run in parallel; typed HTTP and WebSocket helpers talk to it.
//!
//! Every response the HTTP helpers receive is checked against the served
//! `/openapi.json`, and every frame the WebSocket helpers receive against
//! `/asyncapi.json` ([`contract`]); a mismatch fails the test.
//!
//! The backend comes from `TEST_BACKEND`: `postgres` (default: PostgreSQL at
//! `TEST_DATABASE_URL` and Redis at `TEST_REDIS_URL`) or `embedded` (SQLite
//! and the in-process queue, as `yixin serve` runs with no configuration).

// Test support: a failed expectation is a test failure, reported where it
// happened.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod chaos;
pub mod contract;

use std::{net::TcpListener, sync::Arc, time::Duration};

use futures_util::{SinkExt, StreamExt};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use yixin::{Role, RunningYixin, Yixin};
use yixin_platform::Settings;

use crate::contract::Contract;

pub use reqwest::StatusCode;

/// Credentials (as `PUT /v1/dispatch/nurses/{id}/credentials` takes them)
/// that meet every service's requirements: registered in 2012, 主管护师,
/// every certificate kind, none expiring.
pub fn qualifying_credentials() -> Value {
    let certificates: Vec<Value> = [
        "picc",
        "wound_stoma",
        "maternal_infant",
        "rehab",
        "oral_care",
    ]
    .iter()
    .map(|code| {
        serde_json::json!({"code": code, "number": format!("T-{code}"),
                               "issued_on": "2020-01-01", "expires_on": null})
    })
    .collect();
    serde_json::json!({
        "licence_no": "201211000001",
        "first_registered_on": "2012-03-01",
        "title": "supervisor_nurse",
        "certificates": certificates,
    })
}

/// The same credentials as [`qualifying_credentials`], verified, for nurses
/// a test inserts through the store.
pub fn qualified_credentials() -> yixin_domain::Credentials {
    let input: yixin_domain::CredentialsInput =
        serde_json::from_value(qualifying_credentials()).expect("credentials input");
    let mut c = yixin_domain::Credentials::entered(input, "test", chrono::Utc::now());
    c.verification = yixin_domain::Verification::Verified;
    c.reviewed_by = Some("test".into());
    c.reviewed_at = Some(chrono::Utc::now());
    c
}

/// Which backends a test run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL + Redis: production.
    Postgres,
    /// SQLite + in-process queue: the one-command default.
    Embedded,
}

impl Backend {
    pub fn from_env() -> Self {
        match std::env::var("TEST_BACKEND").as_deref() {
            Ok("embedded") => Backend::Embedded,
            Ok("postgres") | Ok("") | Err(_) => Backend::Postgres,
            Ok(other) => panic!("TEST_BACKEND must be `postgres` or `embedded`, not `{other}`"),
        }
    }
}

/// The consent version of every service in the seed catalogue: what an
/// order must carry as `consent_version`.
pub const CONSENT_VERSION: &str = "2026-11-30";

/// Who consents on site in the tests (`consent_by` of the `started` step).
pub const CONSENT_BY: &str = "王女士";

/// A complete, plausible visit record of an infant jaundice test (the body
/// of `POST /v1/nurse/orders/{id}/record`).
pub fn jaundice_record() -> Value {
    serde_json::json!({
        "values": {
            "temperature_c": 36.8,
            "pulse": 128,
            "spo2": 98,
            "bilirubin_mg_dl": 9.2,
            "materials_used": "经皮黄疸仪一次性保护帽 1 个"
        },
        "notes": "皮肤轻度黄染，建议继续母乳喂养，两天后复测。"
    })
}

/// A `progress` frame of the nurse socket; `started` carries [`CONSENT_BY`].
pub fn progress_frame(order_id: &str, step: &str) -> Value {
    let mut frame = serde_json::json!({"type": "progress", "order_id": order_id, "step": step});
    if step == "started" {
        frame["consent_by"] = Value::from(CONSENT_BY);
    }
    frame
}

/// The Redis the tests use.
pub fn test_redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A platform running for one test. Dropping it leaves the server running
/// until the test's runtime ends; call [`TestApp::stop`] to test shutdown.
pub struct TestApp {
    pub base_url: String,
    pub backend: Backend,
    pub http: reqwest::Client,
    pub settings: Settings,
    /// The platform's own OpenAPI and AsyncAPI documents, read at start.
    pub contract: Arc<Contract>,
    running: Option<RunningYixin>,
    _database: Option<yixin_store::testing::TestDatabase>,
    _data_dir: tempfile::TempDir,
}

/// Options for [`spawn_app_with`].
pub struct AppOptions {
    pub role: Role,
    /// Adjust the settings before start-up.
    pub configure: Box<dyn FnOnce(&mut Settings) + Send>,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            role: Role::All,
            configure: Box::new(|_| {}),
        }
    }
}

/// Starts the whole platform on the backend named by `TEST_BACKEND`.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    let backend = Backend::from_env();
    let data_dir = tempfile::tempdir().expect("temporary data directory");
    let mut settings = Settings::default();
    settings.server.addr = "127.0.0.1:0".parse().expect("address");
    settings.server.workers = Some(2);
    settings.server.shutdown_timeout_secs = 5;
    settings.database.data_dir = data_dir.path().to_path_buf();
    settings.database.max_connections = 5;
    settings.log.filter = "warn".to_owned();
    let database = match backend {
        Backend::Embedded => None,
        Backend::Postgres => {
            let (store, database) = yixin_store::testing::fresh_postgres().await;
            // The platform opens its own pool, as in production.
            drop(store);
            settings.database.url = Some(SecretString::from(database.url().to_owned()));
            settings.redis.url = Some(SecretString::from(test_redis_url()));
            settings.redis.key_prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
            settings.auth.jwt_secret = Some(SecretString::from(format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            )));
            // Tests mint their tokens through the dev login, as a phone
            // developer would against a staging server.
            settings.auth.dev_login = Some(true);
            settings.demo.enabled = Some(true);
            Some(database)
        }
    };
    (options.configure)(&mut settings);
    yixin_platform::telemetry::init_tracing(&settings.log);

    let listener = TcpListener::bind(settings.server.addr).expect("bind a random port");
    let app = Yixin::start(settings.clone(), options.role, listener)
        .await
        .unwrap_or_else(|e| panic!("the platform failed to start: {e:#}"));
    let running = app.spawn();
    let base_url = format!("http://{}", running.addr);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("HTTP client");
    let contract = Arc::new(Contract::new(
        served_json(&http, &format!("{base_url}/openapi.json")).await,
        served_json(&http, &format!("{base_url}/asyncapi.json")).await,
    ));
    TestApp {
        base_url,
        backend,
        http,
        settings,
        contract,
        running: Some(running),
        _database: database,
        _data_dir: data_dir,
    }
}

/// A document the platform serves, read once per spawned app.
async fn served_json(http: &reqwest::Client, url: &str) -> Value {
    let response = http.get(url).send().await.expect("document requested");
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    response.json().await.expect("the document is JSON")
}

/// A response: its status, headers and body parsed as JSON (`Null` if the
/// body is empty or not JSON; `text` keeps it raw).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Reply {
    /// Asserts the contract's error body and returns its code.
    pub fn error_code(&self) -> &str {
        let code = self.json["error"]["code"].as_str();
        assert!(
            code.is_some() && self.json["error"]["message"].is_string(),
            "not an error body ({}): {}",
            self.status,
            self.text
        );
        code.unwrap_or_default()
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws{}{}", self.base_url.trim_start_matches("http"), path)
    }

    pub fn running(&self) -> &RunningYixin {
        self.running.as_ref().expect("the app is running")
    }

    /// Sends any request and reads the reply, which must match the served
    /// OpenAPI document (else the test fails here, naming the mismatch).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let (client, request) = request.build_split();
        let request = request.expect("a well-formed request");
        let method = request.method().to_string();
        let path = request.url().path().to_owned();
        let response = client.execute(request).await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("response body");
        let content_type = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if let Err(mismatch) =
            self.contract
                .check_response(&method, &path, status.as_u16(), content_type, &text)
        {
            panic!("the response contradicts /openapi.json: {mismatch}");
        }
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            json,
            text,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut request = self.http.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &impl Serialize) -> Reply {
        let mut request = self.http.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    /// A raw body with a content type, for malformed-input tests.
    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let mut request = self
            .http
            .post(self.url(path))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    /// `PUT` with a JSON body.
    pub async fn put(&self, path: &str, token: Option<&str>, body: &impl Serialize) -> Reply {
        let mut request = self.http.put(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    /// Adds a nurse (`POST /v1/dispatch/nurses` with `body`) and gives her
    /// verified credentials that meet every service's requirements
    /// ([`qualifying_credentials`]): the one way tests make a nurse the
    /// dispatch gate lets through. Her id.
    pub async fn qualified_nurse(&self, coordinator: &str, body: &Value) -> String {
        let reply = self
            .post("/v1/dispatch/nurses", Some(coordinator), body)
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        let id = reply.json["id"].as_str().expect("nurse id").to_owned();
        self.qualify(coordinator, &id).await;
        id
    }

    /// Enters [`qualifying_credentials`] for the nurse and verifies them.
    pub async fn qualify(&self, coordinator: &str, nurse_id: &str) {
        let path = format!("/v1/dispatch/nurses/{nurse_id}/credentials");
        let reply = self
            .put(&path, Some(coordinator), &qualifying_credentials())
            .await;
        assert_eq!(reply.status, StatusCode::OK, "credentials: {}", reply.text);
        let reply = self
            .post(
                &format!("{path}/verify"),
                Some(coordinator),
                &serde_json::json!({}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "verify: {}", reply.text);
    }

    /// A token from the dev login (`POST /v1/auth/dev-token`).
    pub async fn token(&self, role: &str, sub: &str, org: &str) -> String {
        let reply = self
            .post(
                "/v1/auth/dev-token",
                None,
                &serde_json::json!({"role": role, "sub": sub, "org": org}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "dev token: {}", reply.text);
        reply.json["token"]
            .as_str()
            .expect("token in the reply")
            .to_owned()
    }

    /// A nurse on the demo roster holding every skill the catalogue asks
    /// for, with verified credentials (the dispatch gate would refuse her
    /// otherwise), inserted through the store; and a token for her.
    pub async fn stored_qualified_nurse(
        &self,
        name: &str,
        phone: &str,
    ) -> (yixin_domain::Nurse, String) {
        let store = &self.running().backends.store;
        let catalog = store.catalog().await.expect("catalogue");
        let mut skills: Vec<yixin_domain::Skill> = Vec::new();
        for k in catalog.services.iter().flat_map(|s| &s.required_skills) {
            if !skills.contains(k) {
                skills.push(k.clone());
            }
        }
        let nurse = yixin_domain::Nurse::new(
            yixin_domain::OrgId::from(self.settings.demo.org_id.as_str()),
            name,
            yixin_domain::PhoneNumber::new(phone).expect("phone number"),
            skills,
            chrono::Utc::now(),
        )
        .expect("nurse");
        store.insert_nurse(&nurse).await.expect("nurse inserted");
        store
            .put_credentials(&nurse, &qualified_credentials())
            .await
            .expect("credentials");
        let token = self
            .token("nurse", &nurse.id.to_string(), &self.settings.demo.org_id)
            .await;
        (nurse, token)
    }

    /// A resident of the demo organisation with a fresh id.
    pub async fn resident_token(&self) -> String {
        let sub = format!("resident-{}", uuid::Uuid::new_v4().simple());
        self.token("resident", &sub, &self.settings.demo.org_id)
            .await
    }

    /// The resident of `token` orders an infant jaundice test (skill
    /// `neonatal`) at `at`, with a fresh idempotency key and the current
    /// consent; the reply as is.
    pub async fn order_jaundice_test(&self, token: &str, at: (f64, f64)) -> Reply {
        self.order_service(token, "infant_jaundice_test", at, serde_json::json!({}))
            .await
    }

    /// The resident of `token` orders `service_code` at `at` with the
    /// current consent, a fresh idempotency key, and `extra`'s fields
    /// (e.g. `answers`, `doctor_order_ref`) set over the defaults.
    pub async fn order_service(
        &self,
        token: &str,
        service_code: &str,
        at: (f64, f64),
        extra: Value,
    ) -> Reply {
        let mut body = serde_json::json!({
            "service_code": service_code,
            "location": {"lat": at.0, "lng": at.1},
            "address": {"text": "双福街道 福城大道 88 号", "detail": "3 栋 2 单元 1102"},
            "contact": {"name": "王女士", "phone": "13812345678"},
            "consent_version": CONSENT_VERSION,
        });
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
            for (k, v) in extra {
                body.insert(k, v);
            }
        }
        let request = self
            .http
            .post(self.url("/v1/orders"))
            .bearer_auth(token)
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .json(&body);
        self.send(request).await
    }

    /// The nurse of `token` submits [`jaundice_record`] for `order_id`
    /// (over HTTP); the reply as is.
    pub async fn submit_jaundice_record(&self, token: &str, order_id: &str) -> Reply {
        self.post(
            &format!("/v1/nurse/orders/{order_id}/record"),
            Some(token),
            &jaundice_record(),
        )
        .await
    }

    /// Opens a WebSocket with the token as `?token=`.
    pub async fn ws(&self, path: &str, token: &str) -> WsClient {
        let separator = if path.contains('?') { '&' } else { '?' };
        let url = self.ws_url(&format!("{path}{separator}token={token}"));
        let (stream, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("WebSocket connected");
        self.ws_client(stream, path)
    }

    /// Opens a WebSocket, or answers the HTTP status that refused the upgrade.
    pub async fn try_ws(&self, path: &str, token: &str) -> Result<WsClient, u16> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let url = self.ws_url(&format!("{path}{separator}token={token}"));
        match tokio_tungstenite::connect_async(url).await {
            Ok((stream, _)) => Ok(self.ws_client(stream, path)),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(e) => panic!("WebSocket failed before any HTTP answer: {e}"),
        }
    }

    fn ws_client(&self, stream: WsStream, path: &str) -> WsClient {
        WsClient {
            stream,
            path: path.split('?').next().unwrap_or(path).to_owned(),
            contract: self.contract.clone(),
        }
    }

    /// Stops the platform but keeps its database (and Redis keys), so
    /// another instance can take over: a crash or redeploy.
    pub async fn stop_platform(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }

    /// Stops the platform at once, as a crash would (nothing released,
    /// workers aborted where they stand), keeping its database and Redis
    /// keys for the instances that take over.
    pub async fn kill_platform(&mut self) {
        if let Some(running) = self.running.take() {
            running.kill().await;
        }
    }

    /// Graceful stop, as on SIGTERM.
    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client speaking one JSON object per text frame. Every frame
/// it receives must match its `type`'s frame in the served AsyncAPI
/// document (else the test fails, naming the mismatch).
pub struct WsClient {
    stream: WsStream,
    /// The socket's path, without the query.
    path: String,
    contract: Arc<Contract>,
}

impl WsClient {
    pub async fn send_json(&mut self, value: &Value) {
        self.stream
            .send(Message::text(value.to_string()))
            .await
            .expect("frame sent");
    }

    /// The next JSON text frame, skipping pings; `None` when the socket
    /// closed or nothing came within `wait`.
    pub async fn next_json(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()??
                .ok()?;
            match frame {
                Message::Text(text) => return self.checked(text.as_str()),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Parses a received text frame and checks it against the contract.
    fn checked(&self, text: &str) -> Option<Value> {
        let frame: Value = serde_json::from_str(text).ok()?;
        if let Err(mismatch) = self.contract.check_frame(&self.path, &frame) {
            panic!("the frame contradicts /asyncapi.json: {mismatch}");
        }
        Some(frame)
    }

    pub async fn send_text(&mut self, text: &str) -> bool {
        self.stream.send(Message::text(text)).await.is_ok()
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) -> bool {
        self.stream.send(Message::binary(bytes)).await.is_ok()
    }

    /// The next JSON frame whose `type` is `kind`, skipping others; panics
    /// if none comes within `wait`.
    pub async fn expect_type(&mut self, kind: &str, wait: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_json(left).await {
                Some(frame) if frame["type"] == kind => return frame,
                Some(_) => continue,
                None => panic!("no `{kind}` frame within {wait:?}"),
            }
        }
    }

    /// Reads until the server closes the socket; its close code (`None` if
    /// it closed without one or nothing came within `wait`).
    pub async fn close_code(&mut self, wait: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()??;
            match frame {
                Ok(Message::Close(Some(frame))) => return Some(u16::from(frame.code)),
                Ok(Message::Close(None)) => return None,
                Ok(Message::Text(text)) => {
                    self.checked(text.as_str());
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// A private `redis-server` on a free port, for tests that break Redis
/// (never the shared one): no persistence, so a restart loses every key,
/// stream and consumer group, as a Redis restarted without its data does.
pub struct PrivateRedis {
    pub port: u16,
    dir: tempfile::TempDir,
}

impl PrivateRedis {
    /// Starts one and waits until it answers.
    pub async fn start() -> Self {
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().expect("its address").port()
        };
        let redis = Self {
            port,
            dir: tempfile::tempdir().expect("a directory for redis-server"),
        };
        redis.launch().await;
        redis
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn launch(&self) {
        let status = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "yes", "--dir"])
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"))
            .status()
            .expect("redis-server must be installed for the recovery tests");
        assert!(status.success(), "redis-server did not start");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.command("PING").is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "private redis-server never answered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends one inline command; its first reply line, if it answered.
    fn command(&self, command: &str) -> Option<String> {
        use std::io::{BufRead, BufReader, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        stream.write_all(format!("{command}\r\n").as_bytes()).ok()?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).ok()?;
        (!line.is_empty()).then_some(line)
    }

    /// `SHUTDOWN NOSAVE`: gone, with all its data; waits until it no
    /// longer answers.
    pub async fn kill(&self) {
        let _ = self.command("SHUTDOWN NOSAVE");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not stop"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts it again on the same port, empty.
    pub async fn restart(&self) {
        self.launch().await;
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.command("SHUTDOWN NOSAVE");
    }
}

/// One HTTP request read off a stand-in endpoint's socket (the webhook and
/// escalation receivers of the tests): its head and its body.
pub struct ReceivedRequest {
    head: String,
    pub body: Vec<u8>,
}

impl ReceivedRequest {
    /// A header's value (case-insensitive name), empty when absent.
    pub fn header(&self, name: &str) -> String {
        self.head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
            .unwrap_or_default()
    }
}

/// Reads one request (head and `content-length` body); `None` when the
/// peer closes before it is whole.
pub async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<ReceivedRequest> {
    use tokio::io::AsyncReadExt;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = socket.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let request = ReceivedRequest {
            head: String::from_utf8_lossy(&raw[..end]).to_string(),
            body: Vec::new(),
        };
        let length: usize = request.header("content-length").parse().unwrap_or(0);
        if raw.len() < end + 4 + length {
            continue;
        }
        return Some(ReceivedRequest {
            body: raw[end + 4..end + 4 + length].to_vec(),
            ..request
        });
    }
}
