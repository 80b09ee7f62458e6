//! Who may do what, against a running gateway: API keys and JWT bearer tokens with scopes,
//! 401 and 403 on every endpoint that needs them, the admin listener, and per-key rate limits.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_tests::receiver::Receiver;
use sluice_tests::{Kafka, unique_name};
use support::{Env, RegistryKind, order, route};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ISSUER: &str = "https://id.example.test/";
const AUDIENCE: &str = "sluice";

/// An API key and the `[[auth.api_keys]]` entry that admits it.
struct Key {
    secret: String,
    entry: String,
}

fn key(name: &str, scopes: &[&str], requests_per_second: Option<u32>) -> Key {
    let (secret, sha256) = sluice::auth::new_key().expect("randomness");
    let rate = requests_per_second.map(|r| format!("requests_per_second = {r}\n")).unwrap_or_default();
    let entry = format!("[[auth.api_keys]]\nname = \"{name}\"\nsha256 = \"{sha256}\"\nscopes = {scopes:?}\n{rate}");
    Key { secret, entry }
}

/// A problem answer's status, `type` slug and body.
async fn answer(response: reqwest::Response) -> anyhow::Result<(StatusCode, String, Value)> {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    let slug = body["type"].as_str().unwrap_or_default().trim_start_matches("urn:sluice:problem:").to_owned();
    Ok((status, slug, body))
}

async fn call(
    env: &Env,
    method: Method,
    path: &str,
    credential: Option<&str>,
    body: Option<&Value>,
) -> anyhow::Result<reqwest::Response> {
    let mut request = env.http.request(method, format!("{}{path}", env.base));
    if let Some(credential) = credential {
        request = request.bearer_auth(credential);
    }
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body.to_string());
    }
    Ok(request.send().await?)
}

async fn produce(env: &Env, topic: &str, credential: &str) -> anyhow::Result<reqwest::Response> {
    call(env, Method::POST, &format!("/v1/topics/{topic}/events"), Some(credential), Some(&order("o-1"))).await
}

/// Every endpoint that needs credentials, with a body where it takes one.
fn protected_endpoints(topic: &str) -> Vec<(Method, String, Option<Value>)> {
    let subscription = json!({"name": "s", "topics": [topic], "url": "http://127.0.0.1:9/", "secrets": [SECRET]});
    let schema = json!({"schema": "\"string\""});
    vec![
        (Method::POST, format!("/v1/topics/{topic}/events"), Some(order("o-1"))),
        (Method::GET, "/v1/subscriptions".into(), None),
        (Method::POST, "/v1/subscriptions".into(), Some(subscription)),
        (Method::GET, "/v1/subscriptions/s".into(), None),
        (Method::DELETE, "/v1/subscriptions/s".into(), None),
        (Method::POST, "/v1/subscriptions/s/pause".into(), None),
        (Method::POST, "/v1/subscriptions/s/resume".into(), None),
        (Method::POST, "/v1/subscriptions/s/replay".into(), Some(json!({"from": "earliest"}))),
        (Method::POST, "/v1/subscriptions/s/redrive".into(), None),
        (Method::GET, "/registry/subjects".into(), None),
        (Method::POST, "/registry/subjects/x-value/versions".into(), Some(schema.clone())),
        (Method::POST, "/registry/subjects/x-value".into(), Some(schema.clone())),
        (Method::GET, "/registry/subjects/x-value/versions/latest".into(), None),
        (Method::DELETE, "/registry/subjects/x-value".into(), None),
        (Method::GET, "/registry/schemas/ids/1".into(), None),
        (Method::GET, "/registry/config".into(), None),
        (Method::PUT, "/registry/config".into(), Some(json!({"compatibility": "FULL"}))),
        (Method::POST, "/registry/compatibility/subjects/x-value/versions/latest".into(), Some(schema)),
        (Method::GET, "/v1/no-such-endpoint".into(), None),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_without_valid_credentials_are_refused_on_every_protected_endpoint() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let topic = unique_name("orders");
    Kafka::shared().create_topic(&topic, 1, &[]).await?;
    let admin = key("ops", &["admin"], None);
    let env = Env::start(RegistryKind::Embedded, &format!("{}{}", admin.entry, route(&topic, "json", None))).await?;

    for (method, path, body) in protected_endpoints(&topic) {
        for credential in [None, Some("sk_not-a-key"), Some("e30.e30.c2ln")] {
            let response = call(&env, method.clone(), &path, credential, body.as_ref()).await?;
            let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap_or("").to_owned());
            let (status, slug, problem) = answer(response).await?;
            assert_eq!((status, slug.as_str()), (StatusCode::UNAUTHORIZED, "unauthorized"), "{method} {path}");
            assert_eq!(challenge.as_deref(), Some("Bearer"), "{method} {path}");
            let detail = problem["detail"].as_str().unwrap_or_default();
            assert!(!detail.contains(admin.secret.as_str()), "{detail}");
        }
    }
    // Probes, scrapes and the API document stay open.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let status = call(&env, Method::GET, path, None, None).await?.status();
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    // And the same key that is refused nowhere above when present is accepted.
    assert_eq!(produce(&env, &topic, &admin.secret).await?.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn scopes_decide_what_each_key_may_do() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    // The topic names the scopes are about, literally.
    for topic in ["orders.placed", "payments.confirmed"] {
        Kafka::shared().create_topic(topic, 1, &[]).await?;
    }
    let orders = key("checkout", &["produce:orders.*", "subscribe:orders.*"], None);
    let reader = key("ci", &["registry:read"], None);
    let admin = key("ops", &["admin"], None);
    let admin_token = "admin-token-0123456789";
    let config = format!(
        "{}{}{}[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{admin_token}\"\n{}{}",
        orders.entry,
        reader.entry,
        admin.entry,
        route("orders.placed", "json", Some("/order_id")),
        route("payments.confirmed", "json", None),
    );
    let env = Env::start(RegistryKind::Embedded, &config).await?;

    // produce:orders.* produces to orders.placed, not to payments.confirmed.
    let (status, _, body) = answer(produce(&env, "orders.placed", &orders.secret).await?).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["offset"], 0, "{body}");
    let (status, slug, body) = answer(produce(&env, "payments.confirmed", &orders.secret).await?).await?;
    assert_eq!((status, slug.as_str()), (StatusCode::FORBIDDEN, "forbidden"), "{body}");
    assert_eq!(body["scope"], "produce:payments.confirmed");
    assert!(body["detail"].as_str().unwrap_or_default().contains("checkout"), "{body}");
    assert_eq!(support::record_count(&env.bootstrap, "payments.confirmed").await?, 0);
    // A key for the registry only produces nowhere.
    let (status, _, _) = answer(produce(&env, "orders.placed", &reader.secret).await?).await?;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Subscriptions: only to topics the key may subscribe to, and only its own are visible.
    let receiver = Receiver::start().await?;
    let subscribe = |name: &str, topic: &str, credential: &str| {
        let body = json!({
            "name": name, "topics": [topic], "url": receiver.url(name), "secrets": [SECRET],
            "dead_letter_topic": format!("{topic}.dlq"),
        });
        let request = env.http.post(format!("{}/v1/subscriptions", env.base)).bearer_auth(credential).json(&body);
        async move { answer(request.send().await?).await }
    };
    let (status, _, body) = subscribe("o", "orders.placed", &orders.secret).await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, slug, body) = subscribe("p", "payments.confirmed", &orders.secret).await?;
    assert_eq!(
        (status, slug.as_str(), body["scope"].as_str()),
        (StatusCode::FORBIDDEN, "forbidden", Some("subscribe:payments.confirmed"))
    );
    // Nor may it route dead letters into a topic it may not produce to.
    let sneaky = json!({
        "name": "q", "topics": ["orders.placed"], "url": receiver.url("q"), "secrets": [SECRET],
        "dead_letter_topic": "payments.confirmed",
    });
    let request = env.http.post(format!("{}/v1/subscriptions", env.base)).bearer_auth(&orders.secret);
    let (status, _, body) = answer(request.json(&sneaky).send().await?).await?;
    assert_eq!((status, body["scope"].as_str()), (StatusCode::FORBIDDEN, Some("produce:payments.confirmed")));
    let (status, _, body) = subscribe("p", "payments.confirmed", &admin.secret).await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let names = |body: Value| -> Vec<String> {
        let list = body["subscriptions"].as_array().cloned().unwrap_or_default();
        let mut names: Vec<String> = list.iter().filter_map(|s| s["name"].as_str().map(str::to_owned)).collect();
        names.sort();
        names
    };
    let list = call(&env, Method::GET, "/v1/subscriptions", Some(&orders.secret), None).await?;
    assert_eq!(names(list.json().await?), ["o"]);
    let list = call(&env, Method::GET, "/v1/subscriptions", Some(&admin.secret), None).await?;
    assert_eq!(names(list.json().await?), ["o", "p"]);
    for (method, path) in [
        (Method::GET, "/v1/subscriptions/p"),
        (Method::POST, "/v1/subscriptions/p/pause"),
        (Method::DELETE, "/v1/subscriptions/p"),
    ] {
        let (status, _, body) = answer(call(&env, method.clone(), path, Some(&orders.secret), None).await?).await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
    }
    assert_eq!(
        call(&env, Method::GET, "/v1/subscriptions/o", Some(&orders.secret), None).await?.status(),
        StatusCode::OK
    );
    assert_eq!(
        call(&env, Method::GET, "/v1/subscriptions/o", Some(&reader.secret), None).await?.status(),
        StatusCode::FORBIDDEN
    );

    // The registry: reads need registry:read, writes registry:write (or admin).
    let schema = json!({"schema": "\"string\""});
    let subjects = call(&env, Method::GET, "/registry/subjects", Some(&reader.secret), None).await?;
    assert_eq!(subjects.status(), StatusCode::OK);
    let (status, _, body) =
        answer(call(&env, Method::GET, "/registry/subjects", Some(&orders.secret), None).await?).await?;
    assert_eq!((status, body["scope"].as_str()), (StatusCode::FORBIDDEN, Some("registry:read")));
    let versions = "/registry/subjects/x-value/versions";
    let register = call(&env, Method::POST, versions, Some(&reader.secret), Some(&schema)).await?;
    let (status, _, body) = answer(register).await?;
    assert_eq!((status, body["scope"].as_str()), (StatusCode::FORBIDDEN, Some("registry:write")));
    let register = call(&env, Method::POST, versions, Some(&admin.secret), Some(&schema)).await?;
    assert_eq!(register.status(), StatusCode::OK);
    // Looking a schema up and testing compatibility are reads.
    let lookup = call(&env, Method::POST, "/registry/subjects/x-value", Some(&reader.secret), Some(&schema)).await?;
    assert_eq!(lookup.status(), StatusCode::OK);

    // The admin listener takes the admin token or an admin-scoped key, nothing else.
    let admin_url = format!("http://{}/admin/plugins", env.gateway.admin_addr().expect("admin listener"));
    for (credential, expected) in [
        (admin_token, StatusCode::OK),
        (admin.secret.as_str(), StatusCode::OK),
        (orders.secret.as_str(), StatusCode::FORBIDDEN),
        ("sk_not-a-key", StatusCode::UNAUTHORIZED),
    ] {
        let status = env.http.get(&admin_url).bearer_auth(credential).send().await?.status();
        assert_eq!(status, expected);
    }
    assert_eq!(env.http.get(&admin_url).send().await?.status(), StatusCode::UNAUTHORIZED);
    Ok(())
}

/// An ES256 signing key and its JWKS entry.
struct Signer {
    pkcs8: Vec<u8>,
    kid: String,
}

impl Signer {
    fn new(kid: &str) -> Self {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
        Self { pkcs8: pkcs8.as_ref().to_vec(), kid: kid.into() }
    }

    fn jwk(&self) -> Value {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
        let rng = ring::rand::SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &self.pkcs8, &rng).expect("key");
        // An uncompressed point: 0x04, X, Y.
        let point = pair.public_key().as_ref();
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..]), "kid": self.kid, "alg": "ES256", "use": "sig"})
    }

    fn token(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&self.pkcs8)).expect("signing")
    }
}

fn claims(scope: &str, audience: &str, expires_in: i64) -> Value {
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()).unwrap_or(0);
    json!({"iss": ISSUER, "aud": audience, "sub": "svc-checkout", "scope": scope, "iat": now, "exp": now + expires_in})
}

#[tokio::test(flavor = "multi_thread")]
async fn jwt_bearer_tokens_are_checked_against_the_jwks() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let topic = format!("orders.{}", unique_name("jwt"));
    Kafka::shared().create_topic(&topic, 1, &[]).await?;
    let signer = Signer::new("key-1");
    let stranger = Signer::new("key-2");
    let dir = tempfile::tempdir()?;
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, json!({"keys": [signer.jwk()]}).to_string())?;
    let config = format!(
        "[auth.jwt]\njwks_file = \"{}\"\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n{}",
        jwks.display(),
        route(&topic, "json", None)
    );
    let env = Env::start(RegistryKind::Embedded, &config).await?;

    let (status, _, body) =
        answer(produce(&env, &topic, &signer.token(&claims("openid produce:orders.*", AUDIENCE, 300))).await?).await?;
    assert_eq!(status, StatusCode::OK, "{body}");

    let hs256 = jsonwebtoken::encode(
        &Header { kid: Some("key-1".into()), ..Header::new(Algorithm::HS256) },
        &claims("produce:orders.*", AUDIENCE, 300),
        &EncodingKey::from_secret(b"a shared secret"),
    )?;
    for (token, reason) in [
        (signer.token(&claims("produce:orders.*", AUDIENCE, -120)), "ExpiredSignature"),
        (signer.token(&claims("produce:orders.*", "someone-else", 300)), "InvalidAudience"),
        (stranger.token(&claims("produce:orders.*", AUDIENCE, 300)), "unknown signing key 'key-2'"),
        (hs256, "HS256 are not accepted"),
    ] {
        let (status, slug, body) = answer(produce(&env, &topic, &token).await?).await?;
        assert_eq!((status, slug.as_str()), (StatusCode::UNAUTHORIZED, "unauthorized"), "{reason}: {body}");
        assert!(body["detail"].as_str().unwrap_or_default().contains(reason), "{reason}: {body}");
    }
    // A valid token without the scope is authenticated, then refused.
    let (status, slug, body) =
        answer(produce(&env, &topic, &signer.token(&claims("produce:payments.*", AUDIENCE, 300))).await?).await?;
    assert_eq!((status, slug.as_str()), (StatusCode::FORBIDDEN, "forbidden"), "{body}");
    assert!(body["detail"].as_str().unwrap_or_default().contains("svc-checkout"), "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn per_key_rate_limits_answer_429_with_retry_after() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    let topic = format!("orders.{}", unique_name("rate"));
    Kafka::shared().create_topic(&topic, 1, &[]).await?;
    let limited = key("batch-job", &["produce:orders.*"], Some(1));
    let other = key("checkout", &["produce:orders.*"], None);
    let config = format!(
        "{}{}[limits]\nper_key_requests_per_second = 1000\n{}",
        limited.entry,
        other.entry,
        route(&topic, "json", None)
    );
    let env = Env::start(RegistryKind::Embedded, &config).await?;

    assert_eq!(produce(&env, &topic, &limited.secret).await?.status(), StatusCode::OK);
    // At one request per second, one of the next few back-to-back requests is refused.
    let mut refused = None;
    for _ in 0..5 {
        let response = produce(&env, &topic, &limited.secret).await?;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap_or("").to_owned());
            refused = Some((retry_after, answer(response).await?.1));
            break;
        }
    }
    let (retry_after, slug) = refused.expect("a 429 among back-to-back requests at 1 request/s");
    assert_eq!(slug, "rate-limited");
    let seconds: u64 = retry_after.expect("Retry-After").parse()?;
    assert!((1..=2).contains(&seconds), "Retry-After {seconds}");
    // Another key is not held back by this key's limit.
    for _ in 0..3 {
        assert_eq!(produce(&env, &topic, &other.secret).await?.status(), StatusCode::OK);
    }
    // After the wait the client was told, the limited key is admitted again.
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    assert_eq!(produce(&env, &topic, &limited.secret).await?.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_from_a_jwks_url_rotate_in_and_unknown_key_ids_do_not_hammer_the_provider() -> anyhow::Result<()> {
    let _deadline = sluice_tests::deadline();
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex, PoisonError};

    use axum::extract::State;
    use axum::routing::get;

    type Provider = (Arc<Mutex<String>>, Arc<AtomicUsize>);
    async fn publish(State((jwks, fetches)): State<Provider>) -> ([(&'static str, &'static str); 1], String) {
        fetches.fetch_add(1, Ordering::SeqCst);
        ([("content-type", "application/json")], jwks.lock().unwrap_or_else(PoisonError::into_inner).clone())
    }

    let topic = format!("orders.{}", unique_name("jwks"));
    Kafka::shared().create_topic(&topic, 1, &[]).await?;
    let (current, next) = (Signer::new("2026-11"), Signer::new("2026-12"));
    // The identity provider: a real HTTP server publishing the JWKS and counting fetches.
    let jwks = Arc::new(Mutex::new(json!({"keys": [current.jwk()]}).to_string()));
    let fetches = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let provider = listener.local_addr()?;
    let app = axum::Router::new().route("/jwks.json", get(publish)).with_state((jwks.clone(), fetches.clone()));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = format!(
        "[auth.jwt]\njwks_url = \"http://{provider}/jwks.json\"\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\nrefresh_s = 3600\n{}",
        route(&topic, "json", None)
    );
    let env = Env::start(RegistryKind::Embedded, &config).await?;
    let allowed = claims("produce:orders.*", AUDIENCE, 300);
    assert_eq!(produce(&env, &topic, &current.token(&allowed)).await?.status(), StatusCode::OK);
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "fetched once at start");

    // The provider rotates in a new key. Tokens naming it are refused until Sluice fetches the
    // JWKS again, which an unknown key id triggers at most every 30 s.
    *jwks.lock().unwrap_or_else(PoisonError::into_inner) = json!({"keys": [current.jwk(), next.jwk()]}).to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut refused = 0;
    loop {
        let status = produce(&env, &topic, &next.token(&allowed)).await?.status();
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        refused += 1;
        assert!(tokio::time::Instant::now() < deadline, "the rotated-in key was never fetched");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(refused >= 10, "the new key was accepted after {refused} refusals: too soon for a 30 s floor");
    assert_eq!(fetches.load(Ordering::SeqCst), 2, "{refused} tokens with an unknown key id caused one fetch");
    assert_eq!(
        produce(&env, &topic, &current.token(&allowed)).await?.status(),
        StatusCode::OK,
        "the old key still works"
    );
    Ok(())
}
