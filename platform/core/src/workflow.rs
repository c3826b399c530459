//! The per-service state machine of a request: states, who may move it, and where to.
//!
//! A workflow is stored as JSON in the service card. Roles are the municipality's role
//! keys (`desk_staff`, `department_head`, `tenant_admin`), plus `citizen` for what the applicant triggers and `system`
//! for what a background job triggers. No role is implicitly allowed everything: a transition
//! lists exactly who may take it.

use crate::error::{FieldError, FieldErrors};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, VecDeque};

/// The states and transitions of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workflow {
    /// Key of the state every new request starts in.
    pub initial: String,
    /// All states, in display order.
    pub states: Vec<WorkflowState>,
    /// All transitions, in display order.
    pub transitions: Vec<Transition>,
}

/// One state a request can be in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowState {
    /// Machine name (`in_review`).
    pub key: String,
    /// Persian name shown to staff and citizens.
    pub label_fa: String,
    /// Working days the desk has in this state; `None` when the clock does not run.
    pub sla_days: Option<u32>,
    /// Whether the request is closed in this state.
    pub terminal: bool,
}

/// An action that moves a request from one of some states to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// Machine name (`approve`), unique within the workflow.
    pub action: String,
    /// Persian name of the action (a button label).
    pub label_fa: String,
    /// States the action may be taken from.
    pub from: Vec<String>,
    /// State the request is in afterwards.
    pub to: String,
    /// Roles allowed to take the action.
    pub roles: Vec<String>,
    /// Whether the citizen is told (SMS) when this happens.
    pub notify_citizen: bool,
    /// Whether the actor must write a note.
    pub needs_note: bool,
}

/// Why a requested transition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// No transition has this action name.
    #[error("unknown action")]
    UnknownAction,
    /// The action exists but not from the request's current state.
    #[error("action {action_label} is not possible in state {state_label}")]
    NotFromState {
        /// Persian label of the current state.
        state_label: String,
        /// Persian label of the action.
        action_label: String,
    },
    /// None of the caller's roles may take this action.
    #[error("role not allowed")]
    RoleNotAllowed,
    /// The action needs a note and none (or only whitespace) was given.
    #[error("note required")]
    NoteRequired,
}

impl TransitionError {
    /// The stable snake_case code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownAction => "unknown_action",
            Self::NotFromState { .. } => "invalid_transition",
            Self::RoleNotAllowed => "forbidden",
            Self::NoteRequired => "note_required",
        }
    }

    /// A Persian message for the person who tried.
    pub fn message_fa(&self) -> String {
        match self {
            Self::UnknownAction => "این اقدام شناخته نشد.".to_owned(),
            Self::NotFromState {
                state_label,
                action_label,
            } => format!("اقدام «{action_label}» در وضعیت «{state_label}» ممکن نیست."),
            Self::RoleNotAllowed => "شما اجازهٔ انجام این اقدام را ندارید.".to_owned(),
            Self::NoteRequired => "برای این اقدام نوشتن توضیح لازم است.".to_owned(),
        }
    }
}

fn state(key: &str, label_fa: &str, sla_days: Option<u32>, terminal: bool) -> WorkflowState {
    WorkflowState {
        key: key.to_owned(),
        label_fa: label_fa.to_owned(),
        sla_days,
        terminal,
    }
}

fn transition(
    action: &str,
    label_fa: &str,
    from: &[&str],
    to: &str,
    roles: &[&str],
    notify_citizen: bool,
    needs_note: bool,
) -> Transition {
    Transition {
        action: action.to_owned(),
        label_fa: label_fa.to_owned(),
        from: from.iter().map(|s| s.to_string()).collect(),
        to: to.to_owned(),
        roles: roles.iter().map(|s| s.to_string()).collect(),
        notify_citizen,
        needs_note,
    }
}

/// Whether `s` matches `^[a-z][a-z0-9_]{0,39}$`.
fn is_key(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && s.len() <= 40
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

impl Workflow {
    /// The workflow every service starts with: submitted, in review, waiting for documents or
    /// an inquiry, approved, then delivered (or rejected).
    pub fn default_municipal() -> Workflow {
        // Role keys are the municipality's casbin roles: desk staff receive and review,
        // department heads and the municipality admin also decide.
        const STAFF: &[&str] = &["desk_staff", "department_head", "tenant_admin"];
        const EXPERTS: &[&str] = STAFF;
        const MANAGERS: &[&str] = &["department_head", "tenant_admin"];
        Workflow {
            initial: "submitted".to_owned(),
            states: vec![
                state("submitted", "ثبت شده", Some(1), false),
                state("in_review", "در حال بررسی", None, false),
                state("awaiting_documents", "در انتظار مدارک تکمیلی", None, false),
                state("awaiting_inquiry", "در انتظار پاسخ استعلام", None, false),
                state("approved", "تأیید شده", None, false),
                state("rejected", "رد شده", None, true),
                state("delivered", "تحویل شده", None, true),
            ],
            transitions: vec![
                transition(
                    "accept",
                    "پذیرش",
                    &["submitted"],
                    "in_review",
                    STAFF,
                    true,
                    false,
                ),
                transition(
                    "request_documents",
                    "درخواست مدارک تکمیلی",
                    &["submitted", "in_review"],
                    "awaiting_documents",
                    EXPERTS,
                    true,
                    true,
                ),
                transition(
                    "provide_documents",
                    "ارسال مدارک",
                    &["awaiting_documents"],
                    "in_review",
                    &["citizen", "desk_staff"],
                    false,
                    false,
                ),
                transition(
                    "forward",
                    "ارجاع",
                    &["in_review"],
                    "in_review",
                    STAFF,
                    false,
                    true,
                ),
                transition(
                    "start_inquiry",
                    "استعلام",
                    &["in_review"],
                    "awaiting_inquiry",
                    EXPERTS,
                    true,
                    false,
                ),
                transition(
                    "inquiry_answered",
                    "پاسخ استعلام",
                    &["awaiting_inquiry"],
                    "in_review",
                    &["desk_staff", "department_head", "tenant_admin", "system"],
                    false,
                    false,
                ),
                transition(
                    "approve",
                    "تأیید",
                    &["in_review"],
                    "approved",
                    MANAGERS,
                    true,
                    false,
                ),
                transition(
                    "reject",
                    "رد",
                    &["submitted", "in_review", "awaiting_documents"],
                    "rejected",
                    MANAGERS,
                    true,
                    true,
                ),
                transition(
                    "deliver",
                    "تحویل",
                    &["approved"],
                    "delivered",
                    &["desk_staff", "department_head", "tenant_admin"],
                    true,
                    false,
                ),
            ],
        }
    }

    /// Checks that the workflow is usable; every problem is reported, with a Persian message.
    ///
    /// Keys and actions are unique machine names, labels are not empty, transitions name
    /// existing states and at least one role, the initial state exists and is not terminal,
    /// terminal states have no way out, every state is reachable from the initial one and at
    /// least one terminal state is.
    pub fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = Vec::new();
        let mut push = |field: String, code: &'static str, message: String| {
            errors.push(FieldError {
                field,
                code,
                message,
            });
        };

        let mut keys = BTreeSet::new();
        for s in &self.states {
            let field = format!("workflow.states.{}", s.key);
            if !is_key(&s.key) {
                push(
                    field.clone(),
                    "workflow_key_invalid",
                    format!(
                        "نام وضعیت «{}» باید با حرف کوچک لاتین شروع شود و فقط حروف کوچک لاتین، رقم و _ داشته باشد (حداکثر ۴۰ نویسه).",
                        s.key
                    ),
                );
            }
            if !keys.insert(s.key.as_str()) {
                push(
                    field.clone(),
                    "workflow_duplicate_state",
                    format!("وضعیت «{}» بیش از یک بار تعریف شده است.", s.key),
                );
            }
            if s.label_fa.trim().is_empty() {
                push(
                    field,
                    "workflow_label_empty",
                    format!("عنوان فارسی وضعیت «{}» خالی است.", s.key),
                );
            }
        }

        let mut actions = BTreeSet::new();
        for t in &self.transitions {
            let field = format!("workflow.transitions.{}", t.action);
            if !is_key(&t.action) {
                push(
                    field.clone(),
                    "workflow_key_invalid",
                    format!(
                        "نام اقدام «{}» باید با حرف کوچک لاتین شروع شود و فقط حروف کوچک لاتین، رقم و _ داشته باشد (حداکثر ۴۰ نویسه).",
                        t.action
                    ),
                );
            }
            if !actions.insert(t.action.as_str()) {
                push(
                    field.clone(),
                    "workflow_duplicate_action",
                    format!("اقدام «{}» بیش از یک بار تعریف شده است.", t.action),
                );
            }
            if t.label_fa.trim().is_empty() {
                push(
                    field.clone(),
                    "workflow_label_empty",
                    format!("عنوان فارسی اقدام «{}» خالی است.", t.action),
                );
            }
            if t.from.is_empty() {
                push(
                    field.clone(),
                    "workflow_from_empty",
                    format!("برای اقدام «{}» هیچ وضعیت مبدئی تعیین نشده است.", t.action),
                );
            }
            for key in t.from.iter().chain(std::iter::once(&t.to)) {
                if !keys.contains(key.as_str()) {
                    push(
                        field.clone(),
                        "workflow_unknown_state",
                        format!("اقدام «{}» به وضعیت ناموجود «{key}» اشاره می‌کند.", t.action),
                    );
                }
            }
            if t.roles.is_empty() {
                push(
                    field.clone(),
                    "workflow_roles_empty",
                    format!("برای اقدام «{}» هیچ نقشی تعیین نشده است.", t.action),
                );
            }
            for from in &t.from {
                if self.state(from).is_some_and(|s| s.terminal) {
                    push(
                        field.clone(),
                        "workflow_terminal_outgoing",
                        format!(
                            "وضعیت پایانی «{from}» نباید اقدامی داشته باشد (اقدام «{}»).",
                            t.action
                        ),
                    );
                }
            }
        }

        match self.state(&self.initial) {
            None => push(
                "workflow.initial".to_owned(),
                "workflow_initial",
                format!("وضعیت آغازین «{}» تعریف نشده است.", self.initial),
            ),
            Some(initial) if initial.terminal => push(
                "workflow.initial".to_owned(),
                "workflow_initial",
                format!("وضعیت آغازین «{}» نباید پایانی باشد.", self.initial),
            ),
            Some(_) => {
                let reachable = self.reachable_from(&self.initial);
                for s in &self.states {
                    if !reachable.contains(s.key.as_str()) {
                        push(
                            format!("workflow.states.{}", s.key),
                            "workflow_unreachable",
                            format!("هیچ مسیری از وضعیت آغازین به وضعیت «{}» نمی‌رسد.", s.key),
                        );
                    }
                }
                let terminal_reachable = self
                    .states
                    .iter()
                    .any(|s| s.terminal && reachable.contains(s.key.as_str()));
                if !terminal_reachable {
                    push(
                        "workflow".to_owned(),
                        "workflow_no_terminal",
                        "هیچ وضعیت پایانی از وضعیت آغازین در دسترس نیست.".to_owned(),
                    );
                }
            }
        }

        if errors.is_empty() {
            Ok(())
        } else {
            Err(FieldErrors(errors))
        }
    }

    /// Keys of the states reachable from `start` (including it) along transitions.
    fn reachable_from<'a>(&'a self, start: &'a str) -> BTreeSet<&'a str> {
        let mut seen = BTreeSet::from([start]);
        let mut queue = VecDeque::from([start]);
        while let Some(current) = queue.pop_front() {
            for t in &self.transitions {
                if t.from.iter().any(|f| f == current) && seen.insert(t.to.as_str()) {
                    queue.push_back(t.to.as_str());
                }
            }
        }
        seen
    }

    /// The state with this key.
    pub fn state(&self, key: &str) -> Option<&WorkflowState> {
        self.states.iter().find(|s| s.key == key)
    }

    /// Transitions from state `from` that at least one of `roles` may take (for buttons).
    pub fn available(&self, from: &str, roles: &[&str]) -> Vec<&Transition> {
        self.transitions
            .iter()
            .filter(|t| t.from.iter().any(|f| f == from) && allows(t, roles))
            .collect()
    }

    /// Checks that someone with `roles` may take `action` from state `from` with this note;
    /// the caller then moves the request to the returned transition's `to`.
    pub fn transition(
        &self,
        from: &str,
        action: &str,
        roles: &[&str],
        note: Option<&str>,
    ) -> Result<&Transition, TransitionError> {
        let t = self
            .transitions
            .iter()
            .find(|t| t.action == action)
            .ok_or(TransitionError::UnknownAction)?;
        if !t.from.iter().any(|f| f == from) {
            let state_label = self
                .state(from)
                .map_or_else(|| from.to_owned(), |s| s.label_fa.clone());
            return Err(TransitionError::NotFromState {
                state_label,
                action_label: t.label_fa.clone(),
            });
        }
        if !allows(t, roles) {
            return Err(TransitionError::RoleNotAllowed);
        }
        if t.needs_note && note.is_none_or(|n| n.trim().is_empty()) {
            return Err(TransitionError::NoteRequired);
        }
        Ok(t)
    }
}

/// Whether any of `roles` is listed on the transition.
fn allows(t: &Transition, roles: &[&str]) -> bool {
    t.roles.iter().any(|r| roles.contains(&r.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_workflow_validates() {
        let wf = Workflow::default_municipal();
        wf.validate().unwrap();
        assert_eq!(wf.state("submitted").unwrap().sla_days, Some(1));
        assert!(wf.state("rejected").unwrap().terminal);
        assert!(wf.state("delivered").unwrap().terminal);
        assert!(!wf.state("approved").unwrap().terminal);
    }

    #[test]
    fn happy_path() {
        let wf = Workflow::default_municipal();
        let t = wf
            .transition("submitted", "accept", &["desk_staff"], None)
            .unwrap();
        assert_eq!(t.to, "in_review");
        assert!(t.notify_citizen);
        let t = wf
            .transition(&t.to, "approve", &["desk_staff", "department_head"], None)
            .unwrap();
        assert_eq!(t.to, "approved");
        let t = wf
            .transition(&t.to, "deliver", &["desk_staff"], None)
            .unwrap();
        assert_eq!(t.to, "delivered");
        assert!(wf.available(&t.to, &["tenant_admin"]).is_empty());
    }

    #[test]
    fn invalid_transition_is_refused_in_persian() {
        let wf = Workflow::default_municipal();
        let err = wf
            .transition("submitted", "approve", &["department_head"], None)
            .unwrap_err();
        assert_eq!(err.code(), "invalid_transition");
        assert_eq!(
            err.message_fa(),
            "اقدام «تأیید» در وضعیت «ثبت شده» ممکن نیست."
        );
        let err = wf
            .transition("submitted", "fly", &["tenant_admin"], None)
            .unwrap_err();
        assert_eq!(err, TransitionError::UnknownAction);
        assert_eq!(err.code(), "unknown_action");
    }

    #[test]
    fn roles_are_checked_exactly() {
        let wf = Workflow::default_municipal();
        let err = wf
            .transition("in_review", "approve", &["desk_staff"], None)
            .unwrap_err();
        assert_eq!(err, TransitionError::RoleNotAllowed);
        assert_eq!(err.code(), "forbidden");
        // Admin is not a wildcard: it may not answer for the citizen.
        let err = wf
            .transition(
                "awaiting_documents",
                "provide_documents",
                &["tenant_admin"],
                None,
            )
            .unwrap_err();
        assert_eq!(err, TransitionError::RoleNotAllowed);
        wf.transition(
            "awaiting_documents",
            "provide_documents",
            &["citizen"],
            None,
        )
        .unwrap();
        wf.transition("awaiting_inquiry", "inquiry_answered", &["system"], None)
            .unwrap();

        let actions = |from, roles| -> Vec<String> {
            wf.available(from, roles)
                .iter()
                .map(|t| t.action.clone())
                .collect()
        };
        assert_eq!(
            actions("in_review", &["desk_staff"]),
            vec!["request_documents", "forward", "start_inquiry"]
        );
        assert_eq!(
            actions("in_review", &["department_head"]),
            vec![
                "request_documents",
                "forward",
                "start_inquiry",
                "approve",
                "reject"
            ]
        );
        assert_eq!(
            actions("awaiting_documents", &["citizen"]),
            vec!["provide_documents"]
        );
        assert!(actions("in_review", &["citizen"]).is_empty());
    }

    #[test]
    fn reject_needs_a_note() {
        let wf = Workflow::default_municipal();
        for note in [None, Some(""), Some("  \n ")] {
            let err = wf
                .transition("in_review", "reject", &["department_head"], note)
                .unwrap_err();
            assert_eq!(err, TransitionError::NoteRequired);
            assert_eq!(err.code(), "note_required");
        }
        let t = wf
            .transition(
                "in_review",
                "reject",
                &["department_head"],
                Some("مدارک جعلی است."),
            )
            .unwrap();
        assert_eq!(t.to, "rejected");
    }

    #[test]
    fn broken_workflows_fail_validation() {
        let mut unreachable = Workflow::default_municipal();
        unreachable
            .states
            .push(state("archived", "بایگانی", None, true));
        let err = unreachable.validate().unwrap_err();
        assert!(
            err.0
                .iter()
                .any(|e| e.code == "workflow_unreachable" && e.field == "workflow.states.archived")
        );

        let mut dangling = Workflow::default_municipal();
        dangling.transitions[0].to = "nowhere".to_owned();
        let err = dangling.validate().unwrap_err();
        assert!(err.0.iter().any(|e| e.code == "workflow_unknown_state"
            && e.field == "workflow.transitions.accept"
            && e.message.contains("nowhere")));

        let mut bad_initial = Workflow::default_municipal();
        bad_initial.initial = "delivered".to_owned();
        let err = bad_initial.validate().unwrap_err();
        assert!(err.0.iter().any(|e| e.code == "workflow_initial"));

        let mut way_out = Workflow::default_municipal();
        way_out.transitions[0].from.push("rejected".to_owned());
        let err = way_out.validate().unwrap_err();
        assert!(err.0.iter().any(|e| e.code == "workflow_terminal_outgoing"));

        let mut duplicate = Workflow::default_municipal();
        duplicate.transitions[1].action = "accept".to_owned();
        duplicate.states[1].key = "In Review".to_owned();
        let codes: Vec<&str> = duplicate
            .validate()
            .unwrap_err()
            .0
            .iter()
            .map(|e| e.code)
            .collect();
        assert!(codes.contains(&"workflow_duplicate_action"));
        assert!(codes.contains(&"workflow_key_invalid"));

        let mut no_end = Workflow::default_municipal();
        for s in &mut no_end.states {
            s.terminal = false;
        }
        let err = no_end.validate().unwrap_err();
        assert!(err.0.iter().any(|e| e.code == "workflow_no_terminal"));
    }

    #[test]
    fn round_trips_through_json() {
        let wf = Workflow::default_municipal();
        let json = serde_json::to_value(&wf).unwrap();
        let back: Workflow = serde_json::from_value(json).unwrap();
        assert_eq!(back, wf);
    }
}
