"""Lesson 4: kube-proxy's iptables mode."""
from ..quiz import Question, Quiz

QUIZ = Quiz("Check: kube-proxy's iptables mode", (
    Question("A Service has 4 ready endpoints. Which --probability does kube-proxy write on the second "
             "jump rule of its KUBE-SVC chain?",
             ("0.2500000000", "0.3333333333", "0.5000000000", "none: that rule is unconditional"), 1,
             "Rule i of n gets 1/(n-i): 1/4, then 1/3, then 1/2, then an unconditional jump. Reaching the second "
             "rule has probability 3/4, and 3/4 x 1/3 = 1/4: every endpoint gets the same share."),
    Question("In iptables mode, how many nat rules does one more ClusterIP Service port with 10 ready "
             "endpoints add?",
             ("10", "21", "32", "1, its KUBE-SERVICES rule"), 2,
             "2 + 3E: the KUBE-SERVICES rule, the masquerade rule and 10 jumps in KUBE-SVC, and 2 rules "
             "(hairpin masquerade, DNAT) in each of the 10 KUBE-SEP chains."),
    Question("A new connection goes to the Service whose rule is 500th in KUBE-SERVICES. How many "
             "KUBE-SERVICES rules is its first packet compared with?",
             ("1: the kernel looks the address up in a hash", "500: the 499 above it, then its own",
              "all of them, whichever matches", "none: conntrack decides"), 1,
             "netfilter walks a chain in order and stops at the first matching rule with a terminating "
             "jump; later packets of the connection skip the nat table (conntrack holds the translation)."),
    Question("300 long-lived streams are open on 3 pods (iptables mode). You scale to 4 pods and open 300 "
             "more. About how many streams does the new pod hold?",
             ("0", "about 75", "about 150", "about 300"), 1,
             "Each new stream picks a pod at random with probability 1/4, so the new pod gets about "
             "300/4 = 75; the old streams never move, so the old pods keep about 100 + 75 each."),
    Question("One Service's endpoints change. What does kube-proxy's next partial sync (KEP-3453) send to "
             "iptables-restore?",
             ("only that Service's KUBE-SVC and KUBE-SEP chains",
              "that Service's chains plus the top-level chains such as KUBE-SERVICES, rewritten whole",
              "every chain and rule, as a full sync does",
              "nothing until the hourly full sync"), 1,
             "Top-level chains are written on every sync; per-Service chains only for the Services that "
             "changed. So a partial payload still grows with the number of Services."),
))
