#!/usr/bin/python3
"""The metrics endpoint scraped by a real Prometheus server (Debian's `prometheus`).

1. A 2-shard broker serves GET /metrics on a free loopback port
   (sluice.metrics.listen). `promtool check metrics` accepts the exposition.
2. Counters move by exactly what a raw client did: 5 Metadata requests add 5 to
   sluice_requests_total{api="Metadata"} and 5 observations to its latency histogram; a
   Produce at an unsupported version (v10) closes the connection and adds 1 to
   sluice_request_errors_total{api="Produce",code="35"}; a ListOffsets of a partition that
   does not exist adds 1 under api="ListOffsets",code="3"; control-plane answers count
   theirs (CreateTopics 40 and 36, from the body control encoded), and so do answers a
   shard writes at once (Metadata of an unknown topic: 3); 3 open connections show in
   sluice_connections_open and leave it when closed. Real clients (confluent-kafka
   produce + consume of 10 records) show up as Produce and Fetch requests and as 10
   messages in / at least 10 out on the topic, and as the partition's high watermark
   (10), log start offset (0) and size on disk; the consumer's group commits offset 4 and
   sluice_consumergroup_lag shows 6.
3. Prometheus, on loopback with a temporary config scraping the broker every second,
   answers PromQL over its HTTP API: up{job="sluice"} is 1 and
   sluice_requests_total{api="Metadata"} is at least what the direct scrape showed.
Other paths are 404. Skipped (77) when prometheus/promtool are not installed.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from harness import Broker, KafkaConn, free_port, run, skip, wait_port

from confluent_kafka import Consumer, Producer, TopicPartition

SLUICE = sys.argv[1]


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok  " + what)


def http_get(url, timeout_s=5.0):
    with urllib.request.urlopen(url, timeout=timeout_s) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read().decode()


def samples(text):
    """{'name{labels}': float} from a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, value = line.rsplit(" ", 1)
        out[key] = float(value)
    return out


def scrape(url):
    return samples(http_get(url)[2])


def settled_open(url):
    """sluice_connections_open once it has held still for 0.2 s: a connection the broker
    closed is counted closed when its shard handles the close, a moment after the client
    saw EOF."""
    last = None
    for _ in range(50):
        now = scrape(url)["sluice_connections_open"]
        if now == last:
            return now
        last = now
        time.sleep(0.2)
    return last


def exposition_checks(url):
    status, ctype, text = http_get(url)
    check(status == 200 and ctype.startswith("text/plain; version=0.0.4"),
          "GET /metrics: 200, text/plain; version=0.0.4")
    rc, out, err = run(["promtool", "check", "metrics"], input=text, timeout_s=30)
    check(rc == 0, "promtool check metrics passes (%s)" % (out + err).strip()[:200])
    s = samples(text)
    for name in ("sluice_shards", "sluice_connections_open", "sluice_under_replicated_partitions",
                 'sluice_shard_busy_ratio{shard="1"}', 'sluice_uring_submissions_total{shard="0"}'):
        check(name in s, "exposition has %s" % name)
    check(s["sluice_shards"] == 2 and s["sluice_under_replicated_partitions"] == 0,
          "2 shards, 0 under-replicated partitions")
    try:
        urllib.request.urlopen(url.replace("/metrics", "/nope"), timeout=5)
        check(False, "GET /nope: 404")
    except urllib.error.HTTPError as e:
        check(e.code == 404, "GET /nope: 404")


def counter_checks(url, bootstrap):
    meta = 'sluice_requests_total{api="Metadata"}'
    meta_count = 'sluice_request_latency_seconds_count{api="Metadata"}'
    err35 = 'sluice_request_errors_total{api="Produce",code="35",error="UNSUPPORTED_VERSION"}'
    before = scrape(url)
    with KafkaConn(bootstrap) as c:
        for _ in range(5):
            c.request("Metadata", 12, {"Topics": None})
    after = scrape(url)
    check(after[meta] - before.get(meta, 0) == 5 and
          after[meta_count] - before.get(meta_count, 0) == 5,
          "5 Metadata requests: requests_total +5, latency histogram count +5")
    with KafkaConn(bootstrap) as c:
        c.send_frame(struct.pack(">hhih", 0, 10, 7, -1))  # Produce v10: not advertised
        check(c.is_closed(), "Produce v10 closes the connection")
    after = scrape(url)
    check(after.get(err35, 0) - before.get(err35, 0) == 1,
          "unsupported Produce v10 counted under code 35 UNSUPPORTED_VERSION")
    # Control-plane answers count their error codes too: a CreateTopics with an unknown
    # config (40) and one for a topic that exists (36), each once.
    err40 = 'sluice_request_errors_total{api="CreateTopics",code="40",error="INVALID_CONFIG"}'
    err36 = ('sluice_request_errors_total{api="CreateTopics",code="36",'
             'error="TOPIC_ALREADY_EXISTS"}')
    with KafkaConn(bootstrap) as c:
        for name, cfg in (("m-ctl", []), ("m-ctl", []),
                          ("m-bad", [{"Name": "no.such.key", "Value": "1"}])):
            c.request("CreateTopics", 7, {"Topics": [
                {"Name": name, "NumPartitions": 1, "ReplicationFactor": 1, "Assignments": [],
                 "Configs": cfg}], "TimeoutMs": 5000, "ValidateOnly": False})
        c.request("Metadata", 12, {"Topics": [{"TopicId": bytes(16), "Name": "m-none"}],
                                   "AllowAutoTopicCreation": False,
                                   "IncludeTopicAuthorizedOperations": False})
    ctl = scrape(url)
    err3m = ('sluice_request_errors_total{api="Metadata",code="3",'
             'error="UNKNOWN_TOPIC_OR_PARTITION"}')
    check(ctl.get(err3m, 0) - after.get(err3m, 0) == 1,
          "an answer written at once counts its codes: Metadata of an unknown topic, code 3")
    check(ctl.get(err40, 0) - after.get(err40, 0) == 1 and
          ctl.get(err36, 0) - after.get(err36, 0) == 1,
          "control-plane answers: CreateTopics codes 40 and 36 counted once each")
    base_open = settled_open(url)
    conns = [KafkaConn(bootstrap) for _ in range(3)]
    for c in conns:
        c.request("ApiVersions", 3, {"ClientSoftwareName": "t", "ClientSoftwareVersion": "1"})
    during = scrape(url)
    for c in conns:
        c.close()
    deadline = time.time() + 5
    while scrape(url)["sluice_connections_open"] != base_open and time.time() < deadline:
        time.sleep(0.05)
    final = scrape(url)
    check(during["sluice_connections_open"] == base_open + 3 and
          final["sluice_connections_open"] == base_open and
          final["sluice_connections_accepted_total"] - before["sluice_connections_accepted_total"]
          == 6, "connections_open +3 while 3 are open, back after close; accepted +6")

    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(10):
        p.produce("m-topic", value=b"m%d" % i)
    p.flush(20)
    cons = Consumer({"bootstrap.servers": bootstrap, "group.id": "m-none",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})
    cons.assign([TopicPartition("m-topic", 0, 0)])
    got, deadline = 0, time.time() + 20
    while got < 10 and time.time() < deadline:
        m = cons.poll(0.5)
        if m is not None and not m.error():
            got += 1
    cons.commit(offsets=[TopicPartition("m-topic", 0, 4)], asynchronous=False)
    cons.close()
    s = scrape(url)
    check(got == 10 and s.get('sluice_requests_total{api="Produce"}', 0) >= 1 and
          s.get('sluice_requests_total{api="Fetch"}', 0) >= 1 and
          s.get('sluice_request_latency_seconds_count{api="Produce"}', 0) >= 1,
          "confluent-kafka produce+consume: Produce and Fetch counted with latencies")
    check(s.get('sluice_topic_messages_in_total{topic="m-topic"}') == 10 and
          s.get('sluice_topic_messages_out_total{topic="m-topic"}', 0) >= 10 and
          s.get('sluice_topic_bytes_in_total{topic="m-topic"}', 0) > 0 and
          s.get('sluice_topic_bytes_out_total{topic="m-topic"}', 0) >=
          s.get('sluice_topic_bytes_in_total{topic="m-topic"}', 0),
          "topic m-topic: 10 messages in, >= 10 out (%d), bytes in %d, out %d"
          % (s.get('sluice_topic_messages_out_total{topic="m-topic"}', 0),
             s.get('sluice_topic_bytes_in_total{topic="m-topic"}', 0),
             s.get('sluice_topic_bytes_out_total{topic="m-topic"}', 0)))
    hw = 'sluice_partition_high_watermark{topic="m-topic",partition="0"}'
    deadline = time.time() + 5  # shards republish their partitions once a second
    while scrape(url).get(hw) != 10 and time.time() < deadline:
        time.sleep(0.2)
    s = scrape(url)
    check(s.get(hw) == 10 and
          s.get('sluice_partition_log_start_offset{topic="m-topic",partition="0"}') == 0 and
          s.get('sluice_partition_size_bytes{topic="m-topic",partition="0"}', 0) >=
          s['sluice_topic_bytes_in_total{topic="m-topic"}'],
          "partition m-topic/0: high watermark 10, log start 0, size >= the bytes produced")
    hits = sum(v for k, v in s.items() if k.startswith("sluice_batch_cache_hits_total{"))
    misses = sum(v for k, v in s.items() if k.startswith("sluice_batch_cache_misses_total{"))
    failed = sum(v for k, v in s.items() if k.startswith("sluice_storage_failed_partitions{"))
    budget = sum(v for k, v in s.items() if k.startswith("sluice_batch_cache_budget_bytes{"))
    check(hits + misses >= 1 and failed == 0 and budget > 0,
          "batch cache: %d hits, %d misses for the fetches; budget %d; 0 failed partitions"
          % (hits, misses, budget))
    check(s.get("sluice_disk_write_latency_seconds_count", 0) >= 1 and
          s.get("sluice_disk_fsync_latency_seconds_count", 0) >= 1 and
          sum(v for k, v in s.items() if k.startswith("sluice_storage_io_errors_total{")) == 0,
          "disk: %d flush write phases, %d fdatasync phases timed, 0 I/O errors"
          % (s.get("sluice_disk_write_latency_seconds_count", 0),
             s.get("sluice_disk_fsync_latency_seconds_count", 0)))
    err3 = 'sluice_request_errors_total{api="ListOffsets",code="3",error="UNKNOWN_TOPIC_OR_PARTITION"}'
    with KafkaConn(bootstrap) as k:
        r = k.request("ListOffsets", 1, {"ReplicaId": -1, "Topics": [{"Name": "m-topic",
              "Partitions": [{"PartitionIndex": 99, "Timestamp": -1}]}]})
    code = r["Topics"][0]["Partitions"][0]["ErrorCode"]
    check(code == 3 and scrape(url).get(err3, 0) - s.get(err3, 0) == 1,
          "ListOffsets of partition 99: error 3 answered and counted once by API and code")
    lag = 'sluice_consumergroup_lag{group="m-none",topic="m-topic",partition="0"}'
    committed = 'sluice_consumergroup_committed_offset{group="m-none",topic="m-topic",partition="0"}'
    check(s.get(lag) == 6 and s.get(committed) == 4,
          "group m-none committed 4 of 10: consumergroup_lag 6, committed_offset 4 (%s, %s)"
          % (s.get(lag), s.get(committed)))
    rc, out, err = run(["promtool", "check", "metrics"], input=http_get(url)[2], timeout_s=30)
    check(rc == 0, "promtool check metrics passes with topics, partitions and errors present")
    return s[meta]


def prometheus_checks(metrics_port, meta_seen):
    tmp = tempfile.mkdtemp(prefix="sluice-prom-")
    prom_port = free_port()
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                "scrape_configs:\n  - job_name: sluice\n    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n" % metrics_port)
    log = open(os.path.join(tmp, "prometheus.log"), "w")
    proc = subprocess.Popen(
        ["prometheus", "--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(tmp, "data"),
         "--web.listen-address=127.0.0.1:%d" % prom_port, "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port("127.0.0.1", prom_port, timeout_s=30, proc=proc)
        ready_deadline = time.time() + 30  # 503 until its storage and rules are loaded
        while time.time() < ready_deadline:
            try:
                if http_get("http://127.0.0.1:%d/-/ready" % prom_port)[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.2)
        api = "http://127.0.0.1:%d/api/v1/query?query=" % prom_port

        def query(q):
            _, _, body = http_get(api + urllib.parse.quote(q))
            res = json.loads(body)
            assert res["status"] == "success", res
            return [(r["metric"], float(r["value"][1])) for r in res["data"]["result"]]

        deadline, up, meta = time.time() + 30, [], []
        while time.time() < deadline:
            up = query('up{job="sluice"}')
            meta = query('sluice_requests_total{api="Metadata",job="sluice"}')
            if up and up[0][1] == 1 and meta and meta[0][1] >= meta_seen:
                break
            time.sleep(0.5)
        if not (up and up[0][1] == 1):
            _, _, targets = http_get("http://127.0.0.1:%d/api/v1/targets" % prom_port)
            print("prometheus targets: " + targets[:1000])
        check(up and up[0][1] == 1, "Prometheus scrapes sluice: up{job=\"sluice\"} == 1 (%s)" % up)
        check(meta and meta[0][1] >= meta_seen,
              "PromQL sluice_requests_total{api=\"Metadata\"} = %s (>= %d seen directly)"
              % (meta[0][1] if meta else None, meta_seen))
        hist = query('histogram_quantile(0.99, sluice_request_latency_seconds_bucket{api="Produce"})')
        check(hist and hist[0][1] > 0, "PromQL p99 Produce latency over the histogram: %.6f s"
              % (hist[0][1] if hist else -1))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    if not shutil.which("prometheus") or not shutil.which("promtool"):
        skip("prometheus/promtool not installed (apt-get install prometheus)")
    metrics_port = free_port()
    config = {"sluice.metrics.listen": "127.0.0.1:%d" % metrics_port,
              "auto.create.topics.enable": "true"}
    with Broker(SLUICE, cores="2", config=config) as broker:
        wait_port("127.0.0.1", metrics_port, timeout_s=10)
        url = "http://127.0.0.1:%d/metrics" % metrics_port
        exposition_checks(url)
        meta_seen = counter_checks(url, broker.bootstrap)
        prometheus_checks(metrics_port, meta_seen)
    print("metrics_prometheus: all checks passed")


if __name__ == "__main__":
    main()
