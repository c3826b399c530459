//! The tenant GraphQL API for requests: API keys made by the municipality admin (shown once,
//! hashed at rest, scoped, revocable, worthless on another municipality's host), filing with
//! uploads, the public status lookup, pages, polling changes and workflow actions.

use axum::http::StatusCode;
use desk_authz::Authorizer;
use desk_db::Tenant;
use desk_tests::TestApp;
use serde_json::{Value, json};
use std::time::Duration;

const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n";
const SERVICE: &str = "MUN-REV-002";

pub(crate) async fn gql(
    app: &TestApp,
    host: &str,
    key: Option<&str>,
    query: &str,
    variables: Value,
) -> Value {
    let body = json!({ "query": query, "variables": variables }).to_string();
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    let res = app
        .send("POST", host, "/graphql", Some(&body), &headers)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    serde_json::from_str(&res.text).unwrap()
}

pub(crate) fn code(v: &Value) -> &str {
    v["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
}

const SUBMIT: &str = "mutation($input: SubmitRequestInput!) { submitRequest(input: $input) { trackingCode promisedOn replayed } }";

/// A GraphQL multipart request (files for the form's file fields).
async fn submit_with_file(
    app: &TestApp,
    host: &str,
    key: &str,
    national_code: &str,
    idempotency_key: &str,
) -> Value {
    let operations = json!({
        "query": SUBMIT,
        "variables": { "input": {
            "serviceCode": SERVICE,
            "mobile": "۰۹۱۲۸۸۸۸۸۸۸",
            "idempotencyKey": idempotency_key,
            "values": {
                "applicant_national_code": national_code,
                "full_name": "رضا کریمی",
                "address": "اصفهان، خیابان هزارجریب",
            },
            "files": [{ "field": "doc_1", "file": null }],
        }},
    });
    let map = json!({ "0": ["variables.input.files.0.file"] });
    const B: &str = "gql-boundary-31";
    let mut body = Vec::new();
    for (name, value) in [
        ("operations", operations.to_string()),
        ("map", map.to_string()),
    ] {
        body.extend_from_slice(
            format!("--{B}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{B}\r\nContent-Disposition: form-data; name=\"0\"; filename=\"bill.pdf\"\r\nContent-Type: application/pdf\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(PDF);
    body.extend_from_slice(format!("\r\n--{B}--\r\n").as_bytes());
    let auth = format!("Bearer {key}");
    let ct = format!("multipart/form-data; boundary={B}");
    let res = app
        .send_bytes(
            "POST",
            host,
            "/graphql",
            body,
            &[("authorization", &auth), ("content-type", &ct)],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    serde_json::from_str(&res.text).unwrap()
}

/// The municipality admin makes a key in the staff portal; returns it as shown once.
async fn make_key(
    app: &TestApp,
    tenant: &Tenant,
    host: &str,
    scopes: &[&str],
    role: &str,
) -> String {
    let admin = app
        .staff_sign_in(tenant, &format!("admin-{}", tenant.slug.as_str()))
        .await;
    let page = app.get_as(&admin, host, "/staff/api-keys").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let csrf = page.csrf();
    let mut fields = vec![
        ("csrf", csrf.as_str()),
        ("name", "سامانه درآمد"),
        ("role", role),
    ];
    fields.extend(scopes.iter().map(|s| ("scope", *s)));
    let made = app
        .post_form(Some(&admin), host, "/staff/api-keys", &fields)
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let start = made.text.find("miz_").unwrap();
    let key = made.text[start..start + 68].to_owned();
    assert!(key[4..].bytes().all(|b| b.is_ascii_hexdigit()));
    // Shown once: the list shows only its prefix.
    let again = app.get_as(&admin, host, "/staff/api-keys").await;
    assert!(!again.text.contains(&key) && again.text.contains(&key[..12]));
    key
}

#[tokio::test]
async fn integrators_file_follow_and_act_on_requests_with_keys_of_their_municipality() {
    let (app, alpha, beta) = desk_tests::two_municipalities().await;
    let full = make_key(
        &app,
        &alpha,
        "alpha.test",
        &["requests:submit", "requests:read", "requests:act"],
        "department_head",
    )
    .await;
    let reader = make_key(&app, &alpha, "alpha.test", &["requests:read"], "").await;

    // Hashes only at rest.
    let mut tx = app.tx(&alpha).await;
    let clear: i64 = sqlx::query_scalar(
        "select count(*) from api_keys where encode(key_hash, 'hex') like '%' || $1 || '%' or prefix = $2",
    )
    .bind(&full[4..])
    .bind(&full)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(clear, 0);

    // No key: not authenticated; a key of another municipality or a made-up key: refused as
    // not valid here.
    let list = "{ requests(first: 10) { edges { cursor node { trackingCode state channel } } pageInfo { hasNextPage endCursor } } }";
    assert_eq!(
        code(&gql(&app, "alpha.test", None, list, json!({})).await),
        "UNAUTHENTICATED"
    );
    assert_eq!(
        code(&gql(&app, "beta.test", Some(&full), list, json!({})).await),
        "INVALID_API_KEY"
    );
    let forged = format!("miz_{}", "0".repeat(64));
    assert_eq!(
        code(&gql(&app, "alpha.test", Some(&forged), list, json!({})).await),
        "INVALID_API_KEY"
    );
    // Scope enforced per operation.
    let denied = submit_with_file(
        &app,
        "alpha.test",
        &reader,
        "0499370899",
        "gql-idem-key-000001",
    )
    .await;
    assert_eq!(code(&denied), "FORBIDDEN");

    // Filing with an upload; a replay returns the same request.
    let filed = submit_with_file(
        &app,
        "alpha.test",
        &full,
        "0499370899",
        "gql-idem-key-000001",
    )
    .await;
    let tracking = filed["data"]["submitRequest"]["trackingCode"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(filed["data"]["submitRequest"]["replayed"], false);
    let replay = submit_with_file(
        &app,
        "alpha.test",
        &full,
        "0499370899",
        "gql-idem-key-000001",
    )
    .await;
    assert_eq!(
        replay["data"]["submitRequest"]["trackingCode"],
        tracking.as_str()
    );
    assert_eq!(replay["data"]["submitRequest"]["replayed"], true);
    // Bad input: a stable code and the field.
    let bad = submit_with_file(
        &app,
        "alpha.test",
        &full,
        "1234567890",
        "gql-idem-key-000002",
    )
    .await;
    assert_eq!(code(&bad), "BAD_USER_INPUT");
    assert!(
        bad["errors"][0]["extensions"]["fields"][0]["field"] == "applicant_national_code",
        "{bad}"
    );
    let second = submit_with_file(
        &app,
        "alpha.test",
        &full,
        "0790419904",
        "gql-idem-key-000003",
    )
    .await;
    let second_code = second["data"]["submitRequest"]["trackingCode"]
        .as_str()
        .unwrap()
        .to_owned();

    // Pages.
    let page = gql(&app, "alpha.test", Some(&reader), "{ requests(first: 1) { edges { cursor node { trackingCode channel } } pageInfo { hasNextPage endCursor } } }", json!({})).await;
    assert_eq!(
        page["data"]["requests"]["edges"].as_array().unwrap().len(),
        1
    );
    assert_eq!(
        page["data"]["requests"]["edges"][0]["node"]["channel"],
        "api"
    );
    assert_eq!(page["data"]["requests"]["pageInfo"]["hasNextPage"], true);
    let cursor = page["data"]["requests"]["pageInfo"]["endCursor"]
        .as_str()
        .unwrap();
    let next = gql(&app, "alpha.test", Some(&reader), "query($a: String) { requests(first: 5, after: $a) { edges { node { trackingCode } } pageInfo { hasNextPage } } }", json!({ "a": cursor })).await;
    let codes: Vec<&str> = [&page, &next]
        .iter()
        .flat_map(|p| p["data"]["requests"]["edges"].as_array().unwrap().iter())
        .map(|e| e["node"]["trackingCode"].as_str().unwrap())
        .collect();
    assert_eq!(codes.len(), 2);
    assert!(codes.contains(&tracking.as_str()) && codes.contains(&second_code.as_str()));
    assert_eq!(
        code(
            &gql(
                &app,
                "alpha.test",
                Some(&reader),
                "{ requests(after: \"garbage\") { edges { cursor } } }",
                json!({})
            )
            .await
        ),
        "BAD_USER_INPUT"
    );

    // Polling changes: after the first change cursor, only later changes come.
    let changes = "query($a: String) { requestChanges(after: $a) { edges { cursor node { trackingCode state } } pageInfo { endCursor } } }";
    // Changes show once they are older than the polling lag.
    let lag = desk_db::requests::CHANGES_LAG + std::time::Duration::from_millis(200);
    tokio::time::sleep(lag).await;
    let all = gql(
        &app,
        "alpha.test",
        Some(&reader),
        changes,
        json!({ "a": null }),
    )
    .await;
    assert_eq!(
        all["data"]["requestChanges"]["edges"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let end = all["data"]["requestChanges"]["pageInfo"]["endCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let quiet = gql(
        &app,
        "alpha.test",
        Some(&reader),
        changes,
        json!({ "a": end }),
    )
    .await;
    assert_eq!(
        quiet["data"]["requestChanges"]["edges"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // Acting as the key's role: refused transitions carry their code.
    let act = "mutation($t: String!, $a: String!, $n: String) { transitionRequest(trackingCode: $t, action: $a, note: $n) { state stateLabel timeline { action state } } }";
    let wrong = gql(
        &app,
        "alpha.test",
        Some(&full),
        act,
        json!({ "t": tracking, "a": "deliver" }),
    )
    .await;
    assert_eq!(code(&wrong), "BAD_USER_INPUT");
    assert_eq!(
        code(
            &gql(
                &app,
                "alpha.test",
                Some(&reader),
                act,
                json!({ "t": tracking, "a": "accept" })
            )
            .await
        ),
        "FORBIDDEN"
    );
    let done = gql(
        &app,
        "alpha.test",
        Some(&full),
        act,
        json!({ "t": tracking, "a": "accept" }),
    )
    .await;
    assert_eq!(
        done["data"]["transitionRequest"]["state"], "in_review",
        "{done}"
    );
    // The timeline names the key that acted.
    let mut tx = app.tx(&alpha).await;
    let by_key: i64 = sqlx::query_scalar(
        "select count(*) from request_events e join api_keys k on k.id = e.api_key_id
          where e.actor_kind = 'api' and e.action = 'accept' and k.prefix = $1",
    )
    .bind(&full[..12])
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(by_key, 1);
    tokio::time::sleep(lag).await;
    let moved = gql(
        &app,
        "alpha.test",
        Some(&reader),
        changes,
        json!({ "a": end }),
    )
    .await;
    let edges = moved["data"]["requestChanges"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1);
    assert_eq!(edges[0]["node"]["trackingCode"], tracking.as_str());
    // The same code from beta's host: not found.
    assert_eq!(
        code(
            &gql(
                &app,
                "beta.test",
                Some(&full),
                act,
                json!({ "t": tracking, "a": "approve" })
            )
            .await
        ),
        "INVALID_API_KEY"
    );

    // The public lookup needs the right mobile, and is per municipality.
    let status = "query($t: String!, $m: String!) { request(trackingCode: $t, mobile: $m) { state stateLabel promisedOn timeline { action } } }";
    let found = gql(
        &app,
        "alpha.test",
        None,
        status,
        json!({ "t": tracking, "m": "09128888888" }),
    )
    .await;
    assert_eq!(found["data"]["request"]["state"], "in_review");
    assert_eq!(
        found["data"]["request"]["timeline"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let other = gql(
        &app,
        "alpha.test",
        None,
        status,
        json!({ "t": tracking, "m": "09120000001" }),
    )
    .await;
    assert!(other["data"]["request"].is_null());
    let there = gql(
        &app,
        "beta.test",
        None,
        status,
        json!({ "t": tracking, "m": "09128888888" }),
    )
    .await;
    assert!(there["data"]["request"].is_null());
    assert_eq!(
        code(
            &gql(
                &app,
                "alpha.test",
                None,
                status,
                json!({ "t": "123", "m": "x" })
            )
            .await
        ),
        "BAD_USER_INPUT"
    );

    // Many lookups in one query are refused by the complexity budget (50 each, 500 in all).
    let many: String = (0..11)
        .map(|i| {
            format!(
                "l{i}: request(trackingCode: \"{tracking}\", mobile: \"09128888888\") {{ state }}"
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    let refused = gql(
        &app,
        "alpha.test",
        None,
        &format!("{{ {many} }}"),
        json!({}),
    )
    .await;
    assert!(
        refused["data"].is_null()
            && refused["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("complex")
            && code(&refused) == "QUERY_TOO_COMPLEX",
        "{refused}"
    );
    // Too deep: refused with its code.
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {} name {} }} }} }} }}",
        "{ ofType ".repeat(10),
        "}".repeat(10)
    );
    let refused = gql(&app, "alpha.test", None, &deep, json!({})).await;
    assert_eq!(code(&refused), "QUERY_TOO_DEEP", "{refused}");
    // Not GraphQL at all: a code too.
    let refused = gql(&app, "alpha.test", None, "{ services { nope } }", json!({})).await;
    assert_eq!(code(&refused), "GRAPHQL_VALIDATION_FAILED", "{refused}");
    // The scheme is case-insensitive.
    let lower = app
        .send(
            "POST",
            "alpha.test",
            "/graphql",
            Some(&json!({ "query": "{ requests(first: 1) { edges { cursor } } }" }).to_string()),
            &[
                ("content-type", "application/json"),
                ("authorization", &format!("bearer {full}")),
            ],
        )
        .await;
    assert!(!lower.text.contains("errors"), "{}", lower.text);

    // Revoked and expired keys stop working.
    let mut tx = app.tx(&alpha).await;
    sqlx::query("update api_keys set expires_at = now() - interval '1 minute' where prefix = $1")
        .bind(&reader[..12])
        .execute(&mut *tx)
        .await
        .unwrap();
    let full_id: i64 = sqlx::query_scalar("select id from api_keys where prefix = $1")
        .bind(&full[..12])
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    desk_db::api_keys::revoke(&mut tx, full_id).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        code(&gql(&app, "alpha.test", Some(&reader), list, json!({})).await),
        "INVALID_API_KEY"
    );
    assert_eq!(
        code(&gql(&app, "alpha.test", Some(&full), list, json!({})).await),
        "INVALID_API_KEY"
    );
    let _ = beta;
    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}

pub(crate) async fn key_for(app: &TestApp, tenant: &Tenant, scopes: &[&str]) -> String {
    let mut tx = app.tx(tenant).await;
    let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
    let (key, _) = desk_db::api_keys::create(&mut tx, "open311", &scopes, None, None, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    key
}

#[tokio::test]
async fn open311_serves_the_catalog_and_takes_requests_only_with_a_key_of_the_municipality() {
    let app = TestApp::new().await;
    let authz = Authorizer::load(&app.db.platform).await.unwrap();
    let alpha = desk_tests::onboard(&app.db.platform, &authz, "alpha").await;
    let beta = desk_tests::onboard(&app.db.platform, &authz, "beta").await;
    let submit_key = key_for(&app, &alpha, &["requests:submit"]).await;
    let read_key = key_for(&app, &alpha, &["requests:read"]).await;
    let beta_key = key_for(&app, &beta, &["requests:submit", "requests:read"]).await;

    let list = app.get("alpha.test", "/open311/v2/services.json").await;
    assert_eq!(list.status, StatusCode::OK);
    let list: Value = serde_json::from_str(&list.text).unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|s| s["service_code"] == SERVICE)
    );
    let one = app
        .get(
            "alpha.test",
            &format!("/open311/v2/services/{SERVICE}.json"),
        )
        .await;
    let one: Value = serde_json::from_str(&one.text).unwrap();
    let attrs = one["attributes"].as_array().unwrap();
    assert!(
        attrs
            .iter()
            .any(|a| a["code"] == "applicant_national_code" && a["required"] == true)
    );
    assert!(attrs.iter().any(|a| {
        a["code"] == "doc_1"
            && a["datatype_description"]
                .as_str()
                .unwrap()
                .contains("multipart")
    }));
    assert_eq!(
        app.get("alpha.test", "/open311/v2/services/NOPE.json")
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let post = |key: String, host: &'static str, national: &'static str| {
        let app = &app;
        async move {
            app.post_multipart(
                "",
                host,
                "/open311/v2/requests.json",
                &[
                    ("api_key", key.as_str()),
                    ("service_code", SERVICE),
                    ("phone", "09129999999"),
                    ("attribute[applicant_national_code]", national),
                    ("attribute[full_name]", "مریم رضایی"),
                    ("attribute[address]", "اصفهان، میدان نقش جهان"),
                    ("description", "از سامانه شهری"),
                ],
                ("attribute[doc_1]", "bill.pdf", PDF),
            )
            .await
        }
    };
    assert_eq!(
        post(String::new(), "alpha.test", "0499370899").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(read_key.clone(), "alpha.test", "0499370899")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(submit_key.clone(), "beta.test", "0499370899")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // A key in the query string is checked before the body is read.
    let early = app
        .send_bytes(
            "POST",
            "alpha.test",
            "/open311/v2/requests.json?api_key=miz_not-a-key",
            vec![b'x'; 1024],
            &[("content-type", "multipart/form-data; boundary=never")],
        )
        .await;
    assert_eq!(early.status, StatusCode::FORBIDDEN);
    let bad = post(submit_key.clone(), "alpha.test", "1111111112").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text.contains("applicant_national_code"), "{}", bad.text);
    let made = post(submit_key.clone(), "alpha.test", "0499370899").await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let made: Value = serde_json::from_str(&made.text).unwrap();
    let id = made[0]["service_request_id"].as_str().unwrap().to_owned();
    let token = made[0]["token"].as_str().unwrap().to_owned();

    // Reading needs requests:read of this municipality.
    let path = format!("/open311/v2/requests/{id}.json");
    assert_eq!(
        app.get("alpha.test", &path).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get("alpha.test", &format!("{path}?api_key={submit_key}"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get("beta.test", &format!("{path}?api_key={beta_key}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let got = app
        .get("alpha.test", &format!("{path}?api_key={read_key}"))
        .await;
    assert_eq!(got.status, StatusCode::OK);
    let got: Value = serde_json::from_str(&got.text).unwrap();
    assert_eq!(got[0]["status"], "open");
    assert_eq!(got[0]["service_code"], SERVICE);
    assert!(!got.to_string().contains("09129999999") && !got.to_string().contains("0499370899"));
    let by_token = app
        .get(
            "alpha.test",
            &format!("/open311/v2/tokens/{token}.json?api_key={read_key}"),
        )
        .await;
    let by_token: Value = serde_json::from_str(&by_token.text).unwrap();
    assert_eq!(by_token[0]["service_request_id"], id.as_str());
    let all = app
        .get(
            "alpha.test",
            &format!("/open311/v2/requests.json?api_key={read_key}&status=open"),
        )
        .await;
    let all: Value = serde_json::from_str(&all.text).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 1);
    let none = app
        .get(
            "beta.test",
            &format!("/open311/v2/requests.json?api_key={beta_key}"),
        )
        .await;
    assert_eq!(none.text, "[]");
    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}

/// Rates: a key goes on at its rate and is then answered 429 with `Retry-After` and the code
/// `RATE_LIMITED`; another key, callers without a key, and another municipality are untouched;
/// callers without a key share one allowance per address across GraphQL and Open311.
#[tokio::test]
async fn api_rate_limits_answer_429_with_retry_after_per_key_and_municipality() {
    let (app, alpha, beta) = desk_tests::two_municipalities().await;
    let query = json!({ "query": "{ services { code } }" }).to_string();
    let post = |host: &'static str, key: Option<String>| {
        let (app, query) = (&app, query.clone());
        async move {
            let auth = key.map(|k| format!("Bearer {k}"));
            let mut headers = vec![("content-type", "application/json")];
            if let Some(a) = &auth {
                headers.push(("authorization", a.as_str()));
            }
            app.send("POST", host, "/graphql", Some(&query), &headers)
                .await
        }
    };
    let key = key_for(&app, &alpha, &["requests:read"]).await;
    let other = key_for(&app, &alpha, &["requests:read"]).await;
    // A burst of 120, plus whatever the rate (2 a second) refilled while they ran.
    let mut served = 0;
    let refused = loop {
        let res = post("alpha.test", Some(key.clone())).await;
        if res.status != StatusCode::OK {
            break res;
        }
        served += 1;
        assert!(served < 400, "never limited");
    };
    assert!(served >= 120, "{served}");
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let body: Value = serde_json::from_str(&refused.text).unwrap();
    assert_eq!(code(&body), "RATE_LIMITED");
    assert_eq!(body["errors"][0]["extensions"]["retryAfter"], json!(wait));
    assert_eq!(post("alpha.test", Some(other)).await.status, StatusCode::OK);
    // Without a key: 60 a minute per address, shared by GraphQL and Open311.
    let mut served = 0;
    let refused = loop {
        let res = if served % 2 == 0 {
            post("alpha.test", None).await
        } else {
            app.get("alpha.test", "/open311/v2/services.json").await
        };
        if res.status != StatusCode::OK {
            break res;
        }
        served += 1;
        assert!(served < 200, "never limited");
    };
    assert!(served >= 60, "{served}");
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.retry_after.is_some());
    // Beta's callers, from the same address, spend their own allowance.
    assert_eq!(post("beta.test", None).await.status, StatusCode::OK);
    let beta_key = key_for(&app, &beta, &["requests:read"]).await;
    assert_eq!(
        post("beta.test", Some(beta_key)).await.status,
        StatusCode::OK
    );
    app.db.finish().await;
}

/// A GraphQL-over-WebSocket client (`graphql-transport-ws`) on `host`, initialised with `key`.
async fn subscriber(
    addr: std::net::SocketAddr,
    host: &str,
    key: Option<&str>,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
    let mut request = format!("ws://{host}/graphql/ws")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(request, tcp).await.unwrap();
    let payload = match key {
        Some(k) => json!({ "authorization": format!("Bearer {k}") }),
        None => json!({}),
    };
    ws.send(Message::text(
        json!({ "type": "connection_init", "payload": payload }).to_string(),
    ))
    .await
    .unwrap();
    let ack = ws.next().await.unwrap().unwrap();
    assert!(ack.to_text().unwrap().contains("connection_ack"), "{ack}");
    ws.send(Message::text(
        json!({ "id": "1", "type": "subscribe", "payload": {
            "query": "subscription { requestChanged { cursor node { trackingCode state } } }"
        } })
        .to_string(),
    ))
    .await
    .unwrap();
    ws
}

/// The next message of a subscription within `wait`, as JSON (`None` when nothing came).
async fn next_message(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    wait: std::time::Duration,
) -> Option<Value> {
    use futures::StreamExt;
    loop {
        let msg = tokio::time::timeout(wait, ws.next()).await.ok()??.ok()?;
        if let Ok(text) = msg.to_text()
            && !text.is_empty()
        {
            let v: Value = serde_json::from_str(text).unwrap();
            if v["type"] != "ping" && v["type"] != "pong" {
                return Some(v);
            }
        }
    }
}

/// The status-change subscription: a key of the municipality hears its changes as they commit
/// and nothing of another municipality; no key, or another municipality's key, hears nothing.
#[tokio::test]
async fn request_changes_are_pushed_over_websocket_to_keys_of_the_municipality_only() {
    let (app, alpha, beta) = desk_tests::two_municipalities().await;
    let addr = app.serve().await;
    let alpha_key = key_for(&app, &alpha, &["requests:read"]).await;
    let beta_key = key_for(&app, &beta, &["requests:read"]).await;
    let mut alpha_ws = subscriber(addr, "alpha.test", Some(&alpha_key)).await;
    let mut beta_ws = subscriber(addr, "beta.test", Some(&beta_key)).await;
    let mut foreign = subscriber(addr, "beta.test", Some(&alpha_key)).await;
    let refused = next_message(&mut foreign, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{refused}"
    );
    assert!(refused["payload"]["data"].is_null());
    let mut anonymous = subscriber(addr, "alpha.test", None).await;
    let refused = next_message(&mut anonymous, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );

    let today = desk_core::calendar::today_in_iran();
    let r = crate::surveys::filed(
        &app,
        &alpha,
        "+989121113344",
        desk_db::requests::Channel::Web,
        (today, today),
        None,
    )
    .await;
    let got = next_message(&mut alpha_ws, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(got["type"], "next", "{got}");
    let edge = &got["payload"]["data"]["requestChanged"];
    assert_eq!(edge["node"]["trackingCode"], r.tracking_code.as_str());
    assert!(edge["cursor"].as_str().is_some_and(|c| !c.is_empty()));
    assert!(
        next_message(&mut beta_ws, Duration::from_secs(3))
            .await
            .is_none(),
        "beta hears nothing of alpha"
    );
    app.db.finish().await;
}

/// A key of a municipality with `catalog:write`, acting as a role casbin lets update the
/// catalog, edits a card's draft (the published card is unchanged until it publishes) and the
/// general FAQ; a role that may not (desk staff), a key without the scope, and another
/// municipality's key are refused.
#[tokio::test]
async fn catalog_keys_edit_drafts_publish_and_are_guarded_by_role() {
    let (app, alpha, beta) = desk_tests::two_municipalities().await;
    let keyed = |tenant: &Tenant, scopes: &[&str], role: Option<&'static str>| {
        let (app, tenant) = (&app, tenant.clone());
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        async move {
            let mut tx = app.tx(&tenant).await;
            let (key, _) = desk_db::api_keys::create(&mut tx, "catalog", &scopes, role, None, None)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            key
        }
    };
    let admin_key = keyed(&alpha, &["catalog:write"], Some("tenant_admin")).await;
    let staff_key = keyed(&alpha, &["catalog:write"], Some("desk_staff")).await;
    let reader_key = keyed(&alpha, &["requests:read"], None).await;
    let beta_key = keyed(&beta, &["catalog:write"], Some("tenant_admin")).await;
    let save = "mutation($i: ServiceDraftInput!) { saveServiceDraft(code: \"MUN-BLD-001\", input: $i) { code published draft } }";
    let input = json!({ "i": {
        "title": "صدور پروانه ساختمانی (از API)",
        "legalBasis": ["ماده ۱۰۰ قانون شهرداری‌ها"],
        "faq": [{ "question": "آیا نقشه لازم است؟", "answer": "بله، نقشه مصوب." }],
    } });
    for (key, expected) in [
        (&staff_key, "FORBIDDEN"),
        (&reader_key, "FORBIDDEN"),
        (&beta_key, "INVALID_API_KEY"),
    ] {
        let v = gql(&app, "alpha.test", Some(key), save, input.clone()).await;
        assert_eq!(code(&v), expected, "{v}");
    }
    let v = gql(&app, "alpha.test", None, save, input.clone()).await;
    assert_eq!(code(&v), "UNAUTHENTICATED");
    let v = gql(&app, "alpha.test", Some(&admin_key), save, input.clone()).await;
    let draft = v["data"]["saveServiceDraft"]["draft"]
        .as_i64()
        .expect("a draft version");
    let published =
        "{ service(code: \"MUN-BLD-001\") { title version legalBasis faq { question } } }";
    let before = gql(&app, "alpha.test", None, published, json!({})).await;
    assert_ne!(
        before["data"]["service"]["title"],
        "صدور پروانه ساختمانی (از API)"
    );
    let v = gql(
        &app,
        "alpha.test",
        Some(&admin_key),
        "mutation { publishService(code: \"MUN-BLD-001\") { published draft } }",
        json!({}),
    )
    .await;
    assert_eq!(
        v["data"]["publishService"]["published"].as_i64(),
        Some(draft),
        "{v}"
    );
    let after = gql(&app, "alpha.test", None, published, json!({})).await;
    assert_eq!(
        after["data"]["service"]["title"],
        "صدور پروانه ساختمانی (از API)"
    );
    assert_eq!(
        after["data"]["service"]["faq"][0]["question"],
        "آیا نقشه لازم است؟"
    );
    // Beta's card is its own.
    let beta_card = gql(&app, "beta.test", None, published, json!({})).await;
    assert_ne!(
        beta_card["data"]["service"]["title"],
        "صدور پروانه ساختمانی (از API)"
    );
    // The general FAQ, and search.
    let v = gql(
        &app,
        "alpha.test",
        Some(&admin_key),
        "mutation($f: [FaqInput!]!) { setGeneralFaq(items: $f) }",
        json!({ "f": [{ "question": "ساعت کار؟", "answer": "۷:۳۰ تا ۱۴" }] }),
    )
    .await;
    assert_eq!(v["data"]["setGeneralFaq"], 1, "{v}");
    let v = gql(
        &app,
        "alpha.test",
        None,
        "{ faqs { serviceCode question } }",
        json!({}),
    )
    .await;
    assert_eq!(v["data"]["faqs"][0]["question"], "ساعت کار؟");
    let v = gql(
        &app,
        "alpha.test",
        None,
        "{ searchServices(query: \"پروانه ساختمانى\") { code } }",
        json!({}),
    )
    .await;
    assert!(
        v["data"]["searchServices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["code"] == "MUN-BLD-001"),
        "{v}"
    );
    app.db.finish().await;
}
