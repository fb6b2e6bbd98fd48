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

/// Waits for `/healthz` on `base`, at most 60 s.
async fn wait_healthy(base: &str) {
    let started = Instant::now();
    let http = reqwest::Client::new();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no answer within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn dev_login_on_a_public_address_is_refused_unless_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    // The embedded default (dev login on) on every interface: refused.
    let port = free_port();
    let out = yixin(dir.path())
        .args(["serve", "--addr", &format!("0.0.0.0:{port}")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("auth.dev_login_public"), "{stderr}");
    assert!(stderr.contains(&format!("0.0.0.0:{port}")), "{stderr}");

    // Dev login off (as the image sets it): starts, and no dev login.
    let (mut child, port) =
        serve_on_all_interfaces(dir.path(), "YIXIN_AUTH__DEV_LOGIN", "false", Stdio::null).await;
    assert_eq!(dev_token_status(port).await, 404);
    // The image's health check against it, then against nothing.
    let health = yixin(dir.path())
        .args(["healthcheck", "--addr", &format!("0.0.0.0:{port}")])
        .output()
        .unwrap();
    assert!(
        health.status.success(),
        "{}",
        String::from_utf8_lossy(&health.stderr)
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let health = yixin(dir.path())
        .args([
            "healthcheck",
            "--addr",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .output()
        .unwrap();
    assert!(!health.status.success());

    // Told explicitly: starts, mints, and says so loudly in the log.
    let (mut child, port) = serve_on_all_interfaces(
        dir.path(),
        "YIXIN_AUTH__DEV_LOGIN_PUBLIC",
        "true",
        Stdio::piped,
    )
    .await;
    assert_eq!(dev_token_status(port).await, 200);
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(log.contains("DEV LOGIN IS PUBLIC"), "{log}");
}

/// `yixin serve` on every interface of a free port with one setting
/// (`key` = `value`), its output to `output`, once it answers `/healthz`.
async fn serve_on_all_interfaces(
    dir: &std::path::Path,
    key: &str,
    value: &str,
    output: fn() -> Stdio,
) -> (std::process::Child, u16) {
    let port = free_port();
    let child = yixin(dir)
        .env(key, value)
        .args(["serve", "--addr", &format!("0.0.0.0:{port}")])
        .stdout(output())
        .stderr(output())
        .spawn()
        .unwrap();
    wait_healthy(&format!("http://127.0.0.1:{port}")).await;
    (child, port)
}

/// What the dev login answers a coordinator token request on `port`.
async fn dev_token_status(port: u16) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/auth/dev-token"))
        .json(&serde_json::json!({"role": "coordinator", "sub": "x", "org": "demo"}))
        .send()
        .await
        .unwrap()
        .status()
}

/// `yixin ARGS` in `dir`, which must succeed; its standard output.
fn run_ok(dir: &std::path::Path, args: &[&str]) -> String {
    let out = yixin(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "yixin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn bootstrap_commands_take_an_empty_platform_to_a_roster() {
    let dir = tempfile::tempdir().unwrap();
    let examples = format!("{}/../../deploy/examples", env!("CARGO_MANIFEST_DIR"));
    let areas = format!("{examples}/areas.geojson");
    let nurses = format!("{examples}/nurses.csv");

    // No organisation yet: the import says what to do.
    let out = yixin(dir.path())
        .args(["area", "import", &areas, "--org", "shuangfu"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("yixin org create --id shuangfu"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let created = run_ok(
        dir.path(),
        &["org", "create", "--id", "shuangfu", "--name", "双福"],
    );
    assert!(
        created.contains("organisation shuangfu created"),
        "{created}"
    );
    let again = run_ok(
        dir.path(),
        &["org", "create", "--id", "shuangfu", "--name", "双福"],
    );
    assert!(again.contains("exists already"), "{again}");
    let generated = run_ok(dir.path(), &["org", "create", "--name", "别的机构"]);
    assert!(generated.starts_with("organisation org-"), "{generated}");

    let out = run_ok(dir.path(), &["area", "import", &areas, "--org", "shuangfu"]);
    assert!(out.contains("3 area(s) of shuangfu"), "{out}");
    assert_eq!(out.matches("created\t").count(), 3, "{out}");
    let out = run_ok(dir.path(), &["area", "import", &areas, "--org", "shuangfu"]);
    assert_eq!(out.matches("unchanged\t").count(), 3, "{out}");

    let out = run_ok(
        dir.path(),
        &[
            "nurse", "import", &nurses, "--org", "shuangfu", "--by", "ops-li",
        ],
    );
    assert!(out.contains("4 created, 0 updated, 0 unchanged"), "{out}");
    let out = run_ok(
        dir.path(),
        &[
            "nurse", "import", &nurses, "--org", "shuangfu", "--by", "ops-li",
        ],
    );
    assert!(out.contains("0 created, 0 updated, 4 unchanged"), "{out}");

    // A bad file: each problem on its line, exit non-zero.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "name,phone,skills,title\n甲,13900009999,rehab,医生\n乙,1390000,flying,\n",
    )
    .unwrap();
    let out = yixin(dir.path())
        .args([
            "nurse",
            "import",
            bad.to_str().unwrap(),
            "--org",
            "shuangfu",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for want in [
        "5 problem(s), nothing written",
        "line 2: licence_no: required with the other credentials columns",
        "line 2: title:",
        "line 3: phone:",
        "line 3: skills: no service in the catalogue requires `flying`",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in {stderr}");
    }

    // The first coordinator's token sees the imported roster.
    let token = run_ok(
        dir.path(),
        &[
            "token",
            "--role",
            "coordinator",
            "--sub",
            "ops-li",
            "--org",
            "shuangfu",
            "--ttl",
            "600",
        ],
    )
    .trim()
    .to_owned();
    let server = Server::start(dir.path()).await;
    let roster: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/v1/dispatch/nurses", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let roster = roster.as_array().unwrap();
    assert_eq!(roster.len(), 4, "{roster:?}");
    let areas: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/v1/dispatch/areas", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(areas.as_array().unwrap().len(), 3, "{areas:?}");
    server.terminate();

    // A token's lifetime is what --ttl says.
    let claims: serde_json::Value =
        serde_json::from_slice(&base64url(token.split('.').nth(1).unwrap())).unwrap();
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
    assert_eq!(claims["org"], "shuangfu");
    let bad_ttl = yixin(dir.path())
        .args([
            "token",
            "--role",
            "coordinator",
            "--sub",
            "ops",
            "--org",
            "shuangfu",
            "--ttl",
            "0",
        ])
        .output()
        .unwrap();
    assert!(!bad_ttl.status.success());
}

/// Decodes unpadded base64url (a JWT part).
fn base64url(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => panic!("not base64url: {c}"),
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        acc = (acc << 6) | u32::from(value(c));
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).unwrap());
            acc &= (1 << bits) - 1;
        }
    }
    out
}
