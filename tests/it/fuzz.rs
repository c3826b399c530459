//! Bad input, generated: hostile values (very long, control characters, NUL, RTL overrides,
//! markup, SQL, odd digits, huge numbers, broken UTF-8) into the citizen's request form and its
//! uploads, the GraphQL API, Open311 and the staff settings. Nothing may answer 5xx or panic,
//! and a refused submission may store nothing (no request, no file).

use crate::requests::{PDF, applicant, service_with_documents};
use axum::http::StatusCode;
use desk_tests::TestApp;
use serde_json::json;

/// A small deterministic generator (xorshift), so a failure names a reproducible case.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, from: &'a [&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }

    /// A hostile text value.
    fn value(&mut self) -> String {
        const PIECES: &[&str] = &[
            "",
            " ",
            "۰۹۱۲۳۴۵۶۷۸۹",
            "٠٩١٢٣٤٥٦٧٨٩",
            "0499370899",
            "<script>alert(1)</script>",
            "'; drop table requests; --",
            "\u{202e}gnp.exe",
            "\u{0000}",
            "\u{200c}\u{200d}\u{feff}",
            "ي ك ۀ",
            "9999999999999999999999999",
            "-1",
            "1e309",
            "NaN",
            "{{ 7*7 }}",
            "${jndi:ldap://x}",
            "../../etc/passwd",
            "%00",
            "\r\n\r\n",
            "🙂",
            "null",
        ];
        let mut s = String::new();
        for _ in 0..(1 + self.next() % 3) {
            s.push_str(self.pick(PIECES));
        }
        if self.next().is_multiple_of(8) {
            s = s.repeat(2000);
        }
        s
    }

    /// Hostile file bytes.
    fn file(&mut self) -> Vec<u8> {
        match self.next() % 6 {
            0 => Vec::new(),
            1 => PDF.to_vec(),
            2 => b"\x7fELF\x02\x01\x01".repeat(100),
            3 => (0..(self.next() % 5000))
                .map(|i| (i * 7 % 251) as u8)
                .collect(),
            4 => b"%PDF-1.4\n"
                .iter()
                .chain([0xff, 0xfe, 0x00].iter())
                .copied()
                .collect(),
            _ => b"GIF89a".repeat(10),
        }
    }
}

async fn counts(app: &TestApp, tenant: &desk_db::Tenant) -> (i64, i64) {
    (
        app.scalar(tenant, "select count(*) from requests").await,
        app.scalar(tenant, "select count(*) from request_files")
            .await,
    )
}

#[tokio::test]
async fn bad_input_never_answers_5xx_and_stores_nothing_half_way() {
    let (app, alpha, _beta) = desk_tests::two_municipalities().await;
    // `MIZ_FUZZ_SEED=<n>` explores other cases; CI runs the fixed one.
    let seed = std::env::var("MIZ_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_1234_ABCD_0001_u64)
        .max(1);
    let mut g = Gen(seed);
    let mut tried = 0usize;
    let server_error = |what: &str, case: usize, status: StatusCode| {
        assert!(
            !status.is_server_error(),
            "{what} case {case} answered {status} (MIZ_FUZZ_SEED={seed})"
        );
    };

    // 1. The citizen's request form and its uploads.
    let citizen = app
        .citizen_sign_in(&alpha, "alpha.test", "09125550000")
        .await;
    let (code, docs) = service_with_documents();
    let form = app
        .get_as(&citizen, "alpha.test", &format!("/services/{code}/apply"))
        .await;
    let csrf = form.csrf();
    for case in 0..80 {
        let before = counts(&app, &alpha).await;
        let mut fields: Vec<(&str, String)> = applicant(&format!("fuzz-key-{case:08}"));
        for f in fields.iter_mut().filter(|(k, _)| *k != "idempotency_key") {
            if g.next().is_multiple_of(2) {
                f.1 = g.value();
            }
        }
        fields.push(("csrf", csrf.clone()));
        let names: Vec<String> = (1..=docs).map(|i| format!("doc_{i}")).collect();
        let files: Vec<(String, Vec<u8>)> = names.iter().map(|n| (n.clone(), g.file())).collect();
        let file_refs: Vec<(&str, &str, &[u8])> = files
            .iter()
            .map(|(n, b)| (n.as_str(), "سند.pdf", b.as_slice()))
            .collect();
        let field_refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let res = app
            .post_multipart_files(
                &citizen,
                "alpha.test",
                &format!("/services/{code}/apply"),
                &field_refs,
                &file_refs,
            )
            .await;
        server_error("form", case, res.status);
        if res.status != StatusCode::SEE_OTHER {
            assert_eq!(
                counts(&app, &alpha).await,
                before,
                "form case {case}: refused but stored"
            );
        }
        tried += 1;
    }

    // 2. GraphQL: garbage documents, wrong variable types, hostile values.
    const DOCS: &[&str] = &[
        "{ services(search: $q) { code } }",
        "query($q: String) { services(search: $q) { code title } }",
        "query($q: String!) { searchServices(query: $q) { code } }",
        "query($t: String!, $m: String!) { request(trackingCode: $t, mobile: $m) { state } }",
        "query($q: String) { faqs(search: $q) { question } }",
        "{ service(code: \"MUN-BLD-001\") { title steps faq { question } } }",
        "{{{{",
        "",
        "mutation { submitRequest(input: {}) { trackingCode } }",
        "subscription { requestChanged { cursor } }",
    ];
    for case in 0..120 {
        let doc = g.pick(DOCS);
        let variables = match g.next() % 4 {
            0 => json!({ "q": g.value(), "t": g.value(), "m": g.value() }),
            1 => json!({ "q": 12, "t": [1, 2], "m": { "x": null } }),
            2 => json!(g.value()),
            _ => json!(null),
        };
        let body = if g.next().is_multiple_of(10) {
            g.value()
        } else {
            json!({ "query": doc, "variables": variables }).to_string()
        };
        let res = app
            .send(
                "POST",
                "alpha.test",
                "/graphql",
                Some(&body),
                &[("content-type", "application/json")],
            )
            .await;
        server_error("graphql", case, res.status);
        tried += 1;
    }

    // 3. Open311 GETs and POSTs with hostile parameters.
    for case in 0..40 {
        // (A URL is bounded by the HTTP layer before it reaches us; keep it under that.)
        let v: String = g.value().chars().take(500).collect();
        let enc: String = form_urlencoded::byte_serialize(v.as_bytes()).collect();
        let res = match case % 3 {
            0 => {
                app.get("alpha.test", &format!("/open311/v2/services/{enc}.json"))
                    .await
            }
            1 => {
                app.get(
                    "alpha.test",
                    &format!("/open311/v2/requests.json?api_key={enc}&service_request_id={enc}"),
                )
                .await
            }
            _ => {
                app.send_bytes(
                    "POST",
                    "alpha.test",
                    &format!("/open311/v2/requests.json?api_key={enc}"),
                    format!("service_code={enc}&attribute[full_name]={enc}").into_bytes(),
                    &[("content-type", "application/x-www-form-urlencoded")],
                )
                .await
            }
        };
        server_error("open311", case, res.status);
        tried += 1;
    }

    // 4. Staff settings and catalog forms with hostile values.
    let admin = app.staff_sign_in(&alpha, "admin-alpha").await;
    let scsrf = app
        .get_as(&admin, "alpha.test", "/staff/settings")
        .await
        .csrf();
    const FORMS: &[(&str, &[&str])] = &[
        ("/staff/settings/theme", &["theme", "brand"]),
        ("/staff/settings/contact", &["phone", "email", "address"]),
        ("/staff/settings/holidays", &["op", "day", "title"]),
        (
            "/staff/settings/desk-hours",
            &[
                "service",
                "weekday",
                "opens",
                "closes",
                "slot_minutes",
                "capacity",
            ],
        ),
        ("/staff/settings/webhooks", &["url", "event"]),
        ("/staff/catalog-faq", &["faq"]),
        (
            "/staff/catalog/MUN-BLD-001",
            &[
                "op",
                "title_fa",
                "duration_days",
                "faq",
                "form_json",
                "workflow_json",
            ],
        ),
        ("/staff/settings/templates/home.html.j2", &["source"]),
    ];
    for case in 0..80 {
        let (path, names) = FORMS[case % FORMS.len()];
        let values: Vec<String> = names.iter().map(|_| g.value()).collect();
        let mut fields: Vec<(&str, &str)> = vec![("csrf", scsrf.as_str())];
        fields.extend(names.iter().zip(&values).map(|(n, v)| (*n, v.as_str())));
        let res = app
            .post_form(Some(&admin), "alpha.test", path, &fields)
            .await;
        server_error(path, case, res.status);
        tried += 1;
    }
    println!("bad input (seed {seed}): {tried} attempts, 0 server errors, nothing half-stored");
    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}
