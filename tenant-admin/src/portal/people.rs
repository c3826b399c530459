//! Provinces and the operators of each.

use super::*;

pub(super) async fn list_provinces(State(portal): State<PlatformPortal>, me: SignedIn) -> Response {
    match portal.db.province_summaries().await {
        Ok(p) => {
            let rows: Vec<_> = p
                .iter()
                .map(|p| context! { id => p.id, code => p.code.clone(), name => p.name_fa.clone(), tenants => persian_digits(&p.tenants.to_string()) })
                .collect();
            portal.views.render(
                StatusCode::OK,
                "provinces.html.j2",
                context! { me => Serde(user_view(&me)), provinces => rows },
            )
        }
        Err(e) => error_response(&portal.views, &e),
    }
}

pub(super) async fn list_operators(State(portal): State<PlatformPortal>, me: SignedIn) -> Response {
    // Who works where is platform-wide information: platform admins only.
    let allowed = lifecycle::allowed(
        &portal.authz,
        &actor(&me),
        Domain::Platform,
        Resource::Tenant,
        Action::Manage,
    )
    .await
    .unwrap_or(false);
    if !allowed {
        return error_response(&portal.views, &DomainError::Forbidden);
    }
    match portal.db.list_users().await {
        Ok(users) => {
            let rows: Vec<_> = users
                .iter()
                .map(|u| context! {
                    username => u.username.clone(), name => u.display_name.clone(),
                    role => if u.kind == "platform_admin" { "مدیر سامانه" } else { "کارشناس استان" },
                    province => u.province_name_fa.clone(),
                })
                .collect();
            portal.views.render(
                StatusCode::OK,
                "operators.html.j2",
                context! { me => Serde(user_view(&me)), users => rows },
            )
        }
        Err(e) => error_response(&portal.views, &e),
    }
}
