"""CNI spec types: the invocation (`CniArgs`), the plugin configuration (`NetConf`), the `Result`.

Standard library only and no dataclasses: the `podnet-cni` executable imports this module on
every pod start, so it stays cheap to import. Validation follows containernetworking/cni's
`skel` and `utils` packages, so a runtime sees the same error codes as from the reference plugins.
"""

from __future__ import annotations

from podnet.cni import errors
from podnet.cni.errors import CniError

TYPE_CHECKING = False  # `typing`, `re` and `ipaddress` would cost start-up time; see main.py
if TYPE_CHECKING:
    import ipaddress
    from collections.abc import Mapping

    IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
    IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
    IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

CURRENT_VERSION = "1.1.0"
SUPPORTED_VERSIONS = ("0.4.0", "1.0.0", "1.1.0")
DEFAULT_SOCKET = "/run/podnet/agent.sock"
COMMANDS = ("ADD", "DEL", "CHECK", "STATUS", "VERSION", "GC")

_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_CHARS = _ALNUM | frozenset("_.-")
_IFNAMSIZ = 16  # the kernel's limit includes the trailing NUL

# Which CNI_* variables each command needs (skel's reqForCmd; CNI_PATH is not enforced:
# podnet never executes another plugin).
_REQUIRED_ENV = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"),
}
# The first spec version that defines each command; older configurations get code 1.
_SINCE = {"CHECK": "0.4.0", "GC": "1.1.0", "STATUS": "1.1.0"}


def version_tuple(version: str) -> tuple[int, ...]:
    """`"1.0.0"` -> `(1, 0, 0)`; anything else is the spec's decoding failure."""
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError as err:
        raise CniError(errors.DECODING_FAILURE, "invalid cniVersion", version) from err


def valid_name(name: str) -> bool:
    """SPEC "Parameters" for container IDs and network names: starts alphanumeric, then
    alphanumerics, underscore, dot or hyphen."""
    return bool(name) and name[0] in _ALNUM and all(ch in _NAME_CHARS for ch in name)


def validate_ifname(ifname: str) -> None:
    """The kernel's rules for interface names (cni utils.ValidateInterfaceName)."""
    bad = (
        not ifname
        or len(ifname) >= _IFNAMSIZ
        or ifname in (".", "..")
        or any(ch in "/:" or ch.isspace() for ch in ifname)
    )
    if bad:
        raise CniError(errors.INVALID_ENVIRONMENT, "invalid CNI_IFNAME", repr(ifname))


class CniArgs:
    """One invocation's parameters, read from `CNI_*` environment variables."""

    __slots__ = ("args", "command", "container_id", "ifname", "netns", "path")

    def __init__(
        self,
        command: str,
        container_id: str = "",
        netns: str = "",
        ifname: str = "",
        args: str = "",
        path: str = "",
    ) -> None:
        self.command = command
        self.container_id = container_id
        self.netns = netns
        self.ifname = ifname
        self.args = args
        self.path = path

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CniArgs:
        """Read and validate the variables `CNI_COMMAND` needs; code 4 names what is wrong."""
        get = env.get
        command = get("CNI_COMMAND", "")
        if command not in COMMANDS:
            what = f"unknown CNI_COMMAND {command!r}" if command else "CNI_COMMAND missing"
            raise CniError(errors.INVALID_ENVIRONMENT, what)
        missing = [name for name in _REQUIRED_ENV.get(command, ()) if not get(name, "")]
        if missing:
            raise CniError(
                errors.INVALID_ENVIRONMENT, f"required env variables [{','.join(missing)}] missing"
            )
        found = cls(
            command,
            container_id=get("CNI_CONTAINERID", ""),
            netns=get("CNI_NETNS", ""),
            ifname=get("CNI_IFNAME", ""),
            args=get("CNI_ARGS", ""),
            path=get("CNI_PATH", ""),
        )
        if command in _REQUIRED_ENV:
            if not valid_name(found.container_id):
                raise CniError(
                    errors.INVALID_ENVIRONMENT,
                    "invalid characters in CNI_CONTAINERID",
                    found.container_id,
                )
            validate_ifname(found.ifname)
        found.pairs()  # CNI_ARGS must parse even if no key is used
        return found

    def pairs(self) -> dict[str, str]:
        """`CNI_ARGS` as a dict: `"K8S_POD_NAME=a;K8S_POD_NAMESPACE=x"`."""
        out: dict[str, str] = {}
        for item in filter(None, self.args.split(";")):
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise CniError(errors.INVALID_ENVIRONMENT, "invalid CNI_ARGS pair", item)
            out[key] = value
        return out

    def pod(self) -> tuple[str, str] | None:
        """The Kubernetes pod `(namespace, name)` a kubelet passes in `CNI_ARGS`, if any."""
        pairs = self.pairs()
        name, namespace = pairs.get("K8S_POD_NAME"), pairs.get("K8S_POD_NAMESPACE")
        return (namespace, name) if name and namespace else None

    def to_wire(self) -> dict[str, str]:
        return {
            "command": self.command,
            "containerID": self.container_id,
            "netns": self.netns,
            "ifname": self.ifname,
            "args": self.args,
            "path": self.path,
        }

    @classmethod
    def from_wire(cls, obj: dict[str, str]) -> CniArgs:
        return cls(
            obj["command"],
            container_id=obj.get("containerID", ""),
            netns=obj.get("netns", ""),
            ifname=obj.get("ifname", ""),
            args=obj.get("args", ""),
            path=obj.get("path", ""),
        )


class NetConf:
    """The plugin configuration podnet reads from stdin; `raw` keeps the whole object."""

    __slots__ = ("cni_version", "mtu", "name", "raw", "socket")

    def __init__(
        self, cni_version: str, name: str, socket: str, mtu: int | None, raw: dict[str, object]
    ) -> None:
        self.cni_version = cni_version
        self.name = name
        self.socket = socket
        self.mtu = mtu
        self.raw = raw

    @classmethod
    def parse(cls, raw: object, command: str) -> NetConf:
        """Validate the configuration for `command` (codes 1, 2, 6 and 7 as skel assigns them)."""
        if not isinstance(raw, dict):
            raise CniError(errors.DECODING_FAILURE, "network configuration is not a JSON object")
        version = raw.get("cniVersion")
        if not isinstance(version, str) or not version:
            raise CniError(errors.INCOMPATIBLE_VERSION, "cniVersion missing", str(version))
        if version_tuple(version) < version_tuple(_SINCE.get(command, "0.0.0")):
            raise CniError(
                errors.INCOMPATIBLE_VERSION,
                f"config version does not allow {command}",
                f"{command} needs cniVersion {_SINCE[command]} or later, config has {version}",
            )
        if version not in SUPPORTED_VERSIONS:
            raise CniError(
                errors.INCOMPATIBLE_VERSION,
                "incompatible CNI versions",
                f"config is {version}, plugin supports {', '.join(SUPPORTED_VERSIONS)}",
            )
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise CniError(errors.INVALID_CONFIG, "missing network name")
        if not valid_name(name):
            raise CniError(errors.INVALID_CONFIG, "invalid characters found in network name", name)
        if "ipam" in raw:
            # podnet allocates from its own node subnet; a delegated IPAM would be ignored.
            raise CniError(
                errors.UNSUPPORTED_FIELD, "unsupported field", f"ipam: {raw['ipam']!r}"
            )
        socket = raw.get("socket", DEFAULT_SOCKET)
        if not isinstance(socket, str) or not socket.startswith("/"):
            raise CniError(errors.INVALID_CONFIG, "socket must be an absolute path", repr(socket))
        mtu = raw.get("mtu")
        if mtu is not None and (
            not isinstance(mtu, int) or isinstance(mtu, bool) or not 68 <= mtu <= 65535
        ):
            raise CniError(errors.INVALID_CONFIG, "mtu must be an integer in 68..65535", repr(mtu))
        return cls(version, name, socket, mtu, raw)

    def prev_result(self) -> dict[str, object] | None:
        """The result of the plugins before this one in a chain, if any."""
        prev = self.raw.get("prevResult")
        if prev is not None and not isinstance(prev, dict):
            raise CniError(errors.DECODING_FAILURE, "prevResult is not an object")
        return prev

    def valid_attachments(self) -> set[tuple[str, str]]:
        """GC's still-valid `(containerID, ifname)` pairs; the pre-1.1 key is accepted too."""
        items = self.raw.get("cni.dev/valid-attachments", self.raw.get("cni.dev/attachments", []))
        if not isinstance(items, list):
            raise CniError(errors.INVALID_CONFIG, "cni.dev/valid-attachments must be a list")
        out = set()
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("containerID"), str):
                raise CniError(errors.INVALID_CONFIG, "invalid attachment", repr(item))
            out.add((item["containerID"], str(item.get("ifname", ""))))
        return out


class Interface:
    """An interface the attachment created; `sandbox` is the netns path, empty on the host."""

    __slots__ = ("mac", "mtu", "name", "sandbox")

    def __init__(self, name: str, mac: str, mtu: int, sandbox: str = "") -> None:
        self.name = name
        self.mac = mac
        self.mtu = mtu
        self.sandbox = sandbox


class Result:
    """ADD's success result (SPEC "ADD Success"), rendered for the configuration's version.

    `previous` is the prevResult of a chain: SPEC, a plugin given one "MUST handle prevResult by
    either passing it through, or modifying it appropriately", so ours is appended to it."""

    __slots__ = ("interfaces", "ips", "previous", "routes")

    def __init__(
        self,
        interfaces: list[Interface],
        ips: list[tuple[IPInterface, IPAddress, int]],
        routes: list[tuple[IPNetwork, IPAddress | None]],
        previous: dict[str, object] | None = None,
    ) -> None:
        self.interfaces = interfaces
        self.ips = ips  # (address, gateway, index into interfaces)
        self.routes = routes  # (dst, gw)
        self.previous = previous

    def to_json(self, cni_version: str) -> dict[str, object]:
        earlier_interfaces, earlier_ips, earlier_routes, dns = self._earlier()
        shift = len(earlier_interfaces)  # our interface indexes come after the earlier ones
        interfaces: list[object] = list(earlier_interfaces)
        for iface in self.interfaces:
            entry: dict[str, object] = {"name": iface.name, "mac": iface.mac, "mtu": iface.mtu}
            if iface.sandbox:
                entry["sandbox"] = iface.sandbox
            interfaces.append(entry)
        ips: list[object] = list(earlier_ips)
        for address, gateway, index in self.ips:
            ip: dict[str, object] = {
                "address": str(address),
                "gateway": str(gateway),
                "interface": index + shift,
            }
            if cni_version == "0.4.0":  # 0.4.0 still names the IP family per address
                ip["version"] = str(address.version)
            ips.append(ip)
        routes: list[object] = list(earlier_routes)
        for dst, gw in self.routes:
            route: dict[str, object] = {"dst": str(dst)}
            if gw is not None:
                route["gw"] = str(gw)
            routes.append(route)
        return {
            "cniVersion": cni_version,
            "interfaces": interfaces,
            "ips": ips,
            "routes": routes,
            "dns": dns,
        }

    def _earlier(self) -> tuple[list[object], list[object], list[object], object]:
        """The interfaces, addresses, routes and DNS of prevResult (none without a chain)."""
        previous = self.previous or {}
        parts = [previous.get(key) or [] for key in ("interfaces", "ips", "routes")]
        lists = [part for part in parts if isinstance(part, list)]
        if len(lists) != len(parts):
            raise CniError(errors.DECODING_FAILURE, "prevResult has a malformed list")
        return lists[0], lists[1], lists[2], previous.get("dns") or {}
