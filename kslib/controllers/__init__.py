"""Controllers: what turns objects into other objects (workloads into Pods, Services and Pods
into EndpointSlices)."""
