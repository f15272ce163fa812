//! Validation as Istio's admission webhook does it: every problem is reported,
//! each with the field path it concerns.

pub mod checks;

use serde::Serialize;

use crate::diag::Severity;

/// A problem found in one resource, before it is given a file position.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Issue {
    /// Error or warning.
    pub severity: Severity,
    /// Field path, e.g. `spec.http[0].route[1].weight`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Walks a resource keeping the current field path, collecting issues.
#[derive(Debug)]
pub struct Validator {
    path: String,
    issues: Vec<Issue>,
}

/// Implemented by every spec type that has rules to check.
pub trait Validate {
    /// Records every problem of `self` in `v`; `v`'s path points at `self`.
    fn validate(&self, v: &mut Validator);
}

impl Validator {
    /// A validator whose path starts at `root` (usually `spec`).
    pub fn new(root: &str) -> Self {
        Validator {
            path: root.to_string(),
            issues: Vec::new(),
        }
    }

    /// The issues found so far.
    pub fn into_issues(self) -> Vec<Issue> {
        self.issues
    }

    /// The current field path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Runs `f` with the path extended by `.name`.
    pub fn field<R>(&mut self, name: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        let len = self.path.len();
        if !self.path.is_empty() {
            self.path.push('.');
        }
        self.path.push_str(name);
        let r = f(self);
        self.path.truncate(len);
        r
    }

    /// Runs `f` with the path extended by `[i]`.
    pub fn index<R>(&mut self, i: usize, f: impl FnOnce(&mut Self) -> R) -> R {
        let len = self.path.len();
        self.path.push('[');
        self.path.push_str(&i.to_string());
        self.path.push(']');
        let r = f(self);
        self.path.truncate(len);
        r
    }

    /// Runs `f` on every item of the list field `name`, with `name[i]` in the path.
    pub fn each<'t, T>(&mut self, name: &str, items: &'t [T], mut f: impl FnMut(&mut Self, &'t T)) {
        self.field(name, |v| {
            for (i, item) in items.iter().enumerate() {
                v.index(i, |v| f(v, item));
            }
        });
    }

    /// Validates the optional field `name`.
    pub fn optional<T: Validate>(&mut self, name: &str, value: &Option<T>) {
        if let Some(value) = value {
            self.field(name, |v| value.validate(v));
        }
    }

    /// Validates every item of the list field `name`.
    pub fn list<T: Validate>(&mut self, name: &str, items: &[T]) {
        self.each(name, items, |v, item| item.validate(v));
    }

    /// An error at the current path.
    pub fn error(&mut self, message: impl Into<String>) {
        self.push(Severity::Error, None, message.into());
    }

    /// A warning at the current path.
    pub fn warn(&mut self, message: impl Into<String>) {
        self.push(Severity::Warning, None, message.into());
    }

    /// An error at the field `name` below the current path.
    pub fn error_at(&mut self, name: &str, message: impl Into<String>) {
        self.push(Severity::Error, Some(name), message.into());
    }

    /// A warning at the field `name` below the current path.
    pub fn warn_at(&mut self, name: &str, message: impl Into<String>) {
        self.push(Severity::Warning, Some(name), message.into());
    }

    fn push(&mut self, severity: Severity, name: Option<&str>, message: String) {
        let path = match name {
            Some(n) if self.path.is_empty() => n.to_string(),
            Some(n) => format!("{}.{n}", self.path),
            None => self.path.clone(),
        };
        self.issues.push(Issue {
            severity,
            path,
            message,
        });
    }
}

impl<T: Validate> Validate for Box<T> {
    fn validate(&self, v: &mut Validator) {
        (**self).validate(v);
    }
}
