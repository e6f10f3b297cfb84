"""Schema-driven Kafka wire encoder/decoder for the test tooling (stdlib only).

Design: instead of hand-writing an encoder for every (api, version) pair a real
client might pick, this module reads the Kafka message definitions
($KAFKA_MESSAGE_DIR, else ../shared/kafka-protocol/message beside the
repository, else /work/shared/kafka-protocol/message) and walks
their field lists for one concrete version. A message value is a plain dict
keyed by the JSON field names ("ErrorCode", "Topics", ...); arrays are lists of
dicts (or of scalars for "[]int32"-style arrays). Fields missing from a dict
take the JSON "default" (or zero / empty / null), so a caller only spells out
the fields that matter.

Rules implemented (see the message README):
  - a field exists at a version when its "versions" range contains it;
  - flexible versions use compact strings/bytes/arrays (unsigned varint of
    length + 1, 0 = null) and end every struct with a tagged-field section;
  - tagged fields ("taggedVersions" + "tag") are written only when the value
    dict carries them, and unknown tags are skipped when decoding;
  - a field may override flexibility ("flexibleVersions": "none", used by the
    request header's ClientId);
  - nullable structs carry an int8 presence marker (-1 null, 1 present).
Request header: v2 when the request version is flexible, else v1. Response
header: v1 when flexible, else v0 — except ApiVersions, always v0.

This is test tooling (capture broker, harness checks); it favours clarity over
speed and raises DecodeError on any malformed input instead of guessing.
"""

import json
import os
import re
import struct
import uuid as uuid_mod

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _message_dir():
    if os.environ.get("KAFKA_MESSAGE_DIR"):
        return os.environ["KAFKA_MESSAGE_DIR"]
    beside = os.path.join(os.path.dirname(_REPO), "shared", "kafka-protocol",
                          "message")
    if os.path.isdir(beside):
        return beside
    return "/work/shared/kafka-protocol/message"


MESSAGE_DIR = _message_dir()

# Response header v0 even for flexible versions (KIP-511 compatibility).
API_VERSIONS_KEY = 18


class DecodeError(Exception):
    pass


# ---------------------------------------------------------------- versions

class VersionRange:
    """A "0+", "3-5", "7" or "none" version range."""

    def __init__(self, text):
        text = (text or "none").strip()
        if text == "none":
            self.lo, self.hi = 1, 0  # empty
        elif text.endswith("+"):
            self.lo, self.hi = int(text[:-1]), 1 << 15
        elif "-" in text:
            lo, hi = text.split("-")
            self.lo, self.hi = int(lo), int(hi)
        else:
            self.lo = self.hi = int(text)

    def __contains__(self, version):
        return self.lo <= version <= self.hi


# ---------------------------------------------------------------- schemas

def _strip_comments(text):
    # The definitions carry whole-line // comments only (checked by grep).
    return "\n".join(line for line in text.splitlines()
                     if not line.lstrip().startswith("//"))


class Message:
    """One message definition: name, api key, versions, fields."""

    def __init__(self, spec):
        self.name = spec["name"]
        self.api_key = spec.get("apiKey")
        self.kind = spec["type"]
        self.valid = VersionRange(spec["validVersions"])
        self.flexible = VersionRange(spec.get("flexibleVersions", "none"))
        self.fields = spec.get("fields", [])
        self.common = {s["name"]: s["fields"]
                       for s in spec.get("commonStructs", [])}


_cache = {}


def load(name):
    """Load a message definition by file stem, e.g. "MetadataResponse"."""
    if name not in _cache:
        path = os.path.join(MESSAGE_DIR, name + ".json")
        with open(path, encoding="utf-8") as f:
            _cache[name] = Message(json.loads(_strip_comments(f.read())))
    return _cache[name]


_api_names = {}


def api_names():
    """Map api_key -> API name ("Produce", ...) from the request files."""
    if not _api_names:
        for fn in sorted(os.listdir(MESSAGE_DIR)):
            if fn.endswith("Request.json"):
                msg = load(fn[:-5])
                if msg.api_key is not None:
                    _api_names[msg.api_key] = msg.name[:-len("Request")]
    return dict(_api_names)


def request_schema(api_key):
    return load(api_names()[api_key] + "Request")


def response_schema(api_key):
    return load(api_names()[api_key] + "Response")


# ---------------------------------------------------------------- varints

def uvarint(n):
    assert n >= 0
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


class Reader:
    """Bounded cursor over a bytes object; every read checks the bound."""

    def __init__(self, data, pos=0):
        self.data = data
        self.pos = pos

    def remaining(self):
        return len(self.data) - self.pos

    def take(self, n):
        if n < 0 or n > self.remaining():
            raise DecodeError("need %d bytes at %d, have %d"
                              % (n, self.pos, self.remaining()))
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt):
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(size))[0]

    def uvarint(self):
        shift, n = 0, 0
        for _ in range(5):
            b = self.take(1)[0]
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7
        raise DecodeError("uvarint longer than 5 bytes at %d" % self.pos)


_FIXED = {"int8": ">b", "int16": ">h", "int32": ">i", "int64": ">q",
          "uint16": ">H", "uint32": ">I", "float64": ">d"}


# ---------------------------------------------------------------- encoding

def _is_array(ftype):
    return ftype.startswith("[]")


def _struct_fields(msg, field, ftype):
    if "fields" in field:
        return field["fields"]
    if ftype in msg.common:
        return msg.common[ftype]
    return None


def _default(field, version):
    ftype = field["type"]
    nullable = version in VersionRange(field.get("nullableVersions"))
    d = field.get("default")
    if d == "null":
        return None
    if _is_array(ftype):
        return []
    if ftype in _FIXED:
        if d is None:
            return 0
        return float(d) if ftype == "float64" else int(str(d), 0)
    if ftype == "bool":
        return d == "true"
    if ftype == "string":
        return d if d is not None else ""
    if ftype == "uuid":
        return b"\0" * 16
    if ftype in ("bytes", "records"):
        return None if nullable and ftype == "records" else b""
    return {}  # struct


class Encoder:
    def __init__(self, msg, version):
        self.msg = msg
        self.version = version
        self.flexible = version in msg.flexible

    def encode(self, value):
        return self._struct(self.msg.fields, value)

    def _struct(self, fields, value):
        out = bytearray()
        tagged = []
        for field in fields:
            if self.version not in VersionRange(field.get("versions")):
                continue
            name = field["name"]
            if "tag" in field and self.version in VersionRange(
                    field.get("taggedVersions")):
                if name in value:
                    tagged.append((field["tag"],
                                   self._field(field, value[name])))
                continue
            v = value.get(name, _default(field, self.version))
            out += self._field(field, v)
        if self.flexible:
            out += uvarint(len(tagged))
            for tag, data in sorted(tagged):
                out += uvarint(tag) + uvarint(len(data)) + data
        return bytes(out)

    def _flex(self, field):
        override = field.get("flexibleVersions")
        if override is not None:
            return self.version in VersionRange(override)
        return self.flexible

    def _field(self, field, v):
        ftype = field["type"]
        flex = self._flex(field)
        nullable = self.version in VersionRange(field.get("nullableVersions"))
        if _is_array(ftype):
            if v is None:
                assert nullable, field["name"]
                return uvarint(0) if flex else struct.pack(">i", -1)
            head = uvarint(len(v) + 1) if flex else struct.pack(">i", len(v))
            elem = ftype[2:]
            sub = _struct_fields(self.msg, field, elem)
            body = b"".join(self._struct(sub, e) if sub is not None
                            else self._scalar(elem, e, flex, False, field)
                            for e in v)
            return head + body
        sub = _struct_fields(self.msg, field, ftype)
        if sub is not None:
            if nullable:
                if v is None:
                    return struct.pack(">b", -1)
                return struct.pack(">b", 1) + self._struct(sub, v)
            return self._struct(sub, v)
        return self._scalar(ftype, v, flex, nullable, field)

    def _scalar(self, ftype, v, flex, nullable, field):
        if ftype in _FIXED:
            return struct.pack(_FIXED[ftype], v)
        if ftype == "bool":
            return b"\1" if v else b"\0"
        if ftype == "uuid":
            return v if isinstance(v, bytes) else uuid_mod.UUID(v).bytes
        if ftype == "string":
            if v is None:
                assert nullable, field["name"]
                return uvarint(0) if flex else struct.pack(">h", -1)
            raw = v.encode("utf-8")
            head = uvarint(len(raw) + 1) if flex else struct.pack(">h",
                                                                   len(raw))
            return head + raw
        if ftype in ("bytes", "records"):
            if v is None:
                return uvarint(0) if flex else struct.pack(">i", -1)
            head = uvarint(len(v) + 1) if flex else struct.pack(">i", len(v))
            return head + v
        raise ValueError("unknown type %r in %s" % (ftype, field["name"]))


# ---------------------------------------------------------------- decoding

class Decoder:
    def __init__(self, msg, version):
        self.msg = msg
        self.version = version
        self.flexible = version in msg.flexible

    def decode(self, reader):
        return self._struct(self.msg.fields, reader)

    def _struct(self, fields, r):
        out = {}
        by_tag = {}
        for field in fields:
            if self.version not in VersionRange(field.get("versions")):
                continue
            if "tag" in field and self.version in VersionRange(
                    field.get("taggedVersions")):
                by_tag[field["tag"]] = field
                continue
            out[field["name"]] = self._field(field, r)
        if self.flexible:
            count = r.uvarint()
            for _ in range(count):
                tag = r.uvarint()
                size = r.uvarint()
                data = r.take(size)
                if tag in by_tag:
                    sub = Reader(data)
                    out[by_tag[tag]["name"]] = self._field(by_tag[tag], sub)
                    if sub.remaining():
                        raise DecodeError("tag %d has %d trailing bytes"
                                          % (tag, sub.remaining()))
                else:
                    out.setdefault("_unknown_tags", {})[tag] = data
        return out

    def _flex(self, field):
        override = field.get("flexibleVersions")
        if override is not None:
            return self.version in VersionRange(override)
        return self.flexible

    def _length(self, r, flex, fmt):
        if flex:
            n = r.uvarint()
            return None if n == 0 else n - 1
        n = r.unpack(fmt)
        if n < -1:
            raise DecodeError("negative length %d" % n)
        return None if n == -1 else n

    def _field(self, field, r):
        ftype = field["type"]
        flex = self._flex(field)
        nullable = self.version in VersionRange(field.get("nullableVersions"))
        if _is_array(ftype):
            n = self._length(r, flex, ">i")
            if n is None:
                if not nullable:
                    raise DecodeError("null array " + field["name"])
                return None
            if n > r.remaining():  # every element takes >= 1 byte
                raise DecodeError("array %s count %d exceeds frame"
                                  % (field["name"], n))
            elem = ftype[2:]
            sub = _struct_fields(self.msg, field, elem)
            return [self._struct(sub, r) if sub is not None
                    else self._scalar(elem, r, flex, False, field)
                    for _ in range(n)]
        sub = _struct_fields(self.msg, field, ftype)
        if sub is not None:
            if nullable:
                if r.unpack(">b") < 0:
                    return None
            return self._struct(sub, r)
        return self._scalar(ftype, r, flex, nullable, field)

    def _scalar(self, ftype, r, flex, nullable, field):
        if ftype in _FIXED:
            return r.unpack(_FIXED[ftype])
        if ftype == "bool":
            return r.take(1) != b"\0"
        if ftype == "uuid":
            return r.take(16)
        if ftype == "string":
            n = self._length(r, flex, ">h")
            if n is None:
                if not nullable:
                    raise DecodeError("null string " + field["name"])
                return None
            try:
                return r.take(n).decode("utf-8")
            except UnicodeDecodeError as e:
                raise DecodeError("bad utf-8 in %s: %s" % (field["name"], e))
        if ftype in ("bytes", "records"):
            n = self._length(r, flex, ">i")
            if n is None:
                return None
            return r.take(n)
        raise ValueError("unknown type %r in %s" % (ftype, field["name"]))


# ---------------------------------------------------------------- frames

def request_header_version(api_key, api_version):
    if api_key == 7 and api_version == 0:  # ControlledShutdown v0
        return 0
    return 2 if api_version in request_schema(api_key).flexible else 1


def response_header_version(api_key, api_version):
    if api_key == API_VERSIONS_KEY:
        return 0
    return 1 if api_version in response_schema(api_key).flexible else 0


def parse_request(frame):
    """Parse a request frame (header + body, no size prefix).

    Returns (header dict, body dict). Raises DecodeError if the frame does
    not parse exactly, i.e. with no bytes left over.
    """
    r = Reader(frame)
    api_key = r.unpack(">h")
    api_version = r.unpack(">h")
    names = api_names()
    if api_key not in names:
        raise DecodeError("unknown api key %d" % api_key)
    schema = request_schema(api_key)
    if api_version not in schema.valid:
        raise DecodeError("%s v%d is not a valid version"
                          % (names[api_key], api_version))
    hv = request_header_version(api_key, api_version)
    r.pos = 0
    header = Decoder(load("RequestHeader"), hv).decode(r)
    body = Decoder(schema, api_version).decode(r)
    if r.remaining():
        raise DecodeError("%d trailing bytes after %s v%d"
                          % (r.remaining(), names[api_key], api_version))
    return header, body


def parse_response(api_key, api_version, frame):
    """Parse a response frame (no size prefix) to an api we asked for.

    Returns (correlation_id, body dict). Raises DecodeError unless the frame
    parses exactly.
    """
    r = Reader(frame)
    hv = response_header_version(api_key, api_version)
    header = Decoder(load("ResponseHeader"), hv).decode(r)
    body = Decoder(response_schema(api_key), api_version).decode(r)
    if r.remaining():
        raise DecodeError("%d trailing bytes after %s v%d response"
                          % (r.remaining(), api_names()[api_key], api_version))
    return header["CorrelationId"], body


def encode_response(api_key, api_version, correlation_id, body):
    """Encode a whole response frame, size prefix included."""
    hv = response_header_version(api_key, api_version)
    header = Encoder(load("ResponseHeader"), hv).encode(
        {"CorrelationId": correlation_id})
    payload = header + Encoder(response_schema(api_key), api_version).encode(
        body)
    return struct.pack(">i", len(payload)) + payload


def encode_request(api_key, api_version, correlation_id, client_id, body):
    """Encode a whole request frame, size prefix included."""
    hv = request_header_version(api_key, api_version)
    header = Encoder(load("RequestHeader"), hv).encode({
        "RequestApiKey": api_key, "RequestApiVersion": api_version,
        "CorrelationId": correlation_id, "ClientId": client_id})
    payload = header + Encoder(request_schema(api_key), api_version).encode(
        body)
    return struct.pack(">i", len(payload)) + payload


def snake(name):
    """File-name token of an API name: "ApiVersions" -> "apiversions"."""
    return re.sub(r"[^a-z0-9]", "", name.lower())
