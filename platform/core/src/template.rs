//! The national template catalog (`platform/core/catalog/national.yaml`, the project's copy of
//! the draft national catalog) that every new municipality starts from, embedded at build time.

use crate::DomainError;
use crate::catalog::ServiceCard;
use serde::Deserialize;
use std::sync::LazyLock;

#[derive(Deserialize)]
struct TemplateFile {
    services: Vec<ServiceCard>,
}

static NATIONAL: LazyLock<Result<Vec<ServiceCard>, String>> = LazyLock::new(|| {
    let file: TemplateFile = serde_norway::from_str(include_str!("../catalog/national.yaml"))
        .map_err(|e| format!("the national template catalog does not parse: {e}"))?;
    for card in &file.services {
        card.validate()
            .map_err(|e| format!("template service {} is invalid: {e}", card.code))?;
    }
    Ok(file.services)
});

/// The template card of `code`, if the template has one.
pub fn template_card(code: &str) -> Option<&'static ServiceCard> {
    national_template().ok()?.iter().find(|c| c.code == code)
}

/// The cards of the national template, validated.
pub fn national_template() -> Result<&'static [ServiceCard], DomainError> {
    NATIONAL
        .as_deref()
        .map_err(|e| DomainError::Internal(anyhow::anyhow!("{e}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_template_parses_and_every_card_is_valid() {
        let cards = super::national_template().unwrap();
        assert_eq!(cards.len(), 24);
        let mut codes: Vec<&str> = cards.iter().map(|c| c.code.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), 24, "codes are unique");
        assert!(
            cards
                .iter()
                .all(|c| !c.steps.is_empty() && !c.documents.is_empty())
        );
    }
}
