//! SMS templates per event: the editor previews segments and cost before saving, refuses a
//! template that does not render, and the municipality's text is what its citizens receive;
//! another municipality keeps the default.

use axum::http::StatusCode;

#[tokio::test]
async fn a_municipalitys_template_is_previewed_checked_and_used_for_its_own_sms_only() {
    let (app, alpha, beta) = desk_tests::two_municipalities().await;
    let staff = app.staff_sign_in(&alpha, "admin-alpha").await;
    let page = app
        .get_as(&staff, "alpha.test", "/staff/settings/sms-templates")
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    // Every event is listed with its default and a segment count.
    for e in desk_core::sms_templates::Event::ALL {
        assert!(page.text.contains(e.label_fa()), "{}", e.key());
    }
    assert!(page.text.contains("پیامک (فارسی"));
    let csrf = page.csrf();
    let post = |fields: Vec<(&'static str, String)>| {
        let (app, staff, csrf) = (&app, &staff, csrf.clone());
        async move {
            let mut f = fields;
            f.push(("csrf", csrf));
            let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.post_form(
                Some(staff),
                "alpha.test",
                "/staff/settings/sms-templates",
                &f,
            )
            .await
        }
    };
    // Prices, then a preview that is not saved but shows parts and cost.
    let res = post(vec![
        ("op", "prices".into()),
        ("ucs2", "۲۵۰".into()),
        ("gsm7", "120".into()),
    ])
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    let body = "کد {{ code }} برای ورود به {{ municipality }}".to_owned();
    let preview = post(vec![
        ("op", "preview".into()),
        ("event", "sign_in_code".into()),
        ("body", body.clone()),
    ])
    .await;
    assert_eq!(preview.status, StatusCode::OK);
    assert!(
        preview
            .text
            .contains("کد 482917 برای ورود به شهرداری نجف‌آباد"),
        "{}",
        preview.text
    );
    assert!(preview.text.contains("۱ پیامک (فارسی"));
    assert!(preview.text.contains("۲۵۰ ریال"));
    assert_eq!(
        app.scalar(&alpha, "select count(*) from sms_templates")
            .await,
        0
    );
    // A template that does not render is refused with the reason.
    for broken in ["{% for %}", "سلام {{ nam }}", "{% include 'x' %}"] {
        let res = post(vec![
            ("op", "save".into()),
            ("event", "sign_in_code".into()),
            ("body", broken.into()),
        ])
        .await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{broken}");
        assert!(res.text.contains("الگو درست نیست"), "{}", res.text);
    }
    assert_eq!(
        app.scalar(&alpha, "select count(*) from sms_templates")
            .await,
        0
    );
    let res = post(vec![
        ("op", "save".into()),
        ("event", "sign_in_code".into()),
        ("body", body),
    ])
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    // Without CSRF nothing changes.
    let forged = app
        .post_form(
            Some(&staff),
            "alpha.test",
            "/staff/settings/sms-templates",
            &[("op", "reset"), ("event", "sign_in_code")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    // Alpha's citizens get alpha's text (the code still sealed until sending); beta's the default.
    app.citizen_sign_in(&alpha, "alpha.test", "09121112345")
        .await;
    app.citizen_sign_in(&beta, "beta.test", "09121112345").await;
    assert_eq!(
        app.scalar(&alpha, "select count(*) from notifications where kind = 'sign_in_code' and body like 'کد {code} برای ورود به %'").await,
        1
    );
    assert_eq!(
        app.scalar(&beta, "select count(*) from notifications where kind = 'sign_in_code' and body like 'کد ورود شما به میز خدمت %{code}%'").await,
        1
    );
    // Reset restores the default.
    let res = post(vec![
        ("op", "reset".into()),
        ("event", "sign_in_code".into()),
    ])
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.scalar(&alpha, "select count(*) from sms_templates")
            .await,
        0
    );

    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}
