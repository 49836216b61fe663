"""Pure service-mesh definition helpers (``muster.agent.mesh``)."""

from __future__ import annotations

import pytest

from muster.agent import mesh
from muster.errors import BadRequest


def test_multierror_formats_like_go_multierror() -> None:
    assert mesh.multierror(["a"]) == "1 error occurred:\n\t* a\n\n"
    assert mesh.multierror(["a", "b"]) == "2 errors occurred:\n\t* a\n\t* b\n\n"


def test_allocate_port_keeps_own_port_and_fills_gaps() -> None:
    services = [{"ID": "a", "Port": 21000}, {"ID": "b", "Port": 21002}, {"ID": "c", "Port": 80}]
    assert mesh.allocate_port(services, "x-sidecar-proxy", 21000, 21255) == 21001
    assert mesh.allocate_port(services, "b", 21000, 21255) == 21002
    with pytest.raises(BadRequest, match=r"none left in the configured range \[21000, 21000\]"):
        mesh.allocate_port(services, "x", 21000, 21000)
    with pytest.raises(BadRequest, match="auto-assignment disabled in config"):
        mesh.allocate_port(services, "x", -1, -1)


def test_sidecar_defaults_socket_parent_and_explicit_values() -> None:
    parent = {"ID": "web-1", "Service": "web", "SocketPath": "/run/web.sock", "Meta": {"a": "b"}, "Tags": []}
    side = mesh.sidecar_defaults(parent, {"Service": "", "Proxy": mesh.parse_proxy(None)})
    assert side["ID"] == "web-1-sidecar-proxy" and side["Service"] == "web-sidecar-proxy"
    assert side["Kind"] == "connect-proxy" and side["Meta"] == {"a": "b"}
    assert side["Proxy"]["LocalServiceSocketPath"] == "/run/web.sock"
    assert "LocalServiceAddress" not in side["Proxy"]
    explicit = mesh.sidecar_defaults(
        {"ID": "w", "Service": "w", "Port": 80},
        {"Service": "custom", "Proxy": mesh.parse_proxy({"local_service_address": "10.0.0.1", "LocalServicePort": 81})},
    )
    assert explicit["Service"] == "custom"
    assert explicit["Proxy"]["LocalServiceAddress"] == "10.0.0.1" and explicit["Proxy"]["LocalServicePort"] == 81


def test_parse_proxy_snake_case_and_omitted_zero_values() -> None:
    p = mesh.parse_proxy(
        {"destination_service_name": "db", "mesh_gateway": {"mode": "local"}, "transparent_proxy": {},
         "upstreams": [{"destination_name": "cache", "local_bind_port": 6379, "datacenter": "dc2"}]}
    )  # fmt: skip
    assert p == {
        "DestinationServiceName": "db",
        "Mode": "",
        "Upstreams": [{"DestinationType": "service", "DestinationName": "cache", "Datacenter": "dc2",
                       "LocalBindPort": 6379, "MeshGateway": {}}],
        "MeshGateway": {"Mode": "local"},
        "Expose": {},
    }  # fmt: skip
    with pytest.raises(BadRequest, match='Invalid Mesh Gateway Mode: "sideways"'):
        mesh.parse_proxy({"MeshGateway": {"Mode": "sideways"}})


def test_duplicate_upstreams_are_rejected() -> None:
    proxy = mesh.parse_proxy(
        {"DestinationServiceName": "web",
         "Upstreams": [{"DestinationName": "db", "LocalBindPort": 1}, {"DestinationName": "db", "LocalBindPort": 2},
                       {"DestinationName": "other", "LocalBindPort": 1}]}
    )  # fmt: skip
    errs = mesh.validation_errors({"Kind": "connect-proxy", "Port": 1, "Proxy": proxy}, for_agent=False)
    assert errs == [
        'upstreams cannot contain duplicates of [type="service", name="db", partition="", namespace="", '
        'peer="", datacenter=""]',
        'upstreams cannot contain duplicates by local bind address and port or unix path; "127.0.0.1:1" is specified twice',
    ]
