"""The node's network stack: iptables rules parsed and compiled, and the numba engine that walks them
(hooks in kernel order, conntrack, NAT, routing between nodes)."""
