//! The real `yixin` binary as a newcomer runs it: no configuration, no
//! servers, one command.

// Test code: a failed unwrap is a failed test, reported where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_yixin");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary with a clean environment: no DATABASE_URL/REDIS_URL from the
/// machine, its data in `data_dir`.
fn yixin(data_dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("YIXIN_DATABASE__DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    async fn start(data_dir: &std::path::Path) -> Self {
        let port = free_port();
        let child = yixin(data_dir)
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let http = reqwest::Client::new();
        while http.get(format!("{base}/healthz")).send().await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "yixin serve did not answer within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Server { child, base }
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no exit within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[tokio::test]
async fn serve_on_a_bare_machine_answers_and_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{}{path}", server.base)).send();

    let health = get("/healthz").await.unwrap();
    assert_eq!(health.status(), 200);
    let ready: serde_json::Value = get("/readyz").await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    let metrics = get("/metrics").await.unwrap();
    assert_eq!(metrics.status(), 200);
    let doc: serde_json::Value = get("/openapi.json").await.unwrap().json().await.unwrap();
    assert!(doc["paths"]["/v1/auth/dev-token"].is_object());

    let minted: serde_json::Value = http
        .post(format!("{}/v1/auth/dev-token", server.base))
        .json(&serde_json::json!({"role": "resident", "sub": "r-1", "org": "demo"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = minted["token"].as_str().unwrap();
    let catalog = http
        .get(format!("{}/v1/catalog", server.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(catalog.status(), 200);

    // The embedded database is a file in the data directory.
    assert!(dir.path().join("yixin.sqlite").exists());

    let status = server.terminate();
    assert!(status.success(), "exit after SIGTERM: {status}");
}

#[tokio::test]
async fn token_command_mints_what_serve_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let out = yixin(dir.path())
        .args([
            "token",
            "--role",
            "coordinator",
            "--sub",
            "ops-1",
            "--org",
            "demo",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let catalog = reqwest::Client::new()
        .get(format!("{}/v1/catalog", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(catalog.status(), 200);
    server.terminate();
}

#[test]
fn a_malformed_setting_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = yixin(dir.path())
        .env("YIXIN_SERVER__BODY_LIMIT_BYTES", "plenty")
        .args(["serve", "--addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("server.body_limit_bytes"), "{stderr}");

    let out = yixin(dir.path())
        .env("YIXIN_SERVER__NO_SUCH_KEY", "1")
        .args(["serve"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_key"));
}

#[test]
fn production_without_a_signing_key_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = yixin(dir.path())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/x.sqlite?mode=rwc", dir.path().display()),
        )
        .args(["serve", "--addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("auth.jwt_secret"), "{stderr}");
}

#[test]
fn migrate_up_down_up_on_the_embedded_database() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["migrate", "up"][..],
        &["migrate", "down", "--steps", "100"],
        &["migrate", "up"],
        &["migrate", "status"],
    ] {
        let out = yixin(dir.path()).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "yixin {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
