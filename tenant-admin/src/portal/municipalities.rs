//! Municipalities: the list with search and filters, onboarding, a municipality's page, its lifecycle, domains and its first admin's invitation.

use super::*;

#[derive(Deserialize, Default)]
pub(super) struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    province: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    created_ms: Option<u64>,
    #[serde(default)]
    reinvited: Option<u8>,
}

pub(super) async fn list_municipalities(
    State(portal): State<PlatformPortal>,
    me: SignedIn,
    Query(q): Query<ListQuery>,
) -> Response {
    let filter = TenantFilter {
        province_id: q.province.parse().ok(),
        status: q.status.parse().ok(),
    };
    let tenants =
        match lifecycle::list(&portal.db, &portal.authz, &actor(&me), &filter, Some(&q.q)).await {
            Ok(t) => t,
            Err(e) => return error_response(&portal.views, &e),
        };
    let rows: Vec<TenantRow> = tenants
        .iter()
        .filter(|t| filter.status.is_some() || t.status != TenantStatus::Archived)
        .map(tenant_row)
        .collect();
    let provinces = match portal.db.province_summaries().await {
        Ok(p) => p,
        Err(e) => return error_response(&portal.views, &e),
    };
    let provinces: Vec<_> = provinces
        .iter()
        .map(|p| context! { id => p.id, name => p.name_fa.clone(), selected => q.province == p.id.to_string() })
        .collect();
    portal.views.render(
        StatusCode::OK,
        "municipalities.html.j2",
        context! {
            me => Serde(user_view(&me)), tenants => Serde(rows), provinces, q => q.q.clone(), status => q.status.clone(),
            count => rows_len(&tenants),
        },
    )
}

pub(super) fn rows_len(t: &[Tenant]) -> String {
    persian_digits(&t.len().to_string())
}

/// Provinces where `actor` may create municipalities.
pub(super) async fn creatable_provinces(
    portal: &PlatformPortal,
    actor: &Actor,
) -> Result<Vec<(i16, String)>, DomainError> {
    let mut out = Vec::new();
    for p in portal.db.province_summaries().await? {
        if lifecycle::allowed(
            &portal.authz,
            actor,
            Domain::Province(p.id),
            Resource::Tenant,
            Action::Manage,
        )
        .await?
        {
            out.push((p.id, p.name_fa));
        }
    }
    Ok(out)
}

#[derive(Deserialize, Serialize, Default, Clone)]
pub(super) struct OnboardForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name_fa: String,
    #[serde(default)]
    name_en: String,
    #[serde(default)]
    slug: String,
    #[serde(default)]
    province: String,
    #[serde(default)]
    domains: String,
    #[serde(default)]
    admin_username: String,
    #[serde(default)]
    admin_name: String,
    #[serde(default)]
    admin_mobile: String,
    #[serde(default)]
    theme: String,
}

pub(super) async fn render_onboarding(
    portal: &PlatformPortal,
    me: &SignedIn,
    form: &OnboardForm,
    errors: &FieldErrors,
    status: StatusCode,
) -> Response {
    let provinces = match creatable_provinces(portal, &actor(me)).await {
        Ok(p) => p,
        Err(e) => return error_response(&portal.views, &e),
    };
    let provinces: Vec<_> = provinces
        .iter()
        .map(|(id, name)| context! { id, name, selected => form.province == id.to_string() })
        .collect();
    let errors: std::collections::BTreeMap<String, String> = errors
        .0
        .iter()
        .map(|e| (e.field.clone(), e.message.clone()))
        .collect();
    portal.views.render(
        status,
        "onboard.html.j2",
        context! {
            me => Serde(user_view(me)), form => Serde(form), provinces, errors => Serde(errors),
            base_domain => portal.base_domain.clone(),
            themes => crate::THEMES.iter().map(|&(name, label)| context! { name, label }).collect::<Vec<_>>(),
        },
    )
}

pub(super) async fn show_onboarding(
    State(portal): State<PlatformPortal>,
    me: SignedIn,
) -> Response {
    render_onboarding(
        &portal,
        &me,
        &OnboardForm::default(),
        &FieldErrors::default(),
        StatusCode::OK,
    )
    .await
}

/// Validates the onboarding form into a request; every problem gets a Persian message.
pub(super) fn parse_onboarding(
    form: &OnboardForm,
    base_domain: &str,
) -> Result<Onboarding, FieldErrors> {
    let mut errors = Vec::new();
    let slug_text = if form.slug.trim().is_empty() {
        suggest_slug(&form.name_en, &form.name_fa).unwrap_or_default()
    } else {
        form.slug.trim().to_owned()
    };
    let slug = TenantSlug::parse(&slug_text)
        .map_err(|e| errors.extend(e.0))
        .ok();
    let province_id: Option<i16> = form.province.parse().ok();
    if province_id.is_none() {
        errors.extend(
            FieldErrors::single("province_id", "province_required", "استان را انتخاب کنید.").0,
        );
    }
    let mut domains = Vec::new();
    if let Some(slug) = &slug {
        match Hostname::parse(&format!("{slug}.{base_domain}")) {
            Ok(h) => domains.push(h),
            Err(e) => errors.extend(e.0),
        }
    }
    for raw in form.domains.split_whitespace() {
        match Hostname::parse(raw) {
            Ok(h) => match lifecycle::check_custom_domain(&h, base_domain) {
                Ok(()) => domains.push(h),
                Err(DomainError::Validation(e)) => errors.extend(e.0),
                Err(_) => {}
            },
            Err(e) => errors.extend(e.0),
        }
    }
    let first_admin =
        if form.admin_username.trim().is_empty() && form.admin_mobile.trim().is_empty() {
            None
        } else {
            let username = form.admin_username.trim().to_lowercase();
            let name_ok = (3..=40).contains(&username.len())
                && username
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
            if !name_ok {
                errors.extend(
                    FieldErrors::single(
                        "admin_username",
                        "username_invalid",
                        "نام کاربری باید ۳ تا ۴۰ نویسه از حروف کوچک لاتین، رقم و . _ - باشد.",
                    )
                    .0,
                );
            }
            let mobile = MobileNumber::parse(&form.admin_mobile)
                .map_err(|e| {
                    errors.extend(e.0.into_iter().map(|mut f| {
                        f.field = "admin_mobile".into();
                        f
                    }))
                })
                .ok();
            let display_name = if form.admin_name.trim().is_empty() {
                "مدیر میز خدمت".to_owned()
            } else {
                form.admin_name.trim().to_owned()
            };
            mobile.filter(|_| name_ok).map(|mobile| FirstAdmin {
                username,
                display_name,
                mobile,
            })
        };
    match (slug, province_id, errors.is_empty()) {
        (Some(slug), Some(province_id), true) => Ok(Onboarding {
            theme: if form.theme.is_empty() {
                crate::DEFAULT_THEME.to_owned()
            } else {
                form.theme.clone()
            },
            tenant: NewTenant {
                slug,
                name_fa: form.name_fa.clone(),
                name_en: form.name_en.clone(),
                province_id,
                domains,
            },
            first_admin,
        }),
        _ => Err(FieldErrors(errors)),
    }
}

pub(super) async fn create_municipality(
    State(portal): State<PlatformPortal>,
    me: SignedIn,
    Source(source): Source,
    form: Result<Form<OnboardForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return error_response(
            &portal.views,
            &DomainError::Validation(FieldErrors::single(
                "form",
                "form_invalid",
                "فرم درست فرستاده نشد.",
            )),
        );
    };
    if let Err(e) = me.check_csrf(&form.csrf) {
        return error_response(&portal.views, &e);
    }
    let onboarding = match parse_onboarding(&form, &portal.base_domain) {
        Ok(o) => o,
        Err(errors) => {
            return render_onboarding(
                &portal,
                &me,
                &form,
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let started = Instant::now();
    match crate::onboard(&portal.db, &portal.authz, &actor(&me), &source, &onboarding).await {
        Ok((tenant, _)) => {
            let ms = started.elapsed().as_millis();
            Redirect::to(&format!("/municipalities/{}?created_ms={ms}", tenant.slug))
                .into_response()
        }
        Err(DomainError::Validation(errors)) => {
            render_onboarding(
                &portal,
                &me,
                &form,
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => error_response(&portal.views, &e),
    }
}

pub(super) async fn show_municipality(
    State(portal): State<PlatformPortal>,
    me: SignedIn,
    Path(slug): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    let Ok(slug) = TenantSlug::parse(&slug) else {
        return error_response(&portal.views, &DomainError::NotFound);
    };
    let who = actor(&me);
    let tenant = match lifecycle::find(&portal.db, &portal.authz, &who, &slug).await {
        Ok(t) => t,
        Err(e) => return error_response(&portal.views, &e),
    };
    let domains = match portal.db.tenant_domains(tenant.id).await {
        Ok(d) => d,
        Err(e) => return error_response(&portal.views, &e),
    };
    let settings = match municipality_settings(&portal, &tenant).await {
        Ok(s) => s,
        Err(e) => return error_response(&portal.views, &e),
    };
    let can_manage = lifecycle::allowed(
        &portal.authz,
        &who,
        Domain::Tenant(tenant.id),
        Resource::Tenant,
        Action::Manage,
    )
    .await
    .unwrap_or(false);
    let actions: Vec<_> = match tenant.status {
        TenantStatus::Active => vec![("suspend", "تعلیق"), ("archive", "بایگانی")],
        TenantStatus::Suspended => vec![("resume", "ازسرگیری"), ("archive", "بایگانی")],
        TenantStatus::Archived => vec![("restore", "بازگردانی")],
    }
    .into_iter()
    .map(|(code, label)| context! { code, label })
    .collect();
    let domains: Vec<_> = domains
        .iter()
        .enumerate()
        .map(|(i, d)| context! { host => d.as_str(), default => i == 0 })
        .collect();
    portal.views.render(
        StatusCode::OK,
        "municipality.html.j2",
        context! {
            me => Serde(user_view(&me)), tenant => Serde(tenant_row(&tenant)), domains, actions, can_manage,
            settings => Serde(settings),
            created_ms => q.created_ms.map(|m| persian_digits(&m.to_string())),
            reinvited => q.reinvited.is_some(),
        },
    )
}

/// What the operator sees of a municipality's own settings: no personal data, and of SMS
/// credentials only when they were set.
pub(super) async fn municipality_settings(
    portal: &PlatformPortal,
    tenant: &Tenant,
) -> Result<serde_json::Value, DomainError> {
    use desk_db::settings;
    let mut tx = portal.db.tenant_db().begin(tenant.scope()).await?;
    let theme = settings::get_setting(&mut tx, "theme").await?;
    let contact = settings::get_setting(&mut tx, "contact").await?;
    let accounts = settings::list_sms_accounts(&mut tx).await?;
    // The admins' invitations (the operator's part of going live): names and states only.
    let mut admins = Vec::new();
    let states = desk_db::staff::invitation_states(&mut tx).await?;
    for m in desk_db::staff::list_staff(&mut tx).await? {
        if !m.is_admin || !m.active {
            continue;
        }
        let state = states
            .get(&m.id)
            .copied()
            .unwrap_or(desk_db::staff::InvitationState::NotSent);
        let delivery = desk_db::staff::invitation_delivery(&mut tx, m.id).await?;
        use desk_db::staff::InvitationState as S;
        let state_fa = match state {
            S::Accepted => "پذیرفته (گذرواژه تعیین شده)",
            S::Pending => "فرستاده شده، در انتظار پذیرش",
            S::Expired => "منقضی شده بی‌آنکه پذیرفته شود",
            S::NotSent => "در صف ساخت",
        };
        let sms_fa = match delivery.as_ref().map(|(s, e)| (s.as_str(), e.as_deref())) {
            None => "هنوز پیامکی ساخته نشده",
            Some(("sent", _)) => "پیامک فرستاده شد",
            Some(("queued", _)) => "پیامک در صف ارسال",
            Some((_, Some("no_sms_account"))) => "پیامک فرستاده نشد: شهرداری هنوز حساب پیامک ندارد",
            Some(_) => "پیامک فرستاده نشد",
        };
        let joined = state == S::Accepted;
        admins.push(serde_json::json!({
            "id": m.id, "name": m.display_name, "username": m.username,
            "state": state_fa, "sms": sms_fa, "joined": joined,
            // A joined admin needs the operator only while no SMS can carry a reset code.
            "can_link": !joined || !accounts.iter().any(|a| a.enabled),
        }));
    }
    tx.commit().await?;
    let accounts: Vec<_> = accounts
        .iter()
        .map(|a| {
            let day = desk_core::jalali::JalaliDate::from_gregorian(desk_core::calendar::iran_time(a.credentials_set_at).date());
            serde_json::json!({ "label": a.label, "provider": a.provider, "set_on": persian_digits(&day.to_string()) })
        })
        .collect();
    Ok(
        serde_json::json!({ "theme": theme, "contact": contact, "sms_accounts": accounts,
                           "admins": admins }),
    )
}

/// Sends a municipality admin who has not joined yet a new invitation (the old link stops
/// working at once), audited on the platform.
pub(super) async fn resend_invitation(
    State(portal): State<PlatformPortal>,
    me: SignedIn,
    Path((slug, staff_id)): Path<(String, i64)>,
    Source(source): Source,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let result = async {
        let Ok(Form(form)) = form else {
            return Err(DomainError::NotFound);
        };
        me.check_csrf(&form.csrf)?;
        let slug = TenantSlug::parse(&slug).map_err(|_| DomainError::NotFound)?;
        let who = actor(&me);
        let tenant = lifecycle::find(&portal.db, &portal.authz, &who, &slug).await?;
        if !lifecycle::allowed(
            &portal.authz,
            &who,
            Domain::Tenant(tenant.id),
            Resource::Tenant,
            Action::Manage,
        )
        .await?
        {
            return Err(DomainError::Forbidden);
        }
        let host = portal
            .db
            .tenant_domains(tenant.id)
            .await?
            .into_iter()
            .next()
            .ok_or(DomainError::NotFound)?;
        let mut tx = portal.db.tenant_db().begin(tenant.scope()).await?;
        let member = desk_db::staff::staff_by_id(&mut tx, staff_id)
            .await?
            .filter(|m| m.is_admin && m.active)
            .ok_or(DomainError::NotFound)?;
        let sms_ready = desk_db::settings::list_sms_accounts(&mut tx)
            .await?
            .iter()
            .any(|a| a.enabled);
        if member.joined {
            // An admin who joined but cannot sign in (no SMS yet for the second step, or a
            // forgotten password with no SMS to reset it): a one-time sign-in link, handed over
            // in person. With SMS working they reset their password themselves.
            if sms_ready {
                return Err(DomainError::Conflict("the admin can reset by SMS".into()));
            }
            let link = desk_db::staff::issue_sign_in_link(&mut tx, member.id, &host, &portal.urls)
                .await?;
            tx.commit().await?;
            portal
                .db
                .audit(desk_db::AuditEntry {
                    actor: &who.label(),
                    action: "tenant.admin_sign_in_link_shown",
                    tenant: Some(tenant.id),
                    source: &source,
                    detail: serde_json::json!({ "slug": slug.as_str(), "username": member.username }),
                })
                .await?;
            return Ok((tenant, member, Some((link, true))));
        }
        desk_db::staff::revoke_invitations(&mut tx, member.id).await?;
        // Without an SMS account the invitation cannot travel by SMS: the operator sees the
        // link once, to hand it to the admin in person (the audit line says so, not the link).
        let handed = if sms_ready {
            desk_db::jobs::enqueue(
                &mut tx,
                &desk_core::jobs::WelcomeStaff::new(tenant.id, member.id),
            )
            .await?;
            None
        } else {
            Some((
                desk_db::staff::issue_invitation(&mut tx, member.id, &host, &portal.urls).await?,
                false,
            ))
        };
        tx.commit().await?;
        portal
            .db
            .audit(desk_db::AuditEntry {
                actor: &who.label(),
                action: if handed.is_some() {
                    "tenant.admin_invitation_shown"
                } else {
                    "tenant.admin_reinvite"
                },
                tenant: Some(tenant.id),
                source: &source,
                detail: serde_json::json!({ "slug": slug.as_str(), "username": member.username }),
            })
            .await?;
        Ok((tenant, member, handed))
    }
    .await;
    match result {
        Ok((tenant, _, None)) => {
            Redirect::to(&format!("/municipalities/{}?reinvited=1", tenant.slug)).into_response()
        }
        Ok((tenant, member, Some((link, sign_in)))) => {
            let mut res = portal.views.render(
                StatusCode::OK,
                "invitation.html.j2",
                context! {
                    me => Serde(user_view(&me)), tenant_name => tenant.name_fa.clone(),
                    slug => tenant.slug.as_str(), admin_name => member.display_name,
                    username => member.username, link, sign_in,
                },
            );
            // Shown once: never kept by a cache or the back button.
            res.headers_mut().insert(
                header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            res
        }
        Err(e) => error_response(&portal.views, &e),
    }
}

#[derive(Deserialize)]
pub(super) struct StatusForm {
    #[serde(default)]
    csrf: String,
    change: String,
}

pub(super) async fn change_status(
    State(portal): State<PlatformPortal>,
    me: SignedIn,
    Path(slug): Path<String>,
    Source(source): Source,
    form: Result<Form<StatusForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return error_response(&portal.views, &DomainError::NotFound);
    };
    if let Err(e) = me.check_csrf(&form.csrf) {
        return error_response(&portal.views, &e);
    }
    let change = match form.change.as_str() {
        "suspend" => Lifecycle::Suspend,
        "resume" => Lifecycle::Resume,
        "archive" => Lifecycle::Archive,
        "restore" => Lifecycle::Restore,
        _ => return error_response(&portal.views, &DomainError::NotFound),
    };
    let Ok(slug) = TenantSlug::parse(&slug) else {
        return error_response(&portal.views, &DomainError::NotFound);
    };
    match lifecycle::change_status(
        &portal.db,
        &portal.authz,
        &actor(&me),
        &slug,
        change,
        &source,
    )
    .await
    {
        Ok(t) => Redirect::to(&format!("/municipalities/{}", t.slug)).into_response(),
        Err(e) => error_response(&portal.views, &e),
    }
}

#[derive(Deserialize)]
pub(super) struct DomainForm {
    #[serde(default)]
    csrf: String,
    op: String,
    host: String,
}

pub(super) async fn change_domain(
    State(portal): State<PlatformPortal>,
    me: SignedIn,
    Path(slug): Path<String>,
    Source(source): Source,
    form: Result<Form<DomainForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return error_response(&portal.views, &DomainError::NotFound);
    };
    if let Err(e) = me.check_csrf(&form.csrf) {
        return error_response(&portal.views, &e);
    }
    let (Ok(slug), host) = (TenantSlug::parse(&slug), Hostname::parse(&form.host)) else {
        return error_response(&portal.views, &DomainError::NotFound);
    };
    let host = match host {
        Ok(h) => h,
        Err(e) => return error_response(&portal.views, &DomainError::Validation(e)),
    };
    match lifecycle::change_domain(
        &portal.db,
        &portal.authz,
        &actor(&me),
        &slug,
        if form.op == "add" {
            DomainChange::Add(&host)
        } else {
            DomainChange::Remove(&host)
        },
        &portal.base_domain,
        &source,
    )
    .await
    {
        Ok(()) => Redirect::to(&format!("/municipalities/{slug}")).into_response(),
        Err(e) => error_response(&portal.views, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> OnboardForm {
        OnboardForm {
            name_fa: "شهرداری نجف‌آباد".into(),
            name_en: "Najafabad Municipality".into(),
            province: "4".into(),
            ..OnboardForm::default()
        }
    }

    #[test]
    fn the_slug_is_suggested_from_the_name() {
        let o = parse_onboarding(&form(), "miz.ir").unwrap();
        assert_eq!(o.tenant.slug.as_str(), "najafabad");
        assert_eq!(o.tenant.domains[0].as_str(), "najafabad.miz.ir");
        assert!(o.first_admin.is_none());
    }

    #[test]
    fn every_bad_field_gets_a_persian_message() {
        let bad = OnboardForm {
            slug: "admin".into(),
            province: "".into(),
            domains: "good.example bad_domain".into(),
            admin_username: "A".into(),
            admin_mobile: "123".into(),
            ..form()
        };
        let errors = parse_onboarding(&bad, "miz.ir").unwrap_err();
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "slug",
            "province_id",
            "domain",
            "admin_username",
            "admin_mobile",
        ] {
            assert!(fields.contains(&f), "{f} in {fields:?}");
        }
        assert!(
            errors
                .0
                .iter()
                .all(|e| desk_core::text::is_persian_text(&e.message)),
            "{errors}"
        );
    }
}
