"""Static registry of the Kubernetes resources served by the emulated API.

Each :class:`ResourceType` describes one REST resource the same way the real
API discovery (``/api/v1``, ``/apis/<group>/<version>``) does: group, version,
plural name, kind, scope (namespaced or cluster-scoped), verbs, short names,
subresources, and which ``fieldSelector`` labels the real kube-apiserver
accepts for it (``metadata.name`` and ``metadata.namespace`` always).
"""
from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core (legacy) group
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # e.g. ("status",)
    field_labels: tuple[str, ...] = ()  # besides metadata.name / metadata.namespace
    has_spec_generation: bool = True  # metadata.generation bumps on spec (non-status) changes
    default_status: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def key(self) -> tuple[str, str, str]:
        """Identity of the resource inside the store: (group, version, plural)."""
        return (self.group, self.version, self.plural)

    def collection_path(self, namespace: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"

    def supported_field_labels(self) -> tuple[str, ...]:
        base = ("metadata.name", "metadata.namespace") if self.namespaced else ("metadata.name",)
        return base + self.field_labels


POD_FIELDS = (
    "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
    "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName",
)
EVENT_FIELDS = (
    "involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
    "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
    "reason", "reportingComponent", "source", "type",
)

RESOURCES: tuple[ResourceType, ...] = (
    # core/v1
    ResourceType("", "v1", "namespaces", "Namespace", False, "namespace", ("ns",),
                 subresources=("status", "finalize"), has_spec_generation=False),
    ResourceType("", "v1", "nodes", "Node", False, "node", ("no",), subresources=("status",),
                 field_labels=("spec.unschedulable",), has_spec_generation=False),
    ResourceType("", "v1", "pods", "Pod", True, "pod", ("po",), categories=("all",),
                 subresources=("status", "eviction", "binding"), field_labels=POD_FIELDS,
                 has_spec_generation=False),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", True, "serviceaccount", ("sa",),
                 has_spec_generation=False),
    ResourceType("", "v1", "configmaps", "ConfigMap", True, "configmap", ("cm",), has_spec_generation=False),
    ResourceType("", "v1", "secrets", "Secret", True, "secret", field_labels=("type",), has_spec_generation=False),
    ResourceType("", "v1", "services", "Service", True, "service", ("svc",), categories=("all",),
                 subresources=("status",), has_spec_generation=False),
    ResourceType("", "v1", "events", "Event", True, "event", ("ev",), field_labels=EVENT_FIELDS,
                 has_spec_generation=False),
    ResourceType("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, "persistentvolumeclaim",
                 ("pvc",), subresources=("status",), has_spec_generation=False),
    # apps/v1
    ResourceType("apps", "v1", "daemonsets", "DaemonSet", True, "daemonset", ("ds",), categories=("all",),
                 subresources=("status",)),
    ResourceType("apps", "v1", "deployments", "Deployment", True, "deployment", ("deploy",),
                 categories=("all",), subresources=("status", "scale")),
    ResourceType("apps", "v1", "replicasets", "ReplicaSet", True, "replicaset", ("rs",), categories=("all",),
                 subresources=("status", "scale"), field_labels=("status.replicas",)),
    # batch/v1
    ResourceType("batch", "v1", "cronjobs", "CronJob", True, "cronjob", ("cj",), categories=("all",),
                 subresources=("status",)),
    ResourceType("batch", "v1", "jobs", "Job", True, "job", categories=("all",), subresources=("status",),
                 field_labels=("status.successful",)),
    # policy/v1
    ResourceType("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, "poddisruptionbudget",
                 ("pdb",), subresources=("status",)),
    # rbac.authorization.k8s.io/v1
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False, "clusterrole",
                 has_spec_generation=False),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False,
                 "clusterrolebinding", has_spec_generation=False),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role", True, "role", has_spec_generation=False),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True, "rolebinding",
                 has_spec_generation=False),
    # coordination.k8s.io/v1
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True, "lease", has_spec_generation=False),
)

# Preferred order of API groups in /apis discovery.
GROUP_ORDER: tuple[str, ...] = ("apps", "batch", "policy", "rbac.authorization.k8s.io", "coordination.k8s.io")


class ResourceRegistry:
    """Lookups of :class:`ResourceType` by (apiVersion, kind) or (group/version, plural/singular/short)."""

    def __init__(self, resources: tuple[ResourceType, ...] = RESOURCES):
        self.resources = tuple(resources)
        self._by_gv_plural: dict[tuple[str, str], ResourceType] = {}
        self._by_gv_kind: dict[tuple[str, str], ResourceType] = {}
        self._by_gv_alias: dict[tuple[str, str], ResourceType] = {}
        for res in self.resources:
            gv = res.api_version
            self._by_gv_plural[(gv, res.plural)] = res
            self._by_gv_kind[(gv, res.kind)] = res
            for alias in (res.plural, res.singular, res.kind.lower(), *res.short_names):
                if alias:
                    self._by_gv_alias[(gv, alias)] = res

    def by_plural(self, api_version: str, plural: str) -> ResourceType | None:
        return self._by_gv_plural.get((api_version, plural))

    def lookup(self, api_version: str, kind_or_resource: str) -> ResourceType | None:
        """Find by exact kind ("Pod"), plural ("pods"), singular ("pod") or short name ("po")."""
        return (self._by_gv_kind.get((api_version, kind_or_resource))
                or self._by_gv_alias.get((api_version, kind_or_resource))
                or self._by_gv_alias.get((api_version, kind_or_resource.lower())))

    def groups(self) -> dict[str, list[str]]:
        """Non-core groups -> versions, in discovery order."""
        out: dict[str, list[str]] = {}
        for group in GROUP_ORDER:
            for res in self.resources:
                if res.group == group and res.version not in out.setdefault(group, []):
                    out[group].append(res.version)
        for res in self.resources:  # groups not in GROUP_ORDER
            if res.group and res.version not in out.setdefault(res.group, []):
                out[res.group].append(res.version)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [r for r in self.resources if r.group == group and r.version == version]
