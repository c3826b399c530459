//! The developer pages at `/developers`: addressed to the host they are asked on, naming only
//! their own municipality; their catalog examples run as printed, and their webhook
//! verification snippets accept what Miz signs and refuse what it does not.

use axum::http::StatusCode;
use serde_json::Value;
use std::process::Command;

/// Undoes the entities minijinja and the template write.
fn unescape(html: &str) -> String {
    html.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
}

/// The text of every `<pre … data-example="{kind}"><code>…</code></pre>` on the page.
fn examples(page: &str, kind: &str) -> Vec<String> {
    let marker = format!("data-example=\"{kind}\"");
    let mut found = Vec::new();
    let mut rest = page;
    while let Some(at) = rest.find(&marker) {
        let after = &rest[at + marker.len()..];
        let start = after.find("<code>").expect("an example has a <code>") + "<code>".len();
        let len = after[start..]
            .find("</code>")
            .expect("an example's <code> is closed");
        found.push(unescape(&after[start..start + len]));
        rest = &after[start + len..];
    }
    found
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `program` on a file of `source`; `None` when the program is not installed.
fn run_script(program: &str, extension: &str, source: &str, args: &[&str]) -> Option<String> {
    let path = std::env::temp_dir().join(format!(
        "miz-developers-{}.{extension}",
        uuid::Uuid::new_v4()
    ));
    std::fs::write(&path, source).unwrap();
    let output = Command::new(program).arg(&path).args(args).output();
    let _ = std::fs::remove_file(&path);
    match output {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("running {program} failed: {e}"),
        Ok(out) => {
            assert!(
                out.status.success(),
                "{program} failed: {}\n--- source ---\n{source}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        }
    }
}

/// Checks a verification snippet (run by `program` with `harness` appended, which prints
/// `ACCEPT` or `REJECT` for the hex secret, the header and the hex body it is given) against
/// signatures made by `desk_core::webhook::signature_header`.
fn check_verifier(program: &str, extension: &str, snippet: &str, harness: &str) {
    let source = format!("{snippet}\n{harness}");
    let secret = b"whsec_5b1f0c9e7a2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f";
    let body = r#"{"event":"request.status_changed","tracking_code":"482139075611","state_label":"در حال بررسی"}"#.as_bytes();
    let now = chrono::Utc::now().timestamp();
    let good = desk_core::webhook::signature_header(secret, now, body);
    let run = |secret: &[u8], header: &str, body: &[u8]| {
        run_script(
            program,
            extension,
            &source,
            &[&hex(secret), header, &hex(body)],
        )
    };
    let Some(verdict) = run(secret, &good, body) else {
        println!("note: `{program}` is not on PATH; its webhook snippet was not run");
        return;
    };
    assert_eq!(
        verdict, "ACCEPT",
        "{program} refused a good signature: {good}"
    );

    let mut tampered = body.to_vec();
    tampered[10] ^= 1;
    assert_eq!(
        run(secret, &good, &tampered).unwrap(),
        "REJECT",
        "{program}"
    );
    assert_eq!(
        run(b"another-secret", &good, body).unwrap(),
        "REJECT",
        "{program}"
    );
    let stale = desk_core::webhook::signature_header(secret, now - 600, body);
    assert_eq!(
        run(secret, &stale, body).unwrap(),
        "REJECT",
        "{program} accepted a timestamp ten minutes old"
    );
    // While a secret is rotated, any matching v1 is accepted.
    let v1 = good.split_once(",v1=").unwrap().1;
    let rotated = format!("t={now},v1={},v1={v1}", "0".repeat(64));
    assert_eq!(run(secret, &rotated, body).unwrap(), "ACCEPT", "{program}");
    assert_eq!(
        run(secret, &format!("v1={v1}"), body).unwrap(),
        "REJECT",
        "{program} accepted a signature without a timestamp"
    );
}

const PYTHON_HARNESS: &str = r#"
import sys
_secret, _header, _body = bytes.fromhex(sys.argv[1]), sys.argv[2], bytes.fromhex(sys.argv[3])
print("ACCEPT" if verify_miz_signature(_secret, _header, _body) else "REJECT")
"#;

const NODE_HARNESS: &str = r#"
const [_secret, _header, _body] = process.argv.slice(2);
console.log(
  verifyMizSignature(Buffer.from(_secret, "hex"), _header, Buffer.from(_body, "hex"))
    ? "ACCEPT"
    : "REJECT",
);
"#;

#[tokio::test]
async fn developer_pages_document_the_api_on_the_municipalitys_own_host() {
    let (app, alpha, beta) = desk_tests::two_municipalities().await;

    let page = app.get("alpha.test", "/developers").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let text = &page.text;
    assert!(text.contains("alpha.test/graphql"), "{text}");
    assert!(text.contains(&alpha.name_fa));
    assert!(!text.contains(&beta.name_fa));
    for documented in [
        "X-Miz-Signature",
        "X-Miz-Event",
        "X-Miz-Delivery",
        "Retry-After",
        "/open311/v2/services.json",
        "/staff/api-keys",
        "requests:submit",
        "requests:read",
        "requests:act",
        "UNAUTHENTICATED",
        "BAD_USER_INPUT",
    ] {
        assert!(
            text.contains(documented),
            "the page does not mention {documented}"
        );
    }
    // The host normalised: port dropped, case folded.
    let other = app.get("BETA.test:8443", "/developers").await;
    assert_eq!(other.status, StatusCode::OK);
    assert!(other.text.contains("https://beta.test/graphql"));
    assert!(other.text.contains(&beta.name_fa) && !other.text.contains(&alpha.name_fa));
    // Linked from every page of the site.
    assert!(
        app.get("alpha.test", "/")
            .await
            .text
            .contains("href=\"/developers\"")
    );

    // Every anonymous example runs as printed, and each of its fields answers.
    let queries = examples(text, "graphql-query");
    assert!(queries.len() >= 3, "{queries:?}");
    for query in &queries {
        let (status, json) = app.graphql("alpha.test", query).await;
        assert_eq!(status, StatusCode::OK, "{query}");
        assert!(json["errors"].is_null(), "{query}\n{json}");
        let data = json["data"].as_object().expect("data");
        assert!(!data.is_empty(), "{query}\n{json}");
        for (field, value) in data {
            assert!(!value.is_null(), "{field} is null\n{query}\n{json}");
            if let Value::Array(items) = value {
                assert!(!items.is_empty(), "{field} is empty\n{query}\n{json}");
            }
        }
    }

    // The webhook verification snippets accept Miz's signatures and nothing else.
    let python = examples(text, "python-webhook");
    assert_eq!(python.len(), 1);
    assert!(python[0].contains("def verify_miz_signature("));
    check_verifier("python3", "py", &python[0], PYTHON_HARNESS);
    let node = examples(text, "node-webhook");
    assert_eq!(node.len(), 1);
    assert!(node[0].contains("function verifyMizSignature("));
    check_verifier("node", "cjs", &node[0], NODE_HARNESS);

    app.db.finish().await;
}
