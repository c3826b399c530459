//! The satisfaction survey (نظرسنجی): the six axes of the national questionnaire, a
//! municipality's changes to them (hide, move) and its own questions, and the checking of one
//! citizen's answers on the five-point scale.

use crate::error::{FieldError, FieldErrors};
use serde::Serialize;
use std::collections::HashMap;

/// One axis of the national questionnaire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Axis {
    /// Stable key (answers and reports use it).
    pub key: &'static str,
    /// The axis's name (محور).
    pub name_fa: &'static str,
    /// The question the citizen answers.
    pub question_fa: &'static str,
}

/// The six national axes, in the questionnaire's order; the default survey of every municipality.
pub const AXES: [Axis; 6] = [
    Axis {
        key: "transparency",
        name_fa: "شفافیت فرآیند",
        question_fa: "اطلاع‌رسانی درباره مراحل کار و مدارک لازم و انجام کار طبق ضوابط چقدر روشن بود؟",
    },
    Axis {
        key: "responsiveness",
        name_fa: "پاسخگویی و مسئولیت‌پذیری",
        question_fa: "رفتار، راهنمایی و پیگیری کارکنان را چگونه ارزیابی می‌کنید؟",
    },
    Axis {
        key: "mastery",
        name_fa: "تسلط بر فرآیند",
        question_fa: "کار شما با دقت و بدون نیاز به تکرار انجام شد؟",
    },
    Axis {
        key: "time",
        name_fa: "زمان فرآیند",
        question_fa: "خدمت تا تاریخ وعده‌داده‌شده در رسید و بدون مراجعه‌های اضافه انجام شد؟",
    },
    Axis {
        key: "systematic",
        name_fa: "نظام‌مند بودن فرآیند",
        question_fa: "نظم کار، سهولت دسترسی و نخواستن مدارک تکراری را چگونه ارزیابی می‌کنید؟",
    },
    Axis {
        key: "overall",
        name_fa: "کلیت فرآیند",
        question_fa: "در مجموع چقدر از این خدمت رضایت دارید؟",
    },
];

/// The national axis with this key.
pub fn axis(key: &str) -> Option<&'static Axis> {
    AXES.iter().find(|a| a.key == key)
}

/// Labels of the five points of the scale, 1 to 5.
pub const SCALE_FA: [&str; 5] = ["خیلی کم", "کم", "متوسط", "زیاد", "خیلی زیاد"];

/// Longest comment a citizen may leave.
pub const MAX_COMMENT_CHARS: usize = 1000;

/// A stored change: a national axis hidden or moved (`label_fa` none), or an own question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuestionRow {
    /// Axis key or `c<n>`.
    pub key: String,
    /// Text of an own question.
    pub label_fa: Option<String>,
    /// Sort position.
    pub position: i32,
    /// Not asked.
    pub hidden: bool,
}

/// One question as the survey asks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Question {
    /// Key the answer is stored under.
    pub key: String,
    /// The national axis's name, for own questions `None`.
    pub axis_fa: Option<&'static str>,
    /// Question text.
    pub text_fa: String,
    /// Sort position.
    pub position: i32,
    /// Not asked.
    pub hidden: bool,
}

/// The municipality's questionnaire: the national axes (positions 10, 20, ...) unless a row
/// changes them, then its own questions; ordered by position, hidden ones included.
pub fn questionnaire(rows: &[QuestionRow]) -> Vec<Question> {
    let mut out: Vec<Question> = AXES
        .iter()
        .zip(1..)
        .map(|(a, i)| {
            let row = rows.iter().find(|r| r.key == a.key);
            Question {
                key: a.key.to_owned(),
                axis_fa: Some(a.name_fa),
                text_fa: a.question_fa.to_owned(),
                position: row.map_or(i * 10, |r| r.position),
                hidden: row.is_some_and(|r| r.hidden),
            }
        })
        .collect();
    out.extend(
        rows.iter()
            .filter(|r| axis(&r.key).is_none())
            .filter_map(|r| {
                Some(Question {
                    key: r.key.clone(),
                    axis_fa: None,
                    text_fa: r.label_fa.clone()?,
                    position: r.position,
                    hidden: r.hidden,
                })
            }),
    );
    out.sort_by(|a, b| a.position.cmp(&b.position).then_with(|| a.key.cmp(&b.key)));
    out
}

/// A checked answer to the survey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Score per question key, 1 to 5.
    pub scores: Vec<(String, i16)>,
    /// Optional comment, trimmed.
    pub comment: Option<String>,
}

/// Checks a submitted survey form: every question asked (not hidden) needs a score from 1 to
/// 5 (Persian or Arabic digits too) under `q_<key>`; the comment is optional and bounded.
pub fn check_answer(
    questions: &[Question],
    form: &HashMap<String, String>,
) -> Result<Answer, FieldErrors> {
    let mut errors = Vec::new();
    let mut scores = Vec::new();
    for q in questions.iter().filter(|q| !q.hidden) {
        let field = format!("q_{}", q.key);
        let raw = form.get(&field).map_or("", |v| v.trim());
        match crate::mobile::ascii_digits(raw).parse::<i16>() {
            Ok(score) if (1..=5).contains(&score) => scores.push((q.key.clone(), score)),
            _ if raw.is_empty() => errors.push(FieldError {
                field,
                code: "required",
                message: "به این پرسش پاسخ دهید.".to_owned(),
            }),
            _ => errors.push(FieldError {
                field,
                code: "score_range",
                message: "امتیاز باید عددی از ۱ تا ۵ باشد.".to_owned(),
            }),
        }
    }
    let comment = form
        .get("comment")
        .map(|c| c.trim())
        .filter(|c| !c.is_empty());
    if comment.is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS) {
        errors.push(FieldError {
            field: "comment".to_owned(),
            code: "comment_too_long",
            message: "توضیح باید حداکثر ۱۰۰۰ نویسه باشد.".to_owned(),
        });
    }
    if errors.is_empty() {
        Ok(Answer {
            scores,
            comment: comment.map(str::to_owned),
        })
    } else {
        Err(FieldErrors(errors))
    }
}

/// Checks the text of a municipality's own question.
pub fn check_question_text(text: &str) -> Result<String, FieldErrors> {
    let text = text.trim();
    let len = text.chars().count();
    if len == 0 || len > 300 {
        return Err(FieldErrors::single(
            "label_fa",
            "question_text",
            "متن پرسش باید بین ۱ تا ۳۰۰ نویسه باشد.",
        ));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn default_questionnaire_is_the_six_axes_in_order() {
        let q = questionnaire(&[]);
        let keys: Vec<_> = q.iter().map(|q| q.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "transparency",
                "responsiveness",
                "mastery",
                "time",
                "systematic",
                "overall"
            ]
        );
        assert!(q.iter().all(|q| !q.hidden && q.axis_fa.is_some()));
    }

    #[test]
    fn rows_hide_move_and_add() {
        let rows = vec![
            QuestionRow {
                key: "mastery".into(),
                label_fa: None,
                position: 10,
                hidden: true,
            },
            QuestionRow {
                key: "c1".into(),
                label_fa: Some("پارکینگ کافی بود؟".into()),
                position: 5,
                hidden: false,
            },
        ];
        let q = questionnaire(&rows);
        assert_eq!(q[0].key, "c1");
        assert_eq!(q[0].axis_fa, None);
        assert!(q.iter().find(|q| q.key == "mastery").unwrap().hidden);
        assert_eq!(q.len(), 7);
    }

    #[test]
    fn answers_need_every_visible_question_in_range() {
        let mut rows = vec![QuestionRow {
            key: "overall".into(),
            label_fa: None,
            position: 60,
            hidden: true,
        }];
        let q = questionnaire(&rows);
        let mut f = form(&[
            ("q_transparency", "5"),
            ("q_responsiveness", "۴"),
            ("q_mastery", "3"),
            ("q_time", "١"),
            ("q_systematic", "2"),
        ]);
        let ok = check_answer(&q, &f).unwrap();
        assert_eq!(ok.scores.len(), 5);
        assert_eq!(ok.scores[1], ("responsiveness".to_owned(), 4));
        assert_eq!(ok.scores[3], ("time".to_owned(), 1));
        assert_eq!(ok.comment, None);

        rows.clear();
        let q = questionnaire(&rows);
        let err = check_answer(&q, &f).unwrap_err();
        assert_eq!(err.0.len(), 1);
        assert_eq!(err.0[0].field, "q_overall");
        assert_eq!(err.0[0].code, "required");

        f.insert("q_overall".into(), "6".into());
        f.insert("comment".into(), "خ".repeat(1001));
        let err = check_answer(&q, &f).unwrap_err();
        let codes: Vec<_> = err.0.iter().map(|e| e.code).collect();
        assert_eq!(codes, ["score_range", "comment_too_long"]);

        f.insert("q_overall".into(), "0".into());
        f.insert("comment".into(), "  خوب بود  ".into());
        assert_eq!(check_answer(&q, &f).unwrap_err().0[0].code, "score_range");
        f.insert("q_overall".into(), "5".into());
        assert_eq!(
            check_answer(&q, &f).unwrap().comment.as_deref(),
            Some("خوب بود")
        );
    }

    #[test]
    fn question_text_is_bounded() {
        assert!(check_question_text("  ").is_err());
        assert!(check_question_text(&"پ".repeat(301)).is_err());
        assert_eq!(check_question_text(" پرسش ").unwrap(), "پرسش");
    }
}
