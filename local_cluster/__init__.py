"""Simulated local k3s cluster (emulated Kubernetes API, fake kubelet/scheduler, metrics)."""
from local_cluster.kubeapi import KubeAPI, KubeAPIHandler
from local_cluster.kubeapi_errors import (AlreadyExists, ApiError, BadRequest, Conflict, Invalid, NotFound,
                                          TooManyRequests)
from local_cluster.kubeapi_store import KubeEvent, ObjectStore

__all__ = ["KubeAPI", "KubeAPIHandler", "ObjectStore", "KubeEvent", "ApiError", "NotFound", "AlreadyExists",
           "Conflict", "TooManyRequests", "BadRequest", "Invalid"]
