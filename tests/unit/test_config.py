"""Tests for muster.config: flags, config files, merge rules, validation, reload diff."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from muster.config import (
    USAGE,
    Config,
    ConfigError,
    HelpRequested,
    UsageError,
    changed_keys,
    config_from_dict,
    non_reloadable_diff,
    parse_agent_flags,
    parse_go_bool,
    reloadable_diff,
)

SEED_ARGV = [
    "-server",
    "-bootstrap-expect=3",
    "-ui",
    "-data-dir=/consul/data",
    "-bind=0.0.0.0",
    "-client=0.0.0.0",
    "-advertise=10.1.2.3",
    "-retry-join=consul-0.consul.ns.svc.cluster.local",
    "-retry-join=consul-1.consul.ns.svc.cluster.local",
    "-retry-join=consul-2.consul.ns.svc.cluster.local",
    "-domain=cluster.local",
    "-disable-host-node-id",
]

BASE = ["-data-dir=/tmp/x"]


def test_seed_command_line() -> None:
    c = parse_agent_flags(SEED_ARGV)
    assert c.server is True
    assert c.bootstrap_expect == 3
    assert c.bootstrap is False
    assert c.ui_config.enabled is True and c.ui_enabled
    assert c.data_dir == "/consul/data"
    assert c.bind_addr == "0.0.0.0"
    assert c.client_addr == "0.0.0.0" and c.client_addrs == ("0.0.0.0",)
    assert c.advertise_addr == "10.1.2.3"
    assert c.retry_join == (
        "consul-0.consul.ns.svc.cluster.local",
        "consul-1.consul.ns.svc.cluster.local",
        "consul-2.consul.ns.svc.cluster.local",
    )
    assert c.domain == "cluster.local."
    assert c.disable_host_node_id is True
    assert c.set_flags == frozenset(
        {"server", "bootstrap-expect", "ui", "data-dir", "bind", "client", "advertise", "retry-join", "domain",
         "disable-host-node-id"}
    )
    # Server lifecycle defaults (docs/compat/config.md#the-seed-statefulset).
    assert c.leave_on_terminate is False
    assert c.skip_leave_on_interrupt is True
    # Untouched defaults.
    assert c.datacenter == "dc1"
    assert c.ports.http == 8500 and c.ports.https == -1 and c.ports.dns == 8600 and c.ports.server == 8300
    assert c.ports.serf_lan == 8301 and c.ports.serf_wan == 8302 and c.ports.grpc == -1
    assert c.retry_interval == 30.0 and c.retry_max == 0
    assert c.default_query_time == 300.0 and c.max_query_time == 600.0
    assert c.log_level == "info"
    # The node name defaults to this machine's hostname, which may itself draw a DNS warning.
    assert [w for w in c.warnings if not w.startswith("Node name")] == []
    assert c.dev_mode is False


def test_seed_command_line_space_separated_and_double_dash() -> None:
    argv = ["--server", "-bootstrap-expect", "3", "--data-dir", "/d", "-retry-join", "a", "--retry-join=b"]
    c = parse_agent_flags(argv)
    assert c.server and c.bootstrap_expect == 3 and c.data_dir == "/d" and c.retry_join == ("a", "b")


def test_defaults_for_client_agent() -> None:
    c = parse_agent_flags(BASE)
    assert c.server is False
    assert c.leave_on_terminate is True
    assert c.skip_leave_on_interrupt is False
    assert c.bind_addr == "0.0.0.0" and c.client_addr == "127.0.0.1"
    assert c.domain == "consul."
    assert c.acl.enabled is False and c.acl.default_policy == "allow" and c.acl.down_policy == "extend-cache"
    assert c.limits.kv_max_value_size == 524288 and c.limits.txn_max_req_len == 524288
    assert c.limits.http_max_conns_per_client == 200
    assert c.performance.raft_multiplier == 5 and c.performance.rpc_hold_timeout == 7.0
    assert c.autopilot.cleanup_dead_servers and c.autopilot.last_contact_threshold == pytest.approx(0.2)
    assert c.autopilot.max_trailing_logs == 250 and c.autopilot.server_stabilization_time == 10.0
    assert c.session_ttl_min == 10.0 and c.check_output_max_size == 4096 and c.check_update_interval == 300.0
    assert c.disable_remote_exec is True
    assert c.dns_config.allow_stale and c.dns_config.max_stale == 87600 * 3600
    assert c.dns_config.udp_answer_limit == 3 and c.dns_config.recursor_timeout == 2.0
    assert c.dns_config.soa.refresh == 3600 and c.dns_config.soa.expire == 86400
    assert c.telemetry.prometheus_retention_time == 0.0
    assert c.raft_protocol == 3 and c.protocol == 2
    assert c.node_name  # hostname
    assert c.node_id is None
    assert c.set_flags == frozenset({"data-dir"})


def test_dev_mode_defaults() -> None:
    c = parse_agent_flags(["-dev"])
    assert c.dev_mode and c.server and c.bootstrap
    assert c.bind_addr == "127.0.0.1" and c.client_addr == "127.0.0.1"
    assert c.ui_enabled and c.log_level == "debug" and c.ports.grpc == 8502
    assert c.data_dir is None
    assert c.performance.raft_multiplier == 1


def test_dev_mode_flags_override_dev_defaults() -> None:
    c = parse_agent_flags(["-dev", "-client=0.0.0.0", "-log-level=INFO", "-ui=false"])
    assert c.client_addr == "0.0.0.0" and c.log_level == "info" and not c.ui_enabled


def test_dev_mode_rejects_bootstrap_expect() -> None:
    with pytest.raises(ConfigError, match="not allowed in dev mode"):
        parse_agent_flags(["-dev", "-bootstrap-expect=3"])


def test_dev_mode_accepts_bootstrap_expect_one_as_bootstrap() -> None:
    """Consul turns ``bootstrap_expect = 1`` into bootstrap mode before validating, so
    ``-dev -bootstrap-expect 1`` (how python-consul2's suite starts its agents) is accepted."""
    c = parse_agent_flags(["-dev", "-bootstrap-expect", "1"])
    assert c.bootstrap is True and c.bootstrap_expect == 0
    assert "BootstrapExpect is set to 1; this is the same as Bootstrap mode." in c.warnings
    c = parse_agent_flags([*BASE, "-server", "-bootstrap", "-bootstrap-expect=1"])
    assert c.bootstrap is True and c.bootstrap_expect == 0


@pytest.mark.parametrize(
    ("argv", "attr", "expected"),
    [
        (["-server=false"], "server", False),
        (["-server=true"], "server", True),
        (["-server=1"], "server", True),
        (["-log-json"], "log_json", True),
        (["-enable-script-checks"], "enable_script_checks", True),
        (["-enable-local-script-checks=T"], "enable_local_script_checks", True),
        (["-disable-host-node-id=false"], "disable_host_node_id", False),
        (["-rejoin"], "rejoin_after_leave", True),
        (["-node=consul-0"], "node_name", "consul-0"),
        (["-node-id=ADF4238A-882B-9DDC-4A9D-5B6758E4159E"], "node_id", "adf4238a-882b-9ddc-4a9d-5b6758e4159e"),
        (["-datacenter=DC-East_1"], "datacenter", "dc-east_1"),
        (["-advertise-wan=1.2.3.4"], "advertise_addr_wan", "1.2.3.4"),
        (["-alt-domain=Example.COM"], "alt_domain", "example.com."),
        (["-recursor=8.8.8.8", "-recursor", "1.1.1.1"], "recursors", ("8.8.8.8", "1.1.1.1")),
        (["-join=a", "-retry-join=b"], "retry_join", ("a", "b")),
        (["-retry-join-wan=w"], "retry_join_wan", ("w",)),
        (["-retry-interval=5s"], "retry_interval", 5.0),
        (["-retry-max=7"], "retry_max", 7),
        (["-default-query-time=1m"], "default_query_time", 60.0),
        (["-max-query-time=15.5s"], "max_query_time", 15.5),
        (["-log-level=warn"], "log_level", "warn"),
        (["-log-level=WARNING"], "log_level", "warn"),
        (["-encrypt=pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s="], "encrypt",
         "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s="),
        (["-pid-file=/run/x.pid"], "pid_file", "/run/x.pid"),
        (["-raft-protocol=3"], "raft_protocol", 3),
        (["-client=127.0.0.1 10.0.0.1"], "client_addrs", ("127.0.0.1", "10.0.0.1")),
        (["-bind={{ GetPrivateIP }}"], "bind_addr", "{{ GetPrivateIP }}"),
        (["-bootstrap", "-server"], "bootstrap", True),
    ],
)
def test_individual_flags(argv: list[str], attr: str, expected: object) -> None:
    c = parse_agent_flags(BASE + argv)
    assert getattr(c, attr) == expected


@pytest.mark.parametrize(
    ("flag", "port_attr"),
    [("http-port", "http"), ("https-port", "https"), ("dns-port", "dns"), ("grpc-port", "grpc"),
     ("grpc-tls-port", "grpc_tls"), ("serf-lan-port", "serf_lan"), ("serf-wan-port", "serf_wan"),
     ("server-port", "server")],
)
def test_port_flags(flag: str, port_attr: str) -> None:
    c = parse_agent_flags([*BASE, f"-{flag}=1234"])
    assert getattr(c.ports, port_attr) == 1234
    assert flag in c.set_flags


def test_https_port_seed_and_disable() -> None:
    assert parse_agent_flags([*BASE, "-https-port=8443"]).ports.https == 8443
    assert parse_agent_flags([*BASE, "-dns-port=-1"]).ports.dns == -1
    assert parse_agent_flags([*BASE, "-http-port=0"]).ports.http == -1
    assert parse_agent_flags([*BASE, "-http-port=0x1f90"]).ports.http == 8080
    assert parse_agent_flags([*BASE, "-http-port=8_080"]).ports.http == 8080
    assert parse_agent_flags([*BASE, "-http-port=017"]).ports.http == 15  # Go legacy octal
    assert parse_agent_flags([*BASE, "-http-port=0o17"]).ports.http == 15
    assert parse_agent_flags([*BASE, "-http-port=+80"]).ports.http == 80
    for bad in ("8080_", "_8080", " 80", "\u0668\u0660", "80.0", "1e3"):
        with pytest.raises(ConfigError, match="parse error"):
            parse_agent_flags([*BASE, f"-http-port={bad}"])


def test_node_meta_flag() -> None:
    c = parse_agent_flags([*BASE, "-node-meta=rack:r1", "-node-meta", "zone:a:b", "-node-meta=flag"])
    assert c.node_meta == {"rack": "r1", "zone": "a:b", "flag": ""}


def test_bootstrap_expect_one_is_bootstrap() -> None:
    c = parse_agent_flags([*BASE, "-server", "-bootstrap-expect=1"])
    assert c.bootstrap is True and c.bootstrap_expect == 0
    assert any("BootstrapExpect is set to 1" in w for w in c.warnings)


def test_node_name_dns_warnings() -> None:
    assert parse_agent_flags([*BASE, "-node=consul-0"]).warnings == ()
    assert any("invalid characters" in w for w in parse_agent_flags([*BASE, "-node=my_node"]).warnings)
    assert any("too long" in w for w in parse_agent_flags([*BASE, "-node=" + "n" * 64]).warnings)


def test_even_bootstrap_expect_warns() -> None:
    c = parse_agent_flags([*BASE, "-server", "-bootstrap-expect=4"])
    assert c.bootstrap_expect == 4 and c.warnings


# ---------------------------------------------------------------- command-line errors


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-bogus"], "flag provided but not defined: -bogus"),
        (["--bogus=1"], "flag provided but not defined: -bogus"),
        (["-Server"], "flag provided but not defined: -Server"),
        (["-data-dir"], "flag needs an argument: -data-dir"),
        (["-server", "true"], "unexpected argument 'true'"),
        (["agent"], "unexpected argument 'agent'"),
        (["---server"], "bad flag syntax: ---server"),
        (["-=x"], "bad flag syntax: -=x"),
        (["-server", "--", "x"], "unexpected argument 'x'"),
    ],
)
def test_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_agent_flags(argv)
    assert str(info.value) == message
    assert not isinstance(info.value, ConfigError)


def test_help_requested() -> None:
    for arg in ("-h", "-help", "--help"):
        with pytest.raises(HelpRequested):
            parse_agent_flags([arg])


def test_double_dash_terminator_alone_is_fine() -> None:
    assert parse_agent_flags([*BASE, "--"]).data_dir == "/tmp/x"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-http-port=x"], 'invalid value "x" for flag -http-port: parse error'),
        (["-http-port="], 'invalid value "" for flag -http-port: parse error'),
        (["-bootstrap-expect=1.5"], 'invalid value "1.5" for flag -bootstrap-expect: parse error'),
        (["-retry-max=99999999999999999999"], 'invalid value "99999999999999999999" for flag -retry-max: value out of range'),
        (["-server=yes"], 'invalid boolean value "yes" for -server: parse error'),
        (["-retry-interval=30"], 'invalid value "30" for flag -retry-interval: time: missing unit in duration "30"'),
        (["-max-query-time=abc"], 'invalid value "abc" for flag -max-query-time: time: invalid duration "abc"'),
        (["-config-format=yaml"], 'invalid value "yaml" for flag -config-format: must be json or hcl'),
    ],
)
def test_bad_flag_values(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_agent_flags(BASE + argv)
    assert str(info.value) == message


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("argv", "pattern"),
    [
        (["-server", "-bootstrap", "-bootstrap-expect=3"], "mutually exclusive"),
        (["-bootstrap-expect=3"], "requires server mode"),
        (["-bootstrap"], "requires server mode"),
        (["-server", "-bootstrap-expect=-1"], "bootstrap_expect cannot be -1"),
        (["-datacenter=dc 1"], "datacenter 'dc 1' can only contain"),
        (["-datacenter=dc.1"], "can only contain lowercase alphanumeric"),
        (["-datacenter="], "datacenter cannot be empty"),
        (["-node-id=not-a-uuid"], "node_id 'not-a-uuid' is not a valid UUID"),
        (["-node-id=adf4238a882b9ddc4a9d5b6758e4159e"], "not a valid UUID"),
        (["-node="], "node_name cannot be empty"),
        (["-http-port=70000"], r"ports.http must be between 1 and 65535"),
        (["-server-port=0"], r"ports.server must be between 1 and 65535"),
        (["-serf-lan-port=-1"], r"ports.serf_lan must be between 1 and 65535"),
        (["-raft-protocol=2"], "raft_protocol version 2 is not supported"),
        (["-log-level=loud"], "Invalid log level"),
        (["-bind=not-an-ip"], "bind_addr: 'not-an-ip' is not a valid IP"),
        (["-client=127.0.0.1 nope"], "client_addr: 'nope'"),
        (["-advertise=host.example"], "advertise_addr"),
        (["-encrypt=!!!"], "invalid base64"),
        (["-encrypt=YWJj"], "must be 16, 24 or 32 bytes"),
        (["-node-meta=consul-x:1"], "reserved prefix"),
        (["-node-meta=bad key:1"], "invalid characters"),
        (["-node-meta=" + "k" * 129 + ":1"], "too long"),
        (["-node-meta=k:" + "v" * 513], "value for key 'k' is too long"),
        (["-node-meta=:v"], "key cannot be blank"),
        (["-domain="], "domain cannot be empty"),
        (["-domain=a.b", "-alt-domain=A.B."], "alt_domain cannot be the same"),
        (["-default-query-time=0s"], "default_query_time must be > 0"),
        (["-retry-max=-1"], "retry_max cannot be negative"),
    ],
)
def test_validation_errors(argv: list[str], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        parse_agent_flags(BASE + argv)


def test_data_dir_required_without_dev() -> None:
    with pytest.raises(ConfigError, match="data_dir cannot be empty"):
        parse_agent_flags(["-server"])


def test_node_meta_pair_limit() -> None:
    ok = [f"-node-meta=k{i}:v" for i in range(64)]
    assert len(parse_agent_flags(BASE + ok).node_meta) == 64
    with pytest.raises(ConfigError, match="more than 64"):
        parse_agent_flags([*BASE, *ok, "-node-meta=extra:v"])


def test_node_meta_allows_consul_network_segment() -> None:
    c = config_from_dict({"data_dir": "/d", "node_meta": {"consul-network-segment": ""}})
    assert c.node_meta == {"consul-network-segment": ""}


def test_node_meta_max_key_length_ok() -> None:
    assert parse_agent_flags([*BASE, "-node-meta=" + "k" * 128 + ":" + "v" * 512]).node_meta


# ---------------------------------------------------------------- config files


def write(path: Path, content: str | dict[str, object]) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_json_config_file_with_services_and_checks(tmp_path: Path) -> None:
    f = write(
        tmp_path / "agent.json",
        {
            "datacenter": "east",
            "data_dir": "/var/consul",
            "server": True,
            "ports": {"https": 8443},
            "retry_join": ["10.0.0.1"],
            "service": {"name": "web", "port": 80, "tags": ["v1"], "check": {"http": "http://localhost/", "interval": "10s"}},
            "services": [{"name": "db", "port": 5432, "meta": {"Version": "15"}, "checks": [{"tcp": "localhost:5432", "interval": "5s"}]}],
            "checks": [{"id": "mem", "name": "Memory", "ttl": "30s"}],
            "check": {"name": "disk", "args": ["/bin/true"], "interval": "1m"},
            "acl": {"enabled": True, "default_policy": "deny", "tokens": {"default": "abc", "master": "root"}},
            "dns_config": {"service_ttl": {"*": "5s", "web": "30s"}, "only_passing": True},
            "limits": {"kv_max_value_size": 1024},
            "telemetry": {"prometheus_retention_time": "60s", "circonus_api_token": "t"},
            "connect": {"enabled": True},
        },
    )
    c = parse_agent_flags([f"-config-file={f}"])
    assert c.datacenter == "east" and c.data_dir == "/var/consul" and c.server
    assert c.ports.https == 8443 and c.ports.http == 8500
    assert c.retry_join == ("10.0.0.1",)
    assert [s["name"] for s in c.services] == ["web", "db"]
    assert c.services[0]["check"] == {"http": "http://localhost/", "interval": "10s"}
    assert c.services[1]["meta"] == {"Version": "15"}  # user map keys untouched
    assert c.services[1]["checks"] == [{"tcp": "localhost:5432", "interval": "5s"}]
    assert [ch["name"] for ch in c.checks] == ["Memory", "disk"]
    assert c.acl.enabled and c.acl.default_policy == "deny"
    assert c.acl.tokens.default == "abc" and c.acl.tokens.initial_management == "root"
    assert c.dns_config.service_ttl == {"*": 5.0, "web": 30.0} and c.dns_config.only_passing
    assert c.limits.kv_max_value_size == 1024 and c.limits.txn_max_req_len == 524288
    assert c.telemetry.prometheus_retention_time == 60.0
    assert c.telemetry.extra == {"circonus_api_token": "t"}
    assert c.extra == {"connect": {"enabled": True}}
    assert c.config_files == (str(f),)


HCL_CONFIG = """
datacenter = "west"
data_dir   = "/opt/consul"
server     = true
bootstrap_expect = 3
retry_join = ["consul-0", "consul-1"]

ports {
  https = 8443
  grpc  = 8502
}

node_meta = {
  "rack-id" = "r7"
}

ui_config {
  enabled = true
}

acl {
  enabled = true
  tokens {
    agent = "agent-token"
  }
}

service {
  name = "web"
  port = 8080
  tags = ["primary", "v2"]
  meta = {
    version = "2.1"
  }
  check {
    id       = "web-http"
    http     = "http://localhost:8080/health"
    interval = "10s"
    header = {
      X-Probe = ["1"]
    }
  }
  check {
    tcp      = "localhost:8080"
    interval = "5s"
  }
}

services {
  name = "api"
  port = 9000
  checks = [
    { ttl = "30s" },
  ]
}

services {
  name = "cache"
}

check {
  id   = "uptime"
  name = "Uptime"
  ttl  = "1m"
}

dns_config {
  service_ttl = {
    "*" = "10s"
  }
  soa {
    min_ttl = 30
  }
}

performance {
  raft_multiplier = 1
}
"""


def test_hcl_config_file(tmp_path: Path) -> None:
    f = write(tmp_path / "agent.hcl", HCL_CONFIG)
    c = parse_agent_flags(["-config-file", str(f)])
    assert c.datacenter == "west" and c.data_dir == "/opt/consul" and c.server and c.bootstrap_expect == 3
    assert c.retry_join == ("consul-0", "consul-1")
    assert c.ports.https == 8443 and c.ports.grpc == 8502 and c.ports.http == 8500
    assert c.node_meta == {"rack-id": "r7"}
    assert c.ui_enabled
    assert c.acl.enabled and c.acl.tokens.agent == "agent-token"
    assert [s["name"] for s in c.services] == ["web", "api", "cache"]
    web = c.services[0]
    assert web["tags"] == ["primary", "v2"] and web["port"] == 8080
    assert web["meta"] == {"version": "2.1"}
    assert web["check"] == {
        "id": "web-http", "http": "http://localhost:8080/health", "interval": "10s", "header": {"X-Probe": ["1"]},
    }
    assert web["checks"] == [{"tcp": "localhost:8080", "interval": "5s"}]
    assert c.services[1]["checks"] == [{"ttl": "30s"}]
    assert c.checks == ({"id": "uptime", "name": "Uptime", "ttl": "1m"},)
    assert c.dns_config.service_ttl == {"*": 10.0} and c.dns_config.soa.min_ttl == 30
    assert c.dns_config.soa.refresh == 3600
    assert c.performance.raft_multiplier == 1


def test_camelcase_definitions_in_json(tmp_path: Path) -> None:
    f = write(tmp_path / "a.json", {
        "data_dir": "/d",
        "services": [{"Name": "web", "Checks": [{"HTTP": "http://x/", "Interval": "5s"}],
                      "Meta": {"k": "v"}, "TaggedAddresses": {"lan": {"address": "1.2.3.4", "port": 80}}}],
    })
    svc = parse_agent_flags([f"-config-file={f}"]).services[0]
    assert svc["Checks"] == [{"HTTP": "http://x/", "Interval": "5s"}]
    assert svc["Meta"] == {"k": "v"}
    assert svc["TaggedAddresses"] == {"lan": {"address": "1.2.3.4", "port": 80}}


def test_hcl1_style_quoted_keys_in_user_map_blocks(tmp_path: Path) -> None:
    f = write(tmp_path / "a.hcl", """
data_dir = "/d"
node_meta {
  "rack-id" = "r1"
  zone = "a"
}
dns_config {
  service_ttl {
    "*" = "5s"
    "web" = "1s"
  }
}
service {
  name = "web"
  meta {
    "com.example/owner" = "team-a"
  }
  check {
    http = "http://localhost/"
    interval = "10s"
    header {
      "X-Probe" = ["1"]
    }
  }
}
""")
    c = parse_agent_flags([f"-config-file={f}"])
    assert c.node_meta == {"rack-id": "r1", "zone": "a"}
    assert c.dns_config.service_ttl == {"*": 5.0, "web": 1.0}
    assert c.services[0]["meta"] == {"com.example/owner": "team-a"}
    assert c.services[0]["check"]["header"] == {"X-Probe": ["1"]}


def test_telemetry_disable_compat_in_consuls_dotted_spelling(tmp_path: Path) -> None:
    """Consul's key is ``disable_compat_1.9`` (a dot: an HCL1 identifier, not an HCL2 one)."""
    assert Config().telemetry.disable_compat_1_9 is True
    hcl = write(tmp_path / "a.hcl", 'data_dir = "/d"\ntelemetry {\n  disable_compat_1.9 = false\n}\n')
    assert parse_agent_flags([f"-config-file={hcl}"]).telemetry.disable_compat_1_9 is False
    js = write(tmp_path / "b.json", {"data_dir": "/d", "telemetry": {"disable_compat_1.9": False}})
    assert parse_agent_flags([f"-config-file={js}"]).telemetry.disable_compat_1_9 is False
    # The underscore spelling still works; in one block Consul's spelling wins.
    both = write(tmp_path / "c.json", {"data_dir": "/d", "telemetry": {"disable_compat_1_9": True, "disable_compat_1.9": False}})
    assert parse_agent_flags([f"-config-file={both}"]).telemetry.disable_compat_1_9 is False
    frag = parse_agent_flags(["-data-dir=/d", "-hcl", "telemetry { disable_compat_1.9 = false }"])
    assert frag.telemetry.disable_compat_1_9 is False
    # A value that merely mentions the key is not rewritten.
    named = write(tmp_path / "d.hcl", 'data_dir = "/d"\nnode_meta {\n  k = "disable_compat_1.9 = x"\n}\n')
    assert parse_agent_flags([f"-config-file={named}"]).node_meta == {"k": "disable_compat_1.9 = x"}


def test_config_format_forces_parser(tmp_path: Path) -> None:
    f = write(tmp_path / "agent.conf", 'datacenter = "x1"\ndata_dir = "/d"\n')
    # Unknown extension without -config-format: skipped with a warning, as Consul does.
    skipped = parse_agent_flags([*BASE, f"-config-file={f}"])
    assert skipped.datacenter == "dc1" and skipped.config_files == ()
    assert any("skipping file" in w and "agent.conf" in w for w in skipped.warnings)
    assert parse_agent_flags([f"-config-file={f}", "-config-format=hcl"]).datacenter == "x1"


def test_config_format_applies_to_every_file_in_dir(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    write(d / "a.conf", {"data_dir": "/d", "datacenter": "fromjson"})
    write(d / "b.txt", {"log_level": "warn"})
    c = parse_agent_flags([f"-config-dir={d}", "-config-format=json"])
    assert c.datacenter == "fromjson" and c.log_level == "warn"
    assert len(c.config_files) == 2


def test_config_file_flag_accepts_directory(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    write(d / "a.json", {"data_dir": "/d", "datacenter": "viafile"})
    assert parse_agent_flags([f"-config-file={d}"]).datacenter == "viafile"


def test_config_file_and_dir_interleave_in_command_line_order(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    write(d / "a.json", {"data_dir": "/d", "datacenter": "fromdir"})
    f = write(tmp_path / "f.json", {"datacenter": "fromfile"})
    assert parse_agent_flags([f"-config-dir={d}", f"-config-file={f}"]).datacenter == "fromfile"
    assert parse_agent_flags([f"-config-file={f}", f"-config-dir={d}"]).datacenter == "fromdir"


def test_config_dir_alphabetical_non_recursive(tmp_path: Path) -> None:
    d = tmp_path / "conf.d"
    d.mkdir()
    write(d / "20-b.hcl", 'log_level = "warn"\nretry_join = ["b"]\n')
    write(d / "10-a.json", {"log_level": "debug", "retry_join": ["a"], "data_dir": "/d"})
    write(d / "30-c.json", {"node_meta": {"x": "1"}})
    write(d / "README.md", "not config")
    write(d / "ignored.yaml", "a: b")
    (d / "sub").mkdir()
    write(d / "sub" / "99.json", {"log_level": "error"})
    c = parse_agent_flags([f"-config-dir={d}"])
    assert c.log_level == "warn"
    assert c.retry_join == ("a", "b")
    assert c.node_meta == {"x": "1"}
    assert c.config_files == (str(d / "10-a.json"), str(d / "20-b.hcl"), str(d / "30-c.json"))


def test_precedence_files_in_order_then_flags(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", {
        "datacenter": "one", "data_dir": "/a", "retry_join": ["x"], "node_meta": {"a": "1", "b": "1"},
        "ports": {"http": 1111, "dns": 5353}, "services": [{"name": "s1"}],
        "dns_config": {"node_ttl": "1s", "service_ttl": {"a": "1s"}},
    })
    b = write(tmp_path / "b.json", {
        "datacenter": "two", "retry_join": ["y"], "node_meta": {"b": "2"}, "ports": {"http": 2222},
        "services": [{"name": "s2"}], "dns_config": {"service_ttl": {"b": "2s"}},
    })
    c = parse_agent_flags([f"-config-file={a}", f"-config-file={b}", "-retry-join=z", "-http-port=3333",
                           "-node-meta=c:3"])
    assert c.datacenter == "two"  # scalar replaced by later file
    assert c.retry_join == ("x", "y", "z")  # lists appended, flags last
    assert c.node_meta == {"a": "1", "b": "2", "c": "3"}  # maps merged
    assert c.ports.http == 3333 and c.ports.dns == 5353  # nested sections merged key by key
    assert [s["name"] for s in c.services] == ["s1", "s2"]
    assert c.dns_config.node_ttl == 1.0 and c.dns_config.service_ttl == {"a": 1.0, "b": 2.0}
    reordered = parse_agent_flags([f"-config-file={b}", f"-config-file={a}"])
    assert reordered.datacenter == "one" and reordered.retry_join == ("y", "x")


def test_hcl_fragment_after_files_before_flags(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", {"datacenter": "one", "data_dir": "/a", "log_level": "debug"})
    c = parse_agent_flags([f"-config-file={a}", "-hcl", 'datacenter = "two"\nlog_level = "warn"', "-log-level=error"])
    assert c.datacenter == "two" and c.log_level == "error"


def test_dev_defaults_below_files(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", {"log_level": "warn", "bind_addr": "10.0.0.5"})
    c = parse_agent_flags(["-dev", f"-config-file={a}"])
    assert c.log_level == "warn" and c.bind_addr == "10.0.0.5" and c.server


def test_legacy_keys(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", {
        "data_dir": "/d", "ui": True, "ui_dir": "/ui", "acl_token": "t1", "acl_agent_token": "t2",
        "acl_default_policy": "deny", "ca_file": "/ca.pem", "verify_incoming": True, "recursor": "9.9.9.9",
        "recursors": ["8.8.8.8"], "start_join": ["j1"], "acl_datacenter": "Prim",
    })
    c = parse_agent_flags([f"-config-file={a}"])
    assert c.ui_enabled and c.ui_config.dir == "/ui"
    assert c.acl.tokens.default == "t1" and c.acl.tokens.agent == "t2" and c.acl.default_policy == "deny"
    assert c.tls.defaults.ca_file == "/ca.pem" and c.tls.defaults.verify_incoming is True
    assert c.tls.effective("https").ca_file == "/ca.pem"
    assert set(c.recursors) == {"9.9.9.9", "8.8.8.8"}
    assert c.retry_join == ("j1",)
    assert c.primary_datacenter == "prim"


def test_modern_key_wins_over_legacy_alias() -> None:
    c = config_from_dict({"data_dir": "/d", "ui": False, "ui_config": {"enabled": True}})
    assert c.ui_enabled


def test_tls_effective_protocol_override() -> None:
    c = config_from_dict({"data_dir": "/d", "tls": {"defaults": {"cert_file": "a", "verify_incoming": True},
                                                    "https": {"verify_incoming": False}}})
    eff = c.tls.effective("https")
    assert eff.cert_file == "a" and eff.verify_incoming is False
    assert c.tls.effective("internal_rpc").verify_incoming is True


def test_null_means_unset() -> None:
    c = config_from_dict({"data_dir": "/d", "datacenter": None, "ports": {"http": None}, "retry_join": None})
    assert c.datacenter == "dc1" and c.ports.http == 8500 and c.retry_join == ()


def test_bad_acl_tokens_type_is_reported() -> None:
    with pytest.raises(ConfigError, match=r"acl\.tokens: expected an object, got string"):
        config_from_dict({"data_dir": "/d", "acl": {"tokens": "abc"}})
    with pytest.raises(ConfigError, match=r"tls: expected an object, got string"):
        config_from_dict({"data_dir": "/d", "tls": "x", "ca_file": "/ca"})


def test_weak_typing_of_scalars() -> None:
    c = config_from_dict({"data_dir": "/d", "server": "true", "ports": {"http": "8080"}, "bootstrap_expect": 0,
                          "session_ttl_min": "1s", "limits": {"rpc_rate": 10}})
    assert c.server is True and c.ports.http == 8080 and c.session_ttl_min == 1.0 and c.limits.rpc_rate == 10.0


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ({"bogus_key": 1}, r"Error parsing .*a\.json: invalid config key bogus_key"),
        ({"ports": {"htp": 1}}, r"invalid config key ports\.htp"),
        ({"acl": {"tokens": {"nope": "x"}}}, r"invalid config key acl\.tokens\.nope"),
        ({"extra": {}}, r"invalid config key extra"),
        ({"ports": {"http": "abc"}}, r"ports\.http: invalid integer 'abc'"),
        ({"ports": {"http": True}}, r"ports\.http: expected an integer, got bool"),
        ({"server": "yes"}, r"server: invalid boolean 'yes'"),
        ({"datacenter": ["a"]}, r"datacenter: expected a string, got list"),
        ({"retry_interval": "5"}, r'retry_interval: time: missing unit in duration "5"'),
        ({"retry_interval": 5}, r'retry_interval: time: missing unit in duration "5"'),
        ({"retry_join": [1, {}]}, r"retry_join\[1\]: expected a string, got object"),
        ({"ports": 5}, r"ports: expected an object, got number"),
        ({"services": "web"}, r"services: expected a list of definitions, got string"),
        ({"services": ["web"]}, r"services\[0\]: expected an object, got string"),
        ({"dns_config": {"service_ttl": {"*": "x"}}}, r'dns_config\.service_ttl\.\*: time: invalid duration "x"'),
    ],
)
def test_file_errors_name_file_and_key(tmp_path: Path, data: dict[str, object], pattern: str) -> None:
    f = write(tmp_path / "a.json", {"data_dir": "/d", **data})
    with pytest.raises(ConfigError, match=pattern):
        parse_agent_flags([f"-config-file={f}"])


def test_unknown_key_in_hcl_file(tmp_path: Path) -> None:
    f = write(tmp_path / "bad.hcl", 'data_dir = "/d"\nnot_a_key = 1\n')
    with pytest.raises(ConfigError, match=r"bad\.hcl: invalid config key not_a_key"):
        parse_agent_flags([f"-config-file={f}"])


def test_file_syntax_errors(tmp_path: Path) -> None:
    j = write(tmp_path / "a.json", '{"data_dir": ')
    with pytest.raises(ConfigError, match=r"Error parsing .*a\.json: "):
        parse_agent_flags([f"-config-file={j}"])
    h = write(tmp_path / "a.hcl", "data_dir = \n")
    with pytest.raises(ConfigError, match=r"Error parsing .*a\.hcl: "):
        parse_agent_flags([f"-config-file={h}"])
    arr = write(tmp_path / "arr.json", "[1, 2]")
    with pytest.raises(ConfigError, match="top level must be an object"):
        parse_agent_flags([f"-config-file={arr}"])
    with pytest.raises(ConfigError, match=r"Error parsing -hcl fragment 1"):
        parse_agent_flags([*BASE, "-hcl", "= ="])


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file or directory"):
        parse_agent_flags([f"-config-file={tmp_path / 'nope.json'}"])
    with pytest.raises(ConfigError, match="no such file or directory"):
        parse_agent_flags([f"-config-dir={tmp_path / 'nope'}"])


def test_empty_json_file_is_empty_config(tmp_path: Path) -> None:
    f = write(tmp_path / "empty.json", "")
    assert parse_agent_flags([*BASE, f"-config-file={f}"]).datacenter == "dc1"


def test_validation_applies_to_file_values(tmp_path: Path) -> None:
    f = write(tmp_path / "a.json", {"data_dir": "/d", "node_meta": {"consul-bad": "1"}})
    with pytest.raises(ConfigError, match="reserved prefix"):
        parse_agent_flags([f"-config-file={f}"])
    f2 = write(tmp_path / "b.json", {"data_dir": "/d", "acl": {"down_policy": "nah"}})
    with pytest.raises(ConfigError, match="acl.down_policy"):
        parse_agent_flags([f"-config-file={f2}"])
    f3 = write(tmp_path / "c.json", {"data_dir": "/d", "performance": {"raft_multiplier": 11}})
    with pytest.raises(ConfigError, match="raft_multiplier cannot be 11"):
        parse_agent_flags([f"-config-file={f3}"])


def test_leave_flags_explicit_override() -> None:
    c = config_from_dict({"data_dir": "/d", "server": True, "leave_on_terminate": True})
    assert c.leave_on_terminate is True and c.skip_leave_on_interrupt is True


def test_config_from_dict_dev() -> None:
    c = config_from_dict({}, dev=True)
    assert c.dev_mode and c.server and c.bootstrap and c.data_dir is None


# ---------------------------------------------------------------- reload diff


def test_reloadable_diff() -> None:
    old = config_from_dict({"data_dir": "/d"})
    new = config_from_dict({
        "data_dir": "/d", "log_level": "debug", "node_meta": {"a": "b"}, "services": [{"name": "w"}],
        "acl": {"tokens": {"agent": "t"}}, "dns_config": {"only_passing": True}, "ports": {"http": 1},
    })
    assert reloadable_diff(old, new) == frozenset({"log_level", "node_meta", "services", "acl.tokens", "dns_config"})
    assert non_reloadable_diff(old, new) == frozenset({"ports"})
    assert reloadable_diff(old, old) == frozenset()
    assert changed_keys(old, config_from_dict({"data_dir": "/d", "acl": {"enabled": True}})) == frozenset({"acl"})


def test_reload_rereads_files(tmp_path: Path) -> None:
    f = write(tmp_path / "a.json", {"data_dir": "/d", "checks": [{"name": "c", "ttl": "5s"}]})
    old = parse_agent_flags([f"-config-file={f}"])
    write(f, {"data_dir": "/d", "checks": [{"name": "c", "ttl": "9s"}], "limits": {"kv_max_value_size": 10}})
    new = parse_agent_flags([f"-config-file={f}"])
    assert reloadable_diff(old, new) == frozenset({"checks", "limits"})


# ---------------------------------------------------------------- misc


def test_usage_lists_every_flag() -> None:
    for name in ("server", "bootstrap-expect", "ui", "data-dir", "bind", "client", "advertise", "advertise-wan",
                 "retry-join", "join", "retry-interval", "retry-max", "retry-join-wan", "domain", "alt-domain",
                 "disable-host-node-id", "dev", "node", "node-id", "node-meta", "datacenter", "http-port",
                 "https-port", "dns-port", "grpc-port", "serf-lan-port", "serf-wan-port", "server-port",
                 "config-file", "config-dir", "config-format", "hcl", "log-level", "log-json", "bootstrap",
                 "encrypt", "recursor", "enable-script-checks", "enable-local-script-checks",
                 "default-query-time", "max-query-time", "raft-protocol", "pid-file", "rejoin"):
        assert f"  -{name}" in USAGE, name


def test_config_is_frozen() -> None:
    c = config_from_dict({"data_dir": "/d"})
    with pytest.raises(AttributeError):
        c.server = True  # type: ignore[misc]
    assert isinstance(c, Config)


@pytest.mark.parametrize("s", ["1", "t", "T", "TRUE", "true", "True"])
def test_go_bool_true(s: str) -> None:
    assert parse_go_bool(s) is True


@pytest.mark.parametrize("s", ["0", "f", "F", "FALSE", "false", "False"])
def test_go_bool_false(s: str) -> None:
    assert parse_go_bool(s) is False


@pytest.mark.parametrize("s", ["", "yes", "tRUE", "2", " true"])
def test_go_bool_invalid(s: str) -> None:
    with pytest.raises(ValueError):
        parse_go_bool(s)
