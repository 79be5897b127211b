"""Names the kernel's tools resolve: protocol names (netbase /etc/protocols) and service names (/etc/services).

The one home for both tables: the iptables parser validates with them, the match compiler resolves
`--dport postgresql` with them, the ip rule parser and the explainer print with them.  iptables resolves a
service name with getservbyname() on the machine where the rule is added; `iptables-save` always prints
numbers, so names only appear in rules people write.  The table is Debian netbase's (the common part).
"""

from __future__ import annotations

# --------------------------------------------------------------------------
# Protocols (netbase /etc/protocols, which is what iptables-save prints)
# --------------------------------------------------------------------------

PROTOCOL_NUMBERS: dict[str, int] = {
    "ip": 0,
    "hopopt": 0,
    "icmp": 1,
    "igmp": 2,
    "ggp": 3,
    "ipencap": 4,
    "st": 5,
    "tcp": 6,
    "egp": 8,
    "igp": 9,
    "pup": 12,
    "udp": 17,
    "hmp": 20,
    "xns-idp": 22,
    "rdp": 27,
    "iso-tp4": 29,
    "dccp": 33,
    "xtp": 36,
    "ddp": 37,
    "idpr-cmtp": 38,
    "ipv6": 41,
    "ipv6-route": 43,
    "ipv6-frag": 44,
    "idrp": 45,
    "rsvp": 46,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "skip": 57,
    "ipv6-icmp": 58,
    "ipv6-nonxt": 59,
    "ipv6-opts": 60,
    "rspf": 73,
    "vmtp": 81,
    "eigrp": 88,
    "ospf": 89,
    "ax.25": 93,
    "ipip": 94,
    "etherip": 97,
    "encap": 98,
    "pim": 103,
    "ipcomp": 108,
    "vrrp": 112,
    "l2tp": 115,
    "isis": 124,
    "sctp": 132,
    "fc": 133,
    "mobility-header": 135,
    "udplite": 136,
    "mpls-in-ip": 137,
    "manet": 138,
    "hip": 139,
    "shim6": 140,
    "wesp": 141,
    "rohc": 142,
    "ethernet": 143,
}
# Extra spellings iptables accepts (its own table `xtables_chain_protos`).
PROTOCOL_ALIASES: dict[str, str] = {"icmpv6": "ipv6-icmp", "ipv6-mh": "mobility-header", "mh": "mobility-header"}
# number -> the name iptables-save prints
PROTOCOL_NAMES: dict[int, str] = {}
for _name, _num in PROTOCOL_NUMBERS.items():
    PROTOCOL_NAMES.setdefault(_num, _name)
PROTOCOL_NAMES[0] = "all"


def canonical_protocol(text: str) -> str | None:
    """`6` / `TCP` / `tcp` -> "tcp"; `all`/`0` -> "all"; None if unknown.

    iptables lower-cases the argument of -p and accepts a number 0-255 or a
    name; iptables-save prints the /etc/protocols name of the number.
    """
    t = text.lower()
    if t == "all":
        return "all"
    if t.isdigit():
        n = int(t)
        if n > 255:
            return None
        return PROTOCOL_NAMES.get(n, str(n))
    t = PROTOCOL_ALIASES.get(t, t)
    if t in PROTOCOL_NUMBERS:
        return PROTOCOL_NAMES[PROTOCOL_NUMBERS[t]] if PROTOCOL_NUMBERS[t] else t
    return None


def protocol_number(text: str | int) -> int | None:
    """`tcp` -> 6, `6` -> 6, `ipproto-200` -> 200 (iproute2's spelling), `TCP` -> 6; None if unknown."""
    if isinstance(text, int):
        return text if 0 <= text <= 255 else None
    t = text.lower()
    t = PROTOCOL_ALIASES.get(t, t)
    if t in PROTOCOL_NUMBERS:
        return PROTOCOL_NUMBERS[t]
    t = t.removeprefix("ipproto-")
    try:
        n = int(t, 0)
    except ValueError:
        return None
    return n if 0 <= n <= 255 else None


# --------------------------------------------------------------------------
# Services (netbase /etc/services: the names getservbyname() knows)
# --------------------------------------------------------------------------

SERVICES: dict[str, int] = {
    "tcpmux": 1,
    "echo": 7,
    "discard": 9,
    "systat": 11,
    "daytime": 13,
    "netstat": 15,
    "qotd": 17,
    "chargen": 19,
    "ftp-data": 20,
    "ftp": 21,
    "ssh": 22,
    "telnet": 23,
    "smtp": 25,
    "time": 37,
    "whois": 43,
    "tacacs": 49,
    "domain": 53,
    "bootps": 67,
    "bootpc": 68,
    "tftp": 69,
    "gopher": 70,
    "finger": 79,
    "http": 80,
    "www": 80,
    "kerberos": 88,
    "iso-tsap": 102,
    "pop3": 110,
    "sunrpc": 111,
    "auth": 113,
    "nntp": 119,
    "ntp": 123,
    "epmap": 135,
    "netbios-ns": 137,
    "netbios-dgm": 138,
    "netbios-ssn": 139,
    "imap2": 143,
    "imap": 143,
    "snmp": 161,
    "snmp-trap": 162,
    "xdmcp": 177,
    "bgp": 179,
    "irc": 194,
    "ldap": 389,
    "https": 443,
    "microsoft-ds": 445,
    "kpasswd": 464,
    "submissions": 465,
    "saft": 487,
    "isakmp": 500,
    "exec": 512,
    "login": 513,
    "shell": 514,
    "syslog": 514,
    "printer": 515,
    "talk": 517,
    "ntalk": 518,
    "route": 520,
    "gdomap": 538,
    "uucp": 540,
    "klogin": 543,
    "kshell": 544,
    "dhcpv6-client": 546,
    "dhcpv6-server": 547,
    "afpovertcp": 548,
    "nntps": 563,
    "submission": 587,
    "ldaps": 636,
    "tinc": 655,
    "silc": 706,
    "kerberos-adm": 749,
    "domain-s": 853,
    "rsync": 873,
    "ftps-data": 989,
    "ftps": 990,
    "telnets": 992,
    "imaps": 993,
    "pop3s": 995,
    "socks": 1080,
    "openvpn": 1194,
    "rmiregistry": 1099,
    "ms-sql-s": 1433,
    "ms-sql-m": 1434,
    "ingreslock": 1524,
    "datametrics": 1645,
    "sa-msg-port": 1646,
    "kermit": 1649,
    "groupwise": 1677,
    "l2f": 1701,
    "radius": 1812,
    "radius-acct": 1813,
    "cisco-sccp": 2000,
    "nfs": 2049,
    "gnunet": 2086,
    "rtcm-sc104": 2101,
    "gsigatekeeper": 2119,
    "gris": 2135,
    "cvspserver": 2401,
    "venus": 2430,
    "mysql": 3306,
    "ms-wbt-server": 3389,
    "iax": 4569,
    "distcc": 3632,
    "svn": 3690,
    "suucp": 4031,
    "sysrqd": 4094,
    "sieve": 4190,
    "epmd": 4369,
    "remctl": 4373,
    "f5-iquery": 4353,
    "ntske": 4460,
    "ipsec-nat-t": 4500,
    "fax": 4557,
    "hylafax": 4559,
    "sip": 5060,
    "sip-tls": 5061,
    "xmpp-client": 5222,
    "xmpp-server": 5269,
    "cfengine": 5308,
    "mdns": 5353,
    "postgresql": 5432,
    "freeciv": 5556,
    "amqps": 5671,
    "amqp": 5672,
    "x11": 6000,
    "gnutella-svc": 6346,
    "gnutella-rtr": 6347,
    "redis": 6379,
    "sge-qmaster": 6444,
    "sge-execd": 6445,
    "mysql-proxy": 6446,
    "babel": 6696,
    "ircs-u": 6697,
    "bbs": 7000,
    "afs3-fileserver": 7000,
    "font-service": 7100,
    "http-alt": 8080,
    "puppet": 8140,
    "bacula-dir": 9101,
    "bacula-fd": 9102,
    "bacula-sd": 9103,
    "xmms2": 9667,
    "nbd": 10809,
    "zabbix-agent": 10050,
    "zabbix-trapper": 10051,
    "amanda": 10080,
    "dicom": 11112,
    "hkp": 11371,
    "db-lsp": 17500,
    "dcap": 22125,
    "gsiftp": 2811,
    "git": 9418,
    "memcache": 11211,
    "mongodb": 27017,
}


def service_port(text: str) -> int | None:
    """A port number (`5432`) or service name (`postgresql`) as iptables resolves it; None if neither."""
    if text.isdigit():
        n = int(text)
        return n if n <= 65535 else None
    return SERVICES.get(text)
