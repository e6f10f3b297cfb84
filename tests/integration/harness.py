#!/usr/bin/python3
"""harness: run a sluice broker for an integration test, and small helpers.

Integration tests (Python 3 stdlib only, run with /usr/bin/python3) import
this module:

    from harness import Broker, run, kcat_path
    with Broker(sys.argv[1], config={"num.partitions": 3}) as b:
        rc, out, err = run([kcat_path(), "-b", b.bootstrap, "-L"], timeout=30)

Broker(sluice_path, config={}, cores="1") picks a free loopback port and a
fresh temporary data dir, starts
    sluice serve --listen 127.0.0.1:PORT --data-dir DIR --cores N --set k=v...
and waits (start_timeout_s, default 10 s) until the port accepts a TCP
connection. If the broker exits first, or never listens, start() raises
BrokerError carrying the tail of the broker's stderr. The broker's stdout and
stderr go to files (never to pipes a test could forget to drain, which would
block the broker); .stderr_tail() reads them back and is printed
automatically when the with-block exits with an exception. Leaving the block
always kills the broker (SIGKILL if still running) and removes the temporary
directory (data dir and logs) unless keep_dir=True.

.stop(sig, timeout) sends a signal and waits, escalating to SIGKILL after the
timeout; it returns the exit code (negative = killed by that signal, as in
subprocess) once the port refuses connections again (a dead broker's
io_uring-held listener can outlive it by milliseconds; see
_wait_listeners_gone). .kill() is a SIGKILL crash. .restart() starts again on the same
port and data dir (crash/recovery tests: kill(), then restart()).

Helpers: free_port(), wait_port(host, port, timeout_s), run(cmd, timeout_s)
-> (rc, out, err) with rc 124 on timeout (like timeout(1)), kcat_path(),
kcat(bootstrap, *args), node_available(), npm_ci(js_dir), wait_for(pred,
timeout_s), skip(reason) (exit 77: meson counts the test as skipped).

A test is an executable script (#!/usr/bin/python3, chmod +x) taking the
binary as its first argument, registered in tests/integration/meson.build:
    test('kcat_metadata', find_program('test_kcat_metadata.py'),
         args: [sluice_exe], suite: 'integration', timeout: 60)

KafkaConn(bootstrap) is a raw protocol connection for protocol-level tests:
    with KafkaConn(b.bootstrap) as c:
        body = c.request("Metadata", 12, {"Topics": None})
        c.send_frame(b"garbage"); assert c.is_closed()
Requests are encoded and responses decoded from the Kafka message
definitions by tests/tools/kafka_schema.py, an implementation independent of
sluice's C codec; a response that does not parse exactly raises DecodeError.

Self-test (needs no working sluice: a stand-in "sluice" script serves the
Kafka protocol with tests/tools/capture_broker.py, and kcat talks to it):
    /usr/bin/python3 tests/integration/harness.py --self-test
Smoke test of a real broker (kcat -L, kafkajs describeCluster, every golden
frame of an API the broker advertises answered and decoded, an oversized
frame closes the connection, SIGTERM exits 0):
    /usr/bin/python3 tests/integration/harness.py --smoke build/sluice
"""

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
JS_DIR = os.path.join(HERE, "js")
GOLDEN_DIR = os.path.join(ROOT, "tests", "data", "golden")
sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))
import kafka_schema  # noqa: E402  (schema-driven codec, tests/tools)
PYTHON = "/usr/bin/python3"
LOOPBACK = "127.0.0.1"
RUN_TIMEOUT_RC = 124
SKIP_RC = 77  # meson: the test is skipped
STDERR_TAIL_BYTES = 8192
MAX_RESPONSE_BYTES = 64 << 20


class BrokerError(Exception):
    """The broker did not start, or died; the message has its stderr tail."""


# ---------------------------------------------------------------- helpers

def free_port(host=LOOPBACK):
    """A TCP port nobody listens on right now (the kernel's pick).

    There is a window between this returning and the broker binding; on a
    loopback-only test machine the kernel does not hand the same ephemeral
    port out again that quickly.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_accepts(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_port(host, port, timeout_s=10.0, proc=None, timeout=None):
    """Wait until host:port accepts a TCP connection.

    Returns True when it does, False on timeout or, if proc is given, as
    soon as that process has exited. (timeout= is an alias of timeout_s.)
    """
    if timeout is not None:
        timeout_s = timeout
    deadline = time.monotonic() + timeout_s
    while True:
        if port_accepts(host, port):
            return True
        if proc is not None and proc.poll() is not None:
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _kill_group(proc):
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def run(cmd, timeout_s=60.0, input=None, env=None, cwd=None, timeout=None):
    """Run cmd (a list) and return (rc, stdout, stderr) as text.

    The command runs in its own session; on timeout the whole process group
    is killed and rc is 124 with a note appended to stderr, so a hung client
    never hangs the test. (timeout= is an alias of timeout_s.)
    """
    if timeout is not None:
        timeout_s = timeout
    proc = subprocess.Popen(
        [str(c) for c in cmd], stdin=subprocess.PIPE if input is not None
        else subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=env, cwd=cwd, start_new_session=True)
    if isinstance(input, str):
        input = input.encode()
    try:
        out, err = proc.communicate(input=input, timeout=timeout_s)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        rc = RUN_TIMEOUT_RC
        err += b"\n[harness] timed out after %.1f s: %s\n" % (
            timeout_s, " ".join(str(c) for c in cmd).encode())
    return (rc, out.decode("utf-8", "replace"),
            err.decode("utf-8", "replace"))


def kcat_path():
    """Path of kcat (or the older name kafkacat), or None."""
    return shutil.which("kcat") or shutil.which("kafkacat")


def kcat(bootstrap, *args, input=None, timeout_s=30.0):
    """Run kcat -b bootstrap args...; returns (rc, out, err)."""
    path = kcat_path()
    assert path is not None, "kcat is not installed (use kcat_path() first)"
    return run([path, "-b", bootstrap] + list(args), timeout_s=timeout_s,
               input=input)


def wait_for(predicate, timeout_s=10.0, interval_s=0.05):
    """Poll predicate() until it returns a true value or timeout_s passes.

    Returns the last value predicate() returned.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval_s)


def skip(reason):
    """End the test as skipped (exit 77), e.g. when a client is missing."""
    print("SKIP: " + reason)
    sys.exit(SKIP_RC)


def node_available(min_major=14):
    """True when node (>= min_major, kafkajs's floor) and npm are usable."""
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        return False
    rc, out, _ = run([node, "--version"], timeout_s=10)
    if rc != 0 or not out.startswith("v"):
        return False
    return int(out[1:].split(".")[0]) >= min_major


def npm_ci(js_dir=JS_DIR, timeout_s=300.0):
    """Install js_dir's locked packages once (`npm ci`), quietly.

    Skipped when node_modules/.package-lock.json (written by npm) is newer
    than package-lock.json. Concurrent callers (meson runs tests in
    parallel) serialise on a lock file in the temp dir. Raises RuntimeError
    with npm's output on failure.
    """
    js_dir = os.path.abspath(js_dir)
    lock_name = "sluice-npm-ci-%s.lock" % hashlib.sha1(
        js_dir.encode()).hexdigest()[:12]
    with open(os.path.join(tempfile.gettempdir(), lock_name), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _npm_current(js_dir):
            return
        rc, out, err = run(["npm", "ci", "--silent", "--no-audit",
                            "--no-fund"], timeout_s=timeout_s, cwd=js_dir)
        if rc != 0 or not _npm_current(js_dir):
            raise RuntimeError("npm ci in %s failed (rc %d):\n%s%s"
                               % (js_dir, rc, out, err))


def _npm_current(js_dir):
    marker = os.path.join(js_dir, "node_modules", ".package-lock.json")
    lock = os.path.join(js_dir, "package-lock.json")
    return (os.path.exists(marker) and
            os.path.getmtime(marker) >= os.path.getmtime(lock))


# ---------------------------------------------------------------- KafkaConn

def api_key_of(api):
    """"Metadata" or 3 -> 3."""
    if isinstance(api, int):
        return api
    keys = {name: key for key, name in kafka_schema.api_names().items()}
    return keys[api]


class KafkaConn:
    """One raw Kafka connection: send frames, read and decode responses."""

    def __init__(self, bootstrap, timeout_s=10.0, client_id="sluice-harness"):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)),
                                             timeout=timeout_s)
        self.timeout_s = timeout_s
        self.client_id = client_id
        self.next_correlation_id = 1

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_frame(self, payload):
        """Send payload with its int32 size prefix."""
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)

    def _read_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def recv_frame(self):
        """Next response frame without its size prefix; None on EOF."""
        head = self._read_exact(4)
        if head is None:
            return None
        size = struct.unpack(">i", head)[0]
        if size < 4 or size > MAX_RESPONSE_BYTES:
            raise kafka_schema.DecodeError("response size %d" % size)
        frame = self._read_exact(size)
        if frame is None:
            raise kafka_schema.DecodeError("EOF inside a %d-byte response"
                                           % size)
        return frame

    def send_request(self, api, version, body=None):
        """Encode and send a request; returns its correlation id."""
        correlation_id = self.next_correlation_id
        self.next_correlation_id += 1
        self.sock.sendall(kafka_schema.encode_request(
            api_key_of(api), version, correlation_id, self.client_id,
            body or {}))
        return correlation_id

    def recv_response(self, api, version, correlation_id):
        """Read one response and decode it; its correlation id must match."""
        frame = self.recv_frame()
        if frame is None:
            raise ConnectionError("broker closed the connection")
        got, body = kafka_schema.parse_response(api_key_of(api), version,
                                                frame)
        if got != correlation_id:
            raise kafka_schema.DecodeError("correlation id %d, expected %d"
                                           % (got, correlation_id))
        return body

    def request(self, api, version, body=None):
        """Send one request and return the decoded response body."""
        correlation_id = self.send_request(api, version, body)
        return self.recv_response(api, version, correlation_id)

    def is_closed(self, timeout_s=5.0):
        """True if the broker closes the connection within timeout_s.

        Any bytes the broker sends before closing are discarded.
        """
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                if not self.sock.recv(65536):
                    return True
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        finally:
            self.sock.settimeout(self.timeout_s)
        return False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def golden_frames():
    """[(path, api_key, api_version, client)] from the golden MANIFEST."""
    out = []
    with open(os.path.join(GOLDEN_DIR, "MANIFEST")) as f:
        for line in f:
            name, key, version, client = line.split()
            out.append((os.path.join(GOLDEN_DIR, name), int(key),
                        int(version), client))
    return out


def advertised_versions(bootstrap):
    """{api_key: (min, max)} from the broker's ApiVersions v3 response."""
    with KafkaConn(bootstrap) as c:
        body = c.request("ApiVersions", 3, {
            "ClientSoftwareName": "sluice-harness",
            "ClientSoftwareVersion": "1"})
    if body["ErrorCode"] != 0:
        raise kafka_schema.DecodeError("ApiVersions error %d"
                                       % body["ErrorCode"])
    return {k["ApiKey"]: (k["MinVersion"], k["MaxVersion"])
            for k in body["ApiKeys"]}


def replay_golden(bootstrap, timeout_s=10.0):
    """Send every golden frame the broker advertises, one connection each.

    Each response must arrive, carry the frame's correlation id and decode
    exactly with the schema decoder. Returns (replayed, skipped, failures)
    where failures is a list of "file: why" strings.
    """
    advertised = advertised_versions(bootstrap)
    replayed, skipped, failures = 0, 0, []
    for path, key, version, _client in golden_frames():
        lo, hi = advertised.get(key, (1, 0))
        if not lo <= version <= hi:
            skipped += 1
            continue
        with open(path, "rb") as f:
            frame = f.read()
        correlation_id = struct.unpack_from(">i", frame, 4)[0]
        try:
            with KafkaConn(bootstrap, timeout_s) as c:
                c.send_frame(frame)
                c.recv_response(key, version, correlation_id)
            replayed += 1
        except (OSError, kafka_schema.DecodeError) as e:
            failures.append("%s: %s: %s" % (os.path.basename(path),
                                            type(e).__name__, e))
    return replayed, skipped, failures


# ---------------------------------------------------------------- Broker

class Broker:
    """One `sluice serve` process on a free loopback port and a temp dir."""

    def __init__(self, sluice_path, config=None, cores="1",
                 start_timeout_s=10.0, extra_args=(), env=None,
                 keep_dir=False):
        self.sluice_path = os.path.abspath(str(sluice_path))
        self.config = dict(config or {})
        self.cores = str(cores)
        self.start_timeout_s = start_timeout_s
        self.extra_args = [str(a) for a in extra_args]
        self.env = env
        self.keep_dir = keep_dir
        self.port = free_port()
        self.bootstrap = "%s:%d" % (LOOPBACK, self.port)
        self.tmp_dir = tempfile.mkdtemp(prefix="sluice-it-")
        self.data_dir = os.path.join(self.tmp_dir, "data")
        self.stdout_path = os.path.join(self.tmp_dir, "broker.stdout")
        self.stderr_path = os.path.join(self.tmp_dir, "broker.stderr")
        os.mkdir(self.data_dir)
        self.proc = None
        self.starts = 0

    # -- lifecycle

    def command(self):
        cmd = [self.sluice_path, "serve", "--listen", self.bootstrap,
               "--data-dir", self.data_dir, "--cores", self.cores]
        for key, value in sorted(self.config.items()):
            cmd += ["--set", "%s=%s" % (key, value)]
        return cmd + self.extra_args

    def start(self):
        assert self.proc is None or self.proc.poll() is not None, \
            "broker already running"
        self.starts += 1
        marker = "[harness] start #%d: %s\n" % (
            self.starts, " ".join(self.command()))
        with open(self.stdout_path, "ab") as out, \
                open(self.stderr_path, "ab") as err:
            err.write(marker.encode())
            err.flush()
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=out,
                stderr=err, env=self.env, start_new_session=True)
        if wait_port(LOOPBACK, self.port, self.start_timeout_s, self.proc):
            return self
        rc = self.proc.poll()
        if rc is None:
            self.kill()
            why = "did not accept on %s within %.1f s" % (
                self.bootstrap, self.start_timeout_s)
        else:
            why = "exited with code %d before accepting on %s" % (
                rc, self.bootstrap)
        raise BrokerError("sluice %s\n--- broker stderr (tail) ---\n%s"
                          % (why, self.stderr_tail()))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        """Signal the broker and wait; SIGKILL after timeout. Returns rc."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with open(self.stderr_path, "ab") as err:
                    err.write(b"[harness] no exit %.1f s after signal %d: "
                              b"SIGKILL\n" % (timeout, sig))
                self.proc.kill()
                self.proc.wait()
        self._wait_listeners_gone()
        return self.proc.returncode

    def _wait_listeners_gone(self, timeout_s=5.0):
        """Wait until the port refuses connections again.

        A process's exit does not close its listeners at once: a socket with
        an io_uring ACCEPT in flight is released when the kernel tears the
        ring down, asynchronously, some milliseconds after a SIGKILL. Until
        then it still accepts, so a restart's port probe could be answered
        by the dead broker and return before the new one listens (its first
        clients refused, or reset when the orphan goes).
        """
        wait_for(lambda: not port_accepts(LOOPBACK, self.port), timeout_s,
                 interval_s=0.005)

    def kill(self):
        """Crash the broker (SIGKILL). Returns rc (-9)."""
        return self.stop(signal.SIGKILL, timeout=10.0)

    def restart(self, sig=signal.SIGTERM, timeout=5.0):
        """Stop if running, then start again on the same port and data dir."""
        self.stop(sig, timeout)
        return self.start()

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.keep_dir:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def stderr_tail(self, max_bytes=STDERR_TAIL_BYTES):
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - max_bytes))
                return f.read().decode("utf-8", "replace")
        except OSError as e:
            return "(no stderr: %s)" % e

    # -- context manager

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and not isinstance(exc, BrokerError):
            sys.stderr.write("--- sluice stderr (tail) ---\n%s\n"
                             % self.stderr_tail())
        self.cleanup()
        return False


# ---------------------------------------------------------------- self-test

# A stand-in for `sluice serve` used only by the self-test: it parses the same
# flags, leaves a file in the data dir, and serves the Kafka protocol with the
# capture broker (tests/tools), so the real Broker class and a real client are
# exercised before the real broker exists.
FAKE_SLUICE = r'''#!/usr/bin/python3
import argparse, os, sys
ap = argparse.ArgumentParser()
ap.add_argument("cmd")
ap.add_argument("--listen"); ap.add_argument("--data-dir")
ap.add_argument("--cores"); ap.add_argument("--set", action="append", default=[])
a = ap.parse_args()
sets = dict(s.split("=", 1) for s in a.set)
with open(os.path.join(a.data_dir, "starts"), "a") as f:
    f.write("%s %s\n" % (a.listen, sorted(sets.items())))
if sets.get("selftest.die") == "1":
    sys.stderr.write("fake sluice: refusing to start (selftest.die=1)\n")
    sys.exit(3)
if sets.get("selftest.hang") == "1":
    import time; time.sleep(60); sys.exit(0)
port = a.listen.rsplit(":", 1)[1]
if sets.get("selftest.ignore_term") == "1":
    import signal, socket, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    s = socket.create_server(("127.0.0.1", int(port)))
    time.sleep(60); sys.exit(0)
os.execv(sys.executable, [sys.executable, @CAPTURE@, "--port", port,
         "--out", os.path.join(a.data_dir, "capture"), "--client", "selftest",
         "--max-seconds", "60"])
'''


def _check(cond, what, detail=""):
    if not cond:
        raise AssertionError("harness: %s\n%s" % (what, detail))
    print("ok  " + what)


def self_test():
    _check(port_accepts(LOOPBACK, free_port()) is False,
           "free_port() returns a port nobody listens on")

    rc, out, err = run([PYTHON, "-c", "import sys; print(sys.stdin.read())"],
                       input="abc", timeout_s=10)
    _check((rc, out.strip()) == (0, "abc"), "run() returns rc and stdout")
    rc, _, err = run(["sleep", "30"], timeout=0.5)
    _check(rc == RUN_TIMEOUT_RC and "timed out" in err,
           "run() kills a hung command and returns 124")

    # wait_port against a throwaway http.server.
    port = free_port()
    http = subprocess.Popen([PYTHON, "-m", "http.server", str(port), "--bind",
                             LOOPBACK], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _check(wait_port(LOOPBACK, port, 10, http),
               "wait_port() sees http.server accept")
    finally:
        http.kill()
        http.wait()
    _check(not wait_port(LOOPBACK, port, 0.3),
           "wait_port() times out on a closed port")

    scratch = tempfile.mkdtemp(prefix="sluice-harness-selftest-")
    try:
        fake = os.path.join(scratch, "sluice")
        with open(fake, "w") as f:
            f.write(FAKE_SLUICE.replace("@CAPTURE@", repr(os.path.join(
                ROOT, "tests", "tools", "capture_broker.py"))))
        os.chmod(fake, 0o755)
        _self_test_broker(fake)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    if node_available():
        npm_ci(JS_DIR)
        _check(os.path.isdir(os.path.join(JS_DIR, "node_modules", "kafkajs")),
               "npm_ci() installed kafkajs")
    else:
        print("skip node/npm not available")
    print("harness self-test passed")


def _self_test_broker(fake):
    kcat_run = kcat
    _check(kcat_path() is not None, "kcat_path() finds kcat")
    with Broker(fake, config={"num.partitions": 3}, cores="2") as b:
        tmp_dir, data_dir, port = b.tmp_dir, b.data_dir, b.port
        _check(b.bootstrap == "127.0.0.1:%d" % b.port and b.running(),
               "Broker starts and exposes bootstrap/port")
        rc, out, err = kcat_run(b.bootstrap, "-L", timeout_s=20)
        _check(rc == 0 and 'topic "golden"' in out,
               "kcat -L gets metadata through the Broker's port")
        rc, out, err = kcat_run(b.bootstrap, "-P", "-t", "golden",
                                input="one\n", timeout_s=20)
        _check(rc == 0 and wait_for(lambda: os.path.exists(os.path.join(
            data_dir, "capture", "selftest-produce-v7.bin")), 5),
               "kcat() produces with stdin input (frame seen by the broker)")
        with KafkaConn(b.bootstrap) as c:
            body = c.request("Metadata", 12, {"Topics": None})
            _check(body["Brokers"][0]["Port"] == b.port and
                   body["Topics"][0]["Name"] == "golden",
                   "KafkaConn.request() encodes Metadata v12, decodes reply")
        replayed, skipped, failures = replay_golden(b.bootstrap)
        _check(replayed > 40 and not failures,
               "replay_golden() replays %d frames (%d skipped)"
               % (replayed, skipped), "\n".join(failures))
        with KafkaConn(b.bootstrap) as c:
            c.send_raw(struct.pack(">i", 0x7FFFFFFF))
            _check(c.is_closed(), "KafkaConn.is_closed() sees a close")
        _check(b.stop() == 0 and not b.running(),
               "stop() SIGTERMs and returns the exit code (0, clean)")
        b.restart()
        _check(b.port == port and b.running() and
               wait_port(LOOPBACK, b.port, 1),
               "restart() serves again on the same port")
        with open(os.path.join(data_dir, "starts")) as f:
            starts = f.read().splitlines()
        _check(len(starts) == 2 and "('num.partitions', '3')" in starts[0],
               "restart() keeps the data dir; --set passed through")
        _check(b.kill() == -signal.SIGKILL, "kill() is SIGKILL")
        b.restart()
    _check(not os.path.exists(tmp_dir) and not port_accepts(LOOPBACK, port),
           "leaving the with-block kills the broker and removes its dir")

    with Broker(fake, config={"selftest.ignore_term": 1}) as b:
        _check(b.stop(timeout=0.5) == -signal.SIGKILL,
               "stop() escalates to SIGKILL when SIGTERM is ignored")
        _check("no exit 0.5 s after signal 15" in b.stderr_tail(),
               "the escalation is noted in the broker's stderr file")

    try:
        with Broker(fake, config={"selftest.die": 1}):
            pass
        _check(False, "a broker that dies at start raises BrokerError")
    except BrokerError as e:
        _check("exited with code 3" in str(e) and
               "refusing to start" in str(e),
               "a broker that dies at start raises BrokerError with stderr")

    try:
        with Broker(fake, config={"selftest.hang": 1}, start_timeout_s=1):
            pass
        _check(False, "a broker that never listens raises BrokerError")
    except BrokerError as e:
        _check("did not accept" in str(e),
               "a broker that never listens raises BrokerError (timeout)")


def smoke(sluice_path):
    """Start the real broker; kcat -L and kafkajs describeCluster must work."""
    with Broker(sluice_path) as b:
        rc, out, err = kcat(b.bootstrap, "-L", timeout_s=20)
        _check(rc == 0 and "1 brokers" in out and str(b.port) in out,
               "kcat -L lists the broker", out + err)
        if node_available():
            npm_ci(JS_DIR)
            rc, out, err = run(["node", os.path.join(
                JS_DIR, "describe_cluster.js"), b.bootstrap], timeout_s=30)
            _check(rc == 0 and '"port":%d' % b.port in out,
                   "kafkajs describeCluster sees the broker", out + err)
        replayed, skipped, failures = replay_golden(b.bootstrap)
        _check(replayed > 0 and not failures,
               "%d golden frames of advertised APIs answered and decoded "
               "(%d not advertised, skipped)" % (replayed, skipped),
               "\n".join(failures))
        with KafkaConn(b.bootstrap) as c:
            c.send_raw(struct.pack(">i", 0x7FFFFFFF))
            _check(c.is_closed(), "an oversized frame closes the connection")
        rc = b.stop()
        _check(rc == 0, "SIGTERM stops the broker cleanly (rc %s)" % rc)
    print("smoke test passed")


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        self_test()
    elif len(sys.argv) == 3 and sys.argv[1] == "--smoke":
        smoke(sys.argv[2])
    else:
        sys.stderr.write("usage: harness.py --self-test | --smoke SLUICE\n")
        sys.exit(2)
