"""Numeric codes shared by the compiled tables, the numba kernels and the Python reference."""

# netfilter hooks and the tables registered on them, in the kernel's priority order
PRE, INPUT, FORWARD, OUTPUT, POST = range(5)
HOOK_NAMES = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")
RAW, MANGLE, NAT, FILTER = range(4)
TABLE_NAMES = ("raw", "mangle", "nat", "filter")
# (hook, table) pairs in the order a packet meets them (NF_IP_PRI_RAW < MANGLE < NAT_DST < FILTER < NAT_SRC)
HOOK_TABLES = {
    PRE: (RAW, MANGLE, NAT),
    INPUT: (MANGLE, FILTER, NAT),
    FORWARD: (MANGLE, FILTER),
    OUTPUT: (RAW, MANGLE, NAT, FILTER),
    POST: (MANGLE, NAT),
}

# interfaces of a node, as a bit each: the loopback, the node network, the pods' bridge
IF_LO, IF_ETH0, IF_CNI0 = 1, 2, 4
IF_ALL = 7
IF_NAMES = {"lo": IF_LO, "eth0": IF_ETH0, "cni0": IF_CNI0}

# the stages a hook runs, in priority order: chains (>= 0), and the kernel's own steps
STAGE_END, STAGE_NAT, STAGE_IPVS = -1, -2, -3
STAGES = 10                  # room per hook
# priorities (include/uapi/linux/netfilter_ipv4.h NF_IP_PRI_*; nft's named priorities are the same numbers)
TABLE_PRIORITY = {"raw": -300, "mangle": -150, "nat": -100, "filter": 0, "security": 50}
NAT_PRIORITY = {PRE: -100, OUTPUT: -100, INPUT: 100, POST: 100}     # NF_IP_PRI_NAT_DST / NAT_SRC
# ip_vs_core.c ip_vs_ops4: ip_vs_remote_request4 at LOCAL_IN NAT_SRC - 1, ip_vs_local_request4 at
# LOCAL_OUT NAT_DST + 2 (after filtering, "so that filtering rules can be applied to IPVS")
IPVS_PRIORITY = {INPUT: 99, OUTPUT: -98}

# rule targets
T_NONE, T_JUMP, T_GOTO, T_RETURN, T_ACCEPT, T_DROP, T_REJECT, T_DNAT, T_SNAT, T_MASQ, T_MARK, T_LOG, \
    T_VMAP, T_NUMGEN, T_UPDATE = range(15)
TARGET_CODES = {"ACCEPT": T_ACCEPT, "DROP": T_DROP, "REJECT": T_REJECT, "RETURN": T_RETURN, "DNAT": T_DNAT,
                "SNAT": T_SNAT, "MASQUERADE": T_MASQ, "MARK": T_MARK, "LOG": T_LOG}

# match operations
M_DPORT, M_SPORT, M_PORTS, M_SRCTYPE, M_DSTTYPE, M_MARK, M_CTSTATE, M_RANDOM, M_NTH, M_RECENT, M_NEVER, \
    M_SET, M_CIDRS = range(13)
RECENT_MODES = {"set": 0, "rcheck": 1, "update": 2, "remove": 3}
RECENT_SIZE = 100        # xt_recent ip_list_tot: a table remembers at most 100 addresses (LRU evicts)

# conntrack state bits for --ctstate (our own numbering)
CT_INVALID, CT_NEW, CT_ESTABLISHED, CT_RELATED, CT_UNTRACKED, CT_SNAT, CT_DNAT = (1 << i for i in range(7))
CTSTATE_BITS = {"INVALID": CT_INVALID, "NEW": CT_NEW, "ESTABLISHED": CT_ESTABLISHED, "RELATED": CT_RELATED,
                "UNTRACKED": CT_UNTRACKED, "SNAT": CT_SNAT, "DNAT": CT_DNAT}

# verdicts (V_JUMP.. only as the values of nft verdict maps)
V_CONTINUE, V_ACCEPT, V_DROP, V_REJECT, V_JUMP, V_GOTO, V_RETURN = 0, 1, 2, 3, 4, 5, 6
VERDICT_CODES = {"accept": V_ACCEPT, "drop": V_DROP, "reject": V_REJECT, "jump": V_JUMP, "goto": V_GOTO,
                 "return": V_RETURN, "continue": V_CONTINUE}

# packet fields a set key is made of (ipset dimensions, nft concatenations), 3 bits each, up to 4
F_NONE, F_SADDR, F_DADDR, F_PROTO, F_SPORT, F_DPORT = range(6)
FIELD_NAMES = {"ip saddr": F_SADDR, "ip daddr": F_DADDR, "meta l4proto": F_PROTO, "th sport": F_SPORT,
               "th dport": F_DPORT}
# sets: one row per named set (nft set/map, ipset, and the kernel's own keyed tables)
S_NODE, S_KEY, S_TIMEOUT, S_NETPOS, S_PL0, S_PL1 = range(6)
S_COLS = 6
# elements of every set, in one hash table: (set, key, value, flag), expiry separately
EL_SET, EL_K0, EL_K1, EL_K2, EL_K3, EL_VA, EL_VB, EL_FLAG = range(8)
EL_COLS = 8
POLICY_CODES = {None: V_CONTINUE, "ACCEPT": V_ACCEPT, "DROP": V_DROP}

# how a packet enters a node
FROM_POD, FROM_WIRE, LOCAL_OUT = 0, 1, 2

# where routing sends it
R_LOCAL, R_POD, R_NODE, R_EXTERNAL, R_NO_POD = range(5)

# connection outcomes
O_DELIVERED, O_REJECTED, O_DROPPED, O_LEFT = 1, 2, 3, 4
OUTCOMES = {O_DELIVERED: "delivered", O_REJECTED: "rejected", O_DROPPED: "dropped", O_LEFT: "left the cluster"}

# trace record kinds
E_RULE, E_POLICY, E_CT_NEW, E_CT_FOUND, E_ROUTE, E_DNAT, E_SNAT, E_CT_NAT, E_DELIVER, E_REFUSED, \
    E_DROP, E_REJECT, E_FORWARD, E_LEAVE, E_CONFIRM, E_VMAP, E_IPVS, E_IPVS_NONE, E_SOCK_LB, E_TC_LB, \
    E_TC_NONE, E_SET_UPDATE = range(22)

# packet fields (the kernel's working copy of one packet)
# P_VIA: what translated it before netfilter (1 IPVS done, 2 socket LB, 3 tc LB); P_DSR_ADDR/PORT: the
# service address a DSR packet carries to the backend's node
P_SRC, P_DST, P_SPORT, P_DPORT, P_PROTO, P_MARK, P_IN, P_OUT, P_CTSTATE, P_REJECT_WITH, P_VIA, P_DSR_ADDR, \
    P_DSR_PORT = range(13)
P_LEN = 13
VIA_IPVS, VIA_SOCK, VIA_TC = 1, 2, 3

# ephemeral ports (net.ipv4.ip_local_port_range default 32768 60999)
EPHEMERAL_LO, EPHEMERAL_HI = 32768, 60999

# columns of the packed tables
(R_SRC, R_SMASK, R_SINV, R_DST, R_DMASK, R_DINV, R_PROTO, R_PINV, R_IN, R_OUT, R_M0, R_M1, R_TGT, R_TA, R_TB,
 R_TC, R_CHAIN, R_PKTS) = range(18)
R_COLS = 18
M_OP, M_INV, M_A, M_B, M_C, M_D, M_E, M_COUNT = range(8)
M_COLS = 8
CH_START, CH_END, CH_POLICY, CH_NAT = range(4)
CH_COLS = 4
# nodes: address, pod bridge address, pod CIDR, the dataplane mode, and the set of extra local addresses
# (IPVS: services, persistence templates, connections; eBPF: frontends, affinity)
N_IP, N_GW, N_PNET, N_PMASK, N_MODE, N_LOCALSET, N_SVCSET, N_AFFSET, N_CONNSET = range(9)
N_COLS = 9
# eBPF frontends (one per address, port, protocol and scope; FE_DSR: direct server return) and backends
(FE_ADDR, FE_PORT, FE_PROTO, FE_SCOPE, FE_KIND, FE_COUNT, FE_S0, FE_REVNAT, FE_AFFINITY, FE_MAGLEV, FE_M,
 FE_SR0, FE_SR1, FE_DSR) = range(14)
FE_COLS = 14
SCOPE_EXT, SCOPE_INT = 0, 1
KIND_CLUSTERIP, KIND_NODEPORT, KIND_LOADBALANCER, KIND_EXTERNALIP = range(4)
B_ADDR, B_PORT, B_NODE, B_ID = range(4)
B_COLS = 4
MODE_NETFILTER, MODE_IPVS, MODE_EBPF = range(3)
POD_NODE, POD_ANY, POD_L0, POD_L1 = range(4)
CT_NODE, CT_O, CT_R, CT_PROTO, CT_STATUS = 0, 1, 5, 9, 10     # CT_O..CT_O+3, CT_R..CT_R+3: src dst sport dport
CT_COLS = 11
RC_IP, RC_STAMP, RC_SEQ = range(3)                            # stamps in microseconds
