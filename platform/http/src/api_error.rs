//! The API's errors: a domain error as a GraphQL error with a stable code, shared by the
//! municipalities' API and the platform's.

use async_graphql::ErrorExtensions;
use desk_core::DomainError;

/// A domain error as a GraphQL error with a stable `extensions.code` (and the field errors
/// under `extensions.fields`). Internal causes are logged, never returned.
pub fn gql_error(e: DomainError) -> async_graphql::Error {
    let (code, message) = match &e {
        DomainError::NotFound => ("NOT_FOUND", "not found".to_owned()),
        DomainError::Forbidden => ("FORBIDDEN", "forbidden".to_owned()),
        DomainError::Conflict(m) => ("CONFLICT", m.clone()),
        DomainError::Validation(f) => ("BAD_USER_INPUT", f.to_string()),
        DomainError::RateLimited { message, .. } => ("RATE_LIMITED", message.clone()),
        DomainError::Unavailable => ("UNAVAILABLE", "temporarily unavailable; retry".to_owned()),
        DomainError::Internal(err) => {
            tracing::error!(error = %err, "API request failed");
            ("INTERNAL", "internal error".to_owned())
        }
    };
    async_graphql::Error::new(message).extend_with(|_, ext| {
        ext.set("code", code);
        match &e {
            DomainError::Validation(f) => {
                let fields: Vec<async_graphql::Value> =
                    f.0.iter()
                        .map(|x| {
                            let mut m = async_graphql::indexmap::IndexMap::new();
                            m.insert(
                                async_graphql::Name::new("field"),
                                async_graphql::Value::from(x.field.clone()),
                            );
                            m.insert(
                                async_graphql::Name::new("code"),
                                async_graphql::Value::from(x.code),
                            );
                            m.insert(
                                async_graphql::Name::new("message"),
                                async_graphql::Value::from(x.message.clone()),
                            );
                            async_graphql::Value::Object(m)
                        })
                        .collect();
                ext.set("fields", fields);
            }
            DomainError::RateLimited { retry_after, .. } => ext.set("retryAfter", *retry_after),
            _ => {}
        }
    })
}
