//! The resource registry: which (group, version, resource) the server serves, built from a
//! static table of built-in kinds plus every established CustomResourceDefinition.

use std::sync::Arc;

use serde_json::{Value, json};

/// One served resource in one API version.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Whether the `status` subresource exists: main-resource writes then leave status alone.
    pub has_status: bool,
    /// Whether the `scale` subresource exists (autoscaling/v1 Scale over `spec.replicas`).
    pub has_scale: bool,
    /// Custom resources differ from built-ins in a few server behaviours (e.g. unconditional
    /// updates are refused).
    pub custom: bool,
    /// CRD `additionalPrinterColumns` for this version (used for Table output).
    pub printer_columns: Vec<Value>,
    /// CRD `openAPIV3Schema` for this version (used for pruning and strict validation).
    pub schema: Option<Value>,
}

impl ResourceInfo {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The name the API uses in error messages: `pods`, `helmreleases.helm.toolkit.fluxcd.io`.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

/// Storage identity of a resource: versions of one group/resource share their objects.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    all: bool,
}

#[allow(clippy::too_many_arguments)]
const fn b(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    all: bool,
) -> Builtin {
    Builtin {
        group,
        version,
        kind,
        plural,
        namespaced,
        short,
        status,
        all,
    }
}

#[rustfmt::skip]
const BUILTINS: &[Builtin] = &[
    b("", "v1", "Namespace", "namespaces", false, &["ns"], true, false),
    b("", "v1", "Node", "nodes", false, &["no"], true, false),
    b("", "v1", "Pod", "pods", true, &["po"], true, true),
    b("", "v1", "Service", "services", true, &["svc"], true, true),
    b("", "v1", "Endpoints", "endpoints", true, &["ep"], false, false),
    b("", "v1", "ConfigMap", "configmaps", true, &["cm"], false, false),
    b("", "v1", "Secret", "secrets", true, &[], false, false),
    b("", "v1", "ServiceAccount", "serviceaccounts", true, &["sa"], false, false),
    b("", "v1", "PersistentVolume", "persistentvolumes", false, &["pv"], true, false),
    b("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true, &["pvc"], true, false),
    b("", "v1", "Event", "events", true, &["ev"], false, false),
    b("storage.k8s.io", "v1", "StorageClass", "storageclasses", false, &["sc"], false, false),
    b("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", true, &[], false, false),
    b("apps", "v1", "Deployment", "deployments", true, &["deploy"], true, true),
    b("apps", "v1", "StatefulSet", "statefulsets", true, &["sts"], true, true),
    b("apps", "v1", "DaemonSet", "daemonsets", true, &["ds"], true, true),
    b("apps", "v1", "ReplicaSet", "replicasets", true, &["rs"], true, true),
    b("batch", "v1", "Job", "jobs", true, &[], true, true),
    b("batch", "v1", "CronJob", "cronjobs", true, &["cj"], true, true),
    b("networking.k8s.io", "v1", "Ingress", "ingresses", true, &["ing"], true, false),
    b("networking.k8s.io", "v1", "IngressClass", "ingressclasses", false, &[], false, false),
    b("events.k8s.io", "v1", "Event", "events", true, &["ev"], false, false),
    b("coordination.k8s.io", "v1", "Lease", "leases", true, &[], false, false),
    b("rbac.authorization.k8s.io", "v1", "Role", "roles", true, &[], false, false),
    b("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true, &[], false, false),
    b("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false, &[], false, false),
    b("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false, &[], false, false),
    b("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", false, &["crd", "crds"], true, false),
    b("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy", "validatingadmissionpolicies", false, &[], true, false),
    b("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicyBinding", "validatingadmissionpolicybindings", false, &[], false, false),
    b("snapshot.storage.k8s.io", "v1", "VolumeSnapshot", "volumesnapshots", true, &["vs"], true, false),
    b("snapshot.storage.k8s.io", "v1", "VolumeSnapshotClass", "volumesnapshotclasses", false, &["vsclass", "vsclasses"], false, false),
    b("snapshot.storage.k8s.io", "v1", "VolumeSnapshotContent", "volumesnapshotcontents", false, &["vsc", "vscs"], true, false),
    // Further kinds real homelab manifests (Longhorn, Flux, cert-manager installs) carry.
    b("", "v1", "ResourceQuota", "resourcequotas", true, &["quota"], true, false),
    b("", "v1", "LimitRange", "limitranges", true, &["limits"], false, false),
    b("", "v1", "ReplicationController", "replicationcontrollers", true, &["rc"], true, true),
    b("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", false, &["pc"], false, false),
    b("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true, &["netpol"], false, false),
    b("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true, &["pdb"], true, false),
    b("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true, &["hpa"], true, true),
    b("storage.k8s.io", "v1", "CSIDriver", "csidrivers", false, &[], false, false),
    b("storage.k8s.io", "v1", "VolumeAttachment", "volumeattachments", false, &[], true, false),
    b("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", false, &[], false, false),
    b("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", false, &[], false, false),
    b("apiregistration.k8s.io", "v1", "APIService", "apiservices", false, &[], true, false),
    b("flowcontrol.apiserver.k8s.io", "v1", "FlowSchema", "flowschemas", false, &[], true, false),
    b("flowcontrol.apiserver.k8s.io", "v1", "PriorityLevelConfiguration", "prioritylevelconfigurations", false, &[], true, false),
];

/// The served resources, in discovery order.
#[derive(Debug, Clone)]
pub struct Registry {
    resources: Vec<Arc<ResourceInfo>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Registry {
    pub fn builtin() -> Self {
        let resources = BUILTINS
            .iter()
            .map(|r| {
                Arc::new(ResourceInfo {
                    group: r.group.to_string(),
                    version: r.version.to_string(),
                    kind: r.kind.to_string(),
                    plural: r.plural.to_string(),
                    singular: r.kind.to_ascii_lowercase(),
                    namespaced: r.namespaced,
                    short_names: r.short.iter().map(|s| s.to_string()).collect(),
                    categories: if r.all {
                        vec!["all".to_string()]
                    } else {
                        vec![]
                    },
                    has_status: r.status,
                    has_scale: r.group == "apps" && r.plural != "daemonsets",
                    custom: false,
                    printer_columns: vec![],
                    schema: None,
                })
            })
            .collect();
        Registry { resources }
    }

    pub fn all(&self) -> &[Arc<ResourceInfo>] {
        &self.resources
    }

    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    pub fn lookup_kind(&self, group: &str, version: &str, kind: &str) -> Option<Arc<ResourceInfo>> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
            .cloned()
    }

    /// Whether any served version belongs to this group/resource.
    pub fn serves(&self, gr: &GroupResource) -> bool {
        self.resources
            .iter()
            .any(|r| r.group == gr.group && r.plural == gr.resource)
    }

    /// Groups in discovery order, each with its versions (preferred first).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for r in &self.resources {
            match out.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) => {
                    if !versions.contains(&r.version) {
                        versions.push(r.version.clone());
                    }
                }
                None => out.push((r.group.clone(), vec![r.version.clone()])),
            }
        }
        out
    }

    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a Arc<ResourceInfo>> + 'a {
        self.resources
            .iter()
            .filter(move |r| r.group == group && r.version == version)
    }

    /// Replaces whatever a CRD served before with what it serves now.
    pub fn set_crd(&mut self, gr: &GroupResource, infos: Vec<ResourceInfo>) {
        self.remove_crd(gr);
        self.resources.extend(infos.into_iter().map(Arc::new));
    }

    pub fn remove_crd(&mut self, gr: &GroupResource) {
        self.resources
            .retain(|r| !(r.custom && r.group == gr.group && r.plural == gr.resource));
    }
}

/// Why a CRD object cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CrdError {
    pub field: String,
    pub message: String,
}

fn crd_err(field: &str, message: impl Into<String>) -> CrdError {
    CrdError {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Reads what a CRD serves; the same checks the real server makes on the fields we rely on.
pub fn crd_resources(crd: &Value) -> Result<(GroupResource, Vec<ResourceInfo>), CrdError> {
    let spec = crd
        .get("spec")
        .and_then(Value::as_object)
        .ok_or_else(|| crd_err("spec", "Required value"))?;
    let group = spec
        .get("group")
        .and_then(Value::as_str)
        .filter(|g| !g.is_empty())
        .ok_or_else(|| crd_err("spec.group", "Required value"))?;
    if !group.contains('.') {
        return Err(crd_err(
            "spec.group",
            format!("Invalid value: \"{group}\": should be a domain with at least one dot"),
        ));
    }
    let names = spec
        .get("names")
        .and_then(Value::as_object)
        .ok_or_else(|| crd_err("spec.names", "Required value"))?;
    let plural = names
        .get("plural")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| crd_err("spec.names.plural", "Required value"))?;
    let kind = names
        .get("kind")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| crd_err("spec.names.kind", "Required value"))?;
    let singular = names
        .get("singular")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_ascii_lowercase());
    let strings = |key: &str| -> Vec<String> {
        names
            .get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let short_names = strings("shortNames");
    let categories = strings("categories");
    let expected_name = format!("{plural}.{group}");
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if name != expected_name {
        return Err(crd_err(
            "metadata.name",
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let namespaced = match spec.get("scope").and_then(Value::as_str) {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        Some(other) => {
            return Err(crd_err(
                "spec.scope",
                format!(
                    "Unsupported value: \"{other}\": supported values: \"Cluster\", \"Namespaced\""
                ),
            ));
        }
        None => return Err(crd_err("spec.scope", "Required value")),
    };
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            crd_err(
                "spec.versions",
                "Required value: must have exactly one version marked as storage version",
            )
        })?;
    let storage_count = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if storage_count != 1 {
        return Err(crd_err(
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version",
        ));
    }
    let mut infos = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let vname = v
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| crd_err(&format!("spec.versions[{i}].name"), "Required value"))?;
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let has_status = v.pointer("/subresources/status").is_some()
            || spec
                .get("subresources")
                .and_then(|s| s.get("status"))
                .is_some();
        let printer_columns = v
            .get("additionalPrinterColumns")
            .or_else(|| spec.get("additionalPrinterColumns"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        infos.push(ResourceInfo {
            group: group.to_string(),
            version: vname.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            singular: singular.clone(),
            namespaced,
            short_names: short_names.clone(),
            categories: categories.clone(),
            has_status,
            has_scale: false,
            custom: true,
            printer_columns,
            schema: v
                .pointer("/schema/openAPIV3Schema")
                .or_else(|| {
                    spec.get("validation")
                        .and_then(|x| x.get("openAPIV3Schema"))
                })
                .cloned(),
        });
    }
    Ok((
        GroupResource {
            group: group.to_string(),
            resource: plural.to_string(),
        },
        infos,
    ))
}

/// The `status` a real server reports for a CRD it serves.
pub fn crd_established_status(crd: &Value, now: &str) -> Value {
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    json!({
        "acceptedNames": names,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
        "storedVersions": stored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}},
                    {"name": "v1beta1", "served": true, "storage": false},
                    {"name": "v1alpha1", "served": false, "storage": false}
                ]}
        })
    }

    #[test]
    fn crd_serves_every_served_version() {
        let (gr, infos) = crd_resources(&crd()).unwrap();
        assert_eq!(gr.resource, "widgets");
        let versions: Vec<_> = infos.iter().map(|i| i.version.as_str()).collect();
        assert_eq!(versions, ["v1", "v1beta1"]);
        assert!(infos[0].has_status);
        assert!(!infos[1].has_status);
        assert_eq!(infos[0].singular, "widget");
    }

    #[test]
    fn crd_name_must_match() {
        let mut c = crd();
        c["metadata"]["name"] = json!("gadgets.example.com");
        let err = crd_resources(&c).unwrap_err();
        assert_eq!(err.field, "metadata.name");
    }

    #[test]
    fn registry_add_and_remove_crd() {
        let mut reg = Registry::builtin();
        let (gr, infos) = crd_resources(&crd()).unwrap();
        reg.set_crd(&gr, infos);
        assert!(reg.lookup("example.com", "v1beta1", "widgets").is_some());
        assert!(reg.serves(&gr));
        reg.remove_crd(&gr);
        assert!(!reg.serves(&gr));
        assert!(reg.lookup("", "v1", "pods").is_some());
    }
}
