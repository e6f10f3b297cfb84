#!/usr/bin/python3
"""Right after a restart, every new connection is served: none reset, none refused.

A 2-shard broker is restarted ROUNDS times, alternating a graceful stop (SIGTERM) and a
crash (SIGKILL). As soon as Broker.start() has seen the port accept, BURST connections
are opened at once, then an ApiVersions v3 request is sent on each and its response read
and decoded; every one must succeed.

Two causes made this fail before (3 runs of 3 in test_idempotent_raw.py):
- the broker: at a graceful stop the shard closed its listener with a multishot io_uring
  ACCEPT still in the kernel, which holds the socket open; it stayed in LISTEN, in the
  SO_REUSEPORT group, until the kernel tore the ring down after the process had exited.
  Checked here directly: the moment the SIGTERMed process has been reaped, the port
  must refuse connections (no listener outlives the broker that owned it).
- the harness: after a SIGKILL nothing in the process can close the listener first, so
  for some milliseconds after the exit the dead broker's socket still accepts; a port
  probe answered by it returned before the new broker listened. Broker.stop() now waits
  until the port refuses before a restart probes it.
"""
import signal
import socket
import sys

from harness import Broker, KafkaConn, port_accepts, LOOPBACK

ROUNDS = 6
BURST = 64


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  " + what)


def burst_api_versions(bootstrap):
    """Open BURST connections at once, then one ApiVersions on each.

    Returns a list of "i: error" strings, one per connection that failed."""
    conns, failures = [], []
    for i in range(BURST):
        try:
            conns.append((i, KafkaConn(bootstrap, timeout_s=10.0)))
        except OSError as e:
            failures.append("%d: connect: %s" % (i, e))
    sent = []
    for i, c in conns:
        try:
            sent.append((i, c, c.send_request("ApiVersions", 3, {
                "ClientSoftwareName": "restart-connect",
                "ClientSoftwareVersion": "1"})))
        except OSError as e:
            failures.append("%d: send: %s" % (i, e))
    for i, c, correlation_id in sent:
        try:
            body = c.recv_response("ApiVersions", 3, correlation_id)
            if body["ErrorCode"] != 0:
                failures.append("%d: ApiVersions error %d" % (i, body["ErrorCode"]))
        except (OSError, ConnectionError) as e:
            failures.append("%d: recv: %s" % (i, e))
    for _, c in conns:
        c.close()
    return failures


def graceful_stop_leaves_no_listener(b):
    """SIGTERM, reap the process, and look at the port at once (no waiting)."""
    b.proc.send_signal(signal.SIGTERM)
    rc = b.proc.wait(timeout=10)
    still = port_accepts(LOOPBACK, b.port)
    return rc, still


def main():
    with Broker(sys.argv[1], cores="2") as b:
        failures = burst_api_versions(b.bootstrap)
        check(not failures, "fresh start: %d connections served %s" % (BURST, failures[:3]))
        for r in range(ROUNDS):
            if r % 2 == 0:
                rc, still = graceful_stop_leaves_no_listener(b)
                check(rc == 0, "round %d: SIGTERM exits 0" % r)
                check(not still, "round %d: no listener outlives the stopped broker" % r)
                how = "SIGTERM"
            else:
                b.kill()
                how = "SIGKILL"
            b.start()
            failures = burst_api_versions(b.bootstrap)
            check(not failures, "round %d (%s): %d connections right after the restart "
                  "all served %s" % (r, how, BURST, failures[:3]))
    print("PASS")


if __name__ == "__main__":
    main()
