"""Regenerate kslib/data/sample_node_iptables_save.txt: a genuine ``iptables-save`` of worker-1 of the
sample cluster (kslib/data/sample_cluster.yaml).

1. kslib loads the sample and renders worker-1's kube-proxy rules (iptables mode, with
   ``--random-fully``, which a real kube-proxy adds when its iptables supports it, as 1.8.9 does);
2. the chains a real node has beside kube-proxy's are added: kubelet's (KUBE-IPTABLES-HINT,
   KUBE-KUBELET-CANARY in mangle, nat and filter, its KUBE-FIREWALL jumps, which end up below
   kube-proxy's prepended jumps), kube-proxy's monitor canary (KUBE-PROXY-CANARY), and flannel's
   (FLANNEL-FWD in filter and, for ``flanneld --ip-masq``, FLANNEL-POSTRTG in nat);
3. the text goes through a real ``iptables-restore`` and ``iptables-save`` in a scratch network
   namespace ``kslib-sample-<pid>`` (root needed), created here and always deleted, with kube-proxy's
   nfacct counters created first;
4. the dates of iptables-save's "Generated"/"Completed" comment lines are fixed (so the file does not
   change at every run) and a header says how the file was made.

Run: ``sudo .venv/bin/python scripts/make_sample_node_dump.py`` (``--check``: compare with the
committed file instead of writing it; exit 1 if they differ).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import kslib.snapshot as ks  # noqa: E402

NODE = ks.SAMPLE_NODE
OUT = ks.SAMPLE_NODE_DUMP
DATE = "Thu Feb 12 10:31:20 2026"        # just after the sample dump was taken
HEADER = f"""\
# kslib sample: iptables-save of {NODE}, a worker of the sample cluster (kslib/data/sample_cluster.yaml).
# Made by scripts/make_sample_node_dump.py: kslib rendered the node's kube-proxy rules (iptables mode,
# MASQUERADE --random-fully as kube-proxy writes it when iptables supports it), kubelet's chains
# (KUBE-IPTABLES-HINT, KUBE-KUBELET-CANARY, the KUBE-FIREWALL jumps), kube-proxy's KUBE-PROXY-CANARY
# and flannel's (FLANNEL-FWD, FLANNEL-POSTRTG for flanneld --ip-masq) were added, and the text went
# through a real iptables-restore and iptables-save (v1.8.9, nf_tables) in a scratch network namespace.
# Only the dates of the Generated/Completed lines were fixed afterwards.
"""
BUILTIN = {"mangle": ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
           "filter": ["INPUT", "FORWARD", "OUTPUT"],
           "nat": ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]}


def tables(text: str) -> dict[str, tuple[list[str], list[str]]]:
    """iptables-restore text -> table -> (chain lines, rule lines)."""
    out, cur = {}, None
    for line in text.splitlines():
        if line.startswith("*"):
            cur = out.setdefault(line[1:], ([], []))
        elif line.startswith(":"):
            cur[0].append(line)
        elif line.startswith("-A"):
            cur[1].append(line)
    return out


def node_text(cluster) -> str:
    """The node's full restore input: kube-proxy's rules plus kubelet's, the canary and flannel's."""
    pod_cidr = cluster.get("node", NODE).pod_cidr
    net = cluster.cluster_cidr
    t = tables(cluster.render(NODE))
    t["mangle"] = ([f":{c} ACCEPT [0:0]" for c in BUILTIN["mangle"]], [])
    extra = {"mangle": ["KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY", "KUBE-PROXY-CANARY"],
             "filter": ["FLANNEL-FWD", "KUBE-KUBELET-CANARY", "KUBE-PROXY-CANARY"],
             "nat": ["FLANNEL-POSTRTG", "KUBE-KUBELET-CANARY", "KUBE-PROXY-CANARY"]}
    for table, chains in extra.items():
        t[table][0].extend(f":{c} - [0:0]" for c in chains)
    chains, rules = t["filter"]
    # kubelet prepended its KUBE-FIREWALL jumps first; kube-proxy's prepends later went above them
    firewall = [r for r in rules if r in ("-A INPUT -j KUBE-FIREWALL", "-A OUTPUT -j KUBE-FIREWALL")]
    rules = [r for r in rules if r not in firewall]
    for r in firewall:
        chain = r.split()[1]
        last = max(i for i, x in enumerate(rules) if x.split()[1] == chain)
        rules.insert(last + 1, r)
    fwd = max(i for i, x in enumerate(rules) if x.split()[1] == "FORWARD")
    rules.insert(fwd + 1, '-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD')
    rules += [f'-A FLANNEL-FWD -s {net} -m comment --comment "flanneld forward" -j ACCEPT',
              f'-A FLANNEL-FWD -d {net} -m comment --comment "flanneld forward" -j ACCEPT']
    t["filter"] = (chains, rules)
    chains, rules = t["nat"]
    post = max(i for i, x in enumerate(rules) if x.split()[1] == "POSTROUTING")
    rules.insert(post + 1, '-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG')
    masq = '-m comment --comment "flanneld masq"'
    rules += [f"-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 {masq} -j RETURN",
              f"-A FLANNEL-POSTRTG -s {pod_cidr} -d {net} {masq} -j RETURN",
              f"-A FLANNEL-POSTRTG -s {net} -d {pod_cidr} {masq} -j RETURN",
              f"-A FLANNEL-POSTRTG ! -s {net} -d {pod_cidr} {masq} -j RETURN",
              f"-A FLANNEL-POSTRTG -s {net} ! -d 224.0.0.0/4 {masq} -j MASQUERADE --random-fully",
              f"-A FLANNEL-POSTRTG ! -s {net} -d {net} {masq} -j MASQUERADE --random-fully"]
    t["nat"] = (chains, rules)
    out = []
    for table in ("mangle", "filter", "nat"):
        chains, rules = t[table]
        out += [f"*{table}", *chains, *rules, "COMMIT"]
    return "\n".join(out) + "\n"


def run(*argv: str, input: str | None = None) -> str:
    done = subprocess.run(list(argv), input=input, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed (exit {done.returncode}): {done.stderr.strip()}")
    return done.stdout


def through_the_kernel(text: str) -> str:
    """iptables-restore, then iptables-save, in a network namespace of our own."""
    ns = f"kslib-sample-{os.getpid()}"
    run("ip", "netns", "add", ns)
    try:
        for counter in sorted(set(re.findall(r"--nfacct-name (\S+)", text))):
            run("ip", "netns", "exec", ns, "nfacct", "add", counter)
        run("ip", "netns", "exec", ns, "iptables-restore", input=text)
        return run("ip", "netns", "exec", ns, "iptables-save")
    finally:
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True)


def main() -> int:
    cluster = ks.load("sample", proxy_options={"random_fully": True})
    saved = through_the_kernel(node_text(cluster))
    if not saved.startswith("# Generated by iptables-save v1.8.9 (nf_tables)"):
        raise SystemExit("expected iptables-save v1.8.9 (nf_tables) output, got: " + saved.splitlines()[0])
    saved = re.sub(r"^(# (?:Generated by iptables-save v\S+ \(nf_tables\)|Completed) on ).*$", rf"\g<1>{DATE}",
                   saved, flags=re.M)
    text = HEADER + saved
    if "--check" in sys.argv[1:]:
        same = OUT.exists() and OUT.read_text() == text
        print(f"{OUT}: {'up to date' if same else 'DIFFERS from a fresh run'}")
        return 0 if same else 1
    OUT.write_text(text)
    print(f"wrote {OUT} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
