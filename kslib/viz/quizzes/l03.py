"""Lesson 03 (EndpointSlices): the knowledge check. tests/test_lesson_03_08.py derives the keys from the model."""
from ..quiz import Question, Quiz

QUIZ = Quiz("Check: EndpointSlices", (
    Question("Which component turns a Service's selector into endpoints?",
             ("kube-proxy, on every node", "The EndpointSlice controller in kube-controller-manager",
              "CoreDNS", "The kubelet of each selected pod"),
             1, "The EndpointSlice controller alone runs the selector; kube-proxy reads the slices it writes "
                "and never looks at pods (a hand-written slice for a selector-less Service routes just the same)."),
    Question("A pod's readiness probe starts failing. What happens to its endpoint?",
             ("It is removed from the EndpointSlice at once",
              "It stays in the slice with ready=false, and kube-proxy sends it no new connections",
              "It stays with ready=true until the pod is deleted",
              "kube-proxy checks the pod and removes the endpoint itself"),
             1, "The endpoint stays, with ready=false and serving=false; kube-proxy only routes new "
                "connections to ready endpoints."),
    Question("A Service selects 250 ready pods. How many EndpointSlices does the controller keep with the "
             "default --max-endpoints-per-slice?",
             ("1", "2", "3", "250"),
             2, "At most 100 endpoints per slice: 100 + 100 + 50."),
    Question("In a Service of 1,010 pods one pod turns not ready. What do the controllers rewrite?",
             ("One slice of at most 100 endpoints, and the whole Endpoints object of 1,000 addresses, "
              "several times bigger",
              "Only the changed endpoint, under both schemes",
              "Every slice of the Service, and the whole Endpoints object",
              "Nothing: kube-proxy checks readiness itself"),
             0, "One change rewrites one slice; the Endpoints object is rewritten whole (and truncated at 1,000 "
                "addresses). The model measures the Endpoints write at more than 3 times the slice write."),
    Question("During a rolling update, new pods turn ready one at a time. Which scheme sends more bytes to "
             "each node?",
             ("EndpointSlices", "Endpoints", "They send the same"),
             1, "Each change rewrites the whole Endpoints object but only one or two slices; when a whole "
                "step reaches the controllers at once, though, slices can cost as much or more."),
))
