//! SMS templates per event: the Persian default of each event, the variables it may use, and
//! rendering with minijinja in a sandbox (no loader, so no file or template access; bounded
//! fuel and output, so no endless loop or flood). Secrets never pass through a template: the
//! sign-in code, the survey link and the tracking code are filled in by the sender later, so
//! the template writes `{{ code }}` and rendering leaves the placeholder `{code}` in its place.

use crate::error::FieldErrors;
use crate::sms_text::{Segments, segments};
use serde_json::{Map, Value, json};

/// Longest text a template may render to (about seven UCS-2 parts).
pub const MAX_RENDERED_CHARS: usize = 480;
/// Longest template source.
pub const MAX_SOURCE_CHARS: usize = 1000;

/// An event that sends an SMS to a citizen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A request was registered (tracking code, promised date).
    RequestRegistered,
    /// A request moved to another step.
    StepChanged,
    /// More documents are needed.
    DocumentsNeeded,
    /// The request is decided (delivered or rejected).
    AnswerReady,
    /// The survey link after closing.
    SurveyLink,
    /// The one-time sign-in code.
    SignInCode,
    /// An appointment was booked (or moved to another time).
    AppointmentBooked,
    /// The day before an appointment.
    AppointmentReminder,
}

impl Event {
    /// Every event, in the editor's order.
    pub const ALL: [Event; 8] = [
        Event::RequestRegistered,
        Event::StepChanged,
        Event::DocumentsNeeded,
        Event::AnswerReady,
        Event::SurveyLink,
        Event::SignInCode,
        Event::AppointmentBooked,
        Event::AppointmentReminder,
    ];

    /// Stored key.
    pub fn key(self) -> &'static str {
        match self {
            Self::RequestRegistered => "request_registered",
            Self::StepChanged => "step_changed",
            Self::DocumentsNeeded => "documents_needed",
            Self::AnswerReady => "answer_ready",
            Self::SurveyLink => "survey_link",
            Self::SignInCode => "sign_in_code",
            Self::AppointmentBooked => "appointment_booked",
            Self::AppointmentReminder => "appointment_reminder",
        }
    }

    /// The event of a stored key.
    pub fn parse(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.key() == key)
    }

    /// Persian name for the editor.
    pub fn label_fa(self) -> &'static str {
        match self {
            Self::RequestRegistered => "ثبت درخواست",
            Self::StepChanged => "تغییر مرحله",
            Self::DocumentsNeeded => "درخواست مدارک تکمیلی",
            Self::AnswerReady => "آماده بودن پاسخ",
            Self::SurveyLink => "پیوند نظرسنجی",
            Self::SignInCode => "کد ورود",
            Self::AppointmentBooked => "ثبت نوبت",
            Self::AppointmentReminder => "یادآوری نوبت",
        }
    }

    /// The variables the event offers, with an example value each (the preview uses them).
    pub fn variables(self) -> &'static [(&'static str, &'static str)] {
        const BASE: (&str, &str) = ("municipality", "شهرداری نجف‌آباد");
        match self {
            Self::RequestRegistered => &[
                BASE,
                ("service", "صدور پروانه ساختمانی"),
                ("tracking_code", "140509123456"),
                ("promised_date", "۱۴۰۵/۰۹/۲۵"),
            ],
            Self::StepChanged | Self::DocumentsNeeded | Self::AnswerReady => &[
                BASE,
                ("service", "صدور پروانه ساختمانی"),
                ("tracking_code", "140509123456"),
                ("state", "در حال بررسی"),
                ("note", "نقشه معماری را بارگذاری کنید."),
            ],
            Self::SurveyLink => &[
                BASE,
                ("tracking_code", "140509123456"),
                (
                    "link",
                    "https://najafabad.miz.ir/survey/3f2a9c1e7b5d4a6f8e0c2b1d9a7f5e3c3f2a9c1e7b5d4a6f8e0c2b1d9a7f5e3c",
                ),
            ],
            Self::SignInCode => &[BASE, ("code", "482917")],
            Self::AppointmentBooked | Self::AppointmentReminder => &[
                BASE,
                ("service", "صدور پروانه ساختمانی"),
                ("date", "۱۴۰۵/۰۹/۲۵"),
                ("time", "۰۹:۳۰"),
            ],
        }
    }

    /// The shipped Persian text.
    pub fn default_body(self) -> &'static str {
        match self {
            Self::RequestRegistered => {
                "درخواست «{{ service }}» شما در میز خدمت {{ municipality }} ثبت شد. کد رهگیری: {{ tracking_code }} — موعد پاسخ: {{ promised_date }}"
            }
            Self::StepChanged | Self::DocumentsNeeded | Self::AnswerReady => {
                "میز خدمت {{ municipality }}: درخواست {{ tracking_code }} اکنون «{{ state }}» است.{% if note %} توضیح: {{ note | truncate_chars(120) }}{% endif %}"
            }
            Self::SurveyLink => {
                "میز خدمت {{ municipality }}: درخواست {{ tracking_code }} به پایان رسید. لطفاً با پاسخ به نظرسنجی به بهبود خدمات کمک کنید: {{ link }}"
            }
            Self::SignInCode => {
                "کد ورود شما به میز خدمت {{ municipality }}: {{ code }}\nاین کد را به کسی ندهید."
            }
            Self::AppointmentBooked => {
                "نوبت شما برای «{{ service }}» در میز خدمت {{ municipality }}: {{ date }} ساعت {{ time }}."
            }
            Self::AppointmentReminder => {
                "یادآوری: فردا {{ date }} ساعت {{ time }} نوبت «{{ service }}» در میز خدمت {{ municipality }} دارید. اگر نمی‌آیید، نوبت را لغو کنید."
            }
        }
    }

    /// The sample values of [`Event::variables`] as template context.
    pub fn sample(self) -> Value {
        Value::Object(
            self.variables()
                .iter()
                .map(|(k, v)| ((*k).to_owned(), json!(v)))
                .collect::<Map<_, _>>(),
        )
    }
}

fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_fuel(Some(20_000));
    env.set_recursion_limit(20);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_filter("truncate_chars", |s: String, n: usize| -> String {
        s.chars().take(n).collect()
    });
    env
}

fn invalid(message: String) -> FieldErrors {
    FieldErrors::single("body", "sms_template", message)
}

/// Renders `source` with `vars` in the sandbox.
pub fn render(source: &str, vars: &Value) -> Result<String, FieldErrors> {
    if source.chars().count() > MAX_SOURCE_CHARS {
        return Err(invalid("متن الگو حداکثر ۱۰۰۰ نویسه است.".to_owned()));
    }
    let env = environment();
    let out = env
        .render_str(source, minijinja::value::Serde(vars))
        .map_err(|e| invalid(format!("الگو درست نیست: {}", e.kind())))?;
    let out = out.trim().to_owned();
    if out.is_empty() {
        return Err(invalid("پیامک خالی می‌شود.".to_owned()));
    }
    if out.chars().count() > MAX_RENDERED_CHARS {
        return Err(invalid(format!(
            "پیامک بلندتر از {} نویسه می‌شود.",
            crate::text::persian_digits(&MAX_RENDERED_CHARS.to_string())
        )));
    }
    Ok(out)
}

/// Checks a template for `event` by rendering its sample: the sample text and its segments.
pub fn preview(event: Event, source: &str) -> Result<(String, Segments), FieldErrors> {
    let text = render(source, &event.sample())?;
    let s = segments(&text);
    Ok((text, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_render_with_their_samples() {
        for e in Event::ALL {
            let (text, s) = preview(e, e.default_body()).unwrap();
            assert!(!text.contains("{{"), "{}", e.key());
            assert!(s.parts >= 1);
            assert_eq!(Event::parse(e.key()), Some(e));
        }
        let (text, _) = preview(Event::SignInCode, Event::SignInCode.default_body()).unwrap();
        assert!(text.contains("482917") && text.contains("نجف‌آباد"));
    }

    #[test]
    fn placeholders_survive_for_the_sender() {
        let text = render(
            Event::SignInCode.default_body(),
            &json!({ "municipality": "شهرداری آلفا", "code": "{code}" }),
        )
        .unwrap();
        assert!(text.contains("{code}"));
    }

    #[test]
    fn templates_are_sandboxed_and_bounded() {
        // No file or template access.
        assert!(render("{% include '/etc/passwd' %}", &json!({})).is_err());
        assert!(render("{% extends 'layout.html.j2' %}", &json!({})).is_err());
        // An endless loop runs out of fuel.
        assert!(
            render(
                "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
                &json!({})
            )
            .is_err()
        );
        // Unknown variables are refused rather than silently empty.
        assert!(render("سلام {{ nam }}", &json!({ "name": "x" })).is_err());
        // Too long, empty, broken.
        assert!(render(&"آ".repeat(481), &json!({})).is_err());
        assert!(render("  ", &json!({})).is_err());
        assert!(render("{% if %}", &json!({})).is_err());
        assert!(render(&"x".repeat(1001), &json!({})).is_err());
        // No HTML escaping: SMS is plain text.
        assert_eq!(render("{{ a }}", &json!({ "a": "<b>&" })).unwrap(), "<b>&");
    }

    #[test]
    fn note_is_shortened_and_optional() {
        let long = "ن".repeat(300);
        let text = render(
            Event::StepChanged.default_body(),
            &json!({ "municipality": "م", "tracking_code": "1", "state": "س", "service": "خ", "note": long }),
        )
        .unwrap();
        assert!(text.contains(&"ن".repeat(120)) && !text.contains(&"ن".repeat(121)));
        let text = render(
            Event::StepChanged.default_body(),
            &json!({ "municipality": "م", "tracking_code": "1", "state": "س", "service": "خ", "note": "" }),
        )
        .unwrap();
        assert!(!text.contains("توضیح"));
    }
}
