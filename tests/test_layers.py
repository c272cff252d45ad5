"""The pure core (model, policy, IPAM, the report page) never imports the shell (DESIGN §2).

IPAM may speak to the store through its Protocols (`podnet.store.base`), never to a backend.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "podnet"
PURE = ["model", "policy", "ipam", "report"]
SHELL = {"subprocess", "socket", "sqlite3", "pyroute2", "nftables", "ctypes", "multiprocessing",
         "podnet.store.sqlite", "podnet.store.sqlite_ip", "podnet.store.etcd",
         "podnet.store.url", "podnet.datapath", "podnet.agent", "podnet.cni", "podnet.lab",
         "podnet.cli"}


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", PURE)
def test_pure_packages_import_no_shell(package: str) -> None:
    files = sorted((SRC / package).rglob("*.py"))
    if not files:
        pytest.skip(f"podnet.{package} has no modules yet")
    offenders = {
        f"{path.relative_to(SRC)} imports {name}"
        for path in files for name in imports(path)
        if any(name == s or name.startswith(s + ".") for s in SHELL)
    }
    assert not offenders
