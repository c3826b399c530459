//! The service identity card (شناسنامه خدمت): one object per service and version, with the
//! fields of the national guideline, validated before it is stored.

use crate::error::{FieldError, FieldErrors};
use crate::form::FormSchema;
use crate::workflow::Workflow;
use serde::{Deserialize, Serialize};

/// An inquiry to another agency (استعلام) that the service needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inquiry {
    /// The agency asked.
    pub agency: String,
    /// What is asked.
    pub subject: String,
}

/// A question and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Faq {
    /// Question.
    pub q: String,
    /// Answer.
    pub a: String,
}

impl Faq {
    /// Whether the question or answer holds `needle` (already through
    /// `text::normalize_for_search`); an empty needle matches all.
    pub fn matches(&self, needle: &str) -> bool {
        needle.is_empty()
            || crate::text::normalize_for_search(&format!("{} {}", self.q, self.a)).contains(needle)
    }
}

/// FAQ as the editor writes it: one block per question, blocks apart by a blank line, the
/// first line of a block the question and the rest its answer.
pub fn faq_to_text(faq: &[Faq]) -> String {
    faq.iter()
        .map(|f| format!("{}\n{}", f.q.trim(), f.a.trim()))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Reads FAQ in [`faq_to_text`]'s shape; a question without an answer is an error naming it.
pub fn faq_from_text(text: &str) -> Result<Vec<Faq>, crate::FieldErrors> {
    let text = text.replace("\r\n", "\n");
    let mut out = Vec::new();
    for block in text.split("\n\n").map(str::trim).filter(|b| !b.is_empty()) {
        let (q, a) = block.split_once('\n').unwrap_or((block, ""));
        let a = a
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if a.is_empty() {
            return Err(crate::FieldErrors::single(
                "faq",
                "faq",
                format!(
                    "پرسش «{}» پاسخ ندارد: پاسخ را در سطرهای پس از پرسش بنویسید.",
                    q.trim()
                ),
            ));
        }
        out.push(Faq {
            q: q.trim().to_owned(),
            a,
        });
    }
    Ok(out)
}

/// A service identity card. Field names follow the national template catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCard {
    /// Stable code within the municipality (`MUN-BLD-001`).
    pub code: String,
    /// Persian title.
    pub title_fa: String,
    /// English title.
    #[serde(default)]
    pub title_en: String,
    /// Category code (`building`, `revenue`, ...).
    pub category: String,
    /// G2C, G2B and/or G2G.
    #[serde(default)]
    pub service_type: Vec<String>,
    /// In-person visits a citizen needs.
    #[serde(default)]
    pub in_person_visits: Option<u32>,
    /// What the service is.
    pub description_fa: String,
    /// Ordered steps.
    #[serde(default)]
    pub steps: Vec<String>,
    /// Required documents.
    #[serde(default)]
    pub documents: Vec<String>,
    /// Inquiries to other agencies.
    #[serde(default)]
    pub inquiries: Vec<Inquiry>,
    /// Laws and regulations.
    #[serde(default)]
    pub legal_basis: Vec<String>,
    /// Typical duration in working days (0: done at once, e.g. an online payment).
    pub duration_days: u32,
    /// Fees, as text (the yearly tariff book is the reference).
    #[serde(default)]
    pub fee_description_fa: String,
    /// Frequently asked questions.
    #[serde(default)]
    pub faq: Vec<Faq>,
    /// National service id (11 digits) when known.
    #[serde(default, alias = "national_service_id_example")]
    pub national_service_id: Option<String>,
    /// Where the card's facts come from.
    #[serde(default)]
    pub sources: Vec<String>,
    /// The request form (a JSON Schema subset, see [`crate::form`]); the default form built
    /// from the documents when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<serde_json::Value>,
    /// The workflow; [`Workflow::default_municipal`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<Workflow>,
    /// The unit responsible for the service (printed on the receipt).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit_fa: String,
}

/// Persian labels of the categories of the national template.
pub const CATEGORIES: &[(&str, &str)] = &[
    ("building", "ساختمان"),
    ("urban_planning", "شهرسازی"),
    ("revenue", "درآمد و عوارض"),
    ("business", "کسب‌وکار"),
    ("urban_services", "خدمات شهری"),
    ("environment", "محیط زیست"),
    ("green_space", "فضای سبز"),
    ("cemetery", "آرامستان"),
    ("citizen_relations", "ارتباط با شهروندان"),
];

/// The Persian label of a category code (the code itself when unknown).
pub fn category_label(code: &str) -> &str {
    CATEGORIES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or(code, |(_, l)| l)
}

impl ServiceCard {
    /// Checks the card; returns warnings that do not block saving (a national id of another
    /// shape), or the errors that do.
    pub fn validate(&self) -> Result<Vec<String>, FieldErrors> {
        let mut errors = Vec::new();
        let mut err = |field: &str, code: &'static str, message: &str| {
            errors.push(FieldError {
                field: field.to_owned(),
                code,
                message: message.to_owned(),
            });
        };
        let code_ok = (3..=40).contains(&self.code.len())
            && self
                .code
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
        if !code_ok {
            err(
                "code",
                "service_code",
                "کد خدمت باید ۳ تا ۴۰ نویسه از حروف بزرگ لاتین، رقم و خط تیره باشد.",
            );
        }
        if self.title_fa.trim().is_empty() || self.title_fa.chars().count() > 200 {
            err(
                "title_fa",
                "title",
                "عنوان خدمت لازم است و حداکثر ۲۰۰ نویسه.",
            );
        }
        if self.description_fa.trim().is_empty() {
            err("description_fa", "description", "شرح خدمت لازم است.");
        }
        if self.duration_days > 365 {
            err(
                "duration_days",
                "duration",
                "مدت انجام خدمت باید حداکثر ۳۶۵ روز کاری باشد (۰ یعنی فوری).",
            );
        }
        let mut errors = FieldErrors(errors);
        if let Some(form) = &self.form
            && let Err(e) = FormSchema::from_json_schema(form)
        {
            errors.0.extend(e.0);
        }
        if let Some(workflow) = &self.workflow
            && let Err(e) = workflow.validate()
        {
            errors.0.extend(e.0);
        }
        if !errors.0.is_empty() {
            return Err(errors);
        }
        let mut warnings = Vec::new();
        if let Some(id) = &self.national_service_id
            && !(id.len() == 11 && id.bytes().all(|b| b.is_ascii_digit()))
        {
            warnings.push(format!("شناسه ملی خدمت «{id}» یازده رقمی نیست."));
        }
        Ok(warnings)
    }

    /// The request form: the card's own, or the default one built from its documents.
    pub fn form_schema(&self) -> FormSchema {
        self.form
            .as_ref()
            .and_then(|f| FormSchema::from_json_schema(f).ok())
            .unwrap_or_else(|| FormSchema::default_for(&self.documents))
    }

    /// The workflow: the card's own, or the default municipal one.
    pub fn workflow(&self) -> Workflow {
        self.workflow
            .clone()
            .unwrap_or_else(Workflow::default_municipal)
    }

    /// Everything a citizen may search for, folded by [`crate::text::normalize_for_search`].
    pub fn search_text(&self) -> String {
        let mut parts = vec![
            self.title_fa.as_str(),
            self.title_en.as_str(),
            self.description_fa.as_str(),
            category_label(&self.category),
        ];
        parts.extend(self.documents.iter().map(String::as_str));
        parts.extend(self.faq.iter().map(|f| f.q.as_str()));
        crate::text::normalize_for_search(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faq_text_round_trips_and_needs_answers() {
        let faq = vec![
            Faq {
                q: "هزینه چقدر است؟".into(),
                a: "بر پایه دفترچه عوارض.".into(),
            },
            Faq {
                q: "چند روز طول می‌کشد؟".into(),
                a: "هفت روز کاری.".into(),
            },
        ];
        assert_eq!(faq_from_text(&faq_to_text(&faq)).unwrap(), faq);
        assert_eq!(faq_from_text("  \r\n\r\n ").unwrap(), vec![]);
        let e = faq_from_text("پرسش بی‌پاسخ؟\n\nپرسش دوم؟\nپاسخ").unwrap_err();
        assert!(e.0[0].message.contains("پرسش بی‌پاسخ"));
    }

    fn card() -> ServiceCard {
        ServiceCard {
            code: "MUN-BLD-001".into(),
            title_fa: "صدور پروانه ساختمانی".into(),
            title_en: "Building permit".into(),
            category: "building".into(),
            service_type: vec!["G2C".into()],
            in_person_visits: Some(2),
            description_fa: "شرح".into(),
            steps: vec![],
            documents: vec!["سند مالکیت".into()],
            inquiries: vec![],
            legal_basis: vec![],
            duration_days: 30,
            fee_description_fa: String::new(),
            faq: vec![],
            national_service_id: Some("1012656000".into()),
            sources: vec![],
            form: None,
            workflow: None,
            unit_fa: String::new(),
        }
    }

    #[test]
    fn a_short_national_id_warns_and_bad_fields_fail() {
        assert_eq!(card().validate().unwrap().len(), 1);
        let bad = ServiceCard {
            code: "bad code".into(),
            duration_days: 400,
            ..card()
        };
        let fields: Vec<String> = bad
            .validate()
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["code", "duration_days"]);
        assert!(
            card().search_text().contains("پروانه ساختمانی")
                && card().search_text().contains("building permit")
        );
    }
}
