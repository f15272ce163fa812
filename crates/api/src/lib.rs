//! Istio's configuration API as weft reads it.
//!
//! - [`source`] turns YAML or JSON text into positioned trees and typed values;
//! - [`networking`] and [`security`] hold the resource types, one module per kind;
//! - [`validate`] checks them as Istio's admission webhook does;
//! - [`load`] ties these together: text in, resources and located diagnostics out;
//! - [`schema`] publishes the kinds' OpenAPI v3 schemas, as a Kubernetes API server serves them.

pub mod diag;
pub mod duration;
pub mod extensions;
pub mod files;
pub mod gateway_api;
pub mod kube;
pub mod load;
pub mod mesh_config;
pub mod meta;
pub mod networking;
pub mod policy;
pub mod render;
pub mod resource;
pub mod schema;
pub mod security;
pub mod source;
pub mod telemetry;
pub mod timestamp;
pub mod validate;

pub use diag::{Diagnostic, ResourceRef, Severity};
pub use duration::Duration;
pub use load::{Loaded, LocatedResource, load_str};
pub use meta::ObjectMeta;
pub use resource::{Kind, Object, Resource};

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers for the unit tests of resource kinds.

    use std::cell::RefCell;

    use crate::source::{ReadContext, from_node, parse_documents};
    use crate::validate::{Issue, Validate, Validator};

    /// Parses `yaml` as a spec of type `T` (read errors become `Err`) and returns its validation issues.
    pub fn spec_issues<T: Validate + serde::de::DeserializeOwned>(
        yaml: &str,
    ) -> Result<Vec<Issue>, String> {
        let docs = parse_documents(yaml).map_err(|e| e.message)?;
        let ctx = RefCell::new(ReadContext::default());
        let spec: T = from_node(&docs[0], "spec", &ctx).map_err(|e| e.message)?;
        if let Some(e) = ctx.borrow().errors.first() {
            return Err(e.message.clone());
        }
        let mut v = Validator::new("spec");
        spec.validate(&mut v);
        Ok(v.into_issues())
    }

    /// The `path: message` lines of the error-severity issues.
    pub fn errors(issues: &[Issue]) -> Vec<String> {
        issues
            .iter()
            .filter(|i| i.severity == crate::diag::Severity::Error)
            .map(|i| format!("{}: {}", i.path, i.message))
            .collect()
    }

    /// Asserts that `yaml`, read as a spec of type `T`, has exactly the `expected` errors:
    /// each entry is the start of one `path: message` line (see [`errors`]), in any order.
    #[track_caller]
    pub fn assert_errors<T: Validate + serde::de::DeserializeOwned>(yaml: &str, expected: &[&str]) {
        check_errors::<T>(yaml, expected, true);
    }

    /// Like [`assert_errors`], but errors beyond the `expected` ones are allowed.
    #[track_caller]
    pub fn assert_errors_include<T: Validate + serde::de::DeserializeOwned>(
        yaml: &str,
        expected: &[&str],
    ) {
        check_errors::<T>(yaml, expected, false);
    }

    /// Fails naming the input and showing every issue it got when an expected error
    /// is missing or, with `exactly`, when there are more errors than expected.
    #[track_caller]
    fn check_errors<T: Validate + serde::de::DeserializeOwned>(
        yaml: &str,
        expected: &[&str],
        exactly: bool,
    ) {
        let issues = match spec_issues::<T>(yaml) {
            Ok(issues) => issues,
            Err(e) => panic!("the input does not read: {e}\n--- input:\n{yaml}"),
        };
        let errs = errors(&issues);
        let missing: Vec<&str> = expected
            .iter()
            .copied()
            .filter(|e| !errs.iter().any(|got| got.starts_with(e)))
            .collect();
        let count_differs = exactly && errs.len() != expected.len();
        if missing.is_empty() && !count_differs {
            return;
        }
        let unexpected: Vec<&String> = errs
            .iter()
            .filter(|got| !expected.iter().any(|e| got.starts_with(e)))
            .collect();
        let got: Vec<String> = issues
            .iter()
            .map(|i| format!("{:?} {}: {}", i.severity, i.path, i.message))
            .collect();
        panic!(
            "{} errors expected{}, {} reported\nmissing: {missing:#?}\nnot expected: {unexpected:#?}\n--- input:\n{yaml}\n--- issues:\n{got:#?}",
            expected.len(),
            if exactly { "" } else { " (or more)" },
            errs.len(),
        );
    }
}
