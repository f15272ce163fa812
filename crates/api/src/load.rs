//! Text in, typed resources and located diagnostics out.
//!
//! Accepts multi-document YAML, JSON (a YAML subset), and Kubernetes `kind: List`.
//! Every problem is reported, each with file, line, column, resource and field path;
//! a resource with an error is not returned.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::diag::{Diagnostic, ResourceRef, Severity};
use crate::kube::KubeObject;
use crate::meta::{DEFAULT_NAMESPACE, ObjectMeta};
use crate::resource::{Kind, Object, Resource};
use crate::source::{self, DeError, Node, NodeValue, Pos, ReadContext, suggest};
use crate::validate::Issue;

/// A resource with where it came from.
#[derive(Debug, Clone)]
pub struct LocatedResource {
    /// The resource.
    pub resource: Resource,
    /// The file it was read from (`-` for standard input).
    pub file: String,
    /// Where the resource starts.
    pub pos: Pos,
    /// Positions of its field paths.
    positions: Arc<HashMap<String, Pos>>,
}

impl LocatedResource {
    /// The position of `path` (or of its closest written ancestor).
    pub fn pos_of(&self, path: &str) -> Pos {
        pos_of(&self.positions, path, self.pos)
    }

    /// A reference naming the resource in diagnostics.
    pub fn reference(&self) -> ResourceRef {
        ResourceRef {
            kind: self.resource.kind().name().to_string(),
            namespace: self.resource.namespace().to_string(),
            name: self.resource.name().to_string(),
        }
    }

    /// A diagnostic about `path` in this resource.
    pub fn diagnostic(
        &self,
        severity: Severity,
        path: &str,
        message: impl Into<String>,
    ) -> Diagnostic {
        let mut d = Diagnostic::new(severity, &self.file, self.pos_of(path), message);
        d.resource = Some(self.reference());
        d.field = (!path.is_empty()).then(|| path.to_string());
        d
    }
}

fn pos_of(positions: &HashMap<String, Pos>, path: &str, fallback: Pos) -> Pos {
    let mut path = path;
    loop {
        if let Some(p) = positions.get(path) {
            return *p;
        }
        match path.rfind(['.', '[']) {
            Some(i) => path = &path[..i],
            None => return fallback,
        }
    }
}

/// The result of loading one text.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Resources without errors.
    pub resources: Vec<LocatedResource>,
    /// Resources read whole whose validation found errors: never applied or served, but
    /// `weft analyze` analyzes them with the rest, as istioctl analyzes what its schema
    /// check reports.
    pub invalid: Vec<LocatedResource>,
    /// Every error and warning.
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    /// True when any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// Adds everything `other` loaded.
    pub fn extend(&mut self, other: Loaded) {
        self.resources.extend(other.resources);
        self.invalid.extend(other.invalid);
        self.diagnostics.extend(other.diagnostics);
    }
}

/// Loads every resource in `text`, read from `file`.
pub fn load_str(file: &str, text: &str) -> Loaded {
    let mut out = Loaded::default();
    match source::parse_documents(text) {
        Err(e) => out.diagnostics.push(Diagnostic::new(
            Severity::Error,
            file,
            e.pos,
            format!("invalid YAML: {}", e.message),
        )),
        Ok(docs) => {
            for doc in &docs {
                load_document(file, doc, &mut out);
            }
        }
    }
    out
}

fn load_document(file: &str, doc: &Node, out: &mut Loaded) {
    if !matches!(doc.value, NodeValue::Map(_)) {
        out.diagnostics.push(Diagnostic::new(
            Severity::Error,
            file,
            doc.pos,
            format!(
                "expected a resource (a mapping with apiVersion and kind), got {}",
                doc.describe()
            ),
        ));
        return;
    }
    if doc.get("kind").and_then(Node::as_str) == Some("List") {
        match doc.get("items").map(|n| &n.value) {
            Some(NodeValue::Seq(items)) => {
                items.iter().for_each(|item| load_document(file, item, out))
            }
            _ => out.diagnostics.push(Diagnostic::new(
                Severity::Error,
                file,
                doc.pos,
                "a List needs an `items` list",
            )),
        }
        return;
    }
    if let Some(skipped) = foreign_kind(doc) {
        let mut d = Diagnostic::new(Severity::Warning, file, doc.pos, skipped);
        d.resource = document_ref(doc);
        out.diagnostics.push(d);
        return;
    }
    let kind = match resource_kind(doc) {
        Ok(kind) => kind,
        Err((pos, message)) => {
            let mut d = Diagnostic::new(Severity::Error, file, pos, message);
            d.resource = document_ref(doc);
            out.diagnostics.push(d);
            return;
        }
    };
    // A value of the wrong type stops serde; to still report every mistake, cut the
    // offending entry out of the tree and read again, up to a bound.
    let mut tree = std::borrow::Cow::Borrowed(doc);
    let mut fatal: Vec<DeError> = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    let (read, ctx) = loop {
        let ctx = RefCell::new(ReadContext::default());
        let read = match kind {
            Kind::VirtualService => read::<_>(&tree, &ctx).map(Resource::VirtualService),
            Kind::DestinationRule => read::<_>(&tree, &ctx).map(Resource::DestinationRule),
            Kind::ServiceEntry => read::<_>(&tree, &ctx).map(Resource::ServiceEntry),
            Kind::Gateway => read::<_>(&tree, &ctx).map(Resource::Gateway),
            Kind::Sidecar => read::<_>(&tree, &ctx).map(Resource::Sidecar),
            Kind::WorkloadEntry => read::<_>(&tree, &ctx).map(Resource::WorkloadEntry),
            Kind::PeerAuthentication => read::<_>(&tree, &ctx).map(Resource::PeerAuthentication),
            Kind::AuthorizationPolicy => read::<_>(&tree, &ctx).map(Resource::AuthorizationPolicy),
            Kind::RequestAuthentication => {
                read::<_>(&tree, &ctx).map(Resource::RequestAuthentication)
            }
            Kind::Telemetry => read::<_>(&tree, &ctx).map(Resource::Telemetry),
            Kind::HttpRoute => read::<_>(&tree, &ctx).map(Resource::HttpRoute),
            Kind::GrpcRoute => read::<_>(&tree, &ctx).map(Resource::GrpcRoute),
            Kind::TcpRoute => read::<_>(&tree, &ctx).map(Resource::TcpRoute),
            Kind::TlsRoute => read::<_>(&tree, &ctx).map(Resource::TlsRoute),
            Kind::GatewayClass => read::<_>(&tree, &ctx).map(Resource::GatewayClass),
            Kind::KubernetesGateway => read::<_>(&tree, &ctx).map(Resource::KubernetesGateway),
            Kind::ReferenceGrant => read::<_>(&tree, &ctx).map(Resource::ReferenceGrant),
            Kind::RateLimit => read::<_>(&tree, &ctx).map(Resource::RateLimit),
            Kind::Namespace => read_kube::<_>(&tree, &ctx).map(Resource::Namespace),
            Kind::Service => read_kube::<_>(&tree, &ctx).map(Resource::Service),
            Kind::Pod => read_kube::<_>(&tree, &ctx).map(Resource::Pod),
            Kind::EndpointSlice => read_kube::<_>(&tree, &ctx).map(Resource::EndpointSlice),
            Kind::Deployment => read_kube::<_>(&tree, &ctx).map(Resource::Deployment),
            Kind::Secret => read_kube::<_>(&tree, &ctx).map(Resource::Secret),
            Kind::ConfigMap => read_kube::<_>(&tree, &ctx).map(Resource::ConfigMap),
        };
        match read {
            Ok(r) => break (Some(r), ctx.into_inner()),
            Err(e) => {
                let cut = e
                    .pos
                    .and_then(|pos| match remove_entry_at(tree.to_mut(), pos, "") {
                        Found::Removed(path) => Some(path),
                        Found::Inside | Found::No => None,
                    });
                fatal.push(e);
                match cut {
                    Some(path) if fatal.len() < MAX_READ_ERRORS => removed.push(path),
                    _ => break (None, ctx.into_inner()),
                }
            }
        }
    };
    let reference = document_ref(doc);
    let de_diag = |e: &DeError| {
        let mut d = Diagnostic::new(
            Severity::Error,
            file,
            e.pos.unwrap_or(doc.pos),
            e.message.clone(),
        );
        d.resource = reference.clone();
        d.field = e.path.clone().filter(|p| !p.is_empty());
        d
    };
    let mut read_errors: Vec<Diagnostic> = ctx.errors.iter().chain(&fatal).map(de_diag).collect();
    read_errors.sort_by_key(|d| (d.line, d.column));
    let Some(resource) = read else {
        out.diagnostics.extend(read_errors);
        return;
    };
    let located = LocatedResource {
        resource,
        file: file.to_string(),
        pos: doc.pos,
        positions: Arc::new(ctx.positions),
    };
    // Issues about a field that was cut out (or its parents and children) would only echo the read error.
    let echoes = |path: &str| removed.iter().any(|r| related(r, path));
    let issues: Vec<Issue> = located
        .resource
        .validate()
        .into_iter()
        .filter(|i| !echoes(&i.path))
        .collect();
    let read_errors_none = read_errors.is_empty();
    let ok = read_errors_none && !issues.iter().any(|i| i.severity == Severity::Error);
    let mut diagnostics = read_errors;
    diagnostics.extend(issues.iter().map(
        |Issue {
             severity,
             path,
             message,
         }| located.diagnostic(*severity, path, message.clone()),
    ));
    diagnostics.sort_by_key(|d| (d.line, d.column));
    out.diagnostics.extend(diagnostics);
    if ok {
        out.resources.push(located);
    } else if read_errors_none {
        out.invalid.push(located);
    }
}

/// Most read errors reported for one resource.
const MAX_READ_ERRORS: usize = 32;

/// True when one path is the other or an ancestor of it.
fn related(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    long.starts_with(short)
        && matches!(
            long.as_bytes().get(short.len()),
            None | Some(b'.') | Some(b'[')
        )
}

enum Found {
    /// The map entry holding the node was removed; its path.
    Removed(String),
    /// The node is here but not a map value (a list item); the caller removes its entry.
    Inside,
    /// Not in this subtree.
    No,
}

/// Removes the innermost map entry whose key or value is the node at `pos`.
fn remove_entry_at(node: &mut Node, pos: Pos, path: &str) -> Found {
    match &mut node.value {
        NodeValue::Map(entries) => {
            for i in 0..entries.len() {
                let key = entries[i].0.as_str().unwrap_or_default().to_string();
                let child = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                let found = if entries[i].0.pos == pos || entries[i].1.pos == pos {
                    Found::Inside
                } else {
                    remove_entry_at(&mut entries[i].1, pos, &child)
                };
                match found {
                    Found::Inside => {
                        entries.remove(i);
                        return Found::Removed(child);
                    }
                    Found::Removed(p) => return Found::Removed(p),
                    Found::No => {}
                }
            }
            Found::No
        }
        NodeValue::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                if item.pos == pos {
                    return Found::Inside;
                }
                match remove_entry_at(item, pos, &format!("{path}[{i}]")) {
                    Found::No => {}
                    found => return found,
                }
            }
            Found::No
        }
        NodeValue::Scalar(_) => Found::No,
    }
}

fn read<S: DeserializeOwned + Default>(
    doc: &Node,
    ctx: &RefCell<ReadContext>,
) -> Result<Object<S>, DeError> {
    source::from_node(doc, "", ctx)
}

/// Reads a Kubernetes object: its metadata strictly (as for every kind), the fields weft
/// reads into the view `T` passing over the others, and the whole object as written.
fn read_kube<T: DeserializeOwned>(
    doc: &Node,
    ctx: &RefCell<ReadContext>,
) -> Result<KubeObject<T>, DeError> {
    let metadata: ObjectMeta = match doc.get("metadata") {
        Some(m) => source::from_node(m, "metadata", ctx)?,
        None => ObjectMeta::default(),
    };
    ctx.borrow_mut().lenient = true;
    let view = source::from_node::<T>(doc, "", ctx);
    ctx.borrow_mut().lenient = false;
    let view = view?;
    let mut fields = match source::from_node::<serde_json::Value>(doc, "", ctx)? {
        serde_json::Value::Object(fields) => fields,
        _ => serde_json::Map::new(),
    };
    let text = |v: Option<serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => s,
        _ => String::new(),
    };
    let api_version = text(fields.remove("apiVersion"));
    let kind = text(fields.remove("kind"));
    fields.remove("metadata");
    Ok(KubeObject {
        api_version,
        kind,
        metadata,
        view,
        fields,
    })
}

/// Why a document of another API group than Istio's (and weft's) is left out, when it is
/// one: Kubernetes' own kinds (`v1` Service, `apps/v1` Deployment, ConfigMap, ...) travel
/// in the same files as Istio's and are skipped with a warning, not refused; an unknown
/// kind in an Istio group stays an error.
fn foreign_kind(doc: &Node) -> Option<String> {
    let api = doc.get("apiVersion")?.as_str()?;
    let kind = doc.get("kind").and_then(Node::as_str).unwrap_or_default();
    let group = api.rsplit_once('/').map_or("", |(g, _)| g);
    // Of the Gateway API's kinds, those weft does not read (UDPRoute, BackendTLSPolicy,
    // ...) travel beside the others and are skipped like Kubernetes' own.
    let gateway_api_read = group == crate::gateway_api::GROUP
        && Kind::ALL
            .iter()
            .any(|k| k.group() == group && k.name() == kind);
    let ours = group.ends_with(".istio.io") || group == "policy.weft.dev" || gateway_api_read;
    let read = Kind::KUBERNETES
        .iter()
        .any(|k| k.name() == kind && k.group() == group);
    if ours || read || kind.is_empty() {
        return None;
    }
    let known: Vec<&str> = Kind::KUBERNETES.iter().map(|k| k.name()).collect();
    Some(format!(
        "skipped: weft has no use for `{kind}` ({api}); of Kubernetes' kinds it reads {}",
        known.join(", ")
    ))
}

/// The kind named by `apiVersion` and `kind`, or why it is not one weft reads.
fn resource_kind(doc: &Node) -> Result<Kind, (Pos, String)> {
    let api_version = doc.get("apiVersion");
    let kind_node = doc
        .get("kind")
        .ok_or((doc.pos, "kind is required".to_string()))?;
    let kind_name = kind_node.as_str().unwrap_or_default();
    let group = api_version
        .and_then(Node::as_str)
        .and_then(|a| a.rsplit_once('/'))
        .map_or("", |(g, _)| g);
    let kind = Kind::from_name_in(kind_name, group).ok_or_else(|| {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        let hint = match suggest(kind_name, &names) {
            Some(s) => format!(" (did you mean `{s}`?)"),
            None => format!("; weft reads {}", names.join(", ")),
        };
        (
            kind_node.pos,
            format!("unsupported kind `{kind_name}`{hint}"),
        )
    })?;
    let api_node = api_version.ok_or((doc.pos, "apiVersion is required".to_string()))?;
    let api = api_node.as_str().unwrap_or_default();
    let expected: Vec<String> = kind
        .api_versions()
        .iter()
        .map(|v| kind.api_version(v))
        .collect();
    if !expected.iter().any(|e| e == api) {
        return Err((
            api_node.pos,
            format!(
                "apiVersion `{api}` is not one of {} for {kind}",
                expected.join(", ")
            ),
        ));
    }
    Ok(kind)
}

/// The kind, namespace and name written in a document, for diagnostics about it.
fn document_ref(doc: &Node) -> Option<ResourceRef> {
    let meta = doc.get("metadata");
    Some(ResourceRef {
        kind: doc.get("kind")?.as_str()?.to_string(),
        namespace: meta
            .and_then(|m| m.get("namespace"))
            .and_then(Node::as_str)
            .unwrap_or(DEFAULT_NAMESPACE)
            .to_string(),
        name: meta
            .and_then(|m| m.get("name"))
            .and_then(Node::as_str)
            .unwrap_or("<unnamed>")
            .to_string(),
    })
}

/// Errors for resources defined twice in one file (same kind, namespace and name).
/// Across files a later definition replaces an earlier one, as `weft apply -f` does; see [`last_wins`].
pub fn duplicate_diagnostics(resources: &[LocatedResource]) -> Vec<Diagnostic> {
    let mut first: BTreeMap<(&str, Kind, &str, &str), &LocatedResource> = BTreeMap::new();
    let mut out = Vec::new();
    for r in resources {
        let key = (
            r.file.as_str(),
            r.resource.kind(),
            r.resource.namespace(),
            r.resource.name(),
        );
        match first.get(&key) {
            Some(prev) => out.push(r.diagnostic(
                Severity::Error,
                "metadata.name",
                format!(
                    "defined twice in this file; first at line {}",
                    prev.pos.line
                ),
            )),
            None => {
                first.insert(key, r);
            }
        }
    }
    out
}

/// Keeps the last definition of each (kind, namespace, name), as applying the
/// inputs in order would; returns the survivors (in input order) and a note per replaced one.
pub fn last_wins(resources: Vec<LocatedResource>) -> (Vec<LocatedResource>, Vec<String>) {
    let mut last: HashMap<(Kind, String, String), usize> = HashMap::new();
    for (i, r) in resources.iter().enumerate() {
        last.insert(
            (
                r.resource.kind(),
                r.resource.namespace().to_string(),
                r.resource.name().to_string(),
            ),
            i,
        );
    }
    let mut notes = Vec::new();
    let mut kept = Vec::with_capacity(last.len());
    for (i, r) in resources.iter().enumerate() {
        let key = (
            r.resource.kind(),
            r.resource.namespace().to_string(),
            r.resource.name().to_string(),
        );
        let winner = last.get(&key).copied().unwrap_or(i);
        if winner == i {
            kept.push(r.clone());
        } else {
            let by = &resources[winner];
            notes.push(format!(
                "{} from {}:{} is replaced by the later definition in {}:{}",
                r.reference(),
                r.file,
                r.pos.line,
                by.file,
                by.pos.line
            ));
        }
    }
    (kept, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: recommendation-service
spec:
  hosts:
  - recommendation-service
  http:
  - route:
    - destination:
        host: recommendation-service
        subset: v1
      weight: 10
    - destination:
        host: recommendation-service
        subset: v2
      weight: -5
"#;

    #[test]
    fn errors_carry_file_line_resource_and_field() {
        let loaded = load_str("rules.yaml", SEED);
        assert!(loaded.resources.is_empty());
        let text: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "rules.yaml:18:7: VirtualService default/recommendation-service: spec.http[0].route[1].weight: must not be negative (got -5)"
            ]
        );
    }

    #[test]
    fn every_api_version_reads_with_one_schema() {
        for v in crate::resource::API_VERSIONS {
            let text = SEED.replace("v1alpha3", v).replace("-5", "90");
            let loaded = load_str("f", &text);
            assert!(
                loaded.diagnostics.is_empty(),
                "{v}: {:?}",
                loaded.diagnostics
            );
            assert_eq!(loaded.resources.len(), 1);
            assert_eq!(loaded.resources[0].resource.namespace(), "default");
        }
    }

    #[test]
    fn lists_and_json_are_read() {
        let json = r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
             "metadata": {"name": "r", "namespace": "shop"}, "spec": {"host": "r"}}]}"#;
        let loaded = load_str("f.json", json);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        assert_eq!(loaded.resources[0].resource.namespace(), "shop");
    }

    #[test]
    fn kinds_versions_and_names_are_checked() {
        let text = "apiVersion: v1\nkind: LimitRange\nmetadata: {name: a}\n---\napiVersion: networking.istio.io/v2\nkind: Gateway\nmetadata: {name: a}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualServce\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: Bad_Name}\nspec: {host: a}\n";
        let loaded = load_str("f", text);
        let text: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
        // Kubernetes' own kinds travel with Istio's: skipped with a warning, not refused.
        assert!(
            text[0]
                .contains("LimitRange default/a: skipped: weft has no use for `LimitRange` (v1)"),
            "{text:?}"
        );
        assert!(!loaded.diagnostics[0].is_error());
        assert!(
            text[1].starts_with(
                "f:5:13: Gateway default/a: apiVersion `networking.istio.io/v2` is not one of"
            ),
            "{text:?}"
        );
        assert!(
            text[2].contains("did you mean `VirtualService`"),
            "{text:?}"
        );
        assert!(
            text[3].starts_with(
                "f:14:12: DestinationRule default/Bad_Name: metadata.name: invalid name"
            ),
            "{text:?}"
        );
    }

    #[test]
    fn type_errors_do_not_hide_other_mistakes() {
        let text = SEED.replace(
            "weight: -5",
            "weight: -5\n    timeout: 10\n    retries: {attempts: many}",
        );
        let loaded = load_str("f", &text);
        let text: Vec<String> = loaded
            .diagnostics
            .iter()
            .map(|d| format!("{}: {}", d.field.clone().unwrap_or_default(), d.message))
            .collect();
        assert_eq!(
            text,
            [
                "spec.http[0].route[1].weight: must not be negative (got -5)",
                "spec.http[0].timeout: expected a string, got a number (quote it: \"10\")",
                "spec.http[0].retries.attempts: expected an integer, got a string",
            ]
            .map(String::from),
        );
    }

    #[test]
    fn malformed_yaml_reports_the_parser_position() {
        let loaded = load_str("bad.yaml", "a: [1, 2\nb: c\n");
        assert_eq!(loaded.diagnostics.len(), 1);
        assert!(
            loaded.diagnostics[0].to_string().starts_with("bad.yaml:"),
            "{}",
            loaded.diagnostics[0]
        );
        assert!(loaded.diagnostics[0].line > 0);
    }

    #[test]
    fn duplicates_in_one_file_are_errors_across_files_the_last_wins() {
        let doc = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\nspec: {host: a}\n";
        let loaded = load_str("f", &format!("{doc}---\n{doc}"));
        let dups = duplicate_diagnostics(&loaded.resources);
        assert_eq!(dups.len(), 1);
        assert!(
            dups[0]
                .to_string()
                .contains("defined twice in this file; first at line 1"),
            "{}",
            dups[0]
        );

        let mut both = load_str("a.yaml", doc).resources;
        both.extend(load_str("b.yaml", &doc.replace("host: a", "host: b")).resources);
        assert!(duplicate_diagnostics(&both).is_empty());
        let (kept, notes) = last_wins(both);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].file, "b.yaml");
        assert_eq!(
            notes,
            [
                "DestinationRule default/a from a.yaml:1 is replaced by the later definition in b.yaml:1"
            ]
        );
    }
}
