"""Kubernetes objects as the API server knows them: dataclasses, manifests in and out,
validation with the API server's messages, and the allocators."""
from .endpointslice import (Endpoint, EndpointConditions, EndpointPort, Endpoints, EndpointSlice)
from .errors import FieldError, InternalError, ValidationError
from .manifest import ManifestError, dump, load
from .meta import ObjectMeta
from .node import Node
from .pod import Container, ContainerPort, Pod
from .service import LoadBalancerIngress, Service, ServicePort
from .workloads import Deployment, LabelSelector, StatefulSet

__all__ = ["Container", "ContainerPort", "Deployment", "Endpoint", "EndpointConditions", "EndpointPort",
           "Endpoints", "EndpointSlice", "FieldError", "InternalError", "LabelSelector", "LoadBalancerIngress",
           "ManifestError", "Node", "ObjectMeta", "Pod", "Service", "ServicePort", "StatefulSet",
           "ValidationError", "dump", "load"]
