"""Lesson 12: topology-aware routing."""
from ..quiz import Question, Quiz

QUIZ = Quiz("Check: topology-aware routing", (
    Question("Three zones with equal allocatable CPU. A Service annotated topology-mode: Auto has 2, 1 and 1 ready "
             "pods in them. What does the EndpointSlice controller do?",
             ("hints every endpoint for its own zone",
              "drops all hints: the minima (2 per zone) add up to more than the 4 endpoints",
              "hints zone-a's pods for the other zones", "deletes the Service's slices"), 1,
             "desired = 4/3 per zone, minimum = ceil(4/3 / 1.2) = 2 per zone, 6 > 4: 'Unable to allocate minimum "
             "required endpoints to each zone without exceeding overload threshold'. Every hint is removed."),
    Question("Three zones, two pods in each, clients spread evenly, no hints. About what share of the bytes "
             "crosses a zone boundary?",
             ("none", "about one third", "about two thirds", "all of it"), 2,
             "kube-proxy picks among all six endpoints; four of them are in another zone, so about 4/6 of "
             "connections (and their bytes) cross."),
    Question("The same cluster with topology-mode: Auto and hints kept. What does node-a's kube-proxy program "
             "for the Service?",
             ("all six endpoints, with zone-a's preferred", "only the two endpoints hinted for zone-a",
              "only the endpoints on node-a", "nothing: the Service is handled by the cloud load balancer"), 1,
             "kube-proxy keeps only the endpoints whose hints name its node's zone (when every ready endpoint has "
             "a hint and one names the zone); no byte crosses a zone."),
    Question("A worker node without the topology.kubernetes.io/zone label joins the cluster. What happens to "
             "Services using topology-mode: Auto?",
             ("nothing: that node's endpoints are just skipped",
              "their hints are dropped ('Insufficient Node information'), and routing is cluster-wide",
              "the node is put in zone-a", "the API server refuses the Node"), 1,
             "One ready, non-control-plane node without a zone (or without allocatable CPU) voids the controller's "
             "census, so it hints nothing and records a TopologyAwareHintsDisabled Warning."),
    Question("At $0.01/GB in each direction (AWS between availability zones), what do 1,000 GB that cross zones "
             "cost?",
             ("$10", "$20", "$0", "$100"), 1,
             "Each GB is billed leaving one zone and again entering the other: 1,000 x $0.02 = $20."),
))
