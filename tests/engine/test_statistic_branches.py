"""`-m statistic` is a branch: the trace forks and each branch names its choice."""

from meshviz.engine.core.model import Packet
from meshviz.engine.pipeline.pod import trace

from .helpers import pod, tcp

KUBE = """*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-SVC-A - [0:0]
:KUBE-SEP-1 - [0:0]
:KUBE-SEP-2 - [0:0]
:KUBE-SEP-3 - [0:0]
-A OUTPUT -d 172.16.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-A
-A KUBE-SVC-A -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-1
-A KUBE-SVC-A -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-2
-A KUBE-SVC-A -j KUBE-SEP-3
-A KUBE-SEP-1 -p tcp -j DNAT --to-destination 10.1.0.1:8080
-A KUBE-SEP-2 -p tcp -j DNAT --to-destination 10.1.0.2:8080
-A KUBE-SEP-3 -p tcp -j DNAT --to-destination 10.1.0.3:8080
COMMIT
"""


def test_kube_proxy_service_forks_into_one_trace_per_endpoint() -> None:
    from meshviz.engine.sim.simulate import Sender

    traces = trace(pod(KUBE), tcp("0.0.0.0", 0, "172.16.0.10", 80), sender=Sender(uid=1000, gid=1000))
    dsts = sorted(str(t.final_packet.dst) for t in traces if isinstance(t.final_packet, Packet))
    assert dsts == ["10.1.0.1", "10.1.0.2", "10.1.0.3"]
    for t in traces:
        assert t.branch and all("statistic" in b for b in t.branch)
