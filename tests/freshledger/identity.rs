//! Identity and access, black-box: accounts, tokens, MFA, OIDC, the role
//! matrix generated from the route and field tables, ownership, and the
//! attacks a token must survive.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};

use crate::common::*;

fn slot() -> Value {
    let day = chrono::Utc::now().date_naive() + chrono::Duration::days(1);
    json!({"starts_at": format!("{day}T16:00:00Z"), "ends_at": format!("{day}T18:00:00Z")})
}

fn order_for(customer: &str) -> Value {
    json!({
        "customer_id": customer, "warehouse_id": "WH-BER-1",
        "lines": [{"sku": "APL-GALA", "quantity": {"uom": "gram", "amount": 500}}],
        "delivery_slot": slot(),
        "delivery_address": {"recipient": "Ada", "line1": "Main 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "payment_method": "cash_on_delivery"
    })
}

async fn post_as(
    client: &reqwest::Client,
    app: &App,
    path: &str,
    body: Value,
) -> reqwest::Response {
    client
        .post(format!("{}{path}", app.url))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn anonymous(app: &App, path: &str, body: Value) -> reqwest::Response {
    post_as(&reqwest::Client::new(), app, path, body).await
}

/// A password sign-in.
async fn login(app: &App, email: &str, password: &str) -> reqwest::Response {
    anonymous(
        app,
        "/api/v1/auth/login",
        json!({"email": email, "password": password}),
    )
    .await
}

/// The token of the newest message to `to` in the server's mail directory.
fn mailed_token(app: &App, to: &str, label: &str) -> String {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(app.mail_dir()).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if text.contains(&format!("To: <{to}>")) {
            if let Some(line) = text.lines().find(|l| l.starts_with(label)) {
                found.push((path, line[label.len()..].trim().to_string()));
            }
        }
    }
    found.sort();
    found
        .pop()
        .unwrap_or_else(|| panic!("no {label} message to {to}"))
        .1
}

/// A customer signs up, is refused orders until the address is confirmed,
/// confirms with the mailed token, refreshes (rotation), and every event
/// names them; reusing a refresh token ends the whole session family;
/// signing out ends the session at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_signs_up_verifies_orders_refreshes_and_signs_out() {
    let app = spawn(Backend::Sqlite).await;
    let email = "ada@example.com";
    let password = "analytical-engine-1843";
    let account = expect(
        anonymous(
            &app,
            "/api/v1/auth/sign-up",
            json!({"email": email, "password": password, "display_name": "Ada"}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(account["role"], "customer");
    assert_eq!(account["email_verified"], false);
    let text = account.to_string();
    assert!(
        !text.contains(password) && !text.contains("argon2"),
        "no secret returned: {text}"
    );
    let e = expect(
        anonymous(
            &app,
            "/api/v1/auth/sign-up",
            json!({"email": "ADA@example.com", "password": password, "display_name": "Ada"}),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(e["code"], "email_taken");
    let e = expect(
        anonymous(
            &app,
            "/api/v1/auth/sign-up",
            json!({"email": "bob@example.com", "password": "short", "display_name": "Bob"}),
        )
        .await,
        422,
    )
    .await;
    assert!(
        ["weak_password", "invalid_body"].contains(&e["code"].as_str().unwrap()),
        "{e}"
    );

    let id = account["account_id"].as_str().unwrap().to_string();
    let signed = expect(login(&app, email, password).await, 200).await;
    assert_eq!(signed["status"], "signed_in");
    let ada = client_with(signed["access_token"].as_str().unwrap());
    let before = app.log_len().await;
    let e = expect(
        post_as(&ada, &app, "/api/v1/orders", order_for(&id)).await,
        403,
    )
    .await;
    assert_eq!(e["code"], "email_unverified");
    assert_eq!(app.log_len().await, before, "a refusal appends nothing");

    let token = mailed_token(&app, email, "verification-token:");
    let v = expect(
        anonymous(
            &app,
            "/api/v1/auth/email-verification",
            json!({"token": token}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(v["email_verified"], true);
    let e = expect(
        anonymous(
            &app,
            "/api/v1/auth/email-verification",
            json!({"token": token}),
        )
        .await,
        401,
    )
    .await;
    assert_eq!(
        e["code"], "invalid_token",
        "a verification token works once"
    );

    // The claim is in the next token: refresh (rotating the refresh token).
    let first_refresh = signed["refresh_token"].as_str().unwrap().to_string();
    let fresh = expect(
        anonymous(
            &app,
            "/api/v1/auth/refresh",
            json!({"refresh_token": first_refresh}),
        )
        .await,
        200,
    )
    .await;
    assert_ne!(fresh["refresh_token"], first_refresh, "rotated on use");
    let ada = client_with(fresh["access_token"].as_str().unwrap());
    let placed = expect(
        post_as(&ada, &app, "/api/v1/orders", order_for(&id)).await,
        201,
    )
    .await;
    let events = app
        .get_json(&format!(
            "/api/v1/streams/Order/{}/events",
            placed["stream_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        events[0]["actor"],
        format!("customer:{id}"),
        "the actor is who signed in"
    );
    // Ordering for someone else is refused.
    let other = "0192f3a4-0000-7000-8000-00000000beef";
    let e = expect(
        post_as(&ada, &app, "/api/v1/orders", order_for(other)).await,
        403,
    )
    .await;
    assert_eq!(e["code"], "not_owner");

    // The used refresh token again: the whole family is revoked.
    let e = expect(
        anonymous(
            &app,
            "/api/v1/auth/refresh",
            json!({"refresh_token": first_refresh}),
        )
        .await,
        401,
    )
    .await;
    assert_eq!(e["code"], "refresh_token_reused");
    let e = expect(
        anonymous(
            &app,
            "/api/v1/auth/refresh",
            json!({"refresh_token": fresh["refresh_token"]}),
        )
        .await,
        401,
    )
    .await;
    assert_eq!(
        e["code"], "invalid_refresh_token",
        "the newest token of the family died too"
    );
    let r = ada
        .get(format!("{}/api/v1/auth/me", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));

    // Sign in again, sign out: the access token stops at once.
    let signed = expect(login(&app, email, password).await, 200).await;
    let ada = client_with(signed["access_token"].as_str().unwrap());
    expect(
        ada.get(format!("{}/api/v1/auth/me", app.url))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    expect(
        post_as(&ada, &app, "/api/v1/auth/logout", json!({})).await,
        200,
    )
    .await;
    let e = expect(
        ada.get(format!("{}/api/v1/auth/me", app.url))
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    assert_eq!(e["code"], "token_revoked");
    let e = expect(
        anonymous(
            &app,
            "/api/v1/auth/refresh",
            json!({"refresh_token": signed["refresh_token"]}),
        )
        .await,
        401,
    )
    .await;
    assert_eq!(e["code"], "invalid_refresh_token");

    // Passwords are never logged.
    assert!(
        app.log_lines_with(&[password]).is_empty(),
        "a password reached the log"
    );
    app.finish().await;
}

/// Five wrong passwords lock the account (423, even for the right one);
/// an admin's enable lifts it. Disabling ends every session at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_and_disable() {
    let app = spawn(Backend::Sqlite).await;
    let seller = app.person("seller", &["WH-BER-1"]).await;
    for _ in 0..5 {
        let e = expect(login(&app, &seller.email, "wrong-password-x").await, 401).await;
        assert_eq!(e["code"], "invalid_credentials");
    }
    let e = expect(login(&app, &seller.email, "person-password-1").await, 423).await;
    assert_eq!(e["code"], "account_locked");
    assert!(e["details"]["retry_after_seconds"].as_i64().unwrap() > 0);
    expect(
        app.post(&format!("/api/v1/accounts/{}/enable", seller.id), json!({}))
            .await,
        200,
    )
    .await;
    expect(login(&app, &seller.email, "person-password-1").await, 200).await;

    expect(
        seller
            .client
            .get(format!("{}/api/v1/warehouses", app.url))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let v = expect(
        app.post(
            &format!("/api/v1/accounts/{}/disable", seller.id),
            json!({}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(v["disabled"], true);
    let e = expect(
        seller
            .client
            .get(format!("{}/api/v1/warehouses", app.url))
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    assert_eq!(e["code"], "token_revoked");
    let e = expect(login(&app, &seller.email, "person-password-1").await, 403).await;
    assert_eq!(e["code"], "account_disabled");
    let e = expect(
        anonymous(
            &app,
            "/api/v1/auth/refresh",
            json!({"refresh_token": seller.refresh_token}),
        )
        .await,
        401,
    )
    .await;
    assert_eq!(e["code"], "invalid_refresh_token");
    app.finish().await;
}

/// Staff enrol TOTP; sign-in then asks for a code; a wrong code, a replayed
/// code and a used recovery code are refused; customers have no second
/// factor; an admin without one may not act as admin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_sign_in_with_a_second_factor() {
    let app = spawn(Backend::Sqlite).await;
    let rider = app.person("delivery", &[]).await;
    let enrolment = expect(
        post_as(&rider.client, &app, "/api/v1/auth/mfa/enrolment", json!({})).await,
        200,
    )
    .await;
    let secret = enrolment["secret"].as_str().unwrap().to_string();
    assert!(enrolment["otpauth_url"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/"));
    let e = expect(
        post_as(
            &rider.client,
            &app,
            "/api/v1/auth/mfa/confirmation",
            json!({"code": "000000"}),
        )
        .await,
        401,
    )
    .await;
    assert_eq!(e["code"], "invalid_mfa_code");
    let enabled = expect(
        post_as(
            &rider.client,
            &app,
            "/api/v1/auth/mfa/confirmation",
            json!({"code": totp_code(&secret)}),
        )
        .await,
        200,
    )
    .await;
    let recovery: Vec<String> = serde_json::from_value(enabled["recovery_codes"].clone()).unwrap();
    assert_eq!(recovery.len(), 10);

    let challenge = |app: &App| {
        let (url, email) = (app.url.clone(), rider.email.clone());
        async move {
            let v = expect(
                reqwest::Client::new()
                    .post(format!("{url}/api/v1/auth/login"))
                    .json(&json!({"email": email, "password": "person-password-1"}))
                    .send()
                    .await
                    .unwrap(),
                200,
            )
            .await;
            assert_eq!(v["status"], "mfa_required", "{v}");
            v["mfa_token"].as_str().unwrap().to_string()
        }
    };
    let mfa = challenge(&app).await;
    let e = expect(
        anonymous(
            &app,
            "/api/v1/auth/mfa/verification",
            json!({"mfa_token": mfa, "code": "123456"}),
        )
        .await,
        401,
    )
    .await;
    assert_eq!(e["code"], "invalid_mfa_code");
    // The code was used by the confirmation: the same step is a replay.
    let code = totp_code(&secret);
    let replay = anonymous(
        &app,
        "/api/v1/auth/mfa/verification",
        json!({"mfa_token": mfa, "code": code}),
    )
    .await;
    assert_eq!(replay.status(), 401, "a TOTP code works once");
    let tokens = expect(
        anonymous(
            &app,
            "/api/v1/auth/mfa/verification",
            json!({"mfa_token": mfa, "code": recovery[0]}),
        )
        .await,
        200,
    )
    .await;
    assert!(tokens["access_token"].is_string());
    let e = expect(
        anonymous(
            &app,
            "/api/v1/auth/mfa/verification",
            json!({"mfa_token": mfa, "code": recovery[1]}),
        )
        .await,
        401,
    )
    .await;
    assert_eq!(e["code"], "invalid_mfa_token", "a challenge works once");
    let mfa = challenge(&app).await;
    let e = expect(
        anonymous(
            &app,
            "/api/v1/auth/mfa/verification",
            json!({"mfa_token": mfa, "code": recovery[0]}),
        )
        .await,
        401,
    )
    .await;
    assert_eq!(e["code"], "invalid_mfa_code", "a recovery code works once");

    let customer = app.person("customer", &[]).await;
    let e = expect(
        post_as(
            &customer.client,
            &app,
            "/api/v1/auth/mfa/enrolment",
            json!({}),
        )
        .await,
        403,
    )
    .await;
    assert_eq!(e["code"], "mfa_staff_only");
    let admin = app.person("admin", &[]).await;
    let e = expect(
        admin
            .client
            .get(format!("{}/api/v1/log", app.url))
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
    assert_eq!(e["code"], "mfa_required");
    app.finish().await;
}

/// A reset request answers the same for unknown addresses; the mailed
/// token sets a new password once and ends every session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_reset_by_mail() {
    let app = spawn(Backend::Sqlite).await;
    let seller = app.person("seller", &["WH-BER-1"]).await;
    let unknown = expect(
        anonymous(
            &app,
            "/api/v1/auth/password-reset",
            json!({"email": "nobody@example.com"}),
        )
        .await,
        202,
    )
    .await;
    let known = expect(
        anonymous(
            &app,
            "/api/v1/auth/password-reset",
            json!({"email": seller.email}),
        )
        .await,
        202,
    )
    .await;
    assert_eq!(unknown, known, "no account discovery");
    let token = mailed_token(&app, &seller.email, "reset-token:");
    let e = expect(
        anonymous(
            &app,
            "/api/v1/auth/password-reset/confirmation",
            json!({"token": token, "new_password": "short"}),
        )
        .await,
        422,
    )
    .await;
    assert!(["weak_password", "invalid_body"].contains(&e["code"].as_str().unwrap()));
    expect(
        anonymous(
            &app,
            "/api/v1/auth/password-reset/confirmation",
            json!({"token": token, "new_password": "a-new-password-2"}),
        )
        .await,
        200,
    )
    .await;
    let e = expect(
        anonymous(
            &app,
            "/api/v1/auth/password-reset/confirmation",
            json!({"token": token, "new_password": "another-password-3"}),
        )
        .await,
        401,
    )
    .await;
    assert_eq!(e["code"], "invalid_token");
    let e = expect(
        seller
            .client
            .get(format!("{}/api/v1/auth/me", app.url))
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    assert_eq!(e["code"], "token_revoked", "a reset ends every session");
    expect(login(&app, &seller.email, "person-password-1").await, 401).await;
    expect(login(&app, &seller.email, "a-new-password-2").await, 200).await;
    assert!(app.log_lines_with(&["a-new-password-2"]).is_empty());
    assert!(
        app.log_lines_with(&[&token]).is_empty(),
        "a reset token reached the log"
    );
    app.finish().await;
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// The server's signing key, read from its database (what an attacker who
/// stole it would hold): tokens it signs differ from good ones only where
/// the test says.
async fn server_key(app: &App) -> (String, jsonwebtoken::EncodingKey) {
    use sqlx::Connection;
    let mut c = sqlx::SqliteConnection::connect(&app.database_url)
        .await
        .unwrap();
    let (kid, private): (String, String) = sqlx::query_as(
        "SELECT kid, private_key FROM identity_signing_keys WHERE retired_at IS NULL",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    (
        kid,
        jsonwebtoken::EncodingKey::from_ed_der(&STANDARD.decode(private).unwrap()),
    )
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn sign(kid: &str, key: &jsonwebtoken::EncodingKey, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// `alg: none`, a shared-secret algorithm, another key under our `kid`, an
/// expired token, the wrong audience or issuer, a tampered payload: each
/// is refused with 401 and the Bearer challenge, and appends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_stale_tokens_are_refused() {
    let app = spawn(Backend::Sqlite).await;
    let good = app.admin_token.clone();
    let claims = claims_of(&good);
    let (kid, key) = server_key(&app).await;
    assert_eq!(
        app.get_json("/.well-known/jwks.json").await["keys"][0]["kid"],
        kid.as_str()
    );
    let now = chrono::Utc::now().timestamp();
    let with = |k: &str, v: Value| {
        let mut c = claims.clone();
        c[k] = v;
        c
    };
    let other_key = {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let k = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        jsonwebtoken::EncodingKey::from_ed_der(k.to_pkcs8_der().unwrap().as_bytes())
    };
    let header = good.split('.').next().unwrap();
    let mut tampered = claims.clone();
    tampered["sub"] = json!(uuid::Uuid::now_v7().to_string());
    let forged = [
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&claims)
            ),
        ),
        ("HS256 with the public key", {
            let jwks = app.get_json("/.well-known/jwks.json").await;
            let x = jwks["keys"][0]["x"].as_str().unwrap().to_string();
            let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            h.kid = Some(kid.clone());
            jsonwebtoken::encode(
                &h,
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(x.as_bytes()).unwrap(),
            )
            .unwrap()
        }),
        ("another key under our kid", sign(&kid, &other_key, &claims)),
        ("expired", sign(&kid, &key, &with("exp", json!(now - 120)))),
        (
            "not valid yet",
            sign(&kid, &key, &with("nbf", json!(now + 600))),
        ),
        (
            "wrong audience",
            sign(&kid, &key, &with("aud", json!("someone-else"))),
        ),
        (
            "wrong issuer",
            sign(&kid, &key, &with("iss", json!("https://evil.example"))),
        ),
        (
            "tampered payload",
            format!(
                "{header}.{}.{}",
                b64(&tampered),
                good.split('.').nth(2).unwrap()
            ),
        ),
        ("unknown kid", sign("no-such-kid", &key, &claims)),
        ("garbage", "not.a.jwt".to_string()),
    ];
    // The control: the server's key with untouched claims passes.
    expect(
        client_with(&sign(&kid, &key, &claims))
            .get(format!("{}/api/v1/log", app.url))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let before = app.log_len().await;
    for (what, token) in forged {
        for (method, path) in [("GET", "/api/v1/log"), ("POST", "/api/v1/orders")] {
            let req =
                client_with(&token).request(method.parse().unwrap(), format!("{}{path}", app.url));
            let req = if method == "POST" {
                req.json(&order_for("0192f3a4-0000-7000-8000-00000000c0de"))
            } else {
                req
            };
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 401, "{what}: {method} {path}");
            let challenge = r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .to_string();
            assert!(
                challenge.starts_with("Bearer realm=\"freshledger\""),
                "{what}: {challenge}"
            );
            assert!(challenge.contains("invalid_token"), "{what}: {challenge}");
        }
        let r = client_with(&token)
            .post(format!("{}/graphql", app.url))
            .json(&json!({"query": "{ warehouses { id } }"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{what}: GraphQL");
    }
    assert_eq!(app.log_len().await, before, "nothing appended");
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/log", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"freshledger\""
    );
    app.finish().await;
}

/// After a rotation new tokens carry the new `kid`, both keys are
/// published, and tokens of the old key still work until they expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_rotate_without_signing_anyone_out() {
    let app = spawn(Backend::Sqlite).await;
    let old_kid = app.get_json("/.well-known/jwks.json").await["keys"][0]["kid"].clone();
    let customer = app.person("customer", &[]).await;
    let rotated = expect(app.post("/api/v1/auth/keys/rotation", json!({})).await, 200).await;
    assert_ne!(rotated["kid"], old_kid);
    let jwks = app.get_json("/.well-known/jwks.json").await;
    let kids: Vec<&Value> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["kid"])
        .collect();
    assert!(
        kids.contains(&&old_kid) && kids.contains(&&rotated["kid"]),
        "{jwks}"
    );
    expect(
        customer
            .client
            .get(format!("{}/api/v1/auth/me", app.url))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let fresh = expect(
        anonymous(
            &app,
            "/api/v1/auth/refresh",
            json!({"refresh_token": customer.refresh_token}),
        )
        .await,
        200,
    )
    .await;
    let header = fresh["access_token"]
        .as_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_string();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    assert_eq!(header["kid"], rotated["kid"]);
    assert_eq!(header["alg"], "EdDSA");
    app.finish().await;
}

/// Login with an unknown email costs as much as a wrong password for a
/// known one (both run argon2id): measured as medians of interleaved
/// attempts, the unknown one is never a small fraction of the known one
/// (skipping the hash makes it ~1% of it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_takes_as_long_for_unknown_accounts() {
    let app = spawn(Backend::Sqlite).await;
    let seller = app.person("seller", &["WH-BER-1"]).await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..9 {
        for (email, out) in [
            (seller.email.as_str(), &mut known),
            ("nobody@example.com", &mut unknown),
        ] {
            let t = Instant::now();
            // Distinct wrong passwords below the lockout threshold.
            let password = if i % 4 == 3 {
                "person-password-1"
            } else {
                "wrong-password-x"
            };
            let r = login(&app, email, password).await;
            out.push(t.elapsed());
            assert!(r.status() == 401 || r.status() == 200);
        }
    }
    known.sort();
    unknown.sort();
    let (k, u) = (known[4], unknown[4]);
    println!("median login: known {k:?}, unknown {u:?}");
    assert!(
        u * 3 > k,
        "unknown {u:?} vs known {k:?}: an unknown email is answered without hashing"
    );
    let _ = Duration::ZERO;
    app.finish().await;
}

/// The four people of the matrix, and nobody.
struct Cast {
    people: Vec<(&'static str, Option<Person>)>,
}

async fn cast(app: &App) -> Cast {
    let mut people = vec![("nobody", None)];
    for role in ["customer", "seller", "delivery"] {
        let warehouses: &[&str] = if role == "seller" { &["WH-BER-1"] } else { &[] };
        people.push((role, Some(app.person(role, warehouses).await)));
    }
    people.push((
        "admin",
        Some(Person {
            id: app.get_json("/api/v1/auth/me").await["account_id"]
                .as_str()
                .unwrap()
                .to_string(),
            email: ADMIN_EMAIL.into(),
            token: app.admin_token.clone(),
            refresh_token: String::new(),
            client: app.client.clone(),
        }),
    ));
    Cast { people }
}

fn concrete(path: &str) -> String {
    path.split('/')
        .map(|s| match s {
            "{sku}" => "APL-GALA".to_string(),
            "{warehouse_id}" => "WH-BER-1".to_string(),
            "{supplier_id}" => "SUP-VENLO-FRESH".to_string(),
            "{stream_type}" => "Order".to_string(),
            "{stream_id}" => uuid::Uuid::now_v7().to_string(),
            s if s.starts_with('{') => uuid::Uuid::now_v7().to_string(),
            s => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// For every route of the OpenAPI document (generated from the route
/// table) and every person: nobody gets 401 with the challenge where a
/// subject is needed, a role outside the route's `x-roles` gets 403
/// `forbidden_role`, a role inside it gets past the role check. Then the
/// same for every GraphQL root field, from the `@access` directives of the
/// SDL (generated from the field table).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_and_field_admits_exactly_its_roles() {
    let app = spawn(Backend::Sqlite).await;
    let cast = cast(&app).await;
    let doc = app.get_json("/openapi.json").await;
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.push((path.clone(), method.clone(), op.clone()));
        }
    }
    // Signing out ends the session the rest of the matrix uses: last.
    let (logout, ops): (Vec<_>, Vec<_>) = ops
        .into_iter()
        .partition(|(p, _, _)| p == "/api/v1/auth/logout");
    assert!(ops.len() >= 55, "{} routes", ops.len());
    let before = app.log_len().await;
    let mut checked = 0;
    for (path, method, op) in &ops {
        checked += check_route(&app, &cast, path, method, op).await;
    }
    assert_eq!(app.log_len().await, before, "empty bodies append nothing");
    println!("{checked} route × subject checks");

    // GraphQL: every root field of the SDL with its @access roles.
    let sdl = include_str!("../../query-api/schema.graphql");
    let query_root = sdl
        .split("type Query {")
        .nth(1)
        .unwrap()
        .split("\n}")
        .next()
        .unwrap();
    let mut fields = Vec::new();
    for line in query_root.lines().map(str::trim) {
        if let Some((head, roles)) = line.split_once("@access(roles: ") {
            let name = head.split(['(', ':']).next().unwrap().to_string();
            let roles: Vec<String> = serde_json::from_str(roles.trim_end_matches(')')).unwrap();
            fields.push((name, roles));
        }
    }
    assert_eq!(fields.len(), 13, "{fields:?}");
    for (field, roles) in &fields {
        for (who, person) in &cast.people {
            let me = person.as_ref().map(|p| p.id.clone()).unwrap_or_default();
            let order = uuid::Uuid::now_v7();
            let query = match field.as_str() {
                "products" => "{ products(first: 1) { edges { cursor } } }".to_string(),
                "warehouses" => "{ warehouses { id } }".into(),
                "suppliers" => "{ suppliers { id } }".into(),
                "order" => format!("{{ order(id: \"{order}\") {{ id }} }}"),
                "customerOrders" => format!("{{ customerOrders(customerId: \"{me}\") {{ edges {{ cursor }} }} }}"),
                "delivery" => format!("{{ delivery(orderId: \"{order}\") {{ deliveryId }} }}"),
                "expiringBatches" => "{ expiringBatches(withinHours: 24, warehouseId: \"WH-BER-1\") { edges { cursor } } }".into(),
                "spoilageLedger" => "{ spoilageLedger(warehouseId: \"WH-BER-1\") { edges { cursor } } }".into(),
                "stockByWarehouse" => "{ stockByWarehouse(warehouseId: \"WH-BER-1\") { sku } }".into(),
                "payments" => format!("{{ payments(orderId: \"{order}\") {{ paymentId }} }}"),
                "auditEvents" => "{ auditEvents(first: 1) { indexedTo } }".into(),
                "streamStateAsOf" => format!("{{ streamStateAsOf(streamType: \"Order\", streamId: \"{order}\") {{ version }} }}"),
                "lotRecall" => format!("{{ lotRecall(batchId: \"{order}\") {{ customers }} }}"),
                other => panic!("a query for the new field {other} belongs in this matrix"),
            };
            let client = person
                .as_ref()
                .map_or_else(reqwest::Client::new, |p| p.client.clone());
            let r = client
                .post(format!("{}/graphql", app.url))
                .json(&json!({"query": query}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            let code = v["errors"][0]["extensions"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let allowed = roles == &["anyone"] || roles.iter().any(|r| r == who);
            if allowed {
                assert!(
                    status == 200
                        && !["UNAUTHENTICATED", "FORBIDDEN", "MFA_REQUIRED"]
                            .contains(&code.as_str()),
                    "{who} may read {field}: {status} {v}"
                );
            } else if person.is_none() {
                assert_eq!(
                    (status, code.as_str()),
                    (401, "UNAUTHENTICATED"),
                    "{field} signed out: {v}"
                );
            } else {
                assert_eq!(code, "FORBIDDEN", "{who} may not read {field}: {v}");
            }
        }
    }
    for (path, method, op) in &logout {
        check_route(&app, &cast, path, method, op).await;
    }
    app.finish().await;
}

/// One route, every person: see [`every_route_and_field_admits_exactly_its_roles`].
async fn check_route(app: &App, cast: &Cast, path: &str, method: &str, op: &Value) -> usize {
    let roles: Vec<String> = serde_json::from_value(op["x-roles"].clone()).unwrap();
    let security = op["security"].as_array().unwrap();
    assert_eq!(
        security.is_empty(),
        roles == ["anyone"],
        "{method} {path}: security and roles agree"
    );
    for (who, person) in &cast.people {
        let client = person
            .as_ref()
            .map_or_else(reqwest::Client::new, |p| p.client.clone());
        let mut req = client.request(
            method.to_uppercase().parse().unwrap(),
            format!("{}{}", app.url, concrete(path)),
        );
        if op.get("requestBody").is_some() {
            req = req.json(&json!({}));
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let challenge = r.headers().get("www-authenticate").is_some();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let code = body["code"].as_str().unwrap_or_default().to_string();
        let open = roles == ["anyone"] || (roles == ["signed-in"] && person.is_some());
        let allowed = open || roles.iter().any(|r| r == who);
        if allowed {
            assert!(
                status != 401 && code != "forbidden_role" && code != "mfa_required",
                "{who} may {method} {path}, got {status} {body}"
            );
        } else if person.is_none() {
            assert_eq!(
                (status, challenge),
                (401, true),
                "{method} {path} without a token: {body}"
            );
        } else {
            assert_eq!(
                (status, code.as_str()),
                (403, "forbidden_role"),
                "{who} may not {method} {path}"
            );
        }
    }
    cast.people.len()
}

/// One customer cannot read or act on another's order through any route
/// or field that takes it: the REST routes open to customers are
/// enumerated from the OpenAPI document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_customer_reaches_another_customers_order() {
    let app = spawn(Backend::Sqlite).await;
    let ada = app.person("customer", &[]).await;
    let bob = app.person("customer", &[]).await;
    let rider = app.person("delivery", &[]).await;
    let seller_elsewhere = app.person("seller", &["WH-MUC-1"]).await;
    let placed = expect(
        post_as(&ada.client, &app, "/api/v1/orders", order_for(&ada.id)).await,
        201,
    )
    .await;
    let order = placed["stream_id"].as_str().unwrap().to_string();
    let payment = expect(
        post_as(
            &ada.client,
            &app,
            "/api/v1/payments",
            json!({"order_id": order, "method": "cash_on_delivery",
            "amount_due": {"amount_minor": 150, "currency": "EUR"}}),
        )
        .await,
        201,
    )
    .await["stream_id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = app.log_len().await;
    let doc = app.get_json("/openapi.json").await;
    let mut tried = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let roles: Vec<String> = serde_json::from_value(op["x-roles"].clone()).unwrap();
            let takes_order = path.contains("{order_id}") || path.contains("{payment_id}");
            if !roles.contains(&"customer".to_string()) || !takes_order {
                continue;
            }
            let url = format!(
                "{}{}",
                app.url,
                path.replace("{order_id}", &order)
                    .replace("{payment_id}", &payment)
                    .replace("{sku}", "APL-GALA")
            );
            let r = bob
                .client
                .request(method.to_uppercase().parse().unwrap(), &url)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            // A body that does not parse is refused first (422), else the
            // ownership check: never a 2xx.
            assert!(
                status == 403 && body["code"] == "not_owner" || status == 422,
                "bob {method} {path}: {status} {body}"
            );
            tried += 1;
        }
    }
    assert!(tried >= 3, "{tried} routes take a customer's order");
    // With valid bodies the ownership check answers.
    for (path, body) in [
        (
            format!("/api/v1/orders/{order}/cancel"),
            json!({"reason": "customer_request"}),
        ),
        (
            format!("/api/v1/orders/{order}/refunds"),
            json!({"amount": {"amount_minor": 100, "currency": "EUR"}, "reason": "customer_complaint"}),
        ),
        (
            "/api/v1/payments".to_string(),
            json!({"order_id": order, "method": "cash_on_delivery", "amount_due": {"amount_minor": 150, "currency": "EUR"}}),
        ),
    ] {
        let r = post_as(&bob.client, &app, &path, body).await;
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            (status, v["code"].as_str().unwrap_or_default()),
            (403, "not_owner"),
            "{path}: {v}"
        );
    }
    let e = expect(post_as(&seller_elsewhere.client, &app, &format!("/api/v1/orders/{order}/pack"),
        json!({"lines": [{"sku": "APL-GALA", "packed_quantity": {"uom": "gram", "amount": 500}}]})).await, 403).await;
    assert_eq!(e["code"], "not_owner", "a seller of another warehouse");
    let e = expect(post_as(&rider.client, &app, &format!("/api/v1/payments/{payment}/cash-collections"),
        json!({"amount": {"amount_minor": 150, "currency": "EUR"}, "rider_id": uuid::Uuid::now_v7()})).await, 403).await;
    assert_eq!(
        e["code"], "not_owner",
        "a rider collects as themselves only"
    );
    assert_eq!(app.log_len().await, before, "nothing appended");

    // GraphQL: what is Ada's reads as absent to Bob.
    let gql = |client: &reqwest::Client, q: String| {
        let (client, url) = (client.clone(), app.url.clone());
        async move {
            client
                .post(format!("{url}/graphql"))
                .json(&json!({"query": q}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let p = placed["position"].as_i64().unwrap();
    let mine = gql(
        &ada.client,
        format!("{{ order(id: \"{order}\", minPosition: {p}) {{ id customerId }} }}"),
    )
    .await;
    assert_eq!(mine["data"]["order"]["id"], order.as_str(), "{mine}");
    let theirs = gql(
        &bob.client,
        format!("{{ order(id: \"{order}\", minPosition: {p}) {{ id }} }}"),
    )
    .await;
    assert!(theirs["data"]["order"].is_null(), "{theirs}");
    let theirs = gql(
        &bob.client,
        format!("{{ payments(orderId: \"{order}\") {{ paymentId }} }}"),
    )
    .await;
    assert_eq!(theirs["data"]["payments"], json!([]), "{theirs}");
    let theirs = gql(
        &bob.client,
        format!("{{ delivery(orderId: \"{order}\") {{ deliveryId }} }}"),
    )
    .await;
    assert!(theirs["data"]["delivery"].is_null(), "{theirs}");
    let theirs = gql(
        &bob.client,
        format!(
            "{{ customerOrders(customerId: \"{}\") {{ edges {{ cursor }} }} }}",
            ada.id
        ),
    )
    .await;
    assert_eq!(
        theirs["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{theirs}"
    );
    let theirs = gql(
        &seller_elsewhere.client,
        format!("{{ order(id: \"{order}\") {{ id }} }}"),
    )
    .await;
    assert!(theirs["data"]["order"].is_null(), "{theirs}");
    let theirs = gql(
        &seller_elsewhere.client,
        "{ stockByWarehouse(warehouseId: \"WH-BER-1\") { sku } }".into(),
    )
    .await;
    assert_eq!(
        theirs["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{theirs}"
    );
    app.finish().await;
}

/// An identity provider on loopback: serves its JWKS, counts the fetches.
struct Provider {
    jwks_url: String,
    keys: std::sync::Arc<std::sync::Mutex<Value>>,
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

const ISSUER: &str = "https://sso.example.test/realms/shop";

fn ed_key(seed: u8, kid: &str) -> (jsonwebtoken::EncodingKey, Value) {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let k = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let x = URL_SAFE_NO_PAD.encode(k.verifying_key().to_bytes());
    (
        jsonwebtoken::EncodingKey::from_ed_der(k.to_pkcs8_der().unwrap().as_bytes()),
        json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"}),
    )
}

async fn provider(first: Value) -> Provider {
    let keys = std::sync::Arc::new(std::sync::Mutex::new(json!({"keys": [first]})));
    let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (k, f) = (keys.clone(), fetches.clone());
    let router = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let (k, f) = (k.clone(), f.clone());
            async move {
                f.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                axum::Json(k.lock().unwrap().clone())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Provider {
        jwks_url: format!("http://{addr}/jwks"),
        keys,
        fetches,
    }
}

fn external(
    kid: &str,
    key: &jsonwebtoken::EncodingKey,
    sub: &str,
    roles: &[&str],
    extra: Value,
) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({"iss": ISSUER, "aud": "freshledger-api", "sub": sub, "iat": now, "exp": now + 300,
        "realm_access": {"roles": roles}, "email_verified": true});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    sign(kid, key, &claims)
}

/// Tokens of a configured OpenID Connect issuer are checked against its
/// JWKS (fetched once, fetched again for an unknown `kid` at most once per
/// cool-down), its role claim maps to our roles, and its subjects act in
/// their roles like our own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_an_openid_connect_issuer_are_accepted() {
    let (k1, jwk1) = ed_key(1, "k1");
    let idp = provider(jwk1).await;
    let app = spawn_with(
        Backend::Sqlite,
        &[
            "--oidc-issuer",
            ISSUER,
            "--oidc-jwks-url",
            &idp.jwks_url,
            "--oidc-role-claim",
            "realm_access.roles",
            "--oidc-roles",
            "shop-admin=admin,shop-seller=seller,shop-customer=customer",
        ],
    )
    .await;
    let fetches = || idp.fetches.load(std::sync::atomic::Ordering::SeqCst);
    let ada = client_with(&external(
        "k1",
        &k1,
        "ada-42",
        &["offline_access", "shop-customer"],
        json!({}),
    ));
    let me = expect(
        ada.get(format!("{}/api/v1/auth/me", app.url))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(me["role"], "customer");
    let ada_id = me["account_id"].as_str().unwrap().to_string();
    uuid::Uuid::parse_str(&ada_id).expect("an external subject becomes a UUID");
    let placed = expect(
        post_as(&ada, &app, "/api/v1/orders", order_for(&ada_id)).await,
        201,
    )
    .await;
    let events = app
        .get_json(&format!(
            "/api/v1/streams/Order/{}/events",
            placed["stream_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(events[0]["actor"], format!("customer:{ada_id}"));
    let e = expect(
        ada.get(format!("{}/api/v1/log", app.url))
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
    assert_eq!(e["code"], "forbidden_role");
    let seller = client_with(&external(
        "k1",
        &k1,
        "sam",
        &["shop-seller"],
        json!({"warehouses": ["WH-BER-1"]}),
    ));
    let v: Value = seller
        .post(format!("{}/graphql", app.url))
        .json(&json!({"query": "{ stockByWarehouse(warehouseId: \"WH-BER-1\") { sku } }"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v["errors"].is_null(), "{v}");
    let admin = client_with(&external("k1", &k1, "root", &["shop-admin"], json!({})));
    expect(
        admin
            .get(format!("{}/api/v1/log", app.url))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(fetches(), 1, "the keys are fetched once and cached");

    let nobody = client_with(&external("k1", &k1, "eve", &["shop-visitor"], json!({})));
    let e = expect(
        nobody
            .get(format!("{}/api/v1/auth/me", app.url))
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
    assert_eq!(e["code"], "no_role");
    for bad in [
        external(
            "k1",
            &k1,
            "ada-42",
            &["shop-customer"],
            json!({"aud": "another-api"}),
        ),
        external(
            "k1",
            &k1,
            "ada-42",
            &["shop-customer"],
            json!({"exp": chrono::Utc::now().timestamp() - 300}),
        ),
        external(
            "k1",
            &ed_key(9, "k1").0,
            "ada-42",
            &["shop-customer"],
            json!({}),
        ),
    ] {
        let r = client_with(&bad)
            .get(format!("{}/api/v1/auth/me", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.headers().contains_key("www-authenticate"));
    }

    // The provider rotates to k2: the first token naming it fetches again.
    let (k2, jwk2) = ed_key(2, "k2");
    *idp.keys.lock().unwrap() = json!({"keys": [jwk2]});
    tokio::time::sleep(Duration::from_secs(11)).await; // past the cool-down since the first fetch
    let rotated = client_with(&external(
        "k2",
        &k2,
        "ada-42",
        &["shop-customer"],
        json!({}),
    ));
    expect(
        rotated
            .get(format!("{}/api/v1/auth/me", app.url))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(fetches(), 2);
    // Made-up kids within the cool-down: refused without fetching.
    for i in 0..5 {
        let r = client_with(&external(
            &format!("made-up-{i}"),
            &k2,
            "ada-42",
            &["shop-customer"],
            json!({}),
        ))
        .get(format!("{}/api/v1/auth/me", app.url))
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), 401);
    }
    assert_eq!(fetches(), 2, "unknown kids do not hammer the provider");
    app.finish().await;
}

/// The sign-in routes have their own, stricter limit per address: past it
/// 429 with `Retry-After`, while the rest of the API still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_routes_have_a_stricter_limit_of_their_own() {
    let app = spawn_signed_out(
        Backend::Sqlite,
        &[
            "--auth-rate-limit-per-minute",
            "1",
            "--auth-rate-limit-burst",
            "2",
        ],
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = login(&app, "nobody@example.com", "guess-number-1").await;
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            let wait: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(wait >= 1);
        }
    }
    assert_eq!(statuses, [401, 401, 429], "{statuses:?}");
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/products", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the general limit is untouched");
    app.finish().await;
}

/// Subscribes over graphql-transport-ws as `token` to `order`'s status;
/// the messages until the first `next` or `complete` (or a closed socket).
async fn subscribe_as(app: &App, token: &str, order: &str) -> Vec<Value> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let mut req = format!("{}/graphql/ws", app.url.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::text(
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}})
            .to_string(),
    ))
    .await
    .unwrap();
    ws.send(Message::text(
        json!({"id": "1", "type": "subscribe", "payload": {
            "query": "subscription($id: String!) { orderStatus(orderId: $id, afterPosition: 0) { eventType } }",
            "variables": {"id": order}}})
        .to_string(),
    ))
    .await
    .unwrap();
    let mut seen = Vec::new();
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        let Ok(text) = m.to_text() else { break };
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            break;
        };
        let kind = v["type"].as_str().unwrap_or_default().to_string();
        seen.push(v);
        if kind == "next" || kind == "complete" || kind == "error" {
            break;
        }
    }
    seen
}

/// A subscription to an order's status: its customer receives it; another
/// customer's stream ends with nothing sent; a bad token is refused at
/// `connection_init`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_status_subscriptions_are_for_the_orders_reader_only() {
    let app = spawn(Backend::Sqlite).await;
    let ada = app.person("customer", &[]).await;
    let bob = app.person("customer", &[]).await;
    let placed = expect(
        post_as(&ada.client, &app, "/api/v1/orders", order_for(&ada.id)).await,
        201,
    )
    .await;
    let order = placed["stream_id"].as_str().unwrap().to_string();
    let hers = subscribe_as(&app, &ada.token, &order).await;
    let next = hers
        .iter()
        .find(|m| m["type"] == "next")
        .unwrap_or_else(|| panic!("{hers:?}"));
    assert_eq!(
        next["payload"]["data"]["orderStatus"]["eventType"],
        "OrderPlaced"
    );
    let his = subscribe_as(&app, &bob.token, &order).await;
    assert!(
        his.iter()
            .all(|m| m["payload"]["data"]["orderStatus"].is_null()),
        "another customer's order leaked: {his:?}"
    );
    assert!(his.iter().any(|m| m["type"] == "complete"), "{his:?}");
    let forged = subscribe_as(&app, "not.a.token", &order).await;
    assert!(
        forged
            .iter()
            .all(|m| m["type"] != "next" && m["type"] != "connection_ack"),
        "{forged:?}"
    );
    app.finish().await;
}
