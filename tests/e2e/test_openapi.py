"""docs/openapi.yaml against the running server.

The spec is read with a small parser for the YAML subset it is written in
(no PyYAML here), and must equal docs/openapi.json, which is generated from
it:

    python3 tests/e2e/test_openapi.py --write-json

Then an engine serves a simulated file live, and for every GET operation of
the spec each documented parameter value (enum values, example, default,
minimum, maximum) is requested: the status must be one the operation
documents, the content type and the documented headers must match, and the
JSON body must validate against the response's schema (a small validator:
$ref, type, nullable, required, properties, additionalProperties, items,
enum, minimum/maximum, min/maxItems, min/maxLength and the formats cents,
share and int64). Values just outside each parameter's bounds must give the
documented 400; POST, a request body and oversized headers the documented
405, 413 and 431. The event stream's first event and /metrics (x-sse-events,
x-metrics) are checked too, and every GET path that DESIGN §5 lists must be
in the spec, and the other way round. A second engine without a snapshot
checks the 503 answers.

Run: cd tests/e2e && python3 -m unittest -v test_openapi
"""

import http.client
import json
import os
import re
import sys
import time
import unittest
from decimal import Decimal
from urllib.parse import quote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, E2ETest, wait_for  # noqa: E402
from test_api import EngineServer, parse_metrics  # noqa: E402

YAML_PATH = os.path.join(ROOT, "docs", "openapi.yaml")
JSON_PATH = os.path.join(ROOT, "docs", "openapi.json")
DESIGN_PATH = os.path.join(ROOT, "docs", "DESIGN.md")
START = "2024-11-11T00:00:00"
ORDERS = int(os.environ.get("OP_E2E_OPENAPI_ORDERS", "20000"))
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
CHARSET_TYPES = ("application/json", "text/plain", "text/event-stream")


# --- a parser for the YAML subset of docs/openapi.yaml --------------------------------

class YamlError(ValueError):
    pass


PLAIN_INT = re.compile(r"-?(0|[1-9][0-9]*)$")
PLAIN_FLOAT = re.compile(r"-?(0|[1-9][0-9]*)\.[0-9]+([eE][-+]?[0-9]+)?$")
NUMBER_LIKE = re.compile(r"[-+]?(\.[0-9]+|[0-9]+\.?[0-9]*)([eE][-+]?[0-9]+)?$")
YAML11_BOOLS = ("yes", "no", "on", "off", "y", "n")


class _Yaml:
    """Block mappings and sequences (indentation with spaces), "- key: value"
    items, single- and double-quoted and plain scalars, and >-, >, |-, |
    block scalars. Anything else (flow collections, anchors, tags, tabs,
    comments after a value, plain scalars YAML 1.1 and 1.2 read differently)
    is an error, so the file stays within what any YAML parser reads alike."""

    def __init__(self, text):
        self.lines = text.split("\n")
        self.n = len(self.lines)
        self.over = {}  # line -> (indent, text) of a mapping that starts in a "- " item
        for i, line in enumerate(self.lines):
            lead = line[:len(line) - len(line.lstrip(" \t"))]
            if "\t" in lead:
                self.fail(i, "tab in indentation")

    def fail(self, i, msg):
        raise YamlError(f"openapi.yaml line {i + 1}: {msg}")

    def at(self, i):
        if i in self.over:
            return self.over[i]
        line = self.lines[i].rstrip()
        text = line.lstrip(" ")
        return len(line) - len(text), text

    def skip(self, i):
        """The next line that is neither blank nor a comment."""
        while i < self.n:
            if i in self.over:
                return i
            t = self.lines[i].strip()
            if t and not t.startswith("#"):
                return i
            i += 1
        return i

    def parse(self):
        i = self.skip(0)
        if i >= self.n:
            return None
        if self.at(i)[0] != 0:
            self.fail(i, "the document must start at column 0")
        value, i = self.block(i, 0)
        i = self.skip(i)
        if i < self.n:
            self.fail(i, "unexpected indentation")
        return value

    @staticmethod
    def is_item(text):
        return text == "-" or text.startswith("- ")

    def block(self, i, indent):
        if self.is_item(self.at(i)[1]):
            return self.sequence(i, indent)
        return self.mapping(i, indent)

    def mapping(self, i, indent):
        out = {}
        while True:
            i = self.skip(i)
            if i >= self.n:
                break
            ind, text = self.at(i)
            if ind < indent:
                break
            if ind > indent:
                self.fail(i, "unexpected indentation")
            if self.is_item(text):
                self.fail(i, "a sequence must be indented under its key")
            key, rest = self.split_key(i, text)
            if key in out:
                self.fail(i, f"duplicate key {key!r}")
            if rest == "":
                j = self.skip(i + 1)
                if j < self.n and self.at(j)[0] > indent:
                    out[key], i = self.block(j, self.at(j)[0])
                else:
                    out[key], i = None, i + 1
            elif rest in (">-", ">", "|-", "|"):
                out[key], i = self.block_scalar(i, indent, rest)
            else:
                out[key], i = self.scalar(i, rest), i + 1
        return out, i

    def sequence(self, i, indent):
        out = []
        while True:
            i = self.skip(i)
            if i >= self.n:
                break
            ind, text = self.at(i)
            if ind < indent:
                break
            if ind > indent or not self.is_item(text):
                self.fail(i, "expected a '- ' item")
            content = text[1:].lstrip(" ")
            if content == "":
                j = self.skip(i + 1)
                if j >= self.n or self.at(j)[0] <= indent:
                    self.fail(i, "empty sequence item")
                value, i = self.block(j, self.at(j)[0])
            elif self.starts_mapping(content):
                col = ind + len(text) - len(content)
                self.over[i] = (col, content)
                value, i = self.mapping(i, col)
            else:
                value, i = self.scalar(i, content), i + 1
            out.append(value)
        return out, i

    @staticmethod
    def starts_mapping(text):
        if text[0] in "'\"":
            end = text.find(text[0], 1)
            return end > 0 and text[end + 1:end + 2] == ":"
        return ": " in text or text.endswith(":")

    def split_key(self, i, text):
        if text[0] in "'\"":
            end = text.find(text[0], 1)
            if end < 0:
                self.fail(i, "unterminated quoted key")
            key = self.scalar(i, text[:end + 1])
            rest = text[end + 1:]
            if not (rest == ":" or rest.startswith(": ")):
                self.fail(i, "expected ':' after a quoted key")
            return key, rest[1:].strip()
        k = text.find(": ")
        if k < 0:
            if not text.endswith(":"):
                self.fail(i, "expected 'key: value'")
            k = len(text) - 1
        key = text[:k]
        if not key or key[0] in "[{&*!|>%@`#?" or key != key.strip():
            self.fail(i, f"unsupported key {key!r}")
        return key, text[k + 1:].strip()

    def block_scalar(self, i, indent, style):
        j, body = i + 1, []
        while j < self.n:
            line = self.lines[j].rstrip()
            if line and len(line) - len(line.lstrip(" ")) <= indent:
                break
            body.append(line)
            j += 1
        while body and not body[-1]:
            body.pop()
        if not body:
            self.fail(i, "empty block scalar")
        bi = len(body[0]) - len(body[0].lstrip(" "))
        for k, line in enumerate(body):
            if line and len(line) - len(line.lstrip(" ")) < bi:
                self.fail(i + 1 + k, "block scalar line less indented than its first")
        if style.startswith(">"):
            if any(line and line[bi] == " " for line in body):
                self.fail(i, "more-indented lines in a folded scalar are not supported")
            paragraphs, cur = [], []
            for line in body:
                if line:
                    cur.append(line[bi:])
                else:
                    paragraphs.append(" ".join(cur))
                    cur = []
            paragraphs.append(" ".join(cur))
            text = "\n".join(paragraphs)
        else:
            text = "\n".join(line[bi:] for line in body)
        if not style.endswith("-"):
            text += "\n"
        return text, j

    def scalar(self, i, s):
        if s.startswith("'"):
            inner = s[1:-1]
            if len(s) < 2 or not s.endswith("'") or "'" in inner.replace("''", ""):
                self.fail(i, f"bad single-quoted scalar {s!r}")
            return inner.replace("''", "'")
        if s.startswith('"'):
            try:
                v = json.loads(s)
            except ValueError:
                self.fail(i, f"bad double-quoted scalar {s!r}")
            if not isinstance(v, str):
                self.fail(i, f"bad double-quoted scalar {s!r}")
            return v
        if s[0] in "[]{}&*!|>%@`,?" or s.startswith("- "):
            self.fail(i, f"unsupported scalar {s!r} (quote it)")
        if " #" in s or ": " in s or s.endswith(":"):
            self.fail(i, f"ambiguous plain scalar {s!r} (quote it)")
        if s in ("true", "false"):
            return s == "true"
        if s in ("null", "~"):
            return None
        if s.lower() in YAML11_BOOLS or s.lower() in ("true", "false", "null"):
            self.fail(i, f"{s!r} reads differently in YAML 1.1 and 1.2 (quote it)")
        if PLAIN_INT.match(s):
            return int(s)
        if PLAIN_FLOAT.match(s):
            return float(s)
        if NUMBER_LIKE.match(s):
            self.fail(i, f"ambiguous number {s!r}")
        return s


def load_yaml(text):
    return _Yaml(text).parse()


def load_spec_yaml():
    with open(YAML_PATH, encoding="utf-8") as f:
        return load_yaml(f.read())


def load_spec_json():
    with open(JSON_PATH, encoding="utf-8") as f:
        return json.load(f)


def write_json():
    spec = load_spec_yaml()
    with open(JSON_PATH, "w", encoding="utf-8") as f:
        json.dump(spec, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {JSON_PATH}")


# --- the schema validator ----------------------------------------------------------

SCHEMA_KEYWORDS = {"$ref", "type", "format", "nullable", "required", "properties",
                   "additionalProperties", "items", "enum", "minimum", "maximum", "minItems",
                   "maxItems", "minLength", "maxLength", "default", "description", "example"}
INT64 = (-(1 << 63), (1 << 63) - 1)


def resolve(spec, ref):
    if not ref.startswith("#/"):
        raise AssertionError(f"only local references are supported: {ref}")
    node = spec
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise AssertionError(f"unresolved reference {ref}")
        node = node[part]
    return node


def deref(spec, node):
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        node = resolve(spec, node["$ref"])
        seen += 1
        if seen > 20:
            raise AssertionError("reference loop")
    return node


def is_number(v):
    return isinstance(v, (int, float, Decimal)) and not isinstance(v, bool)


def validate(spec, schema, v, path="$", errors=None):
    """Every way v (parsed with parse_float=Decimal) breaks schema."""
    errors = [] if errors is None else errors
    schema = deref(spec, schema)
    if v is None:
        if not schema.get("nullable"):
            errors.append(f"{path}: null")
        return errors
    t = schema.get("type")
    ok = {"integer": lambda x: isinstance(x, int) and not isinstance(x, bool),
          "number": is_number,
          "string": lambda x: isinstance(x, str),
          "boolean": lambda x: isinstance(x, bool),
          "array": lambda x: isinstance(x, list),
          "object": lambda x: isinstance(x, dict),
          None: lambda x: True}[t](v)
    if not ok:
        errors.append(f"{path}: {type(v).__name__} {v!r:.60} is not {t}")
        return errors
    if "enum" in schema and v not in schema["enum"]:
        errors.append(f"{path}: {v!r} not in {schema['enum']}")
    if is_number(v):
        if "minimum" in schema and v < schema["minimum"]:
            errors.append(f"{path}: {v} < minimum {schema['minimum']}")
        if "maximum" in schema and v > schema["maximum"]:
            errors.append(f"{path}: {v} > maximum {schema['maximum']}")
    fmt = schema.get("format")
    if fmt == "cents" and not (isinstance(v, Decimal) and v.as_tuple().exponent == -2):
        errors.append(f"{path}: {v!r} is not printed with exactly two decimals")
    if fmt == "share" and not (isinstance(v, Decimal) and v.as_tuple().exponent == -6):
        errors.append(f"{path}: {v!r} is not printed with exactly six decimals")
    if fmt == "int64" and isinstance(v, int) and not INT64[0] <= v <= INT64[1]:
        errors.append(f"{path}: {v} is not an int64")
    if isinstance(v, str):
        if len(v) < schema.get("minLength", 0):
            errors.append(f"{path}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(v) > schema["maxLength"]:
            errors.append(f"{path}: longer than {schema['maxLength']}")
    if isinstance(v, list):
        if len(v) < schema.get("minItems", 0):
            errors.append(f"{path}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(v) > schema["maxItems"]:
            errors.append(f"{path}: more than {schema['maxItems']} items")
        if "items" in schema:
            for k, item in enumerate(v):
                validate(spec, schema["items"], item, f"{path}[{k}]", errors)
    if isinstance(v, dict):
        for name in schema.get("required", []):
            if name not in v:
                errors.append(f"{path}: missing {name}")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for name, item in v.items():
            if name in props:
                validate(spec, props[name], item, f"{path}.{name}", errors)
            elif extra is False:
                errors.append(f"{path}: unexpected member {name!r}")
            elif isinstance(extra, dict):
                validate(spec, extra, item, f"{path}.{name}", errors)
    return errors


def walk_schemas(spec):
    """Yields (where, schema) for every schema object in the spec."""
    def schema_tree(where, s):
        yield where, s
        if not isinstance(s, dict):
            return
        for name, sub in s.get("properties", {}).items():
            yield from schema_tree(f"{where}.properties.{name}", sub)
        for key in ("items", "additionalProperties"):
            if isinstance(s.get(key), dict):
                yield from schema_tree(f"{where}.{key}", s[key])

    def nodes(where, node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "schema" or (where.endswith("components.schemas")):
                    yield from schema_tree(f"{where}.{k}", v)
                elif k.startswith("x-sse-events"):
                    for name, s in v.items():
                        yield from schema_tree(f"{where}.{k}.{name}", s)
                else:
                    yield from nodes(f"{where}.{k}", v)
        elif isinstance(node, list):
            for k, v in enumerate(node):
                yield from nodes(f"{where}[{k}]", v)
    yield from nodes("", spec)


def operations(spec):
    """(path, method, operation) for every operation."""
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def parameters(spec, op):
    return [deref(spec, p) for p in op.get("parameters", [])]


# --- HTTP -----------------------------------------------------------------------------

class Reply:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body.decode("utf-8"), parse_float=Decimal)

    def __repr__(self):
        return f"<{self.status} {self.headers} {self.body[:300]!r}>"


def request(port, method, target, headers=None, body=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


def first_event(port, timeout=10):
    """Headers of /api/v1/stream and its comments and first event, read
    with a raw HTTP/1.1 client (the stream never ends)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/api/v1/stream")
        r = conn.getresponse()
        headers = {k.lower(): v for k, v in r.getheaders()}
        comments, name, data = [], None, []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = r.readline().decode("utf-8")
            except TimeoutError:  # nothing more within timeout (only comments so far)
                break
            if not line:
                break
            line = line.rstrip("\n")
            if line == "":
                if name or data:
                    break
            elif line.startswith(":"):
                comments.append(line)
            elif line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        return r.status, headers, comments, name, "\n".join(data)
    finally:
        conn.close()


def media_type(content_type):
    return (content_type or "").split(";")[0].strip()


def target(path, query):
    if not query:
        return path
    return path + "?" + "&".join(f"{k}={quote(str(v), safe='')}" for k, v in query.items())


def design_get_paths():
    """The GET paths of DESIGN §5's table."""
    with open(DESIGN_PATH, encoding="utf-8") as f:
        text = f.read()
    section = text.split("## 5.", 1)[1].split("\n## ", 1)[0]
    return sorted({m.group(1) for m in re.finditer(r"`GET (/[^`?\s]*)", section)})


# --- the spec files ------------------------------------------------------------------

class SpecFiles(unittest.TestCase):
    def test_yaml_and_json_agree(self):
        y, j = load_spec_yaml(), load_spec_json()

        def signature(spec):
            return sorted((path, method, p.get("name"), p.get("in"))
                          for path, method, op in operations(spec)
                          for p in parameters(spec, op) or [{}])
        self.assertEqual(signature(y), signature(j),
                         "docs/openapi.yaml and docs/openapi.json disagree on paths, methods "
                         "or parameters: run python3 tests/e2e/test_openapi.py --write-json")
        self.assertEqual(y, j, "docs/openapi.json is stale: run "
                               "python3 tests/e2e/test_openapi.py --write-json")

    def test_structure(self):
        spec = load_spec_yaml()
        self.assertEqual(spec["openapi"], "3.0.3")
        self.assertIsInstance(spec["info"]["version"], str)
        self.assertTrue(spec["info"]["title"])
        for path, method, op in operations(spec):
            self.assertTrue(path.startswith("/"), path)
            self.assertIn("200", op["responses"], f"{method} {path}")
            self.assertTrue(op.get("operationId"), f"{method} {path}")
            for code, resp in op["responses"].items():
                self.assertRegex(code, r"^[1-5][0-9][0-9]$", f"{method} {path}")
                self.assertIn("description", deref(spec, resp), f"{method} {path} {code}")
            for p in parameters(spec, op):
                self.assertEqual(p["in"], "query")
                self.assertIn("schema", p)
        for where, s in walk_schemas(spec):
            s = deref(spec, s)
            self.assertIsInstance(s, dict, where)
            unknown = set(s) - SCHEMA_KEYWORDS
            self.assertEqual(unknown, set(), f"{where}: keywords the test cannot check")

        def refs(node):
            if isinstance(node, dict):
                for k, v in node.items():
                    if k == "$ref":
                        yield v
                    else:
                        yield from refs(v)
            elif isinstance(node, list):
                for v in node:
                    yield from refs(v)
        for ref in refs(spec):
            resolve(spec, ref)

    def test_validator(self):
        spec = load_spec_yaml()
        schemas = spec["components"]["schemas"]
        d = lambda text: json.loads(text, parse_float=Decimal)  # noqa: E731
        good = d('{"orders":1,"quantity":2,"amount":3.00}')
        self.assertEqual(validate(spec, schemas["Totals"], good), [])
        for bad in ('{"orders":1,"quantity":2,"amount":3.0}', '{"orders":1,"quantity":2,'
                    '"amount":3}', '{"orders":-1,"quantity":2,"amount":3.00}',
                    '{"orders":1,"amount":3.00}', '{"orders":1,"quantity":2,"amount":3.00,'
                    '"x":1}', '{"orders":true,"quantity":2,"amount":3.00}'):
            self.assertNotEqual(validate(spec, schemas["Totals"], d(bad)), [], bad)
        self.assertNotEqual(validate(spec, schemas["Gender"], d(
            '{"name":"x","quantity":1,"amount":1.00,"quantity_share":0.5,'
            '"amount_share":1.000000}')), [])
        self.assertNotEqual(validate(spec, schemas["GenderSlot"], d(
            '{"slot":0,"quantity":{"x":"1"}}')), [])
        self.assertEqual(validate(spec, schemas["Snapshot"]["properties"]["watermark"], None),
                         [])
        self.assertNotEqual(validate(spec, schemas["Snapshot"]["properties"]["tick"], None), [])

    def test_yaml_subset_parser(self):
        doc = load_yaml("a: 1\nb:\n  - x\n  - k: 'it''s'\n    v: -2.5\n"
                        "c: >-\n  one\n  two\n\n  three\nd: |-\n  l1\n  l2\n'200': \"q\\u00e9\"\n"
                        "e:\nf: true\n")
        self.assertEqual(doc, {"a": 1, "b": ["x", {"k": "it's", "v": -2.5}],
                               "c": "one two\nthree", "d": "l1\nl2", "200": "qé",
                               "e": None, "f": True})
        for bad in ("a: [1, 2]\n", "a: {b: 1}\n", "a: yes\n", "a: 1e5\n", "a: b # c\n",
                    "a:\n- b\n", "a: 1\na: 2\n", "a:\n\tb: 1\n", "a: &x 1\n", " a: 1\n"):
            with self.assertRaises(YamlError, msg=bad):
                load_yaml(bad)


# --- the server against the spec -------------------------------------------------------

class ServerMatchesSpec(E2ETest):
    """One engine for the class, serving a simulated file live."""

    @classmethod
    def setUpClass(cls):
        cls.spec = load_spec_yaml()
        cls.shared = E2ETest("run")
        cls.shared.setUp()
        data = cls.shared.path("orders.jsonl")
        cls.shared.run_sim(["--out", data, "--rate", 0, "--count", ORDERS, "--start", START,
                            "--jitter", "2s", "--bad-fraction", 0.01, "--quiet"])
        # An archive and Redis, so that /api/v1/history/..., stats.archive,
        # stats.redis and every metric family answer.
        _, db_port, db = cls.shared.start_mariadb()
        db.run("CREATE DATABASE op")
        _, redis_port = cls.shared.start_redis()
        cls.srv = EngineServer(cls.shared, data, ["--tick", "200ms", "--workers", 2, "--archive",
                                                  f"mysql://root@127.0.0.1:{db_port}/op",
                                                  "--redis", f"127.0.0.1:{redis_port}"])
        cls.port = cls.srv.port

        def settled():
            r = request(cls.port, "GET", "/api/v1/snapshot")
            if r.status != 200:
                return None
            doc = r.json()
            return doc["totals"]["orders"] + doc["stats"]["bad_records"] == ORDERS
        wait_for(settled, 120, f"the engine to read {ORDERS} records", interval=0.2)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.srv.stop_clean(unittest.TestCase())
        finally:
            cls.shared.tearDown()

    # --- helpers ---------------------------------------------------------------------

    def check_reply(self, what, op, r):
        """r's status is documented by op; its headers and body match."""
        spec = self.spec
        responses = op["responses"]
        self.assertIn(str(r.status), responses, f"{what}: undocumented status {r!r}")
        resp = deref(spec, responses[str(r.status)])
        for name, h in resp.get("headers", {}).items():
            h = deref(spec, h)
            value = r.headers.get(name.lower())
            self.assertIsNotNone(value, f"{what}: no {name} header")
            hs = h.get("schema", {})
            if "enum" in hs:
                self.assertIn(int(value) if hs.get("type") == "integer" else value, hs["enum"],
                              f"{what}: {name}")
            if name == "ETag":
                self.assertRegex(value, r'^"\d+-\d+"$', what)
        content = resp.get("content")
        if not content:
            self.assertEqual(r.body, b"", f"{what}: a body where none is documented")
            return None
        ctype = r.headers.get("content-type", "")
        self.assertIn(media_type(ctype), content, f"{what}: content type {ctype}")
        if media_type(ctype) in CHARSET_TYPES:
            self.assertIn("charset=utf-8", ctype, what)
        if media_type(ctype) != "application/json":
            return None
        self.assertEqual(int(r.headers["content-length"]), len(r.body), what)
        doc = r.json()
        errors = validate(spec, content["application/json"]["schema"], doc)
        self.assertEqual(errors[:10], [], f"{what}: {len(errors)} schema violations")
        return doc

    def get_ops(self):
        return [(path, op) for path, method, op in operations(self.spec) if method == "get"]

    def plain_ops(self):
        """GET operations whose answer ends (all but the event stream)."""
        return [(p, op) for p, op in self.get_ops()
                if "text/event-stream" not in deref(self.spec, op["responses"]["200"])
                .get("content", {})]

    # --- tests -------------------------------------------------------------------------

    def test_every_get_operation_and_parameter_value(self):
        for path, op in self.plain_ops():
            queries = [{}]
            for p in parameters(self.spec, op):
                s = p["schema"]
                values = list(s.get("enum", []))
                values += [p[k] for k in ("example",) if k in p]
                values += [s[k] for k in ("default", "minimum", "maximum") if k in s]
                queries += [{p["name"]: v} for v in dict.fromkeys(values)]
            statuses = set()
            for q in queries:
                url = target(path, q)
                with self.subTest(url=url):
                    r = request(self.port, "GET", url)
                    self.check_reply(f"GET {url}", op, r)
                    self.assertNotEqual(r.status, 400, f"a documented value is refused: {r!r}")
                    statuses.add(r.status)
                    if q and r.status == 200:
                        statuses.add(("param 200", tuple(q)))
            self.assertIn(200, statuses, f"GET {path} never answered 200")
            for p in parameters(self.spec, op):
                self.assertIn(("param 200", (p["name"],)), statuses,
                              f"GET {path}: no documented value of {p['name']} answered 200")

    def test_stream(self):
        path = "/api/v1/stream"
        op = self.spec["paths"][path]["get"]
        media = deref(self.spec, op["responses"]["200"])["content"]["text/event-stream"]
        status, headers, comments, name, data = first_event(self.port)
        self.assertEqual(status, 200)
        self.assertEqual(media_type(headers["content-type"]), "text/event-stream")
        self.assertIn("charset=utf-8", headers["content-type"])
        self.assertEqual(headers["cache-control"], "no-store")
        self.assertEqual(comments, [], "a snapshot exists: the first event comes at once")
        self.assertIn(name, media["x-sse-events"])
        doc = json.loads(data, parse_float=Decimal)
        errors = validate(self.spec, media["x-sse-events"][name], doc)
        self.assertEqual(errors[:10], [], f"{len(errors)} schema violations")

    def test_metrics(self):
        op = self.spec["paths"]["/metrics"]["get"]
        r = request(self.port, "GET", "/metrics")
        self.check_reply("GET /metrics", op, r)
        self.assertTrue(r.headers["content-type"].startswith("text/plain; version=0.0.4"))
        media = deref(self.spec, op["responses"]["200"])["content"]["text/plain"]
        documented = {m["name"]: m for m in media["x-metrics"]}
        samples, types = parse_metrics(r.body.decode("utf-8"))
        self.assertEqual(sorted(types), sorted(documented), "metric families")
        for name, m in documented.items():
            self.assertEqual(types[name], m["type"], name)
        for sample, rows in samples.items():
            base = sample if sample in documented else re.sub(r"_(bucket|sum|count)$", "",
                                                              sample)
            for labels, _ in rows:
                self.assertLessEqual(set(labels), set(documented[base].get("labels", [])),
                                     f"{sample}: undocumented labels")
        reasons = {labels["reason"] for labels, _ in samples["orderpulse_bad_records_total"]}
        help_text = documented["orderpulse_bad_records_total"]["help"]
        for reason in reasons:
            self.assertIn(reason, help_text, "every bad-record reason is documented")
        stats = deref(self.spec, self.spec["components"]["schemas"]["Stats"])
        for reason in reasons:
            self.assertIn(reason, stats["properties"]["bad_by_reason"]["description"])

    def test_head(self):
        for path, op in self.get_ops():
            with self.subTest(path=path):
                r = request(self.port, "HEAD", path)
                self.assertEqual(r.status, 200)
                self.assertEqual(r.body, b"")
                self.assertIn(media_type(r.headers.get("content-type")),
                              deref(self.spec, op["responses"]["200"])["content"])

    def test_parameter_bounds(self):
        for path, op in self.get_ops():
            for p in parameters(self.spec, op):
                s = p["schema"]
                bad = ["", "abc"]
                if s.get("type") == "integer":
                    bad += [s["minimum"] - 1, s["maximum"] + 1, f"{s['minimum']}.5"]
                if "enum" in s:
                    bad += ["bogus", s["enum"][0].upper()]
                self.assertIn("400", op["responses"], f"{path}: 400 is not documented")
                for v in bad:
                    url = target(path, {p["name"]: v})
                    with self.subTest(url=url):
                        r = request(self.port, "GET", url)
                        self.assertEqual(r.status, 400, r)
                        self.check_reply(f"GET {url}", op, r)

    def test_405_413_431(self):
        for path, op in self.get_ops():
            with self.subTest(path=path):
                r = request(self.port, "POST", path, body="x=1")
                self.assertEqual(r.status, 405, r)
                self.check_reply(f"POST {path}", op, r)
                r = request(self.port, "GET", path, body="abc")
                self.assertEqual(r.status, 413, r)
                self.check_reply(f"GET {path} with a body", op, r)
                r = request(self.port, "GET", path, headers={"X-Big": "x" * 20000})
                self.assertEqual(r.status, 431, r)
                self.check_reply(f"GET {path} with big headers", op, r)

    def test_304(self):
        for path, op in self.plain_ops():
            if "304" not in op["responses"]:
                continue
            with self.subTest(path=path):
                for _ in range(50):  # ticks are 200 ms: the ETag may move in between
                    etag = request(self.port, "GET", path).headers["etag"]
                    r = request(self.port, "GET", path, headers={"If-None-Match": etag})
                    if r.status == 304:
                        break
                else:
                    self.fail(f"{path}: never a 304")
                self.check_reply(f"GET {path} If-None-Match", op, r)
                self.assertEqual(r.headers["etag"], etag)

    def test_ranking_order(self):
        """The order the spec's descriptions promise: value descending, then
        name bytewise ascending."""
        def ranked(rows, key):
            keys = [(-Decimal(row[key]), row["name"].encode()) for row in rows]
            return keys == sorted(keys)
        get = lambda t: request(self.port, "GET", t).json()  # noqa: E731
        self.assertTrue(ranked(get("/api/v1/brands"), "quantity"))
        self.assertTrue(ranked(get("/api/v1/brands?by=amount"), "amount"))
        self.assertTrue(ranked(get("/api/v1/users/top?n=100"), "amount"))
        self.assertTrue(ranked(get("/api/v1/gender"), "amount"))
        doc = get("/api/v1/snapshot")
        for c in doc["categories"]:
            self.assertTrue(ranked(c["ranking"], "quantity"), c["minute"])
        for key, member in (("minute", "minutes"), ("minute", "categories"),
                            ("slot", "gender_slots")):
            times = [e[key] for e in doc[member]]
            self.assertEqual(times, sorted(set(times)), f"{member}: oldest first")
        for s in doc["gender_slots"]:
            names = [n.encode() for n in s["quantity"]]
            self.assertEqual(names, sorted(names))

    def test_design_routes_are_in_the_spec(self):
        design = design_get_paths()
        self.assertGreaterEqual(len(design), 12, design)
        spec_gets = sorted(p for p, _ in self.get_ops())
        for path in design:
            with self.subTest(path=path):
                if path == "/api/v1/stream":
                    status = first_event(self.port)[0]
                else:
                    status = request(self.port, "GET", path).status
                if status == 200:
                    self.assertIn(path, spec_gets, f"the server answers {path} but the spec "
                                                   "does not list it")
        self.assertEqual(spec_gets, design, "the spec's GET paths and DESIGN §5's table")
        for path in ("/api/v1", "/api/v1/", "/api/v2/totals", "/api/v1/totals/",
                     "/api/v1/users", "/api/v1/categories", "/api/v1/sales", "/metrics/x"):
            with self.subTest(path=path):
                r = request(self.port, "GET", path)
                self.assertEqual(r.status, 404, r)
                self.assertEqual(validate(self.spec, self.spec["components"]["schemas"]["Error"],
                                          r.json()), [])


class BeforeTheFirstSnapshot(E2ETest):
    def test_503_answers(self):
        spec = load_spec_yaml()
        _, boot = self.start_devbroker(partitions=2)
        # An empty topic and an hour-long tick: no snapshot during the test.
        srv = EngineServer(self, None, ["--brokers", boot, "--topic", "orders", "--tick", "1h",
                                        "--static-dir", self.tmp])
        for path, method, op in operations(spec):
            if method != "get" or path == "/api/v1/stream":
                continue
            r = request(srv.port, "GET", path)
            with self.subTest(path=path):
                self.assertIn(str(r.status), op["responses"], r)
                resp = deref(spec, op["responses"][str(r.status)])
                if path.startswith("/api/"):
                    self.assertEqual(r.status, 503, r)
                    self.assertEqual(r.headers.get("retry-after"), "1")
                if path == "/readyz":
                    self.assertEqual(r.status, 503, r)
                    self.assertEqual(r.json(), {"status": "not ready",
                                                "reason": "no snapshot yet"})
                if path == "/":  # an empty --static-dir
                    self.assertEqual(r.status, 404, r)
                if "application/json" in resp.get("content", {}):
                    errors = validate(spec, resp["content"]["application/json"]["schema"],
                                      r.json())
                    self.assertEqual(errors, [], path)
        status, headers, comments, name, _ = first_event(srv.port, timeout=3)
        self.assertEqual(status, 200)
        self.assertEqual(comments[:1], [": waiting for the first snapshot"])
        self.assertIsNone(name)
        samples, _ = parse_metrics(request(srv.port, "GET", "/metrics").body.decode())
        self.assertNotIn("orderpulse_snapshot_age_seconds", samples)
        srv.stop_clean(self)


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-json"]:
        write_json()
    else:
        unittest.main()
