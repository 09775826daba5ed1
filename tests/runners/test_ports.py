"""Port selection: prefer the well-known port, fall back when taken, strict when pinned."""

import socket

import pytest

from runners._ports import PortInUseError, choose_port, free_port, port_is_free


@pytest.fixture
def listener():
    """A real listening socket on a loopback port (what a foreign server looks like)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


def test_a_listening_port_is_not_free(listener):
    assert not port_is_free(listener)


def test_a_free_port_is_free():
    assert port_is_free(free_port())


def test_the_preferred_port_is_used_when_free():
    port = free_port()
    assert choose_port(port) == port


def test_a_taken_default_port_falls_back_to_another_free_port(listener):
    chosen = choose_port(listener)
    assert chosen != listener
    assert port_is_free(chosen)


def test_a_port_already_given_to_another_service_is_not_reused():
    port = free_port()
    assert choose_port(port, taken={port}) != port


def test_a_pinned_port_in_use_fails_with_a_message_saying_what_to_do(listener):
    with pytest.raises(PortInUseError, match=rf"port {listener} for kafka\.broker-1 is in use"):
        choose_port(listener, strict=True, what="kafka.broker-1")


def test_free_port_avoids_the_given_ports():
    first = free_port()
    assert free_port(avoid={first}) != first


def test_an_invalid_port_is_rejected():
    with pytest.raises(ValueError, match=r"1\.\.65535"):
        choose_port(70000)
