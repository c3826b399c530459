//! Request forms: a small subset of JSON Schema with Persian labels, and the checks of what a
//! citizen submits through them.
//!
//! A service stores its form as a JSON Schema document (in a jsonb column, which does not keep
//! key order, hence the `x-order` list). [`FormSchema::from_json_schema`] turns it into typed
//! fields and rejects anything the desk would not enforce; [`FormSchema::validate`] checks the
//! non-file answers of an HTML form and [`FormField::check_file`] each uploaded file.

use crate::content_type::sniff;
use crate::error::{FieldError, FieldErrors};
use crate::jalali::JalaliDate;
use crate::mobile::{MobileNumber, ascii_digits};
use crate::national_code::NationalCode;
use crate::text::persian_digits;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value, json};
use std::collections::{BTreeSet, HashMap};

/// Most fields a form may have.
pub const MAX_FIELDS: usize = 60;
/// Largest upload limit a file field may set (20 MiB).
pub const MAX_FILE_BYTES: u64 = 20 * MIB;
/// Upload limit of a file field that sets none (5 MiB).
pub const DEFAULT_FILE_BYTES: u64 = 5 * MIB;
/// Length limit of a text field that sets none.
pub const DEFAULT_TEXT_LENGTH: u32 = 1000;
/// Length limit of an address field that sets none.
pub const DEFAULT_ADDRESS_LENGTH: u32 = 500;
/// Largest length limit a text or address field may set.
pub const MAX_TEXT_LENGTH: u32 = 10_000;

const MIB: u64 = 1024 * 1024;

/// File types a file field may accept: those [`sniff`] recognizes, with their extension and
/// the name people know them by.
const FILE_TYPES: &[(&str, &str, &str)] = &[
    ("application/pdf", "pdf", "PDF"),
    ("image/jpeg", "jpg", "JPEG"),
    ("image/png", "png", "PNG"),
    ("image/webp", "webp", "WebP"),
];

/// What a file field accepts when the schema does not say.
const DEFAULT_FILE_ACCEPT: &[&str] = &["application/pdf", "image/jpeg", "image/png"];

/// The fields of one request form, in display order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FormSchema {
    /// Fields in the order they are shown.
    pub fields: Vec<FormField>,
}

/// One question of a form.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FormField {
    /// Machine name, matching `^[a-z][a-z0-9_]{0,39}$`; the HTML input name.
    pub name: String,
    /// Persian label.
    pub label_fa: String,
    /// Persian help text shown under the input.
    pub help_fa: Option<String>,
    /// Whether an answer is required.
    pub required: bool,
    /// What kind of answer, with its limits.
    pub kind: FieldKind,
}

/// The kind of answer a field takes, with its limits.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FieldKind {
    /// Free text (newlines allowed), at most `max_length` characters.
    Text {
        /// Most characters accepted.
        max_length: u32,
    },
    /// A decimal number within optional bounds (inclusive).
    Number {
        /// Smallest value accepted.
        min: Option<f64>,
        /// Largest value accepted.
        max: Option<f64>,
    },
    /// A Jalali date within optional bounds (inclusive).
    JalaliDate {
        /// Earliest date accepted.
        #[serde(serialize_with = "serialize_jalali")]
        min: Option<JalaliDate>,
        /// Latest date accepted.
        #[serde(serialize_with = "serialize_jalali")]
        max: Option<JalaliDate>,
    },
    /// Exactly one of the options.
    Select {
        /// The options, in display order.
        options: Vec<Choice>,
    },
    /// Any number of the options.
    MultiSelect {
        /// The options, in display order.
        options: Vec<Choice>,
    },
    /// An Iranian national code.
    NationalCode,
    /// An Iranian mobile number.
    Mobile,
    /// An Iranian ten-digit postal code.
    PostalCode,
    /// A postal address (newlines allowed), at most `max_length` characters.
    Address {
        /// Most characters accepted.
        max_length: u32,
    },
    /// An uploaded file.
    File {
        /// Content types accepted, checked against the file's bytes.
        accept: Vec<String>,
        /// Largest size accepted.
        max_bytes: u64,
    },
}

/// One option of a select field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Choice {
    /// Value stored with the request.
    pub value: String,
    /// Persian label shown.
    pub label_fa: String,
}

/// What is kept about an accepted upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredFileMeta {
    /// Real type, from the file's bytes.
    pub content_type: &'static str,
    /// File name safe to store and offer for download.
    pub safe_name: String,
    /// Size in bytes.
    pub size: u64,
}

fn serialize_jalali<S: Serializer>(date: &Option<JalaliDate>, s: S) -> Result<S::Ok, S::Error> {
    date.map(|d| d.to_string()).serialize(s)
}

/// Whether `s` matches `^[a-z][a-z0-9_]{0,39}$`.
fn is_field_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && s.len() <= 40
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

fn error(field: &str, code: &'static str, message: String) -> FieldError {
    FieldError {
        field: field.to_owned(),
        code,
        message,
    }
}

// ---------------------------------------------------------------------------------------------
// Reading and writing the stored JSON Schema.
// ---------------------------------------------------------------------------------------------

impl FormSchema {
    /// Reads a stored form; every problem is reported, on field `form` or `form.<name>`.
    ///
    /// Rejects unknown types, formats and keywords (a keyword the desk would silently ignore
    /// is a rule the admin believes is enforced), bad names, empty labels, options without
    /// matching labels, more than [`MAX_FIELDS`] fields and upload limits above
    /// [`MAX_FILE_BYTES`].
    pub fn from_json_schema(v: &Value) -> Result<FormSchema, FieldErrors> {
        let invalid = |message: &str| FieldErrors::single("form", "form_invalid", message);
        let Some(root) = v.as_object() else {
            return Err(invalid("فرم باید یک شیء JSON باشد."));
        };
        if root.get("type").and_then(Value::as_str) != Some("object") {
            return Err(invalid("نوع فرم باید «object» باشد."));
        }
        let Some(properties) = root.get("properties").and_then(Value::as_object) else {
            return Err(invalid("فیلدهای فرم (properties) تعریف نشده‌اند."));
        };
        if properties.len() > MAX_FIELDS {
            return Err(FieldErrors::single(
                "form",
                "form_too_many_fields",
                format!(
                    "فرم حداکثر {} فیلد می‌تواند داشته باشد.",
                    persian_digits(&MAX_FIELDS.to_string())
                ),
            ));
        }

        let mut errors = Vec::new();
        let order = name_list(root, "x-order", properties, &mut errors);
        let required = name_list(root, "required", properties, &mut errors);

        // Names listed in x-order first, then the rest by name.
        let mut names: Vec<&str> = Vec::new();
        for name in &order {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
        let mut rest: Vec<&str> = properties
            .keys()
            .map(String::as_str)
            .filter(|name| !names.contains(name))
            .collect();
        rest.sort_unstable();
        names.extend(rest);

        let mut fields = Vec::new();
        for name in names {
            let Some(prop) = properties.get(name) else {
                continue;
            };
            let is_required = required.iter().any(|r| r == name);
            if let Some(field) = read_field(name, prop, is_required, &mut errors) {
                fields.push(field);
            }
        }
        if errors.is_empty() {
            Ok(FormSchema { fields })
        } else {
            Err(FieldErrors(errors))
        }
    }

    /// Writes the form as the JSON Schema document [`FormSchema::from_json_schema`] reads.
    pub fn to_json_schema(&self) -> Value {
        let order: Vec<&str> = self.fields.iter().map(|f| f.name.as_str()).collect();
        let required: Vec<&str> = self
            .fields
            .iter()
            .filter(|f| f.required)
            .map(|f| f.name.as_str())
            .collect();
        let mut properties = Map::new();
        for field in &self.fields {
            properties.insert(field.name.clone(), write_field(field));
        }
        json!({
            "type": "object",
            "x-order": order,
            "required": required,
            "properties": properties,
        })
    }
}

/// A list of property names under `key` (`x-order` or `required`); unknown names are errors.
fn name_list(
    root: &Map<String, Value>,
    key: &str,
    properties: &Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> Vec<String> {
    let Some(value) = root.get(key) else {
        return Vec::new();
    };
    let Some(items) = value.as_array() else {
        errors.push(error(
            "form",
            "form_invalid",
            format!("«{key}» باید فهرستی از نام فیلدها باشد."),
        ));
        return Vec::new();
    };
    let mut names = Vec::new();
    for item in items {
        match item.as_str() {
            Some(name) if properties.contains_key(name) => names.push(name.to_owned()),
            Some(name) => errors.push(error(
                "form",
                "form_unknown_field",
                format!("فیلد «{name}» در «{key}» آمده ولی تعریف نشده است."),
            )),
            None => errors.push(error(
                "form",
                "form_invalid",
                format!("«{key}» باید فهرستی از نام فیلدها باشد."),
            )),
        }
    }
    names
}

/// Names the desk's own forms and APIs send beside the fields (CSRF token, idempotency key,
/// Open311's key, service and phone).
pub const RESERVED_NAMES: &[&str] = &[
    "csrf",
    "idempotency_key",
    "api_key",
    "service_code",
    "phone",
];

/// Reads one property; pushes its problems to `errors` and returns `None` if there were any.
fn read_field(
    name: &str,
    prop: &Value,
    required: bool,
    errors: &mut Vec<FieldError>,
) -> Option<FormField> {
    let at = format!("form.{name}");
    let before = errors.len();
    if !is_field_name(name) {
        errors.push(error(
            &at,
            "form_name_invalid",
            format!("نام فیلد «{name}» باید با حرف کوچک لاتین شروع شود و فقط حروف کوچک لاتین، رقم و _ داشته باشد (حداکثر ۴۰ نویسه)."),
        ));
    }
    if RESERVED_NAMES.contains(&name) {
        errors.push(error(
            &at,
            "form_name_reserved",
            format!("نام «{name}» را خود سامانه به کار می‌برد؛ نام دیگری برگزینید."),
        ));
    }
    let Some(prop) = prop.as_object() else {
        errors.push(error(
            &at,
            "form_invalid",
            format!("تعریف فیلد «{name}» باید یک شیء JSON باشد."),
        ));
        return None;
    };

    let label_fa = prop
        .get("title")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    if label_fa.is_empty() {
        errors.push(error(
            &at,
            "form_label_empty",
            format!("عنوان فارسی (title) فیلد «{name}» خالی است."),
        ));
    }
    let help_fa = match prop.get("description") {
        None => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.trim().to_owned()),
        Some(_) => {
            errors.push(error(
                &at,
                "form_invalid",
                format!("راهنمای (description) فیلد «{name}» باید متن باشد."),
            ));
            None
        }
    };

    let ty = prop.get("type").and_then(Value::as_str).unwrap_or_default();
    let format = prop.get("format").and_then(Value::as_str);
    let (kind, keywords): (Option<FieldKind>, &[&str]) = match (ty, format) {
        ("string", None) if prop.contains_key("enum") => (
            read_choices(name, prop, errors).map(|options| FieldKind::Select { options }),
            &["enum", "x-enum-labels"],
        ),
        ("string", None) => (
            read_max_length(name, prop, DEFAULT_TEXT_LENGTH, errors)
                .map(|max_length| FieldKind::Text { max_length }),
            &["maxLength"],
        ),
        ("string", Some("address")) => (
            read_max_length(name, prop, DEFAULT_ADDRESS_LENGTH, errors)
                .map(|max_length| FieldKind::Address { max_length }),
            &["maxLength"],
        ),
        ("string", Some("jalali-date")) => (
            read_date_bounds(name, prop, errors)
                .map(|(min, max)| FieldKind::JalaliDate { min, max }),
            &["formatMinimum", "formatMaximum"],
        ),
        ("string", Some("national-code")) => (Some(FieldKind::NationalCode), &[]),
        ("string", Some("mobile")) => (Some(FieldKind::Mobile), &[]),
        ("string", Some("postal-code")) => (Some(FieldKind::PostalCode), &[]),
        ("string", Some("file")) => (
            read_file_limits(name, prop, errors)
                .map(|(accept, max_bytes)| FieldKind::File { accept, max_bytes }),
            &["contentMediaType", "x-max-bytes"],
        ),
        ("string", Some(other)) => {
            errors.push(error(
                &at,
                "form_format_unknown",
                format!("قالب «{other}» برای فیلد «{name}» پشتیبانی نمی‌شود."),
            ));
            return None;
        }
        ("number", None) => (
            read_number_bounds(name, prop, errors).map(|(min, max)| FieldKind::Number { min, max }),
            &["minimum", "maximum"],
        ),
        ("array", None) => (
            read_multi_select(name, prop, errors).map(|options| FieldKind::MultiSelect { options }),
            &["items", "uniqueItems"],
        ),
        _ => {
            let shown = match format {
                Some(f) => format!("{ty}/{f}"),
                None => ty.to_owned(),
            };
            errors.push(error(
                &at,
                "form_type_unknown",
                format!("نوع «{shown}» برای فیلد «{name}» پشتیبانی نمی‌شود."),
            ));
            return None;
        }
    };

    for key in prop.keys() {
        let common = ["type", "format", "title", "description"].contains(&key.as_str());
        if !common && !keywords.contains(&key.as_str()) {
            errors.push(error(
                &at,
                "form_keyword_unknown",
                format!("ویژگی «{key}» در فیلد «{name}» پشتیبانی نمی‌شود."),
            ));
        }
    }

    match kind {
        Some(kind) if errors.len() == before => Some(FormField {
            name: name.to_owned(),
            label_fa,
            help_fa,
            required,
            kind,
        }),
        _ => None,
    }
}

fn read_max_length(
    name: &str,
    prop: &Map<String, Value>,
    default: u32,
    errors: &mut Vec<FieldError>,
) -> Option<u32> {
    let Some(value) = prop.get("maxLength") else {
        return Some(default);
    };
    match value.as_u64().and_then(|n| u32::try_from(n).ok()) {
        Some(n) if (1..=MAX_TEXT_LENGTH).contains(&n) => Some(n),
        _ => {
            errors.push(error(
                &format!("form.{name}"),
                "form_limit_invalid",
                format!(
                    "حداکثر طول (maxLength) فیلد «{name}» باید عددی از ۱ تا {} باشد.",
                    persian_digits(&MAX_TEXT_LENGTH.to_string())
                ),
            ));
            None
        }
    }
}

fn read_number_bounds(
    name: &str,
    prop: &Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> Option<(Option<f64>, Option<f64>)> {
    let mut bound = |key: &str| -> Result<Option<f64>, ()> {
        match prop.get(key) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(n) if n.is_finite() => Ok(Some(n)),
                _ => {
                    errors.push(error(
                        &format!("form.{name}"),
                        "form_limit_invalid",
                        format!("«{key}» فیلد «{name}» باید یک عدد باشد."),
                    ));
                    Err(())
                }
            },
        }
    };
    let (min, max) = (bound("minimum"), bound("maximum"));
    let (Ok(min), Ok(max)) = (min, max) else {
        return None;
    };
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        errors.push(error(
            &format!("form.{name}"),
            "form_limit_invalid",
            format!("کمینهٔ فیلد «{name}» از بیشینهٔ آن بزرگ‌تر است."),
        ));
        return None;
    }
    Some((min, max))
}

fn read_date_bounds(
    name: &str,
    prop: &Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> Option<(Option<JalaliDate>, Option<JalaliDate>)> {
    let mut bound = |key: &str| -> Result<Option<JalaliDate>, ()> {
        match prop.get(key) {
            None => Ok(None),
            Some(v) => match v.as_str().map(JalaliDate::parse) {
                Some(Ok(d)) => Ok(Some(d)),
                _ => {
                    errors.push(error(
                        &format!("form.{name}"),
                        "form_limit_invalid",
                        format!("«{key}» فیلد «{name}» باید تاریخی مانند ۱۴۰۴/۰۱/۱۵ باشد."),
                    ));
                    Err(())
                }
            },
        }
    };
    let (min, max) = (bound("formatMinimum"), bound("formatMaximum"));
    let (Ok(min), Ok(max)) = (min, max) else {
        return None;
    };
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        errors.push(error(
            &format!("form.{name}"),
            "form_limit_invalid",
            format!("کمینهٔ تاریخ فیلد «{name}» از بیشینهٔ آن دیرتر است."),
        ));
        return None;
    }
    Some((min, max))
}

/// Options from `enum` and `x-enum-labels` of `obj` (the property, or its `items`).
fn read_choices(
    name: &str,
    obj: &Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> Option<Vec<Choice>> {
    let at = format!("form.{name}");
    let strings = |key: &str| -> Option<Vec<String>> {
        obj.get(key)?
            .as_array()?
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let (Some(values), Some(labels)) = (strings("enum"), strings("x-enum-labels")) else {
        errors.push(error(
            &at,
            "form_options_invalid",
            format!("گزینه‌های فیلد «{name}» باید فهرست enum و فهرست عنوان‌های فارسی x-enum-labels داشته باشند."),
        ));
        return None;
    };
    if values.is_empty() || values.len() != labels.len() {
        errors.push(error(
            &at,
            "form_options_invalid",
            format!("تعداد گزینه‌ها و عنوان‌های فارسی فیلد «{name}» برابر نیست یا گزینه‌ای ندارد."),
        ));
        return None;
    }
    let mut seen = BTreeSet::new();
    let mut options = Vec::new();
    for (value, label) in values.into_iter().zip(labels) {
        let label = label.trim().to_owned();
        if value.is_empty()
            || value.trim() != value
            || label.is_empty()
            || !seen.insert(value.clone())
        {
            errors.push(error(
                &at,
                "form_options_invalid",
                format!("گزینه‌های فیلد «{name}» باید یکتا و بدون فاصلهٔ اضافه باشند و عنوان فارسی داشته باشند."),
            ));
            return None;
        }
        options.push(Choice {
            value,
            label_fa: label,
        });
    }
    Some(options)
}

fn read_multi_select(
    name: &str,
    prop: &Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> Option<Vec<Choice>> {
    let at = format!("form.{name}");
    let items = prop.get("items").and_then(Value::as_object);
    let Some(items) = items.filter(|i| i.get("type").and_then(Value::as_str) == Some("string"))
    else {
        errors.push(error(
            &at,
            "form_options_invalid",
            format!("فیلد چندگزینه‌ای «{name}» باید items از نوع string با enum داشته باشد."),
        ));
        return None;
    };
    if let Some(key) = items
        .keys()
        .find(|k| !["type", "enum", "x-enum-labels"].contains(&k.as_str()))
    {
        errors.push(error(
            &at,
            "form_keyword_unknown",
            format!("ویژگی «{key}» در items فیلد «{name}» پشتیبانی نمی‌شود."),
        ));
        return None;
    }
    read_choices(name, items, errors)
}

fn read_file_limits(
    name: &str,
    prop: &Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> Option<(Vec<String>, u64)> {
    let at = format!("form.{name}");
    let requested: Option<Vec<&str>> = match prop.get("contentMediaType") {
        None => Some(DEFAULT_FILE_ACCEPT.to_vec()),
        Some(Value::String(s)) => Some(vec![s.as_str()]),
        Some(Value::Array(items)) => items.iter().map(Value::as_str).collect(),
        Some(_) => None,
    };
    let known = |t: &&str| FILE_TYPES.iter().any(|(ct, _, _)| ct == t);
    let accept = match requested {
        Some(types) if !types.is_empty() && types.iter().all(known) => {
            let mut accept: Vec<String> = Vec::new();
            for t in types {
                if !accept.iter().any(|a| a == t) {
                    accept.push(t.to_owned());
                }
            }
            Some(accept)
        }
        _ => {
            errors.push(error(
                &at,
                "form_file_types_invalid",
                format!(
                    "نوع پرونده‌های فیلد «{name}» باید از میان {} باشد.",
                    FILE_TYPES
                        .iter()
                        .map(|(ct, _, _)| *ct)
                        .collect::<Vec<_>>()
                        .join("، ")
                ),
            ));
            None
        }
    };
    let max_bytes = match prop.get("x-max-bytes") {
        None => Some(DEFAULT_FILE_BYTES),
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_FILE_BYTES).contains(&n) => Some(n),
            _ => {
                errors.push(error(
                    &at,
                    "form_file_too_large",
                    format!(
                        "حداکثر حجم پرونده (x-max-bytes) فیلد «{name}» باید بیشتر از صفر و حداکثر {} مگابایت باشد.",
                        fa_megabytes(MAX_FILE_BYTES)
                    ),
                ));
                None
            }
        },
    };
    Some((accept?, max_bytes?))
}

fn write_choices(target: &mut Map<String, Value>, options: &[Choice]) {
    let values: Vec<&str> = options.iter().map(|o| o.value.as_str()).collect();
    let labels: Vec<&str> = options.iter().map(|o| o.label_fa.as_str()).collect();
    target.insert("enum".to_owned(), json!(values));
    target.insert("x-enum-labels".to_owned(), json!(labels));
}

fn write_field(field: &FormField) -> Value {
    let mut p = Map::new();
    let mut set = |key: &str, value: Value| {
        p.insert(key.to_owned(), value);
    };
    set("title", json!(field.label_fa));
    if let Some(help) = &field.help_fa {
        set("description", json!(help));
    }
    match &field.kind {
        FieldKind::Text { max_length } => {
            set("type", json!("string"));
            set("maxLength", json!(max_length));
        }
        FieldKind::Number { min, max } => {
            set("type", json!("number"));
            if let Some(min) = min {
                set("minimum", json_number(*min));
            }
            if let Some(max) = max {
                set("maximum", json_number(*max));
            }
        }
        FieldKind::JalaliDate { min, max } => {
            set("type", json!("string"));
            set("format", json!("jalali-date"));
            if let Some(min) = min {
                set("formatMinimum", json!(min.to_string()));
            }
            if let Some(max) = max {
                set("formatMaximum", json!(max.to_string()));
            }
        }
        FieldKind::Select { options } => {
            set("type", json!("string"));
            write_choices(&mut p, options);
        }
        FieldKind::MultiSelect { options } => {
            set("type", json!("array"));
            set("uniqueItems", json!(true));
            let mut items = Map::new();
            items.insert("type".to_owned(), json!("string"));
            write_choices(&mut items, options);
            p.insert("items".to_owned(), Value::Object(items));
        }
        FieldKind::NationalCode => {
            set("type", json!("string"));
            set("format", json!("national-code"));
        }
        FieldKind::Mobile => {
            set("type", json!("string"));
            set("format", json!("mobile"));
        }
        FieldKind::PostalCode => {
            set("type", json!("string"));
            set("format", json!("postal-code"));
        }
        FieldKind::Address { max_length } => {
            set("type", json!("string"));
            set("format", json!("address"));
            set("maxLength", json!(max_length));
        }
        FieldKind::File { accept, max_bytes } => {
            set("type", json!("string"));
            set("format", json!("file"));
            set("contentMediaType", json!(accept));
            set("x-max-bytes", json!(max_bytes));
        }
    }
    Value::Object(p)
}

/// A JSON number, written as an integer when it is one (so `100000` stays `100000`).
fn json_number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9e15 {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

// ---------------------------------------------------------------------------------------------
// The default form.
// ---------------------------------------------------------------------------------------------

impl FormSchema {
    /// The form every service has until its admin defines one: the applicant, an address, a
    /// description, and one required upload (`doc_1`, `doc_2`, ...) per listed document
    /// (empty entries are skipped).
    pub fn default_for(documents: &[String]) -> FormSchema {
        let field = |name: &str, label: &str, required: bool, kind: FieldKind| FormField {
            name: name.to_owned(),
            label_fa: label.to_owned(),
            help_fa: None,
            required,
            kind,
        };
        let mut fields = vec![
            field(
                "applicant_national_code",
                "کد ملی متقاضی",
                true,
                FieldKind::NationalCode,
            ),
            field(
                "full_name",
                "نام و نام خانوادگی",
                true,
                FieldKind::Text { max_length: 100 },
            ),
            field("postal_code", "کد پستی", false, FieldKind::PostalCode),
            field(
                "address",
                "نشانی",
                true,
                FieldKind::Address { max_length: 500 },
            ),
            field(
                "description",
                "توضیحات",
                false,
                FieldKind::Text { max_length: 1000 },
            ),
        ];
        let documents = documents.iter().map(|d| d.trim()).filter(|d| !d.is_empty());
        for (i, document) in documents.enumerate() {
            fields.push(field(
                &format!("doc_{}", i + 1),
                document,
                true,
                FieldKind::File {
                    accept: DEFAULT_FILE_ACCEPT.iter().map(|t| t.to_string()).collect(),
                    max_bytes: DEFAULT_FILE_BYTES,
                },
            ));
        }
        FormSchema { fields }
    }

    /// The upload fields, in display order.
    pub fn file_fields(&self) -> impl Iterator<Item = &FormField> {
        self.fields
            .iter()
            .filter(|f| matches!(f.kind, FieldKind::File { .. }))
    }

    /// The field with this name.
    pub fn field(&self, name: &str) -> Option<&FormField> {
        self.fields.iter().find(|f| f.name == name)
    }
}

// ---------------------------------------------------------------------------------------------
// Checking what a citizen submitted.
// ---------------------------------------------------------------------------------------------

impl FormSchema {
    /// Checks the non-file answers of a submitted HTML form and returns their canonical values.
    ///
    /// `input` maps each input name to the strings submitted for it; empty (or blank) strings
    /// count as missing, unknown names are ignored, and optional fields left empty are absent
    /// from the result. Every problem is reported, each on its field's name with a Persian
    /// message naming the field's label.
    pub fn validate(
        &self,
        input: &HashMap<String, Vec<String>>,
    ) -> Result<Map<String, Value>, FieldErrors> {
        let mut values = Map::new();
        let mut errors = Vec::new();
        for field in &self.fields {
            if matches!(field.kind, FieldKind::File { .. }) {
                continue;
            }
            let submitted: Vec<&str> = input
                .get(&field.name)
                .map(|v| {
                    v.iter()
                        .map(String::as_str)
                        .filter(|s| !s.trim().is_empty())
                        .collect()
                })
                .unwrap_or_default();
            if submitted.is_empty() {
                if field.required {
                    errors.push(field.error("required", format!("«{}» لازم است.", field.label_fa)));
                }
                continue;
            }
            let result = match &field.kind {
                FieldKind::MultiSelect { options } => field.check_multi(options, &submitted),
                _ if submitted.len() > 1 => Err(field.error(
                    "multiple_values",
                    format!("«{}» فقط یک مقدار می‌پذیرد.", field.label_fa),
                )),
                _ => field.check_single(submitted[0]),
            };
            match result {
                Ok(value) => {
                    values.insert(field.name.clone(), value);
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(values)
        } else {
            Err(FieldErrors(errors))
        }
    }
}

impl FormField {
    fn error(&self, code: &'static str, message: String) -> FieldError {
        error(&self.name, code, message)
    }

    /// Checks one non-empty answer of a single-valued field.
    fn check_single(&self, raw: &str) -> Result<Value, FieldError> {
        let label = &self.label_fa;
        match &self.kind {
            FieldKind::Text { max_length } | FieldKind::Address { max_length } => {
                self.check_text(raw, *max_length).map(Value::String)
            }
            FieldKind::Number { min, max } => {
                let n = parse_number(raw).ok_or_else(|| {
                    self.error("number_invalid", format!("«{label}» باید یک عدد باشد."))
                })?;
                if let Some(min) = min
                    && n < *min
                {
                    return Err(self.error(
                        "number_too_small",
                        format!("«{label}» نباید کمتر از {} باشد.", fa_number(*min)),
                    ));
                }
                if let Some(max) = max
                    && n > *max
                {
                    return Err(self.error(
                        "number_too_large",
                        format!("«{label}» نباید بیشتر از {} باشد.", fa_number(*max)),
                    ));
                }
                Ok(json_number(n))
            }
            FieldKind::JalaliDate { min, max } => {
                let date = JalaliDate::parse(raw).map_err(|_| {
                    self.error(
                        "jalali_date",
                        format!("«{label}» را به شکل ۱۴۰۴/۰۱/۱۵ وارد کنید."),
                    )
                })?;
                if let Some(min) = min
                    && date < *min
                {
                    return Err(self.error(
                        "date_too_early",
                        format!(
                            "«{label}» نباید پیش از {} باشد.",
                            persian_digits(&min.to_string())
                        ),
                    ));
                }
                if let Some(max) = max
                    && date > *max
                {
                    return Err(self.error(
                        "date_too_late",
                        format!(
                            "«{label}» نباید پس از {} باشد.",
                            persian_digits(&max.to_string())
                        ),
                    ));
                }
                Ok(Value::String(date.to_string()))
            }
            FieldKind::Select { options } => {
                let value = raw.trim();
                if options.iter().any(|o| o.value == value) {
                    Ok(Value::String(value.to_owned()))
                } else {
                    Err(self.error(
                        "invalid_option",
                        format!("«{label}» باید یکی از گزینه‌های فهرست باشد."),
                    ))
                }
            }
            FieldKind::MultiSelect { options } => self.check_multi(options, &[raw]),
            FieldKind::NationalCode => NationalCode::parse(raw)
                .map(|c| Value::String(c.as_str().to_owned()))
                .map_err(|_| {
                    self.error(
                        "national_code_invalid",
                        format!("«{label}» معتبر نیست؛ ده رقم کد ملی را بدون خط تیره وارد کنید."),
                    )
                }),
            FieldKind::Mobile => MobileNumber::parse(raw)
                .map(|m| Value::String(m.as_str().to_owned()))
                .map_err(|_| {
                    self.error(
                        "mobile_invalid",
                        format!(
                            "«{label}» معتبر نیست؛ شماره همراه را مانند ۰۹۱۲۳۴۵۶۷۸۹ وارد کنید."
                        ),
                    )
                }),
            FieldKind::PostalCode => parse_postal_code(raw).map(Value::String).ok_or_else(|| {
                self.error(
                    "postal_code_invalid",
                    format!("«{label}» معتبر نیست؛ کد پستی ده‌رقمی را بدون خط تیره وارد کنید."),
                )
            }),
            FieldKind::File { .. } => Err(self.error(
                "file_expected",
                format!("«{label}» باید به صورت پرونده بارگذاری شود."),
            )),
        }
    }

    /// Trims, normalizes line breaks to `\n`, and checks length and control characters.
    fn check_text(&self, raw: &str, max_length: u32) -> Result<String, FieldError> {
        let label = &self.label_fa;
        let text = raw.replace("\r\n", "\n").replace('\r', "\n");
        let text = text.trim();
        if text.chars().any(|c| c.is_control() && c != '\n') {
            return Err(self.error(
                "invalid_characters",
                format!("«{label}» نویسه‌های نامجاز دارد."),
            ));
        }
        if text.chars().count() > max_length as usize {
            return Err(self.error(
                "too_long",
                format!(
                    "«{label}» حداکثر {} نویسه می‌تواند باشد.",
                    persian_digits(&max_length.to_string())
                ),
            ));
        }
        Ok(text.to_owned())
    }

    /// Checks the answers of a multi-select; the result follows the options' order.
    fn check_multi(&self, options: &[Choice], submitted: &[&str]) -> Result<Value, FieldError> {
        let chosen: Vec<&str> = submitted.iter().map(|s| s.trim()).collect();
        if chosen
            .iter()
            .any(|c| !options.iter().any(|o| o.value == *c))
        {
            return Err(self.error(
                "invalid_option",
                format!("«{}» باید از گزینه‌های فهرست باشد.", self.label_fa),
            ));
        }
        let values: Vec<Value> = options
            .iter()
            .filter(|o| chosen.contains(&o.value.as_str()))
            .map(|o| Value::String(o.value.clone()))
            .collect();
        Ok(Value::Array(values))
    }

    /// Checks an upload for this file field: not empty, within the size limit, and of an
    /// accepted type judged by its bytes (never by its name).
    pub fn check_file(&self, file_name: &str, bytes: &[u8]) -> Result<StoredFileMeta, FieldError> {
        let label = &self.label_fa;
        let FieldKind::File { accept, max_bytes } = &self.kind else {
            return Err(self.error("not_a_file_field", format!("«{label}» پرونده نمی‌پذیرد.")));
        };
        if bytes.is_empty() {
            return Err(self.error(
                "file_empty",
                format!("پرونده «{label}» خالی است یا بارگذاری نشده است."),
            ));
        }
        let size = bytes.len() as u64;
        if size > *max_bytes {
            return Err(self.error(
                "file_too_large",
                format!(
                    "حجم پرونده «{label}» حداکثر {} مگابایت می‌تواند باشد.",
                    fa_megabytes(*max_bytes)
                ),
            ));
        }
        match sniff(bytes) {
            Some(content_type) if accept.iter().any(|a| a == content_type) => Ok(StoredFileMeta {
                content_type,
                safe_name: sanitize_file_name(file_name, content_type),
                size,
            }),
            _ => {
                let names: Vec<&str> = accept
                    .iter()
                    .filter_map(|a| FILE_TYPES.iter().find(|(ct, _, _)| ct == a))
                    .map(|(_, _, shown)| *shown)
                    .collect();
                Err(self.error(
                    "file_type",
                    format!("پرونده «{label}» باید از نوع {} باشد.", names.join("، ")),
                ))
            }
        }
    }
}

/// A decimal number as people type it: Persian or Arabic digits, `٫` or `.` as the decimal
/// separator, `٬` as a thousands separator, an optional sign; no exponent, NaN or infinity.
fn parse_number(raw: &str) -> Option<f64> {
    let text: String = ascii_digits(raw.trim())
        .chars()
        .filter(|c| *c != '٬')
        .map(|c| if c == '٫' { '.' } else { c })
        .collect();
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(&text);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) || unsigned.ends_with('.') {
        return None;
    }
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// An Iranian postal code: ten digits matching `^[13-9]{4}[1346-9][013-9]{5}$` (no 0 or 2 in
/// the first four, no 0, 2 or 5 in the fifth, no 2 in the last five).
fn parse_postal_code(raw: &str) -> Option<String> {
    let code: String = ascii_digits(raw)
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '\u{200c}'))
        .collect();
    let bytes = code.as_bytes();
    let valid = bytes.len() == 10
        && bytes.iter().all(u8::is_ascii_digit)
        && bytes[..4].iter().all(|b| !matches!(b, b'0' | b'2'))
        && !matches!(bytes[4], b'0' | b'2' | b'5')
        && bytes[5..].iter().all(|b| *b != b'2');
    valid.then_some(code)
}

/// A number in Persian digits with `٫` as the decimal separator.
fn fa_number(n: f64) -> String {
    let ascii = match json_number(n) {
        Value::Number(num) => num.to_string(),
        _ => n.to_string(),
    };
    persian_digits(&ascii.replace('.', "٫"))
}

/// A byte count in mebibytes, Persian digits, at most two decimals (`۵`, `۱٫۵`).
fn fa_megabytes(bytes: u64) -> String {
    let ascii = if bytes.is_multiple_of(MIB) {
        (bytes / MIB).to_string()
    } else {
        let text = format!("{:.2}", bytes as f64 / MIB as f64);
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    };
    persian_digits(&ascii.replace('.', "٫"))
}

/// Most characters in a stored file name, extension included.
const MAX_FILE_NAME_CHARS: usize = 100;

/// A file name safe to store and to offer for download, with the extension of its real type.
///
/// Keeps only the last path component; keeps letters and digits of any script, spaces, `-`,
/// `_`, `.` and ZWNJ; collapses `..`; drops leading dots; limits the name to 100 characters;
/// replaces the extension with the one of `content_type` (`pdf`, `jpg`, `png`, `webp`; none for
/// another type); and falls back to `file` when nothing remains.
pub fn sanitize_file_name(raw: &str, content_type: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut kept: String = last
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.' | '\u{200c}'))
        .collect();
    while kept.contains("..") {
        kept = kept.replace("..", ".");
    }
    let is_edge = |c: char| c.is_whitespace() || c == '\u{200c}' || c == '.';
    let kept = kept.trim_matches(is_edge);
    // Drop the client's extension: short ASCII letters and digits after the last dot.
    let stem = match kept.rsplit_once('.') {
        Some((stem, ext))
            if (1..=5).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            stem
        }
        _ => kept,
    };
    let ext = FILE_TYPES
        .iter()
        .find(|(ct, _, _)| *ct == content_type)
        .map(|(_, ext, _)| *ext);
    let room = MAX_FILE_NAME_CHARS - ext.map_or(0, |e| e.len() + 1);
    let stem: String = stem.trim_matches(is_edge).chars().take(room).collect();
    let stem = match stem.trim_matches(is_edge) {
        "" => "file",
        s => s,
    };
    match ext {
        Some(ext) => format!("{stem}.{ext}"),
        None => stem.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_schema() -> Value {
        json!({
            "type": "object",
            "x-order": ["applicant_national_code", "full_name", "area", "visit_date", "usage", "days"],
            "required": ["applicant_national_code", "full_name", "visit_date", "usage", "deed"],
            "properties": {
                "full_name": {"type": "string", "title": "نام و نام خانوادگی", "description": "همان‌طور که در کارت ملی آمده", "maxLength": 100},
                "area": {"type": "number", "title": "مساحت (متر مربع)", "minimum": 0, "maximum": 100000},
                "visit_date": {"type": "string", "format": "jalali-date", "title": "تاریخ بازدید", "formatMinimum": "1400/01/01", "formatMaximum": "1410/12/29"},
                "usage": {"type": "string", "title": "کاربری", "enum": ["residential", "commercial"], "x-enum-labels": ["مسکونی", "تجاری"]},
                "days": {"type": "array", "title": "روزهای بازدید", "uniqueItems": true, "items": {"type": "string", "enum": ["sat", "sun", "mon"], "x-enum-labels": ["شنبه", "یکشنبه", "دوشنبه"]}},
                "applicant_national_code": {"type": "string", "format": "national-code", "title": "کد ملی"},
                "mobile": {"type": "string", "format": "mobile", "title": "تلفن همراه"},
                "postal_code": {"type": "string", "format": "postal-code", "title": "کد پستی"},
                "address": {"type": "string", "format": "address", "title": "نشانی", "maxLength": 500},
                "deed": {"type": "string", "format": "file", "title": "سند مالکیت", "contentMediaType": ["application/pdf", "image/jpeg", "image/png"], "x-max-bytes": 5242880}
            }
        })
    }

    fn schema() -> FormSchema {
        FormSchema::from_json_schema(&sample_schema()).unwrap()
    }

    fn input(pairs: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in pairs {
            map.entry(k.to_string()).or_default().push(v.to_string());
        }
        map
    }

    fn good_input() -> Vec<(&'static str, &'static str)> {
        vec![
            ("applicant_national_code", "۰۴۹۹۳۷۰۸۹۹"),
            ("full_name", "  زهرا احمدی  "),
            ("visit_date", "۱۴۰۳/۱۲/۳۰"),
            ("usage", "commercial"),
        ]
    }

    fn codes(err: &FieldErrors) -> Vec<(&str, &str)> {
        err.0.iter().map(|e| (e.field.as_str(), e.code)).collect()
    }

    #[test]
    fn reads_the_schema_in_order() {
        let form = schema();
        let names: Vec<&str> = form.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "applicant_national_code",
                "full_name",
                "area",
                "visit_date",
                "usage",
                "days",
                // Not in x-order: by name.
                "address",
                "deed",
                "mobile",
                "postal_code",
            ]
        );
        let full_name = form.field("full_name").unwrap();
        assert!(full_name.required);
        assert_eq!(full_name.kind, FieldKind::Text { max_length: 100 });
        assert_eq!(
            full_name.help_fa.as_deref(),
            Some("همان‌طور که در کارت ملی آمده")
        );
        assert_eq!(
            form.field("area").unwrap().kind,
            FieldKind::Number {
                min: Some(0.0),
                max: Some(100_000.0)
            }
        );
        assert_eq!(
            form.field("visit_date").unwrap().kind,
            FieldKind::JalaliDate {
                min: Some(JalaliDate::parse("1400/01/01").unwrap()),
                max: Some(JalaliDate::parse("1410/12/29").unwrap()),
            }
        );
        let files: Vec<&str> = form.file_fields().map(|f| f.name.as_str()).collect();
        assert_eq!(files, vec!["deed"]);
        assert!(form.field("nope").is_none());
    }

    #[test]
    fn json_schema_round_trips() {
        let form = schema();
        let written = form.to_json_schema();
        assert_eq!(FormSchema::from_json_schema(&written).unwrap(), form);
        // Integral bounds stay integers in the stored document.
        assert_eq!(written["properties"]["area"]["maximum"], json!(100000));
        assert_eq!(written["properties"]["deed"]["x-max-bytes"], json!(5242880));

        let default =
            FormSchema::default_for(&["سند مالکیت".to_owned(), " ".to_owned(), "نقشه".to_owned()]);
        let back = FormSchema::from_json_schema(&default.to_json_schema()).unwrap();
        assert_eq!(back, default);
    }

    #[test]
    fn the_schema_serializes_for_templates() {
        let form = schema();
        let v = serde_json::to_value(&form).unwrap();
        assert_eq!(v["fields"][3]["kind"]["type"], "jalali_date");
        assert_eq!(v["fields"][3]["kind"]["min"], "1400/01/01");
        assert_eq!(v["fields"][0]["kind"]["type"], "national_code");
    }

    #[test]
    fn rejects_bad_schemas() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!([]), "form", "form_invalid"),
            (
                json!({"type": "array", "properties": {}}),
                "form",
                "form_invalid",
            ),
            (
                json!({"type": "object", "properties": {"x": {"type": "boolean", "title": "الف"}}}),
                "form.x",
                "form_type_unknown",
            ),
            (
                json!({"type": "object", "properties": {"x": {"type": "string", "format": "email", "title": "الف"}}}),
                "form.x",
                "form_format_unknown",
            ),
            (
                json!({"type": "object", "properties": {"Bad-Name": {"type": "string", "title": "الف"}}}),
                "form.Bad-Name",
                "form_name_invalid",
            ),
            (
                json!({"type": "object", "properties": {"x": {"type": "string", "title": "  "}}}),
                "form.x",
                "form_label_empty",
            ),
            (
                json!({"type": "object", "properties": {"x": {"type": "string", "title": "الف", "enum": ["a", "b"], "x-enum-labels": ["الف"]}}}),
                "form.x",
                "form_options_invalid",
            ),
            (
                json!({"type": "object", "properties": {"x": {"type": "string", "title": "الف", "format": "file", "x-max-bytes": 20 * 1024 * 1024 + 1}}}),
                "form.x",
                "form_file_too_large",
            ),
            (
                json!({"type": "object", "properties": {"x": {"type": "string", "title": "الف", "format": "file", "contentMediaType": ["image/svg+xml"]}}}),
                "form.x",
                "form_file_types_invalid",
            ),
            (
                json!({"type": "object", "properties": {"x": {"type": "string", "title": "الف", "pattern": "^[0-9]+$"}}}),
                "form.x",
                "form_keyword_unknown",
            ),
            (
                json!({"type": "object", "properties": {"x": {"type": "number", "title": "الف", "minimum": 5, "maximum": 1}}}),
                "form.x",
                "form_limit_invalid",
            ),
            (
                json!({"type": "object", "properties": {"x": {"type": "string", "format": "jalali-date", "title": "الف", "formatMinimum": "1404/12/30"}}}),
                "form.x",
                "form_limit_invalid",
            ),
            (
                json!({"type": "object", "required": ["y"], "properties": {"x": {"type": "string", "title": "الف"}}}),
                "form",
                "form_unknown_field",
            ),
        ];
        for (schema, field, code) in cases {
            let err = FormSchema::from_json_schema(&schema).unwrap_err();
            assert!(
                codes(&err).contains(&(field, code)),
                "{schema}: {:?}",
                codes(&err)
            );
            assert!(err.0.iter().all(|e| !e.message.is_empty()));
        }

        let mut many = Map::new();
        for i in 0..=MAX_FIELDS {
            many.insert(format!("f{i}"), json!({"type": "string", "title": "الف"}));
        }
        let err = FormSchema::from_json_schema(&json!({"type": "object", "properties": many}))
            .unwrap_err();
        assert_eq!(codes(&err), vec![("form", "form_too_many_fields")]);
    }

    #[test]
    fn schema_errors_are_all_collected() {
        let err = FormSchema::from_json_schema(&json!({
            "type": "object",
            "properties": {
                "a": {"type": "string", "title": ""},
                "b": {"type": "integer", "title": "ب"},
            }
        }))
        .unwrap_err();
        assert_eq!(
            codes(&err),
            vec![
                ("form.a", "form_label_empty"),
                ("form.b", "form_type_unknown")
            ]
        );
    }

    #[test]
    fn accepts_a_good_submission() {
        let form = schema();
        let mut pairs = good_input();
        pairs.extend([
            ("area", "۱۲۰٫۵"),
            ("days", "mon"),
            ("days", "sat"),
            ("days", "mon"),
            ("mobile", "۰۹۱۲ ۳۴۵ ۶۷۸۹"),
            ("postal_code", "۸۱۳۴۶-۵۶۷۸۹"),
            ("address", "اصفهان،\r\nخیابان چهارباغ"),
            ("unknown", "ignored"),
            ("deed", "ignored too"),
        ]);
        let values = form.validate(&input(&pairs)).unwrap();
        assert_eq!(
            Value::Object(values),
            json!({
                "applicant_national_code": "0499370899",
                "full_name": "زهرا احمدی",
                "area": 120.5,
                "visit_date": "1403/12/30",
                "usage": "commercial",
                "days": ["sat", "mon"],
                "mobile": "+989123456789",
                "postal_code": "8134656789",
                "address": "اصفهان،\nخیابان چهارباغ",
            })
        );
    }

    #[test]
    fn collects_every_error() {
        let form = schema();
        let err = form
            .validate(&input(&[
                ("applicant_national_code", "0499370898"),
                ("full_name", "   "),
                ("area", "100001"),
                ("visit_date", "1403/12/31"),
                ("usage", "industrial"),
                ("days", "sat"),
                ("days", "fri"),
                ("mobile", "0212345678"),
                ("postal_code", "0123456789"),
            ]))
            .unwrap_err();
        assert_eq!(
            codes(&err),
            vec![
                ("applicant_national_code", "national_code_invalid"),
                ("full_name", "required"),
                ("area", "number_too_large"),
                ("visit_date", "jalali_date"),
                ("usage", "invalid_option"),
                ("days", "invalid_option"),
                ("mobile", "mobile_invalid"),
                ("postal_code", "postal_code_invalid"),
            ]
        );
        assert_eq!(err.0[1].message, "«نام و نام خانوادگی» لازم است.");
        assert!(err.0[0].message.contains("«کد ملی»"));
        assert!(err.0[2].message.contains("۱۰۰۰۰۰"));
        for e in &err.0 {
            let label = &form.field(&e.field).unwrap().label_fa;
            assert!(e.message.contains(label.as_str()), "{}", e.message);
        }
    }

    #[test]
    fn missing_required_fields() {
        let form = schema();
        let err = form.validate(&HashMap::new()).unwrap_err();
        assert_eq!(
            codes(&err),
            vec![
                ("applicant_national_code", "required"),
                ("full_name", "required"),
                ("visit_date", "required"),
                ("usage", "required"),
            ]
        );
    }

    #[test]
    fn dates_outside_the_bounds() {
        let form = schema();
        for (date, code) in [
            ("1399/12/29", "date_too_early"),
            ("1411/01/01", "date_too_late"),
            ("1403/12/31", "jalali_date"),
            ("1404/12/30", "jalali_date"),
        ] {
            let mut pairs = good_input();
            pairs.retain(|(k, _)| *k != "visit_date");
            pairs.push(("visit_date", date));
            let err = form.validate(&input(&pairs)).unwrap_err();
            assert_eq!(codes(&err), vec![("visit_date", code)], "{date}");
        }
        let mut pairs = good_input();
        pairs.retain(|(k, _)| *k != "visit_date");
        pairs.push(("visit_date", "1399/12/29"));
        let err = form.validate(&input(&pairs)).unwrap_err();
        assert_eq!(
            err.0[0].message,
            "«تاریخ بازدید» نباید پیش از ۱۴۰۰/۰۱/۰۱ باشد."
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("۱۲۰٫۵"), Some(120.5));
        assert_eq!(parse_number("-3"), Some(-3.0));
        assert_eq!(parse_number("۱۲۰٬۰۰۰"), Some(120_000.0));
        for bad in [
            "NaN", "inf", "infinity", "1e5", "1.", ".5", "1.2.3", "abc", "-", "1 000",
        ] {
            assert_eq!(parse_number(bad), None, "{bad}");
        }
        assert_eq!(parse_number(&"9".repeat(400)), None);
        assert_eq!(fa_number(0.5), "۰٫۵");
        assert_eq!(fa_number(100_000.0), "۱۰۰۰۰۰");
        let form = schema();
        let mut pairs = good_input();
        pairs.push(("area", "-1"));
        let err = form.validate(&input(&pairs)).unwrap_err();
        assert_eq!(codes(&err), vec![("area", "number_too_small")]);
    }

    #[test]
    fn postal_codes() {
        assert_eq!(
            parse_postal_code("۸۱۳۴۶ ۵۶۷۸۹").as_deref(),
            Some("8134656789")
        );
        for bad in [
            "0134656789", // 0 in the first four
            "8124656789", // 2 in the first four
            "8134556789", // 5 in the fifth
            "8134656729", // 2 in the last five
            "813465678",
            "81346567890",
        ] {
            assert_eq!(parse_postal_code(bad), None, "{bad}");
        }
    }

    #[test]
    fn text_is_kept_verbatim_but_checked() {
        let form = schema();
        let script = "<script>alert('x')</script> & «سلام»";
        let mut pairs = good_input();
        pairs.retain(|(k, _)| *k != "full_name");
        pairs.push(("full_name", script));
        let values = form.validate(&input(&pairs)).unwrap();
        assert_eq!(values["full_name"], json!(script));

        for (value, code) in [
            ("نام\u{0}", "invalid_characters"),
            ("نام\u{1b}[31m", "invalid_characters"),
            (&"ب".repeat(101) as &str, "too_long"),
        ] {
            let mut pairs = good_input();
            pairs.retain(|(k, _)| *k != "full_name");
            pairs.push(("full_name", value));
            let err = form.validate(&input(&pairs)).unwrap_err();
            assert_eq!(codes(&err), vec![("full_name", code)]);
        }
        // Exactly 100 Persian characters (200 bytes) fit.
        let mut pairs = good_input();
        pairs.retain(|(k, _)| *k != "full_name");
        let hundred = "ب".repeat(100);
        pairs.push(("full_name", &hundred));
        assert!(form.validate(&input(&pairs)).is_ok());

        let mut pairs = good_input();
        pairs.push(("usage", "residential"));
        let err = form.validate(&input(&pairs)).unwrap_err();
        assert_eq!(codes(&err), vec![("usage", "multiple_values")]);
    }

    #[test]
    fn files_are_judged_by_their_bytes() {
        let form = schema();
        let deed = form.field("deed").unwrap();
        let pdf = b"%PDF-1.7\n...";
        let meta = deed.check_file("سند ملک.PDF", pdf).unwrap();
        assert_eq!(
            meta,
            StoredFileMeta {
                content_type: "application/pdf",
                safe_name: "سند ملک.pdf".to_owned(),
                size: pdf.len() as u64,
            }
        );
        // A JPEG called .pdf is stored as what it is.
        let meta = deed
            .check_file("scan.pdf", b"\xFF\xD8\xFF\xE0rest")
            .unwrap();
        assert_eq!(meta.content_type, "image/jpeg");
        assert_eq!(meta.safe_name, "scan.jpg");

        let elf = deed
            .check_file("deed.pdf", b"\x7fELF\x02\x01\x01")
            .unwrap_err();
        assert_eq!(elf.code, "file_type");
        assert_eq!(elf.field, "deed");
        assert_eq!(
            elf.message,
            "پرونده «سند مالکیت» باید از نوع PDF، JPEG، PNG باشد."
        );

        let webp = deed
            .check_file("a.webp", b"RIFF\x00\x00\x00\x00WEBPVP8 ")
            .unwrap_err();
        assert_eq!(webp.code, "file_type");

        let empty = deed.check_file("deed.pdf", b"").unwrap_err();
        assert_eq!(empty.code, "file_empty");

        let mut big = b"%PDF-1.7".to_vec();
        big.resize(5 * 1024 * 1024 + 1, b' ');
        let err = deed.check_file("deed.pdf", &big).unwrap_err();
        assert_eq!(err.code, "file_too_large");
        assert_eq!(
            err.message,
            "حجم پرونده «سند مالکیت» حداکثر ۵ مگابایت می‌تواند باشد."
        );
        big.truncate(5 * 1024 * 1024);
        assert!(deed.check_file("deed.pdf", &big).is_ok());

        let not_file = form.field("full_name").unwrap().check_file("a.pdf", pdf);
        assert_eq!(not_file.unwrap_err().code, "not_a_file_field");
        assert_eq!(fa_megabytes(1024 * 1024 * 3 / 2), "۱٫۵");
    }

    #[test]
    fn file_names_are_sanitized() {
        let pdf = "application/pdf";
        for (raw, expected) in [
            ("../../etc/passwd.pdf", "passwd.pdf"),
            ("..\\..\\windows\\system32\\evil.exe", "evil.pdf"),
            (
                "C:\\Users\\me\\Desktop\\سند\u{200c}ها.pdf",
                "سند\u{200c}ها.pdf",
            ),
            ("...hidden", "hidden.pdf"),
            ("..", "file.pdf"),
            ("", "file.pdf"),
            ("/", "file.pdf"),
            ("a\u{0}b\u{202e}fdp.exe", "abfdp.pdf"),
            ("report<script>.html", "reportscript.pdf"),
            ("نامه ۱۴۰۳.v1.2 final", "نامه ۱۴۰۳.v1.2 final.pdf"),
            ("a..b.pdf", "a.b.pdf"),
        ] {
            assert_eq!(sanitize_file_name(raw, pdf), expected, "{raw:?}");
        }
        assert_eq!(sanitize_file_name("photo.PNG", "image/jpeg"), "photo.jpg");
        assert_eq!(sanitize_file_name("x.gif", "image/gif"), "x");

        let long = format!("{}.pdf", "ب".repeat(300));
        let safe = sanitize_file_name(&long, pdf);
        assert_eq!(safe.chars().count(), 100);
        assert!(safe.ends_with(".pdf"));

        for raw in ["../../etc/passwd.pdf", "..\\..\\x", "a/../../b"] {
            let safe = sanitize_file_name(raw, pdf);
            assert!(
                !safe.contains(['/', '\\']) && !safe.contains(".."),
                "{safe}"
            );
            assert!(!safe.starts_with('.'));
        }
    }

    #[test]
    fn default_form() {
        let form = FormSchema::default_for(&["سند مالکیت".to_owned(), "نقشهٔ ساختمان".to_owned()]);
        let summary: Vec<(&str, &str, bool)> = form
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.label_fa.as_str(), f.required))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("applicant_national_code", "کد ملی متقاضی", true),
                ("full_name", "نام و نام خانوادگی", true),
                ("postal_code", "کد پستی", false),
                ("address", "نشانی", true),
                ("description", "توضیحات", false),
                ("doc_1", "سند مالکیت", true),
                ("doc_2", "نقشهٔ ساختمان", true),
            ]
        );
        assert_eq!(
            form.field("doc_2").unwrap().kind,
            FieldKind::File {
                accept: vec![
                    "application/pdf".to_owned(),
                    "image/jpeg".to_owned(),
                    "image/png".to_owned()
                ],
                max_bytes: 5 * 1024 * 1024,
            }
        );
        assert_eq!(form.file_fields().count(), 2);
        let values = form
            .validate(&input(&[
                ("applicant_national_code", "0790419904"),
                ("full_name", "علی رضایی"),
                ("address", "تهران"),
            ]))
            .unwrap();
        assert_eq!(values.len(), 3);
    }

    #[test]
    fn names_the_desk_sends_itself_are_reserved() {
        for name in RESERVED_NAMES {
            let schema = serde_json::json!({
                "type": "object",
                "properties": { *name: { "type": "string", "title": "x" } },
            });
            let err = FormSchema::from_json_schema(&schema).unwrap_err();
            assert!(
                err.0.iter().any(|e| e.code == "form_name_reserved"),
                "{name}"
            );
        }
    }
}
