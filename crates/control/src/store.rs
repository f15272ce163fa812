//! The resource store: every accepted resource in memory and on disk.
//!
//! Persistence is one JSON file per resource under the state directory, written
//! crash-safely: write a temporary file, fsync it, rename it over the old one, fsync the
//! directory. A rename is atomic, so after `kill -9` each file holds either the old or
//! the new version, never a torn one. Files are plain JSON, so an operator can read them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::broadcast;
use weft_api::{Kind, Resource};

/// Identifies a resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Key {
    /// Kind.
    pub kind: Kind,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl Key {
    /// The key of `r`.
    pub fn of(r: &Resource) -> Key {
        Key {
            kind: r.kind(),
            namespace: r.namespace().to_string(),
            name: r.name().to_string(),
        }
    }
}

/// A change, as watchers see it.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// `ADDED`, `MODIFIED` or `DELETED`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The resource after the change (before it, for `DELETED`).
    pub object: Resource,
}

/// Why a write was refused.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Create of an existing resource.
    #[error("{0:?} already exists")]
    AlreadyExists(Key),
    /// Update or delete of a missing resource.
    #[error("{0:?} not found")]
    NotFound(Key),
    /// The update was based on an older version.
    #[error(
        "the object has been modified; please apply your changes to the latest version (current resourceVersion {current}, yours {given})"
    )]
    Conflict {
        /// The stored version.
        current: String,
        /// The version in the request.
        given: String,
    },
    /// The namespace or name cannot be stored (it must be a DNS label / subdomain).
    #[error("{0}")]
    Invalid(String),
    /// Writing the state directory failed; nothing changed.
    #[error("persisting to {path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// A new resource.
    Created,
    /// An existing resource changed.
    Configured,
    /// The resource was already like this.
    Unchanged,
}

/// The store.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    inner: Mutex<Inner>,
    events: broadcast::Sender<Event>,
    /// When each computed status condition of an object last changed (memory only).
    transitions: Mutex<BTreeMap<Key, Transitions>>,
}

/// An object's conditions by path: the status last seen and since when.
type Transitions = BTreeMap<String, (String, String)>;

#[derive(Debug, Default)]
struct Inner {
    resources: BTreeMap<Key, Resource>,
    last_version: u64,
    /// Workloads registered by connected proxies (kept in memory only), by proxy id,
    /// with a registration generation so a late removal does not undo a reconnect.
    registered: BTreeMap<String, (u64, Resource)>,
    registrations: u64,
    /// Versions up to this one are reserved durably (the `version-floor` file), so a
    /// restart continues above every version that may have been handed out.
    reserved: u64,
}

/// Versions are reserved this many at a time (one fsynced write per block).
const VERSION_BLOCK: u64 = 1024;

impl Store {
    /// Opens (or creates) the store in `dir`, loading every resource persisted there.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |error| StoreError::Io { path, error }
        };
        let root = dir.join("resources");
        std::fs::create_dir_all(&root).map_err(io(&root))?;
        let mut inner = Inner::default();
        for file in walk(&root).map_err(io(&root))? {
            if file.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text = std::fs::read_to_string(&file).map_err(io(&file))?;
            // Versions are never handed out twice, even those of files that no longer load.
            let written_version = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| {
                    v["metadata"]["resourceVersion"]
                        .as_str()
                        .and_then(|s| s.parse::<u64>().ok())
                })
                .unwrap_or(0);
            inner.last_version = inner.last_version.max(written_version);
            let loaded = weft_api::load_str(&file.display().to_string(), &text);
            if loaded.has_errors() {
                tracing::error!(file = %file.display(), "stored resource no longer valid; skipped: {:?}", loaded.diagnostics);
                continue;
            }
            for r in loaded.resources {
                let v = r
                    .resource
                    .metadata()
                    .resource_version
                    .as_deref()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                inner.last_version = inner.last_version.max(v);
                inner.resources.insert(Key::of(&r.resource), r.resource);
            }
        }
        // Deleted resources and registrations leave no file: the floor covers them.
        let floor_file = dir.join("version-floor");
        if let Ok(text) = std::fs::read_to_string(&floor_file) {
            let floor = text.trim().parse::<u64>().map_err(|e| StoreError::Io {
                path: floor_file.display().to_string(),
                error: std::io::Error::other(e),
            })?;
            inner.last_version = inner.last_version.max(floor);
        }
        inner.reserved = inner.last_version;
        tracing::info!(resources = inner.resources.len(), dir = %dir.display(), "store opened");
        Ok(Store {
            dir: dir.to_path_buf(),
            inner: Mutex::new(inner),
            events: broadcast::channel(1024).0,
            transitions: Mutex::new(BTreeMap::new()),
        })
    }

    /// Forgets the conditions of `key` other than `current` (a listener renamed, a parent
    /// gone), so what is remembered stays what the object has.
    pub fn forget_other_transitions(&self, key: &Key, current: &[String]) {
        let mut all = self.transitions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(of) = all.get_mut(key) {
            of.retain(|condition, _| current.contains(condition));
        }
    }

    /// The `lastTransitionTime` of condition `condition` (a path naming it in the
    /// object's status) of object `key`, whose status is now `status`: the time it was
    /// first seen with that status, `now` when it just changed, `first` when never seen
    /// before (the object's creation, for conditions computed since it exists). Kept in
    /// memory: after a restart every condition starts from `first` again.
    pub fn transition_time(
        &self,
        key: &Key,
        condition: &str,
        status: &str,
        first: &str,
        now: &str,
    ) -> String {
        let mut all = self.transitions.lock().unwrap_or_else(|e| e.into_inner());
        let of = all.entry(key.clone()).or_default();
        match of.get(condition) {
            Some((was, since)) if was == status => since.clone(),
            seen => {
                let since = if seen.is_some() { now } else { first }.to_string();
                of.insert(condition.to_string(), (status.to_string(), since.clone()));
                since
            }
        }
    }

    /// Subscribes to changes.
    pub fn watch(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Resources of `kind`, in `namespace` or all namespaces.
    pub fn list(&self, kind: Kind, namespace: Option<&str>) -> Vec<Resource> {
        let inner = self.lock();
        inner
            .resources
            .iter()
            .filter(|(k, _)| k.kind == kind && namespace.is_none_or(|ns| k.namespace == ns))
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Registers (or refreshes) the workload of proxy `id`; returns the registration's generation.
    pub fn register(&self, id: &str, mut workload: Resource) -> u64 {
        let mut inner = self.lock();
        inner.registrations += 1;
        inner.last_version += 1;
        self.reserve_or_log(&mut inner);
        let generation = inner.registrations;
        workload.metadata_mut().resource_version = Some(inner.last_version.to_string());
        inner
            .registered
            .insert(id.to_string(), (generation, workload.clone()));
        let _ = self.events.send(Event {
            kind: "ADDED",
            object: workload,
        });
        generation
    }

    /// Removes the workload of proxy `id`, unless it registered again since `generation`.
    pub fn unregister(&self, id: &str, generation: u64) {
        let mut inner = self.lock();
        if inner
            .registered
            .get(id)
            .is_some_and(|(g, _)| *g == generation)
        {
            if let Some((_, workload)) = inner.registered.remove(id) {
                inner.last_version += 1;
                self.reserve_or_log(&mut inner);
                let _ = self.events.send(Event {
                    kind: "DELETED",
                    object: workload,
                });
            }
        }
    }

    /// Workloads registered by proxies.
    pub fn registered(&self) -> Vec<Resource> {
        self.lock()
            .registered
            .values()
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// The latest resourceVersion handed out.
    pub fn version(&self) -> u64 {
        self.lock().last_version
    }

    /// Every resource.
    pub fn all(&self) -> Vec<Resource> {
        self.lock().resources.values().cloned().collect()
    }

    /// The resource at `key`.
    pub fn get(&self, key: &Key) -> Option<Resource> {
        self.lock().resources.get(key).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Creates, or (when `create_only` is false) replaces, a validated resource. A
    /// `resourceVersion` in the request must match the stored one (optimistic concurrency).
    pub fn put(
        &self,
        mut r: Resource,
        create_only: bool,
    ) -> Result<(Written, Resource), StoreError> {
        let key = Key::of(&r);
        // The key becomes a file path: only what Kubernetes allows, never `..` or `/`.
        if key.kind.is_namespaced() && !weft_api::validate::checks::is_dns1123_label(&key.namespace)
        {
            return Err(StoreError::Invalid(format!(
                "metadata.namespace: {:?} is not a valid namespace (lowercase letters, digits and '-', at most 63)",
                key.namespace
            )));
        }
        if !weft_api::validate::checks::is_dns1123_subdomain(&key.name) {
            return Err(StoreError::Invalid(format!(
                "metadata.name: {:?} is not a valid name (lowercase DNS subdomain)",
                key.name
            )));
        }
        let mut inner = self.lock();
        let existing = inner.resources.get(&key).cloned();
        if let (Some(Resource::Service(old)), Resource::Service(new)) = (&existing, &mut r) {
            new.keep_cluster_ips(old).map_err(StoreError::Invalid)?;
        }
        if let Resource::Secret(new) = &mut r {
            let old = match &existing {
                Some(Resource::Secret(old)) => Some(old),
                _ => None,
            };
            new.fold_for_write(old).map_err(StoreError::Invalid)?;
        }
        if let (Some(Resource::ConfigMap(old)), Resource::ConfigMap(new)) = (&existing, &r) {
            let changed = old.view.data != new.view.data
                || old.view.binary_data != new.view.binary_data
                || new.view.immutable != Some(true);
            if old.view.immutable == Some(true) && changed {
                return Err(StoreError::Invalid(
                    "data: Forbidden: field is immutable when `immutable` is set".into(),
                ));
            }
        }
        match (&existing, create_only) {
            (Some(_), true) => return Err(StoreError::AlreadyExists(key)),
            (Some(old), false) => {
                let given = r.metadata().resource_version.clone();
                let current = old.metadata().resource_version.clone().unwrap_or_default();
                if let Some(given) = given.filter(|g| *g != current) {
                    return Err(StoreError::Conflict { current, given });
                }
                if same_content(old, &r) {
                    return Ok((Written::Unchanged, old.clone()));
                }
            }
            (None, _) => {}
        }
        let version = inner.last_version + 1;
        let meta = r.metadata_mut();
        // A cluster-scoped object (a Namespace) has no namespace.
        meta.namespace = Some(key.namespace.clone()).filter(|_| key.kind.is_namespaced());
        meta.resource_version = Some(version.to_string());
        match &existing {
            Some(old) => {
                let om = old.metadata();
                meta.uid = om.uid.clone();
                meta.creation_timestamp = om.creation_timestamp.clone();
                let spec_changed = spec_json(old) != spec_json(&r);
                let g = om.generation.unwrap_or(1);
                r.metadata_mut().generation = Some(if spec_changed { g + 1 } else { g });
            }
            None => {
                meta.uid = Some(uuid());
                meta.creation_timestamp = Some(rfc3339(SystemTime::now()));
                meta.generation = Some(1);
            }
        }
        self.reserve(&mut inner, version)?;
        self.persist(&key, Some(&r))?;
        inner.last_version = version;
        inner.resources.insert(key, r.clone());
        let written = if existing.is_some() {
            Written::Configured
        } else {
            Written::Created
        };
        let _ = self.events.send(Event {
            kind: if existing.is_some() {
                "MODIFIED"
            } else {
                "ADDED"
            },
            object: r.clone(),
        });
        Ok((written, r))
    }

    /// Deletes the resource at `key`.
    pub fn delete(&self, key: &Key) -> Result<Resource, StoreError> {
        let mut inner = self.lock();
        let Some(mut old) = inner.resources.get(key).cloned() else {
            return Err(StoreError::NotFound(key.clone()));
        };
        // A deletion is a change too: as in Kubernetes it gets the next resourceVersion,
        // so whoever waits for "version V is in force" also waits for deletions.
        let version = inner.last_version + 1;
        self.reserve(&mut inner, version)?;
        self.persist(key, None)?;
        inner.last_version = version;
        inner.resources.remove(key);
        self.transitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        old.metadata_mut().resource_version = Some(version.to_string());
        let _ = self.events.send(Event {
            kind: "DELETED",
            object: old.clone(),
        });
        Ok(old)
    }

    /// Makes sure `version` is below the durable floor, raising the floor a block at a time.
    fn reserve(&self, inner: &mut Inner, version: u64) -> Result<(), StoreError> {
        if version <= inner.reserved {
            return Ok(());
        }
        let floor = version + VERSION_BLOCK;
        let path = self.dir.join("version-floor");
        let io = |error| StoreError::Io {
            path: path.display().to_string(),
            error,
        };
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(floor.to_string().as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        inner.reserved = floor;
        Ok(())
    }

    /// [`Self::reserve`] for in-memory registrations, which cannot be refused.
    fn reserve_or_log(&self, inner: &mut Inner) {
        let version = inner.last_version;
        if let Err(e) = self.reserve(inner, version) {
            tracing::error!("reserving resource versions: {e}");
        }
    }

    fn path(&self, key: &Key) -> PathBuf {
        self.dir
            .join("resources")
            .join(match key.kind.group() {
                "" => "core",
                group => group,
            })
            .join(key.kind.plural())
            .join(&key.namespace)
            .join(format!("{}.json", key.name))
    }

    /// Writes (or removes) the file of `key` durably before the change becomes visible.
    fn persist(&self, key: &Key, r: Option<&Resource>) -> Result<(), StoreError> {
        let path = self.path(key);
        let io = |error| StoreError::Io {
            path: path.display().to_string(),
            error,
        };
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        std::fs::create_dir_all(&dir).map_err(io)?;
        match r {
            Some(r) => {
                let tmp = path.with_extension("json.tmp");
                let bytes =
                    serde_json::to_vec_pretty(r).map_err(|e| io(std::io::Error::other(e)))?;
                let mut f = std::fs::File::create(&tmp).map_err(io)?;
                f.write_all(&bytes).map_err(io)?;
                f.sync_all().map_err(io)?;
                std::fs::rename(&tmp, &path).map_err(io)?;
            }
            None => match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
            },
        }
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io)
    }
}

/// The object's spec (what its generation counts); an object without one (an
/// EndpointSlice) counts its whole body.
fn spec_json(r: &Resource) -> serde_json::Value {
    match serde_json::to_value(r) {
        Ok(serde_json::Value::Object(mut v)) => v.remove("spec").unwrap_or_else(|| {
            for k in ["apiVersion", "kind", "metadata", "status"] {
                v.remove(k);
            }
            serde_json::Value::Object(v)
        }),
        _ => serde_json::Value::Null,
    }
}

/// Everything but the metadata: spec and status (a Pod's IP), or the fields of an object
/// without a spec.
fn body_json(r: &Resource) -> serde_json::Value {
    match serde_json::to_value(r) {
        Ok(serde_json::Value::Object(mut v)) => {
            v.remove("metadata");
            serde_json::Value::Object(v)
        }
        _ => serde_json::Value::Null,
    }
}

/// Same body, labels and annotations (server-set fields aside).
fn same_content(a: &Resource, b: &Resource) -> bool {
    body_json(a) == body_json(b)
        && a.metadata().labels == b.metadata().labels
        && a.metadata().annotations == b.metadata().annotations
        // Who manages which field is content too (a server-side apply that takes over
        // fields changes only this), as in Kubernetes.
        && a.metadata().managed_fields == b.metadata().managed_fields
}

fn walk(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(walk(&path)?);
        } else {
            out.push(path);
        }
    }
    Ok(out)
}

/// A random UUID v4.
pub fn uuid() -> String {
    let mut b = [0u8; 16];
    b.iter_mut().for_each(|x| *x = fastrand::u8(..));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

pub use weft_api::timestamp::rfc3339;

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(host: &str) -> Resource {
        let text = format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: r}}\nspec: {{host: {host}}}\n"
        );
        weft_api::load_str("t", &text).resources.remove(0).resource
    }

    fn temp() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "weft-store-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn kube(text: &str) -> Resource {
        let loaded = weft_api::load_str("t", text);
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        loaded.resources.into_iter().next().expect("one").resource
    }

    #[test]
    fn kubernetes_kinds_keep_what_kubernetes_keeps() {
        let dir = temp();
        let store = Store::open(&dir).expect("open");
        // A Namespace is cluster-scoped: no namespace in its key or its metadata.
        let (_, ns) = store
            .put(kube("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {istio-injection: enabled}}\n"), true)
            .expect("namespace");
        assert_eq!(ns.metadata().namespace, None);
        assert_eq!(Key::of(&ns).namespace, "");
        // A Service keeps its cluster IP through an update that names none; changing it is refused.
        let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: shop}\nspec: {ports: [{port: 80}]CLUSTER}\n";
        store
            .put(
                kube(&svc.replace("CLUSTER", ", clusterIP: 10.96.0.9")),
                true,
            )
            .expect("created");
        let (_, updated) = store
            .put(
                kube(&svc.replace("CLUSTER", ", selector: {app: reviews}")),
                false,
            )
            .expect("updated");
        let json = serde_json::to_value(&updated).expect("json");
        assert_eq!(json["spec"]["clusterIP"], "10.96.0.9");
        assert_eq!(json["spec"]["selector"]["app"], "reviews");
        let moved = store.put(
            kube(&svc.replace("CLUSTER", ", clusterIP: 10.96.0.10")),
            false,
        );
        assert!(
            matches!(&moved, Err(StoreError::Invalid(m)) if m.contains("field is immutable")),
            "{moved:?}"
        );
        // A Pod's new IP (its status) is a change.
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop}\nspec: {containers: [{name: c}]}\nstatus: {podIP: ADDR}\n";
        store
            .put(kube(&pod.replace("ADDR", "10.0.0.1")), true)
            .expect("pod");
        let (written, _) = store
            .put(kube(&pod.replace("ADDR", "10.0.0.2")), false)
            .expect("pod");
        assert_eq!(written, Written::Configured);
        // Everything reads back after a restart.
        drop(store);
        let store = Store::open(&dir).expect("reopen");
        assert_eq!(store.list(Kind::Namespace, None).len(), 1);
        assert_eq!(store.list(Kind::Service, Some("shop")).len(), 1);
        let pods = store.list(Kind::Pod, Some("shop"));
        assert_eq!(
            serde_json::to_value(&pods[0]).expect("json")["status"]["podIP"],
            "10.0.0.2"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn versions_generations_and_persistence() {
        let dir = temp();
        let store = Store::open(&dir).expect("open");
        let (w, created) = store.put(resource("a"), true).expect("create");
        assert_eq!(w, Written::Created);
        let m = created.metadata();
        assert_eq!(
            (m.resource_version.as_deref(), m.generation),
            (Some("1"), Some(1))
        );
        assert!(
            m.uid.is_some()
                && m.creation_timestamp
                    .as_deref()
                    .is_some_and(|t| t.ends_with('Z'))
        );
        assert_eq!(
            store.put(resource("a"), false).expect("same").0,
            Written::Unchanged
        );
        let (w, updated) = store.put(resource("b"), false).expect("update");
        assert_eq!(w, Written::Configured);
        assert_eq!(
            (
                updated.metadata().resource_version.as_deref(),
                updated.metadata().generation
            ),
            (Some("2"), Some(2))
        );
        assert_eq!(updated.metadata().uid, m.uid);
        let mut stale = resource("c");
        stale.metadata_mut().resource_version = Some("1".into());
        assert!(matches!(
            store.put(stale, false),
            Err(StoreError::Conflict { .. })
        ));
        drop(store);
        let reopened = Store::open(&dir).expect("reopen");
        let key = Key::of(&resource("x"));
        assert_eq!(
            reopened.get(&key).map(|r| spec_json(&r)),
            Some(serde_json::json!({"host": "b"}))
        );
        let (_, next) = reopened
            .put(resource("d"), false)
            .expect("update after reopen");
        let after_restart: u64 = next
            .metadata()
            .resource_version
            .as_deref()
            .and_then(|v| v.parse().ok())
            .expect("a version");
        assert!(after_restart > 2, "versions continue after a restart");
        let deleted = reopened.delete(&key).expect("delete");
        assert_eq!(
            deleted.metadata().resource_version,
            Some((after_restart + 1).to_string()),
            "a deletion takes the next version"
        );
        assert_eq!(reopened.version(), after_restart + 1);
        drop(reopened);
        // The deleted resource held the highest version: a restart must not hand it out again.
        let again = Store::open(&dir).expect("reopen");
        assert!(again.get(&key).is_none());
        let (_, recreated) = again.put(resource("e"), true).expect("recreate");
        let version: u64 = recreated
            .metadata()
            .resource_version
            .as_deref()
            .and_then(|v| v.parse().ok())
            .expect("a version");
        assert!(
            version > after_restart,
            "version {version} was handed out before ({after_restart})"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000)),
            "2026-11-18T11:06:40Z"
        );
    }
}
