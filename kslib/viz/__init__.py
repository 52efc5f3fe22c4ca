"""Views for the lessons: text tables as kubectl prints them (and, later, plotly figures and
widgets). Views read model state; they hold no logic of their own."""
from .tables import get_endpointslices, get_pods, get_services

__all__ = ["get_endpointslices", "get_pods", "get_services"]
