"""Command dispatch and argument validation that happens before any HTTP call.

These run the real command functions in-process with captured streams; every case exits
before a client is built, so no agent is involved (end-to-end runs live in
tests/integration/test_cli.py).
"""

from __future__ import annotations

import io

import pytest

from muster.cli import run
from muster.cli.kv import _parse_import
from muster.cli.lock import child_command, describe_exit
from muster.cli.ui import UI


def _run(*argv: str, stdin: bytes = b"") -> tuple[int, str, str]:
    out, err = io.BytesIO(), io.BytesIO()
    # An unroutable address: if a command wrongly reached the network the test would fail.
    ui = UI(out, err, io.BytesIO(stdin), {"CONSUL_HTTP_ADDR": "127.0.0.1:1"})
    code = run(list(argv), ui)
    return code, out.getvalue().decode(), err.getvalue().decode()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["kv", "get"], "Error! Missing KEY argument\n"),
        (["kv", "get", "a", "b"], "Too many arguments (expected 1, got 2)\n"),
        (["kv", "put"], "Error! Missing KEY argument\n"),
        (["kv", "put", "k", "v", "x"], "Error! Too many arguments (expected 1 or 2, got 3)\n"),
        (["kv", "put", "-cas", "k", "v"], "Must specify -modify-index with -cas!\n"),
        (["kv", "put", "-release", "k"], "Error! Missing -session (required with -acquire and -release)\n"),
        (["kv", "delete"], "Error! Missing KEY argument\n"),
        (["kv", "delete", "-modify-index=3", "k"], "Cannot specify -modify-index without -cas!\n"),
        (
            ["kv", "delete", "-cas", "k"],
            "Cannot delete a key that does not exist. Provide a -modify-index greater than than 0.\n",
        ),
        (["kv", "import"], "Error! Missing DATA argument\n"),
        (["kv", "import", ""], "Error! Empty DATA argument\n"),
        (["lock", "prefix"], "Key prefix and child command must be specified\n"),
        (["lock", "-n=0", "p", "c"], "Lock holder limit must be positive\n"),
        (["lock", "-monitor-retry=-1", "p", "c"], "Number for 'monitor-retry' must be >= 0\n"),
        (["services", "deregister"], "Service deregistration requires at least one argument or -id.\n"),
        (
            ["services", "register", "-name=x", "f.json"],
            "Service registration requires arguments or -id, not both.\n",
        ),
        (
            ["services", "register", "-name=x", "-tagged-address=lan=h:p"],
            'Invalid Tagged Address: strconv.Atoi: parsing "p": invalid syntax\n',
        ),
        (["catalog", "nodes", "x"], "Too many arguments (expected 0, got 1)\n"),
        (["event", "-name=e", "-node=("], None),
        (["members", "-status=("], None),
        (["keygen", "extra"], "Too many arguments (expected 0, got 1)\n"),
    ],
)
def test_validation_errors(argv: list[str], message: str | None) -> None:
    code, out, err = _run(*argv)
    assert code == 1
    assert out == ""
    if message is not None:
        assert err == message
    else:
        assert err.startswith("Failed to compile")


def test_kv_put_base64_error() -> None:
    code, _, err = _run("kv", "put", "-base64", "k", "!!!")
    assert code == 1 and err.startswith("Error! Cannot base 64 decode data: ")


def test_unknown_flag_and_command() -> None:
    code, _, err = _run("kv", "get", "-nope")
    assert code == 1
    assert err.startswith("flag provided but not defined: -nope\nUsage: muster kv get")
    code, _, err = _run("frobnicate")
    assert code == 1 and err.startswith('Unknown command "frobnicate"\n\nUsage: muster')
    code, _, err = _run("kv", "frob")
    assert code == 1 and err.startswith('Unknown subcommand "frob" for "kv"\nUsage: muster kv')
    code, _, err = _run("kv")
    assert code == 1 and err.startswith("Usage: muster kv")


def test_help_and_version() -> None:
    code, out, _ = _run("--help")
    assert code == 0 and "Available commands are:" in out and "    kv " in out
    code, out, _ = _run("kv", "get", "-h")
    assert code == 0 and out.startswith("Usage: muster kv get")
    code, out, _ = _run("catalog", "--help")
    assert code == 0 and out.startswith("Usage: muster catalog")
    code, out, _ = _run("--version")
    assert code == 0 and out.startswith("Consul v")
    code, _, err = _run()
    assert code == 1 and err.startswith("Usage: muster")


def test_keygen_in_process() -> None:
    import base64

    code, out, _ = _run("keygen")
    assert code == 0 and len(base64.b64decode(out.strip())) == 32


def test_bad_address_reported_without_network() -> None:
    out, err = io.BytesIO(), io.BytesIO()
    ui = UI(out, err, io.BytesIO(), {"CONSUL_HTTP_ADDR": "gopher://x:1"})
    assert run(["kv", "get", "k"], ui) == 1
    assert err.getvalue().decode() == "Error connecting to Consul agent: Unknown protocol scheme: gopher\n"


def test_parse_import() -> None:
    assert _parse_import(b'[{"Key":"a","Flags":2,"Value":"eA=="}]') == [
        {"key": "a", "flags": 2, "value": "eA=="}
    ]
    assert _parse_import(b"null") == []
    for bad in (b"{}", b'[{"key": 1}]', b'[{"key":"a","flags":-1}]', b"nope"):
        with pytest.raises(ValueError):
            _parse_import(bad)


def test_child_command_and_exit_text() -> None:
    assert child_command(["echo", "a b"], True, {}) == ["/bin/sh", "-c", "echo a b"]
    assert child_command(["echo", "x"], True, {"SHELL": "/bin/bash"}) == ["/bin/bash", "-c", "echo x"]
    assert child_command(["echo", "a b"], False, {}) == ["echo", "a b"]
    assert describe_exit(3) == "exit status 3"
    assert describe_exit(-15) == "signal: terminated"
    assert describe_exit(-9) == "signal: killed"


def test_api_errors_reports_consul_errors_and_exits_1() -> None:
    from muster.api import ConsulError
    from muster.cli.ui import UsageExit, api_errors

    out, err = io.BytesIO(), io.BytesIO()
    ui = UI(out, err, io.BytesIO(), {})
    with pytest.raises(UsageExit) as done:
        with api_errors(ui, 'Error listing nodes for "x"'):
            raise ConsulError("Unexpected response code: 500 (No cluster leader)")
    assert done.value.code == 1
    assert err.getvalue() == b'Error listing nodes for "x": Unexpected response code: 500 (No cluster leader)\n'
    # Anything else passes through untouched, and a clean block prints nothing.
    with pytest.raises(KeyError):
        with api_errors(ui, "Error"):
            raise KeyError("k")
    with api_errors(ui, "Error"):
        pass
    assert out.getvalue() == b"" and err.getvalue().count(b"\n") == 1
