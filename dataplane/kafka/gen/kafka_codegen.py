#!/usr/bin/env python3
"""kafka_codegen.py: generate sluice's Kafka message codec from the Kafka JSON definitions.

Usage: kafka_codegen.py [--input DIR] [--output DIR]
  --input   folder of Kafka message JSON files
            (default: ../shared/kafka-protocol/message relative to the repo root)
  --output  folder to write the C files into (default: dataplane/kafka in the repo)

Outputs (all committed; the build never runs this script):
  kafka_msgs.h            structs, per-message init/decode/encode prototypes, API table API
  kafka_msgs_requests.c   request codecs          kafka_msgs_responses.c  response codecs
  kafka_msgs.c            request/response headers, the API table, generic dispatch
  kafka_msgs_fill.h/.c    test support only: deterministic fillers and deep equality

Design: one struct, one init, one decode and one encode function per message and per nested
struct, with per-version logic written as plain `if (version >= N)` tests, in the manner of
Kafka's own generated Java. Runtime primitives (reader, writer, arena) live in wire.h.
Strings, bytes and records decode as views into the input; arrays go to the caller's arena.
"""
import argparse
import json
import os
import re
import sys

UPSTREAM = "apache/kafka clients/src/main/resources/common/message @ 1eb76443 (October 2024)"

# The APIs the broker implements (message name prefix). Versions: the JSON's whole range.
APIS = """ApiVersions Metadata Produce Fetch ListOffsets FindCoordinator JoinGroup SyncGroup
Heartbeat LeaveGroup OffsetCommit OffsetFetch DescribeGroups ListGroups DeleteGroups
OffsetDelete CreateTopics DeleteTopics CreatePartitions DescribeConfigs AlterConfigs
IncrementalAlterConfigs DeleteRecords InitProducerId OffsetForLeaderEpoch DescribeCluster
DescribeLogDirs AddPartitionsToTxn AddOffsetsToTxn EndTxn TxnOffsetCommit WriteTxnMarkers
DescribeProducers ListTransactions DescribeTransactions SaslHandshake SaslAuthenticate
DescribeAcls CreateAcls DeleteAcls""".split()

C_KEYWORDS = set("""auto break case char const continue default do double else enum extern
float for goto if inline int long register restrict return short signed sizeof static struct
switch typedef union unsigned void volatile while bool true false""".split())

PRIMS = {
    "int8": ("int8_t", 1), "int16": ("int16_t", 2), "int32": ("int32_t", 4),
    "int64": ("int64_t", 8), "uint16": ("uint16_t", 2), "float64": ("double", 8),
    "bool": ("bool", 1), "uuid": ("struct kafka_uuid", 16),
}
VIEWS = {"string": "struct kafka_str", "bytes": "struct kafka_bytes",
         "records": "struct kafka_bytes"}


def snake(name):
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()
    return s + "_" if s in C_KEYWORDS else s


def strip_comments(text):
    """Drop // comments (to the end of the line) that are outside JSON strings."""
    out = []
    in_string = escaped = False
    i = 0
    while i < len(text):
        ch = text[i]
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def load_json(path):
    with open(path, encoding="utf-8") as fp:
        return json.loads(strip_comments(fp.read()))


class Versions:
    """A version range lo..hi (hi None = open); empty when lo is None."""

    def __init__(self, text, valid_hi):
        text = (text or "none").strip()
        self.valid_hi = valid_hi
        if text == "none":
            self.lo, self.hi = None, None
        elif text.endswith("+"):
            self.lo, self.hi = int(text[:-1]), None
        elif "-" in text:
            a, b = text.split("-")
            self.lo, self.hi = int(a), int(b)
        else:
            self.lo = self.hi = int(text)

    def empty(self):
        return self.lo is None

    def contains(self, v):
        return self.lo is not None and v >= self.lo and (self.hi is None or v <= self.hi)

    def intersect(self, other):
        r = Versions("none", self.valid_hi)
        if self.empty() or other.empty():
            return r
        lo = max(self.lo, other.lo)
        his = [h for h in (self.hi, other.hi) if h is not None]
        hi = min(his) if his else None
        if hi is not None and hi < lo:
            return r
        r.lo, r.hi = lo, hi
        return r

    def hull(self, other):
        if self.empty():
            return other
        if other.empty():
            return self
        r = Versions("none", self.valid_hi)
        r.lo = min(self.lo, other.lo)
        r.hi = None if self.hi is None or other.hi is None else max(self.hi, other.hi)
        return r

    def cond(self, within=None, var="version"):
        """C condition that `var` is in this range, knowing it is already in `within`
        (default: the message's valid versions); '1' when always, '0' when never."""
        ctx_lo, ctx_hi = 0, self.valid_hi
        if within is not None:
            if within.empty():
                return "0"
            ctx_lo = within.lo
            ctx_hi = self.valid_hi if within.hi is None else min(within.hi, self.valid_hi)
        if self.empty() or (self.hi is not None and self.hi < ctx_lo) or self.lo > ctx_hi:
            return "0"
        parts = []
        if self.lo > ctx_lo:
            parts.append("%s >= %d" % (var, self.lo))
        if self.hi is not None and self.hi < ctx_hi:
            parts.append("%s <= %d" % (var, self.hi))
        return " && ".join(parts) if parts else "1"


def c_bool(cond):
    """A condition as a C boolean argument."""
    return {"1": "true", "0": "false"}.get(cond, cond)


def cif(cond, body, indent):
    """Wrap body lines in `if (cond)` unless cond is always true; drop when never."""
    if cond == "0":
        return []
    if cond == "1":
        return body
    if len(body) >= 2 and body[0] == indent + "{" and body[-1] == indent + "}":
        body = body[1:-1]  # a block already: its braces become the if's
        return [indent + "if (%s) {" % cond] + body + [indent + "}"]
    return [indent + "if (%s) {" % cond] + ["    " + b for b in body] + [indent + "}"]


class Field:
    def __init__(self, msg, js):
        vh = msg.valid_hi
        self.name = js["name"]
        self.c = snake(js["name"])
        self.type = js["type"]
        self.versions = Versions(js.get("versions"), vh)
        self.nullable = Versions(js.get("nullableVersions"), vh)
        self.tagged = Versions(js.get("taggedVersions"), vh)
        self.tag = js.get("tag")
        self.ignorable = bool(js.get("ignorable", False))
        self.default = js.get("default")
        if "flexibleVersions" in js:
            self.flexible = Versions(js["flexibleVersions"], vh)
        else:
            self.flexible = msg.flexible
        self.is_array = self.type.startswith("[]")
        self.elem = self.type[2:] if self.is_array else self.type
        self.is_struct = self.elem not in PRIMS and self.elem not in VIEWS
        self.struct = None  # filled in by Message
        if self.is_struct and not self.is_array and not self.nullable.empty():
            raise SystemExit("nullable struct field %s not supported" % self.name)
        # versions where the field is a regular (untagged) field
        self.regular = self.versions
        if not self.tagged.empty():
            self.regular = Versions("none", vh)
            if self.versions.lo is not None and self.versions.lo < self.tagged.lo:
                self.regular = Versions("%d-%d" % (self.versions.lo, self.tagged.lo - 1), vh)


class Struct:
    def __init__(self, msg, name, fields_js):
        self.name = name
        self.cname = "kafka_%s_%s" % (msg.c, snake(name))
        self.fn = "%s_%s" % (msg.c, snake(name))  # prefix of static functions
        self.fields = [Field(msg, f) for f in fields_js]
        self.msg = msg


class Message:
    def __init__(self, js):
        self.name = js["name"]
        self.c = snake(self.name)
        self.kind = js["type"]
        self.api_key = js.get("apiKey")
        lo, hi = js["validVersions"].split("-") if "-" in js["validVersions"] else (
            js["validVersions"], js["validVersions"])
        self.valid_lo, self.valid_hi = int(lo), int(hi)
        self.flexible = Versions(js.get("flexibleVersions", "none"), self.valid_hi)
        self.structs = []      # nested structs, dependencies first
        self.by_name = {}
        common = {c["name"]: c for c in js.get("commonStructs", [])}
        self.top = Struct(self, self.name, js["fields"])
        self.top.cname = "kafka_" + self.c
        self.top.fn = "kafka_" + self.c
        self.resolve(self.top, common)
        self.compute_reach()

    def compute_reach(self):
        """Versions in which each struct can occur, so that per-field tests inside a nested
        struct only test what its parent has not already decided."""
        valid = Versions("%d-%d" % (self.valid_lo, self.valid_hi), self.valid_hi)
        for st in self.structs:
            st.reach = Versions("none", self.valid_hi)
        self.top.reach = valid
        for st in [self.top] + list(reversed(self.structs)):
            for f in st.fields:
                f.ctx = st.reach
                f.present = f.versions.intersect(st.reach)
                if f.is_struct:
                    f.struct.reach = f.struct.reach.hull(f.present)
        flex = self.flexible
        for st in [self.top] + self.structs:
            st.flex_ctx = flex.intersect(st.reach)
        for st in self.structs:  # children first
            st.min_bytes = self.struct_min_bytes(st)

    def struct_min_bytes(self, st):
        """Fewest bytes one element of st takes on the wire at any version it can occur in
        (at least 1), so array counts can be checked against the bytes left."""
        hi = self.valid_hi if st.reach.hi is None else min(st.reach.hi, self.valid_hi)
        best = None
        for v in range(st.reach.lo, hi + 1):
            flex = self.flexible.contains(v)
            n = 1 if flex else 0
            for f in st.fields:
                if not f.versions.contains(v) or f.tagged.contains(v):
                    continue
                compact = f.flexible.contains(v)
                if f.is_array or f.type in ("bytes", "records"):
                    n += 1 if compact else 4
                elif f.type == "string":
                    n += 1 if compact else 2
                elif f.is_struct:
                    n += f.struct.min_bytes
                else:
                    n += PRIMS[f.type][1]
            best = n if best is None else min(best, n)
        return max(1, best or 0)

    def resolve(self, root, common):
        # iterative depth-first walk; structs are appended after their children
        stack = [(root, False)]
        while stack:
            st, done = stack.pop()
            if done:
                if st is not root:
                    self.structs.append(st)
                continue
            stack.append((st, True))
            for f, fjs in zip(st.fields, self._fields_js(st)):
                if not f.is_struct:
                    continue
                if f.elem in self.by_name:
                    f.struct = self.by_name[f.elem]
                    continue
                body = fjs.get("fields")
                if body is None:
                    if f.elem not in common:
                        raise SystemExit("%s: unknown type %s" % (self.name, f.elem))
                    body = common[f.elem]["fields"]
                ns = Struct(self, f.elem, body)
                ns.js = body
                self.by_name[f.elem] = ns
                f.struct = ns
                stack.append((ns, False))

    def _fields_js(self, st):
        return st.js if hasattr(st, "js") else self.js_fields

    def set_js(self, js):
        self.js_fields = js["fields"]


def load_message(path):
    js = load_json(path)
    m = Message.__new__(Message)
    m.js_fields = js["fields"]
    Message.__init__(m, js)
    return m


# ---------------------------------------------------------------------------------------------
# C type and default helpers

def c_decl(f):
    if f.is_array:
        et = "struct " + f.struct.cname if f.is_struct else (
            PRIMS[f.elem][0] if f.elem in PRIMS else VIEWS[f.elem])
        return ["%s *%s;" % (et, f.c), "int32_t %s_count;" % f.c]
    if f.is_struct:
        return ["struct %s %s;" % (f.struct.cname, f.c)]
    if f.type in PRIMS:
        return ["%s %s;" % (PRIMS[f.type][0], f.c)]
    return ["%s %s;" % (VIEWS[f.type], f.c)]


def num_literal(f):
    d = f.default
    if isinstance(d, bool):
        d = "true" if d else "false"
    elif d is not None:
        d = str(d)
    if d is None or d == "":
        return "0"
    if f.type == "bool":
        return "true" if d == "true" else "false"
    if f.type == "float64":
        return repr(float(d))
    v = int(d, 0)
    if f.type == "int64":
        return "INT64_C(%d)" % v
    if v == -2147483648:
        return "INT32_MIN"
    return str(v)


def default_is_null(f):
    return f.default == "null"


def init_lines(f, p, ind):
    x = p + f.c
    if f.is_array:
        return [ind + "%s = NULL;" % x,
                ind + "%s_count = %d;" % (x, -1 if default_is_null(f) else 0)]
    if f.is_struct:
        return [ind + "%s_init(&%s);" % (f.struct.fn, x)]
    if f.type == "uuid":
        return [ind + "memset(&%s, 0, sizeof(%s));" % (x, x)]
    if f.type in PRIMS:
        return [ind + "%s = %s;" % (x, num_literal(f))]
    if f.type == "string":
        if default_is_null(f):
            return [ind + "%s = (struct kafka_str){ NULL, -1 };" % x]
        s = f.default or ""
        return [ind + "%s = (struct kafka_str){ %s, %d };" % (x, json.dumps(s), len(s))]
    if f.type == "bytes":
        if default_is_null(f):
            return [ind + "%s = (struct kafka_bytes){ NULL, -1 };" % x]
        return [ind + "%s = (struct kafka_bytes){ NULL, 0 };" % x]
    # records: null by default, as in Kafka
    return [ind + "%s = (struct kafka_bytes){ NULL, -1 };" % x]


def is_default_expr(f, p):
    x = p + f.c
    if f.is_array:
        return "%s_count == %d" % (x, -1 if default_is_null(f) else 0)
    if f.is_struct:
        return "%s_is_default(&%s)" % (f.struct.fn, x)
    if f.type == "uuid":
        return "kafka_uuid_is_zero(%s)" % x
    if f.type == "bool":
        return ("%s" if num_literal(f) == "true" else "!%s") % x
    if f.type in PRIMS:
        return "%s == %s" % (x, num_literal(f))
    if f.type == "string":
        if default_is_null(f):
            return "%s.len == -1" % x
        return "kafka_str_equals_cstr(%s, %s)" % (x, json.dumps(f.default or ""))
    if f.type == "bytes" and not default_is_null(f):
        return "%s.len == 0" % x
    return "%s.len == -1" % x


def min_elem_bytes(f, compact):
    if f.is_struct:
        return str(f.struct.min_bytes)
    if f.elem in PRIMS:
        return str(PRIMS[f.elem][1])
    return "(%s) ? 1 : %d" % (compact, 2 if f.elem == "string" else 4)


READ_PRIM = {"int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64",
             "uint16": "uint16", "float64": "float64", "bool": "bool", "uuid": "uuid"}


def paren(c):
    return "(%s)" % c if "&&" in c else c


# ---------------------------------------------------------------------------------------------
# decode

def decode_value(f, elem, target, rd, ind, is_elem, within):
    """Lines decoding one value of type `elem` into `target`."""
    compact = c_bool(f.flexible.cond(within))
    if elem in PRIMS:
        return [ind + "%s = kafka_read_%s(%s);" % (target, READ_PRIM[elem], rd)]
    if elem in VIEWS:
        fn = {"string": "kafka_read_string", "bytes": "kafka_read_bytes",
              "records": "kafka_read_bytes"}[elem]
        lines = [ind + "%s = %s(%s, %s);" % (target, fn, rd, compact)]
        ncond = "0" if is_elem else f.nullable.cond(within)
        if ncond != "1":
            chk = "%s.len < 0" % target
            if ncond != "0":
                chk += " && !(%s)" % ncond
            lines.append(ind + "if (%s)" % chk)
            lines.append(ind + "    return kafka_reader_fail(%s, KAFKA_ERR_NULL);" % rd)
        return lines
    return [ind + "rc = %s_decode(%s, version, &%s, arena);" % (f.struct.fn, rd, target),
            ind + "if (rc != 0)",
            ind + "    return kafka_reader_fail(%s, rc);" % rd]


def decode_field(f, p, rd, ind, within):
    x = p + f.c
    if not f.is_array:
        return decode_value(f, f.type, x, rd, ind, False, within)
    compact = c_bool(f.flexible.cond(within))
    ncond = f.nullable.cond(within)
    lines = [ind + "{",
             ind + "    int32_t n = kafka_read_array_len(%s, %s, %s);" % (
                 rd, compact, min_elem_bytes(f, compact)),
             ind + "    if (%s->err != 0)" % rd,
             ind + "        return %s->err;" % rd]
    if ncond != "1":
        chk = "n < 0" + ("" if ncond == "0" else " && !(%s)" % ncond)
        lines += [ind + "    if (%s)" % chk,
                  ind + "        return kafka_reader_fail(%s, KAFKA_ERR_NULL);" % rd]
    lines += [ind + "    %s_count = n;" % x,
              ind + "    %s = NULL;" % x,
              ind + "    if (n > 0) {",
              ind + "        %s = KAFKA_ARENA_ARRAY(arena, n, %s);" % (x, x),
              ind + "        if (%s == NULL)" % x,
              ind + "            return kafka_reader_fail(%s, KAFKA_ERR_ARENA);" % rd,
              ind + "    }",
              ind + "    for (int32_t i = 0; i < n; i++) {"]
    lines += decode_value(f, f.elem, "%s[i]" % x, rd, ind + "        ", True, within)
    lines += [ind + "        if (%s->err != 0)" % rd,
              ind + "            return %s->err;" % rd,
              ind + "    }",
              ind + "}"]
    return lines


def gen_decode(st, top):
    sig = ("int %s_decode(struct kafka_reader *r, int16_t version, struct %s *s, "
           "struct kafka_arena *arena)" % (st.fn, st.cname))
    if not top:
        sig = "static " + sig
    out = [sig, "{"]
    if top:
        m = st.msg
        out += ["    if (version < %d || version > %d)" % (m.valid_lo, m.valid_hi),
                "        return kafka_reader_fail(r, KAFKA_ERR_VERSION);"]
    out += ["    %s_init(s%s);" % (st.fn, ", version" if top else "")]
    if any(f.is_struct for f in st.fields):
        out.insert(-1, "    int rc;")
    for f in st.fields:
        out += cif(f.regular.cond(f.ctx), decode_field(f, "s->", "r", "    ", f.regular.intersect(f.ctx)),
                   "    ")
    tagged = sorted([f for f in st.fields if not f.tagged.empty()], key=lambda f: f.tag)
    flex = st.msg.flexible.cond(st.reach)
    body = ["    uint32_t tag_count = kafka_read_tag_count(r);",
            "    for (uint32_t t = 0; t < tag_count && r->err == 0; t++) {",
            "        uint32_t tag = kafka_read_uvarint(r);",
            "        struct kafka_reader sub_reader;",
            "        struct kafka_reader *sub = &sub_reader;",
            "        if (kafka_read_tag_body(r, sub) != 0)",
            "            return r->err;"]
    if tagged:
        body.append("        switch (tag) {")
        for f in tagged:
            body.append("        case %d:" % f.tag)
            lines = decode_field(f, "s->", "sub", "            ", f.tagged.intersect(st.flex_ctx))
            # an error inside the tag body is an error of the whole message: record it in r
            lines = [l.replace("kafka_reader_fail(sub, ", "kafka_reader_fail(r, ")
                      .replace("return sub->err;", "return kafka_reader_fail(r, sub->err);")
                     for l in lines]
            body += cif(f.tagged.cond(st.flex_ctx), lines, "            ")
            body.append("            break;")
        body += ["        default:",
                 "            break; /* unknown tag: skipped */",
                 "        }",
                 "        if (sub->err != 0) /* the tag body was shorter than its field */",
                 "            return kafka_reader_fail(r, sub->err);"]
    else:
        body.append("        (void)tag; /* no known tags: every tag is skipped */")
        body.append("        (void)sub;")
    body += ["    }"]
    out += cif(flex, body, "    ")
    out += ["    return r->err;", "}", ""]
    # references to sub from macro-ish code paths use (&sub)->err which is fine C
    return out


# ---------------------------------------------------------------------------------------------
# encode

def encode_value(f, elem, src, wr, ind, is_elem, within):
    compact = c_bool(f.flexible.cond(within))
    if elem in PRIMS:
        return [ind + "kafka_write_%s(%s, %s);" % (READ_PRIM[elem], wr, src)]
    if elem in VIEWS:
        lines = []
        ncond = "0" if is_elem else f.nullable.cond(within)
        if ncond != "1":
            chk = "%s.len < 0" % src
            if ncond != "0":
                chk += " && !(%s)" % ncond
            lines += [ind + "if (%s)" % chk,
                      ind + "    return kafka_writer_fail(%s, KAFKA_ERR_NULL);" % wr]
        fn = {"string": "kafka_write_string", "bytes": "kafka_write_bytes",
              "records": "kafka_write_records"}[elem]
        return lines + [ind + "%s(%s, %s, %s);" % (fn, wr, src, compact)]
    return [ind + "if (%s_encode(%s, version, &%s) != 0)" % (f.struct.fn, wr, src),
            ind + "    return %s->err;" % wr]


def encode_field(f, p, wr, ind, within):
    x = p + f.c
    if not f.is_array:
        return encode_value(f, f.type, x, wr, ind, False, within)
    compact = c_bool(f.flexible.cond(within))
    ncond = f.nullable.cond(within)
    lines = []
    if ncond != "1":
        chk = "%s_count < 0" % x + ("" if ncond == "0" else " && !(%s)" % ncond)
        lines += [ind + "if (%s)" % chk,
                  ind + "    return kafka_writer_fail(%s, KAFKA_ERR_NULL);" % wr]
    lines += [ind + "if (%s_count > 0 && %s == NULL)" % (x, x),
              ind + "    return kafka_writer_fail(%s, KAFKA_ERR_LENGTH);" % wr,
              ind + "kafka_write_array_len(%s, %s_count, %s);" % (wr, x, compact),
              ind + "for (int32_t i = 0; i < %s_count; i++) {" % x]
    lines += encode_value(f, f.elem, "%s[i]" % x, wr, ind + "    ", True, within)
    lines += [ind + "}"]
    return lines


def gen_encode(st, top):
    sig = "int %s_encode(struct kafka_writer *w, int16_t version, const struct %s *s)" % (
        st.fn, st.cname)
    if not top:
        sig = "static " + sig
    out = [sig, "{"]
    if top:
        m = st.msg
        out += ["    if (version < %d || version > %d)" % (m.valid_lo, m.valid_hi),
                "        return kafka_writer_fail(w, KAFKA_ERR_VERSION);"]
    for f in st.fields:
        present = f.regular.cond(f.ctx)
        out += cif(present, encode_field(f, "s->", "w", "    ", f.regular.intersect(f.ctx)),
                   "    ")
        # a field the version lacks must hold its default unless it is ignorable
        if not f.ignorable:
            if present != "1" and f.tagged.empty():
                c = "!(%s) && !(%s)" % (present, is_default_expr(f, "s->")) if present != "0" \
                    else "!(%s)" % is_default_expr(f, "s->")
                out += ["    if (%s)" % c,
                        "        return kafka_writer_fail(w, KAFKA_ERR_UNSUPPORTED_FIELD);"]
            elif not f.tagged.empty():
                tc = f.tagged.cond(f.ctx)
                c = "!(%s) && !(%s) && !(%s)" % (present, tc, is_default_expr(f, "s->"))
                out += ["    if (%s)" % c,
                        "        return kafka_writer_fail(w, KAFKA_ERR_UNSUPPORTED_FIELD);"]
    tagged = sorted([f for f in st.fields if not f.tagged.empty()], key=lambda f: f.tag)
    flex = st.msg.flexible.cond(st.reach)
    body = ["    uint32_t tag_count = 0;"]
    for f in tagged:
        c = "%s && !(%s)" % (paren(f.tagged.cond(st.flex_ctx)), is_default_expr(f, "s->")) \
            if f.tagged.cond(st.flex_ctx) != "1" else "!(%s)" % is_default_expr(f, "s->")
        body += ["    if (%s)" % c, "        tag_count++;"]
    body.append("    kafka_write_uvarint(w, tag_count);")
    for f in tagged:
        c = "%s && !(%s)" % (paren(f.tagged.cond(st.flex_ctx)), is_default_expr(f, "s->")) \
            if f.tagged.cond(st.flex_ctx) != "1" else "!(%s)" % is_default_expr(f, "s->")
        body += ["    if (%s) {" % c,
                 "        struct kafka_writer sizer_writer;",
                 "        struct kafka_writer *sizer = &sizer_writer;",
                 "        kafka_writer_init_sizer(sizer);"]
        body += encode_field(f, "s->", "sizer", "        ", f.tagged.intersect(st.flex_ctx))
        body += ["        kafka_write_uvarint(w, %d);" % f.tag,
                 "        kafka_write_uvarint(w, (uint32_t)kafka_writer_size(sizer));"]
        body += encode_field(f, "s->", "w", "        ", f.tagged.intersect(st.flex_ctx))
        body += ["    }"]
    out += cif(flex, body, "    ")
    out += ["    return w->err;", "}", ""]
    return out


def gen_init(st, top):
    if top:
        out = ["void %s_init(struct %s *s, int16_t version)" % (st.fn, st.cname), "{",
               "    (void)version;"]
    else:
        out = ["static void %s_init(struct %s *s)" % (st.fn, st.cname), "{"]
    for f in st.fields:
        out += init_lines(f, "s->", "    ")
    return out + ["}", ""]


def gen_is_default(st):
    exprs = [is_default_expr(f, "s->") for f in st.fields] or ["true"]
    out = ["static bool %s_is_default(const struct %s *s)" % (st.fn, st.cname), "{",
           "    return " + ("\n        && ".join("(%s)" % e for e in exprs)) + ";", "}", ""]
    return out


def struct_needs_is_default(m):
    need = set()
    for st in m.structs + [m.top]:
        for f in st.fields:
            if f.is_struct and not f.is_array:
                need.add(f.struct.name)
    return need


# ---------------------------------------------------------------------------------------------
# fill and equal (test support)

def fill_value(f, elem, target, ind, is_elem, within):
    if elem == "uuid":
        return [ind + "kafka_fill_uuid(&%s, seed);" % target]
    if elem == "bool":
        return [ind + "%s = (kafka_fill_next(seed) & 1) != 0;" % target]
    if elem == "float64":
        return [ind + "%s = (double)(kafka_fill_next(seed) %% 100000) / 8.0;" % target]
    if elem in PRIMS:
        return [ind + "%s = (%s)kafka_fill_next(seed);" % (target, PRIMS[elem][0])]
    if elem in VIEWS:
        nullable = "false" if is_elem else "(%s)" % f.nullable.cond(within)
        fn = {"string": "kafka_fill_str", "bytes": "kafka_fill_bytes",
              "records": "kafka_fill_records"}[elem]
        return [ind + "%s = %s(seed, %s);" % (target, fn, nullable)]
    return [ind + "%s_fill(&%s, version, arena, seed);" % (f.struct.fn, target)]


def fill_field(f, p, ind, within):
    x = p + f.c
    if not f.is_array:
        return fill_value(f, f.type, x, ind, False, within)
    lines = [ind + "%s_count = kafka_fill_count(seed, %s);" % (x, f.nullable.cond(within)),
             ind + "%s = NULL;" % x,
             ind + "if (%s_count > 0) {" % x,
             ind + "    %s = KAFKA_ARENA_ARRAY(arena, %s_count, %s);" % (x, x, x),
             ind + "    assert(%s != NULL);" % x,
             ind + "}",
             ind + "for (int32_t i = 0; i < %s_count; i++) {" % x]
    lines += fill_value(f, f.elem, "%s[i]" % x, ind + "    ", True, within)
    return lines + [ind + "}"]


def gen_fill(st, top):
    sig = ("void %s_fill(struct %s *s, int16_t version, struct kafka_arena *arena, "
           "uint32_t *seed)" % (st.fn, st.cname))
    if not top:
        sig = "static " + sig
    out = [sig, "{"]
    if top:
        out.append("    kafka_%s_init(s, version);" % st.msg.c)
    else:
        out.append("    %s_init(s);" % st.fn)
    for f in st.fields:
        out += cif(f.versions.cond(f.ctx), fill_field(f, "s->", "    ", f.present), "    ")
    return out + ["}", ""]


def equal_value(f, elem, a, b):
    if elem == "uuid":
        return "memcmp(&%s, &%s, 16) == 0" % (a, b)
    if elem in PRIMS:
        return "%s == %s" % (a, b)
    if elem == "string":
        return "kafka_str_equals(%s, %s)" % (a, b)
    if elem in VIEWS:
        return "kafka_bytes_equals(%s, %s)" % (a, b)
    return "%s_equal(&%s, &%s)" % (f.struct.fn, a, b)


def gen_equal(st, top):
    sig = "bool %s_equal(const struct %s *a, const struct %s *b)" % (st.fn, st.cname, st.cname)
    if not top:
        sig = "static " + sig
    out = [sig, "{"]
    for f in st.fields:
        if f.is_array:
            out += ["    if (a->%s_count != b->%s_count)" % (f.c, f.c), "        return false;",
                    "    for (int32_t i = 0; i < a->%s_count; i++) {" % f.c,
                    "        if (!(%s))" % equal_value(f, f.elem, "a->%s[i]" % f.c,
                                                         "b->%s[i]" % f.c),
                    "            return false;", "    }"]
        else:
            out += ["    if (!(%s))" % equal_value(f, f.type, "a->" + f.c, "b->" + f.c),
                    "        return false;"]
    return out + ["    return true;", "}", ""]


def gen_errors(st, top):
    """Visit every ErrorCode field of a response, nested structs and arrays included."""
    sig = "void %s_errors(const struct %s *s, kafka_error_fn fn, void *ctx)" % (st.fn, st.cname)
    if not top:
        sig = "static " + sig
    body = []
    for f in st.fields:
        if f.name == "ErrorCode" and f.type == "int16":
            body.append("    fn(ctx, s->%s);" % f.c)
        elif f.is_struct and f.is_array:
            body += ["    for (int32_t i = 0; i < s->%s_count; i++)" % f.c,
                     "        %s_errors(&s->%s[i], fn, ctx);" % (f.struct.fn, f.c)]
        elif f.is_struct:
            body.append("    %s_errors(&s->%s, fn, ctx);" % (f.struct.fn, f.c))
    if not body:
        body = ["    (void)s;", "    (void)fn;", "    (void)ctx;"]
    return [sig, "{"] + body + ["}", ""]


# ---------------------------------------------------------------------------------------------
# files

def banner(input_dir, what):
    return [
        "/* %s" % what,
        " *",
        " * GENERATED by dataplane/kafka/gen/kafka_codegen.py -- do not edit by hand.",
        " * Input: the JSON files in ../shared/kafka-protocol/message, upstream",
        " *        %s." % UPSTREAM,
        " * Regenerate: python3 dataplane/kafka/gen/kafka_codegen.py",
        " * tests/unit/kafka/check_codegen.py fails when this file drifts from the generator.",
        " */",
    ]


def gen_header(msgs, pairs, hdrs):
    resp_msgs = [p[2] for p in pairs]
    o = banner(None, "kafka_msgs.h: Kafka request/response structs and their codecs.")
    o += [
        "/*",
        " * Public API (one set per message, e.g. kafka_metadata_request):",
        " *   void kafka_<msg>_init(struct kafka_<msg> *m, int16_t version);",
        " *        sets every field to its JSON default (absent fields keep it).",
        " *   int  kafka_<msg>_decode(struct kafka_reader *r, int16_t version,",
        " *                           struct kafka_<msg> *m, struct kafka_arena *arena);",
        " *        0 or a negative KAFKA_ERR_*; strings/bytes/records are views into r's",
        " *        bytes, arrays are allocated from arena. Does not check that r is consumed:",
        " *        use kafka_reader_remaining(r) == 0 for that.",
        " *   int  kafka_<msg>_encode(struct kafka_writer *w, int16_t version,",
        " *                           const struct kafka_<msg> *m);",
        " *        0 or a negative KAFKA_ERR_*; never allocates. Records fields become",
        " *        external iovecs when the writer has an iovec list (see wire.h).",
        " * Naming: fields in snake_case; an array field `x` is `x` (items) + `x_count`",
        " * (-1 = null array); nested structs are struct kafka_<msg>_<struct>.",
        " * Headers: struct kafka_request_header (v0-v2; client_id is a non-compact nullable",
        " * string even in v2) and struct kafka_response_header (v0-v1), same four functions;",
        " * headers have no arrays, so their decoders never touch the arena (NULL is fine).",
        " * Arena sizing: decode allocates only arrays, count * sizeof(element) each; counts are",
        " * first checked against the bytes left, so the arena a frame can need is bounded by",
        " * the frame size times the largest sizeof(element) / minimum element wire size.",
        " * Version ranges are the JSON's whole range (e.g. Produce 0-11, Fetch 0-17): what the",
        " * codec can parse, not necessarily what the broker's handlers implement.",
        " * API table: kafka_api_lookup(api_key) gives name, versions implemented, first",
        " * flexible version, struct sizes; kafka_request_header_version() and",
        " * kafka_response_header_version() give header versions (ApiVersions responses always",
        " * use header v0). Generic dispatch: kafka_request_decode()/encode()/init(),",
        " * kafka_response_decode()/encode()/init() on a void * to the message struct",
        " * (union kafka_request_any / kafka_response_any hold any of them).",
        " */",
        "#ifndef SLUICE_KAFKA_MSGS_H",
        "#define SLUICE_KAFKA_MSGS_H",
        "",
        "#include <stdbool.h>",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "",
        '#include "dataplane/kafka/wire.h"',
        "",
    ]
    o += ["/* Called with every ErrorCode field of a response (zeros included). */",
          "typedef void (*kafka_error_fn)(void *ctx, int16_t error_code);", ""]
    o += ["enum kafka_api_key {"]
    for n, rq, rs in pairs:
        o.append("    KAFKA_API_%s = %d," % (snake(n).upper(), rq.api_key))
    o += ["};", "", "#define KAFKA_API_COUNT %d" % len(pairs), ""]
    for m in hdrs + msgs:
        for st in m.structs + [m.top]:
            o.append("struct %s {" % st.cname)
            for f in st.fields:
                for d in c_decl(f):
                    o.append("    " + d)
            if not st.fields:
                o.append("    char unused_; /* no fields */")
            o += ["};", ""]
        o += ["void kafka_%s_init(struct kafka_%s *m, int16_t version);" % (m.c, m.c),
              "int kafka_%s_decode(struct kafka_reader *r, int16_t version, struct kafka_%s *m,"
              % (m.c, m.c),
              "    struct kafka_arena *arena);",
              "int kafka_%s_encode(struct kafka_writer *w, int16_t version, "
              "const struct kafka_%s *m);" % (m.c, m.c)]
        if m in resp_msgs:
            o.append("void kafka_%s_errors(const struct kafka_%s *s, kafka_error_fn fn, "
                     "void *ctx);" % (m.c, m.c))
        o.append("")
    o += ["union kafka_request_any {"]
    for n, rq, rs in pairs:
        o.append("    struct kafka_%s %s;" % (rq.c, snake(n)))
    o += ["};", "", "union kafka_response_any {"]
    for n, rq, rs in pairs:
        o.append("    struct kafka_%s %s;" % (rs.c, snake(n)))
    o += ["};", "",
          "struct kafka_api_info {",
          "    int16_t api_key;",
          "    const char *name;",
          "    int16_t min_version;",
          "    int16_t max_version;",
          "    int16_t first_flexible_version; /* -1: never flexible */",
          "    size_t request_size_bytes;      /* sizeof the request struct */",
          "    size_t response_size_bytes;",
          "};",
          "",
          "/* NULL when api_key is not implemented. */",
          "const struct kafka_api_info *kafka_api_lookup(int16_t api_key);",
          "/* The table itself, KAFKA_API_COUNT entries in api_key order. */",
          "const struct kafka_api_info *kafka_api_table(void);",
          "/* Header versions for api_key at api_version; -1 if unknown key/version. */",
          "int kafka_request_header_version(int16_t api_key, int16_t api_version);",
          "int kafka_response_header_version(int16_t api_key, int16_t api_version);",
          "",
          "/* Dispatch on api_key; `msg` points at the message struct for that key.",
          " * KAFKA_ERR_UNKNOWN_API for an unknown key, KAFKA_ERR_VERSION out of range. */",
          "int kafka_request_init(int16_t api_key, int16_t version, void *msg);",
          "int kafka_request_decode(int16_t api_key, int16_t version, struct kafka_reader *r,",
          "    struct kafka_arena *arena, void *msg);",
          "int kafka_request_encode(int16_t api_key, int16_t version, struct kafka_writer *w,",
          "    const void *msg);",
          "int kafka_response_init(int16_t api_key, int16_t version, void *msg);",
          "int kafka_response_decode(int16_t api_key, int16_t version, struct kafka_reader *r,",
          "    struct kafka_arena *arena, void *msg);",
          "int kafka_response_encode(int16_t api_key, int16_t version, struct kafka_writer *w,",
          "    const void *msg);",
          "/* Every ErrorCode of a decoded response (metrics count them by API and code). */",
          "int kafka_response_errors(int16_t api_key, const void *msg, kafka_error_fn fn, "
          "void *ctx);",
          "",
          "#endif"]
    return o


def gen_codec_file(msgs, what, errors=False):
    o = banner(None, what)
    o += ["#include <assert.h>", "#include <string.h>", "",
          '#include "dataplane/kafka/kafka_msgs.h"', ""]
    for m in msgs:
        need = struct_needs_is_default(m)
        o.append("/* ---- %s (versions %d-%d, flexible %s) ---- */" % (
            m.name, m.valid_lo, m.valid_hi,
            "none" if m.flexible.empty() else "%d+" % m.flexible.lo))
        o.append("")
        for st in m.structs:
            o.append("static void %s_init(struct %s *s);" % (st.fn, st.cname))
            o.append("static int %s_decode(struct kafka_reader *r, int16_t version, "
                     "struct %s *s, struct kafka_arena *arena);" % (st.fn, st.cname))
            o.append("static int %s_encode(struct kafka_writer *w, int16_t version, "
                     "const struct %s *s);" % (st.fn, st.cname))
            if st.name in need:
                o.append("static bool %s_is_default(const struct %s *s);" % (st.fn, st.cname))
            if errors:
                o.append("static void %s_errors(const struct %s *s, kafka_error_fn fn, "
                         "void *ctx);" % (st.fn, st.cname))
        if m.structs:
            o.append("")
        for st in m.structs:
            o += gen_init(st, False)
            if st.name in need:
                o += gen_is_default(st)
            o += gen_decode(st, False)
            o += gen_encode(st, False)
            if errors:
                o += gen_errors(st, False)
        o += gen_init(m.top, True)
        o += gen_decode(m.top, True)
        o += gen_encode(m.top, True)
        if errors:
            o += gen_errors(m.top, True)
    return o


def gen_table_file(pairs, hdrs):
    o = gen_codec_file(hdrs, "kafka_msgs.c: request/response headers, API table, dispatch.")
    o += ["static const struct kafka_api_info api_table[KAFKA_API_COUNT] = {"]
    for n, rq, rs in pairs:
        ff = -1 if rq.flexible.empty() else rq.flexible.lo
        o.append('    { %d, "%s", %d, %d, %d, sizeof(struct kafka_%s), sizeof(struct kafka_%s) },'
                 % (rq.api_key, n, rq.valid_lo, rq.valid_hi, ff, rq.c, rs.c))
    o += ["};", "",
          "const struct kafka_api_info *kafka_api_table(void)", "{", "    return api_table;",
          "}", "",
          "const struct kafka_api_info *kafka_api_lookup(int16_t api_key)", "{",
          "    /* the table is small and sorted by api_key: binary search */",
          "    int lo = 0, hi = KAFKA_API_COUNT - 1;",
          "    while (lo <= hi) {",
          "        int mid = (lo + hi) / 2;",
          "        if (api_table[mid].api_key == api_key)",
          "            return &api_table[mid];",
          "        if (api_table[mid].api_key < api_key)",
          "            lo = mid + 1;",
          "        else",
          "            hi = mid - 1;",
          "    }",
          "    return NULL;",
          "}", "",
          "static const struct kafka_api_info *lookup_version(int16_t api_key, int16_t version)",
          "{",
          "    const struct kafka_api_info *api = kafka_api_lookup(api_key);",
          "    if (api == NULL || version < api->min_version || version > api->max_version)",
          "        return NULL;",
          "    return api;",
          "}", "",
          "int kafka_request_header_version(int16_t api_key, int16_t api_version)", "{",
          "    const struct kafka_api_info *api = lookup_version(api_key, api_version);",
          "    if (api == NULL)",
          "        return -1;",
          "    if (api->first_flexible_version >= 0 && api_version >= api->first_flexible_version)",
          "        return 2;",
          "    return 1;",
          "}", "",
          "int kafka_response_header_version(int16_t api_key, int16_t api_version)", "{",
          "    const struct kafka_api_info *api = lookup_version(api_key, api_version);",
          "    if (api == NULL)",
          "        return -1;",
          "    /* ApiVersions responses always use v0 so that a client that sent a version",
          "     * the broker does not know can still parse the answer. */",
          "    if (api_key == KAFKA_API_API_VERSIONS)",
          "        return 0;",
          "    if (api->first_flexible_version >= 0 && api_version >= api->first_flexible_version)",
          "        return 1;",
          "    return 0;",
          "}", ""]
    for kind in ("request", "response"):
        for op, sig, call in (
                ("init", "int kafka_%s_init(int16_t api_key, int16_t version, void *msg)",
                 "kafka_%s_init(msg, version); return 0"),
                ("decode", "int kafka_%s_decode(int16_t api_key, int16_t version, "
                 "struct kafka_reader *r,\n    struct kafka_arena *arena, void *msg)",
                 "return kafka_%s_decode(r, version, msg, arena)"),
                ("encode", "int kafka_%s_encode(int16_t api_key, int16_t version, "
                 "struct kafka_writer *w,\n    const void *msg)",
                 "return kafka_%s_encode(w, version, msg)")):
            o += [sig % kind, "{"]
            if op == "init":
                o += ["    if (lookup_version(api_key, version) == NULL)",
                      "        return KAFKA_ERR_VERSION;"]
            o += ["    switch (api_key) {"]
            for n, rq, rs in pairs:
                m = rq if kind == "request" else rs
                o.append("    case KAFKA_API_%s: %s;" % (snake(n).upper(), call % m.c))
            o += ["    default:", "        return KAFKA_ERR_UNKNOWN_API;", "    }", "}", ""]
    o += ["int kafka_response_errors(int16_t api_key, const void *msg, kafka_error_fn fn, "
          "void *ctx)", "{", "    switch (api_key) {"]
    for n, rq, rs in pairs:
        o.append("    case KAFKA_API_%s: kafka_%s_errors(msg, fn, ctx); return 0;"
                 % (snake(n).upper(), rs.c))
    o += ["    default:", "        return KAFKA_ERR_UNKNOWN_API;", "    }", "}", ""]
    return o


def gen_fill_files(msgs, hdrs, pairs):
    h = banner(None, "kafka_msgs_fill.h: test support: fill messages, compare messages.")
    h += ["/* Deterministic fillers (per seed) that set every field valid at a version to a",
          " * non-default value, and deep equality. Used by unit tests, fuzz seeding and",
          " * benchmarks; not part of the broker library. */",
          "#ifndef SLUICE_KAFKA_MSGS_FILL_H", "#define SLUICE_KAFKA_MSGS_FILL_H", "",
          '#include "dataplane/kafka/kafka_msgs.h"', ""]
    c = banner(None, "kafka_msgs_fill.c: test support: fill messages, compare messages.")
    c += ["#include <assert.h>", "#include <string.h>", "",
          '#include "dataplane/kafka/kafka_msgs_fill.h"', '#include "dataplane/kafka/kafka_fill_util.h"', ""]
    for m in hdrs + msgs:
        h += ["void kafka_%s_fill(struct kafka_%s *m, int16_t version, struct kafka_arena *arena,"
              % (m.c, m.c), "    uint32_t *seed);",
              "bool kafka_%s_equal(const struct kafka_%s *a, const struct kafka_%s *b);"
              % (m.c, m.c, m.c)]
        for st in m.structs:
            c.append("static void %s_fill(struct %s *s, int16_t version, struct kafka_arena "
                     "*arena, uint32_t *seed);" % (st.fn, st.cname))
            c.append("static bool %s_equal(const struct %s *a, const struct %s *b);"
                     % (st.fn, st.cname, st.cname))
            c.append("static void %s_init(struct %s *s);" % (st.fn, st.cname))
        for st in m.structs:
            c += gen_init(st, False)
            c += gen_fill(st, False)
            c += gen_equal(st, False)
        c += gen_fill(m.top, True)
        c += gen_equal(m.top, True)
    for kind, idx in (("request", 1), ("response", 2)):
        h += ["/* Dispatch on api_key; KAFKA_ERR_UNKNOWN_API for an unknown key. */",
              "int kafka_%s_fill(int16_t api_key, int16_t version, void *msg," % kind,
              "    struct kafka_arena *arena, uint32_t *seed);",
              "bool kafka_%s_equal(int16_t api_key, const void *a, const void *b);" % kind]
        c += ["int kafka_%s_fill(int16_t api_key, int16_t version, void *msg," % kind,
              "    struct kafka_arena *arena, uint32_t *seed)", "{", "    switch (api_key) {"]
        for p in pairs:
            c += ["    case KAFKA_API_%s:" % snake(p[0]).upper(),
                  "        kafka_%s_fill(msg, version, arena, seed);" % p[idx].c,
                  "        return 0;"]
        c += ["    default:", "        return KAFKA_ERR_UNKNOWN_API;", "    }", "}", ""]
        c += ["bool kafka_%s_equal(int16_t api_key, const void *a, const void *b)" % kind, "{",
              "    switch (api_key) {"]
        for p in pairs:
            c += ["    case KAFKA_API_%s:" % snake(p[0]).upper(),
                  "        return kafka_%s_equal(a, b);" % p[idx].c]
        c += ["    default:", "        return false;", "    }", "}", ""]
    h += ["", "#endif"]
    return h, c


MAX_LINE = 100


def wrap_line(line):
    """Split a long generated C line at ", " boundaries, continuation indented 4 more."""
    out = []
    indent = line[:len(line) - len(line.lstrip())]
    while len(line) > MAX_LINE:
        cut = line.rfind(", ", 0, MAX_LINE)
        if cut <= len(indent):
            cut = line.find(", ", len(indent))  # a long name: cut at the first comma
        if cut <= len(indent) or line[:cut].count('"') % 2 != 0:
            break
        out.append(line[:cut + 1])
        line = indent + "    " + line[cut + 2:]
    out.append(line)
    return out


def wrap(lines):
    out = []
    for line in lines:
        out += wrap_line(line)
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.normpath(os.path.join(here, "..", "..", ".."))
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", default=os.path.join(repo, "..", "shared", "kafka-protocol",
                                                    "message"))
    ap.add_argument("--output", default=os.path.join(repo, "dataplane", "kafka"))
    ap.add_argument("input_pos", nargs="?")
    a = ap.parse_args()
    indir = a.input_pos or a.input
    pairs = []
    for n in APIS:
        rq = load_message(os.path.join(indir, n + "Request.json"))
        rs = load_message(os.path.join(indir, n + "Response.json"))
        assert rq.api_key == rs.api_key
        pairs.append((n, rq, rs))
    pairs.sort(key=lambda p: p[1].api_key)
    hdrs = [load_message(os.path.join(indir, "RequestHeader.json")),
            load_message(os.path.join(indir, "ResponseHeader.json"))]
    reqs = [p[1] for p in pairs]
    resps = [p[2] for p in pairs]
    files = {
        "kafka_msgs.h": gen_header(reqs + resps, pairs, hdrs),
        "kafka_msgs_requests.c": gen_codec_file(
            reqs, "kafka_msgs_requests.c: request codecs, one decode/encode per message."),
        "kafka_msgs_responses.c": gen_codec_file(
            resps, "kafka_msgs_responses.c: response codecs, one decode/encode per message.",
            errors=True),
        "kafka_msgs.c": gen_table_file(pairs, hdrs),
    }
    fh, fc = gen_fill_files(reqs + resps, hdrs, pairs)
    files["kafka_msgs_fill.h"] = fh
    files["kafka_msgs_fill.c"] = fc
    os.makedirs(a.output, exist_ok=True)
    for name, lines in files.items():
        with open(os.path.join(a.output, name), "w", encoding="utf-8") as fp:
            fp.write("\n".join(wrap(lines)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
