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

/// A rendered SMS: its text and, for accounts that send the provider's pre-approved template
/// instead of free text, the event and the variables the text was rendered with.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SmsBody {
    /// The text.
    pub text: String,
    /// The event it reports (`None`: free text only, such as staff alerts).
    pub event: Option<Event>,
    /// The event's variables (an object of strings).
    pub vars: Value,
}

impl SmsBody {
    /// Free text with no event.
    pub fn plain(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            event: None,
            vars: Value::Null,
        }
    }

    /// Fills a placeholder (such as `{tracking}`) in the text and in every variable.
    pub fn replace(&mut self, placeholder: &str, value: &str) {
        self.text = self.text.replace(placeholder, value);
        if let Value::Object(vars) = &mut self.vars {
            for v in vars.values_mut() {
                if let Value::String(s) = v {
                    *s = s.replace(placeholder, value);
                }
            }
        }
    }
}

impl From<&str> for SmsBody {
    fn from(text: &str) -> Self {
        Self::plain(text)
    }
}

impl From<&String> for SmsBody {
    fn from(text: &String) -> Self {
        Self::plain(text.as_str())
    }
}

impl From<String> for SmsBody {
    fn from(text: String) -> Self {
        Self::plain(text)
    }
}

impl From<&SmsBody> for SmsBody {
    fn from(body: &SmsBody) -> Self {
        body.clone()
    }
}

/// Kavenegar's `verify/lookup` parameters; the first three may hold no space, `token10` up to
/// five and `token20` up to eight (its error 431 otherwise).
pub const KAVENEGAR_TOKENS: [&str; 5] = ["token", "token2", "token3", "token10", "token20"];

/// The Kavenegar parameters that take no space.
pub const KAVENEGAR_SPACELESS_TOKENS: [&str; 3] = ["token", "token2", "token3"];

/// Variables whose values never hold a space (codes, dates, times, links).
const SPACELESS: [&str; 6] = [
    "tracking_code",
    "promised_date",
    "code",
    "link",
    "date",
    "time",
];

/// Most parameters a provider template may take.
pub const MAX_TEMPLATE_PARAMS: usize = 10;

/// A provider's pre-approved template for one event: its id (Kavenegar's and Ghasedak's
/// template name, SMS.ir's numeric template id) and which of the event's variables fills each
/// of its parameters, by the provider's parameter name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProviderTemplate {
    /// Template id or name at the provider.
    pub template: String,
    /// (provider's parameter name, our variable), in order.
    pub params: Vec<(String, String)>,
}

fn template_error(field: &str, message: impl Into<String>) -> FieldErrors {
    FieldErrors::single(field, "provider_template", message)
}

fn plain_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl ProviderTemplate {
    /// Whether `provider` sends pre-approved templates (Magfa's API has none).
    pub fn supported_by(provider: &str) -> bool {
        matches!(provider, "kavenegar" | "smsir" | "ghasedak")
    }

    /// Reads the editor's form: the template id and one `parameter = variable` per line (or
    /// separated by commas), checked against the provider's rules and the event's variables.
    pub fn parse(
        provider: &str,
        event: Event,
        template: &str,
        params: &str,
    ) -> Result<Self, FieldErrors> {
        if !Self::supported_by(provider) {
            return Err(template_error(
                "template",
                "این سامانه پیامک الگوی ازپیش‌تأییدشده ندارد؛ پیامک‌های این حساب متن کامل الگوی میز خدمت است.",
            ));
        }
        let template = template.trim();
        let template_ok = if provider == "smsir" {
            !template.is_empty()
                && template.len() <= 12
                && template.bytes().all(|b| b.is_ascii_digit())
        } else {
            plain_name(template, 64)
        };
        if !template_ok {
            return Err(template_error(
                "template",
                if provider == "smsir" {
                    "شناسه الگوی SMS.ir عددی است."
                } else {
                    "نام الگو فقط حروف لاتین، رقم، - و _ دارد."
                },
            ));
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        for item in params.split(['\n', ',', '،']) {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let Some((name, var)) = item.split_once('=') else {
                return Err(template_error(
                    "params",
                    format!("«{item}» باید به شکل «پارامتر = متغیر» باشد."),
                ));
            };
            let (name, var) = (name.trim(), var.trim());
            if !event.variables().iter().any(|(v, _)| *v == var) {
                return Err(template_error(
                    "params",
                    format!("متغیر «{var}» در این رویداد نیست."),
                ));
            }
            let name_ok = if provider == "kavenegar" {
                KAVENEGAR_TOKENS.contains(&name)
            } else {
                plain_name(name, 30)
            };
            if !name_ok {
                return Err(template_error(
                    "params",
                    if provider == "kavenegar" {
                        format!(
                            "پارامتر «{name}» در کاوه‌نگار نیست؛ یکی از token، token2، token3، token10 و token20."
                        )
                    } else {
                        format!("نام پارامتر «{name}» فقط حروف لاتین، رقم، - و _ دارد.")
                    },
                ));
            }
            if provider == "kavenegar"
                && KAVENEGAR_SPACELESS_TOKENS.contains(&name)
                && !SPACELESS.contains(&var)
            {
                return Err(template_error(
                    "params",
                    format!(
                        "مقدار «{var}» فاصله دارد و کاوه‌نگار آن را در {name} نمی‌پذیرد؛ token10 یا token20 را به کار ببرید."
                    ),
                ));
            }
            if pairs.iter().any(|(n, _)| n == name) {
                return Err(template_error(
                    "params",
                    format!("پارامتر «{name}» دو بار آمده است."),
                ));
            }
            pairs.push((name.to_owned(), var.to_owned()));
        }
        if pairs.len() > MAX_TEMPLATE_PARAMS {
            return Err(template_error("params", "حداکثر ۱۰ پارامتر."));
        }
        if provider == "kavenegar" && !pairs.iter().any(|(n, _)| n == "token") {
            return Err(template_error(
                "params",
                "الگوی کاوه‌نگار دست‌کم پارامتر token را می‌خواهد.",
            ));
        }
        Ok(Self {
            template: template.to_owned(),
            params: pairs,
        })
    }

    /// The parameters filled from `vars` (a missing variable gives an empty value).
    pub fn fill(&self, vars: &Value) -> Vec<(String, String)> {
        self.params
            .iter()
            .map(|(name, var)| {
                let value = match &vars[var] {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                (name.clone(), value)
            })
            .collect()
    }

    /// The form text of the parameters (`name = variable` per line).
    pub fn params_text(&self) -> String {
        self.params
            .iter()
            .map(|(n, v)| format!("{n} = {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
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
    #[test]
    fn provider_templates_follow_each_providers_rules() {
        let ok = ProviderTemplate::parse(
            "kavenegar",
            Event::RequestRegistered,
            " miz-registered ",
            "token = tracking_code\ntoken10 = service, token2=promised_date",
        )
        .unwrap();
        assert_eq!(ok.template, "miz-registered");
        assert_eq!(ok.params.len(), 3);
        let filled = ok.fill(&json!({ "tracking_code": "1405", "service": "پروانه ساختمانی" }));
        assert_eq!(filled[0], ("token".to_owned(), "1405".to_owned()));
        assert_eq!(filled[2], ("token2".to_owned(), String::new()));
        let again = ProviderTemplate::parse(
            "kavenegar",
            Event::RequestRegistered,
            "miz-registered",
            &ok.params_text(),
        )
        .unwrap();
        assert_eq!(again, ok);
        // Kavenegar: known token names, no spaced values in token..token3, `token` required.
        for bad in [
            "tok = code",
            "token = service",
            "token2 = tracking_code",
            "token = nope",
        ] {
            assert!(
                ProviderTemplate::parse("kavenegar", Event::RequestRegistered, "t", bad).is_err(),
                "{bad}"
            );
        }
        assert!(
            ProviderTemplate::parse("kavenegar", Event::SignInCode, "t", "token=code,token=code")
                .is_err()
        );
        // SMS.ir ids are numbers; parameter names are its own.
        assert!(
            ProviderTemplate::parse("smsir", Event::SignInCode, "123456", "CODE = code").is_ok()
        );
        assert!(ProviderTemplate::parse("smsir", Event::SignInCode, "otp", "CODE = code").is_err());
        assert!(
            ProviderTemplate::parse("ghasedak", Event::SignInCode, "miz otp", "code=code").is_err()
        );
        assert!(
            ProviderTemplate::parse("ghasedak", Event::SignInCode, "miz-otp", "x y=code").is_err()
        );
        // Magfa has no templates.
        assert!(ProviderTemplate::parse("magfa", Event::SignInCode, "1", "a=code").is_err());
    }

    #[test]
    fn placeholders_are_filled_in_text_and_variables() {
        let mut body = SmsBody {
            text: "کد {tracking}".to_owned(),
            event: Some(Event::RequestRegistered),
            vars: json!({ "tracking_code": "{tracking}", "service": "س" }),
        };
        body.replace("{tracking}", "140509");
        assert_eq!(body.text, "کد 140509");
        assert_eq!(body.vars["tracking_code"], "140509");
    }
}
