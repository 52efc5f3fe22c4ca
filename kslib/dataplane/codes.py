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

# rule targets
T_NONE, T_JUMP, T_GOTO, T_RETURN, T_ACCEPT, T_DROP, T_REJECT, T_DNAT, T_SNAT, T_MASQ, T_MARK, T_LOG = range(12)
TARGET_CODES = {"ACCEPT": T_ACCEPT, "DROP": T_DROP, "REJECT": T_REJECT, "RETURN": T_RETURN, "DNAT": T_DNAT,
                "SNAT": T_SNAT, "MASQUERADE": T_MASQ, "MARK": T_MARK, "LOG": T_LOG}

# match operations
M_DPORT, M_SPORT, M_PORTS, M_SRCTYPE, M_DSTTYPE, M_MARK, M_CTSTATE, M_RANDOM, M_NTH, M_RECENT, M_NEVER = range(11)
RECENT_MODES = {"set": 0, "rcheck": 1, "update": 2, "remove": 3}
RECENT_SIZE = 100        # xt_recent ip_list_tot: a table remembers at most 100 addresses (LRU evicts)

# conntrack state bits for --ctstate (our own numbering)
CT_INVALID, CT_NEW, CT_ESTABLISHED, CT_RELATED, CT_UNTRACKED, CT_SNAT, CT_DNAT = (1 << i for i in range(7))
CTSTATE_BITS = {"INVALID": CT_INVALID, "NEW": CT_NEW, "ESTABLISHED": CT_ESTABLISHED, "RELATED": CT_RELATED,
                "UNTRACKED": CT_UNTRACKED, "SNAT": CT_SNAT, "DNAT": CT_DNAT}

# verdicts
V_CONTINUE, V_ACCEPT, V_DROP, V_REJECT = 0, 1, 2, 3
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
    E_DROP, E_REJECT, E_FORWARD, E_LEAVE, E_CONFIRM = range(15)

# packet fields (the kernel's working copy of one packet)
P_SRC, P_DST, P_SPORT, P_DPORT, P_PROTO, P_MARK, P_IN, P_OUT, P_CTSTATE, P_REJECT_WITH = range(10)
P_LEN = 10

# ephemeral ports (net.ipv4.ip_local_port_range default 32768 60999)
EPHEMERAL_LO, EPHEMERAL_HI = 32768, 60999

# columns of the packed tables
(R_SRC, R_SMASK, R_SINV, R_DST, R_DMASK, R_DINV, R_PROTO, R_PINV, R_IN, R_OUT, R_M0, R_M1, R_TGT, R_TA, R_TB,
 R_TC, R_CHAIN, R_PKTS) = range(18)
R_COLS = 18
M_OP, M_INV, M_A, M_B, M_C, M_D, M_E, M_COUNT = range(8)
M_COLS = 8
CH_START, CH_END, CH_POLICY = range(3)
N_IP, N_GW, N_PNET, N_PMASK = range(4)
POD_NODE, POD_ANY, POD_L0, POD_L1 = range(4)
CT_NODE, CT_O, CT_R, CT_PROTO, CT_STATUS = 0, 1, 5, 9, 10     # CT_O..CT_O+3, CT_R..CT_R+3: src dst sport dport
CT_COLS = 11
RC_IP, RC_STAMP, RC_SEQ = range(3)                            # stamps in microseconds
