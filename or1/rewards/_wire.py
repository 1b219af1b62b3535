"""Plain-data wire format of the code harness (stdlib only; runs inside and outside the
sandbox).

Values cross from the candidate's process to the judge's (and from the judge to the
host) only as this format, so what arrives is always plain data of exact builtin types
that the receiver builds itself: an object whose ``__eq__`` always answers True, a
``str`` subclass that equals everything, or a number that lies about itself cannot cross.

Encoding (JSON): None, bool, str, ints with |x| < 2**53 and finite floats as themselves;
``{"I": hex}`` other ints (no 4300-digit limit), ``{"F": "nan" | "inf" | "-inf"}``,
``{"T": [...]}`` tuple, ``{"S": [...]}`` set, ``{"Z": [...]}`` frozenset,
``{"D": [[k, v], ...]}`` dict, ``{"B": base64}`` bytes, ``{"C": [re, im]}`` complex,
``{"R": n}`` the n-th object of the message's object table. An object (an instance of a
class defined in Python, e.g. LeetCode's ``ListNode``/``TreeNode``) is sent as its class
name and its ``__dict__``; the receiver rebuilds it only with a class of that name that
the receiver itself defined. Objects sit in a table, so cycles, shared nodes and long
linked lists need no recursion. Builtin subclasses (Counter, OrderedDict, a namedtuple,
numpy's float64) are sent as their base type's value, read with the base type's own
methods (an overridden ``__eq__``, ``__iter__`` or ``__str__`` is never called); numpy
scalars and arrays as ``.item()`` / ``.tolist()``.

`always_equal(value)` tells whether a value claims to equal a fresh ``object()``: the
harness reports that as a hack attempt. `plain(value)` tells whether a value is of an
exact builtin type (no class of the sender's own to look at).
"""

import base64
import json
import math

MAX_DEPTH = 200  # nesting of containers (objects do not count: they are in the table)
MAX_NODES = 5_000_000  # values in one message
MAX_CHARS = 64 * 2**20  # size of one encoded message
_SAFE_INT = 2**53
_ATOMS = (type(None), bool, str)


class WireError(ValueError):
    """A value that cannot be sent, or a message that is not well formed."""


class UnknownClass(WireError):
    """A well-formed message with an object of a class the receiver does not define."""


def plain(value):
    """True for exact builtin scalars and containers (their contents aside)."""
    return type(value) in (*_ATOMS, int, float, complex, bytes, list, tuple, dict, set, frozenset)


def always_equal(value):
    """True if ``value == object()``: no honest value equals a fresh sentinel."""
    try:
        return bool(value == object())
    except BaseException:  # a hostile __eq__ may raise anything
        return False


def _base_value(value):
    """An exact-type copy of a builtin subclass instance, or None if not one."""
    for base, copy in (
        (bool, None),
        (int, int.__int__),
        (float, float.__float__),
        (str, str.__str__),
        (bytes, bytes.__bytes__),
        (list, list.copy),
        (dict, dict.copy),
        (set, set.copy),
        (frozenset, lambda v: frozenset(frozenset.__iter__(v))),
        (tuple, lambda v: tuple(tuple.__iter__(v))),
    ):
        if isinstance(value, base) and copy is not None:
            return copy(value)
    return None


class _Encoder:
    def __init__(self):
        self.objects = []  # [(class name, __dict__)]
        self.index = {}  # id(obj) -> table index
        self.nodes = 0

    def value(self, v, depth=0):
        self.nodes += 1
        if self.nodes > MAX_NODES or depth > MAX_DEPTH:
            raise WireError("value too large or too deeply nested")
        t = type(v)
        if t in _ATOMS:
            return v
        if t is int:
            return v if -_SAFE_INT < v < _SAFE_INT else {"I": hex(v)}
        if t is float:
            return v if math.isfinite(v) else {"F": repr(v)}
        if t is list:
            return [self.value(x, depth + 1) for x in v]
        if t is tuple:
            return {"T": [self.value(x, depth + 1) for x in v]}
        if t is dict:
            return {
                "D": [[self.value(k, depth + 1), self.value(x, depth + 1)] for k, x in v.items()]
            }
        if t is set or t is frozenset:
            return {"S" if t is set else "Z": [self.value(x, depth + 1) for x in v]}
        if t is bytes:
            return {"B": base64.b64encode(v).decode("ascii")}
        if t is complex:
            return {"C": [self.value(v.real), self.value(v.imag)]}
        return self.other(v, depth)

    def other(self, v, depth):
        t = type(v)
        if getattr(t, "__module__", "").split(".")[0] == "numpy":
            if hasattr(v, "tolist"):
                return self.value(v.tolist(), depth + 1)
            raise WireError(f"cannot send a numpy {t.__name__}")
        base = _base_value(v)
        if base is not None:
            return self.value(base, depth)
        state = getattr(v, "__dict__", None)
        if type(state) is not dict or isinstance(v, type) or callable(v):
            raise WireError(f"cannot send a {t.__name__}")
        if id(v) not in self.index:
            self.index[id(v)] = len(self.objects)
            self.objects.append((v, state))
        return {"R": self.index[id(v)]}

    def table(self):
        out, done = [], 0
        while done < len(self.objects):  # encoding one object's attributes may add more
            obj, state = self.objects[done]
            attrs = {"D": [[k, self.value(x, 1)] for k, x in dict.items(state) if type(k) is str]}
            out.append({"c": type(obj).__name__, "a": attrs})
            done += 1
        return out


def encode(value):
    """The wire text of ``value`` (raises WireError for what cannot be sent)."""
    enc = _Encoder()
    try:
        root = enc.value(value)
        table = enc.table()
        text = json.dumps({"v": root, "o": table}, allow_nan=False, separators=(",", ":"))
    except RecursionError:
        raise WireError("value too deeply nested") from None
    if len(text) > MAX_CHARS:
        raise WireError("value too large")
    return text


class _Decoder:
    def __init__(self, classes, table):
        self.classes = classes
        self.objects = []
        for entry in table:
            cls = classes.get(entry.get("c")) if type(entry) is dict else None
            if not isinstance(cls, type):
                raise UnknownClass(f"unknown class in message: {str(entry)[:60]}")
            self.objects.append(object.__new__(cls))
        self.table = table

    def value(self, v, depth=0):
        if depth > MAX_DEPTH:
            raise WireError("message too deeply nested")
        t = type(v)
        if t in _ATOMS or t is int or t is float:
            return v
        if t is list:
            return [self.value(x, depth + 1) for x in v]
        if t is not dict or len(v) != 1:
            raise WireError("malformed message")
        ((tag, x),) = v.items()
        return self.tagged(tag, x, depth)

    def tagged(self, tag, x, depth):
        if tag == "I" and type(x) is str:
            return int(x, 16)
        if tag == "F" and x in ("nan", "inf", "-inf"):
            return float(x)
        if tag == "B" and type(x) is str:
            return base64.b64decode(x, validate=True)
        if tag == "R" and type(x) is int and 0 <= x < len(self.objects):
            return self.objects[x]
        if type(x) is not list:
            raise WireError("malformed message")
        items = [self.value(y, depth + 1) for y in x]
        try:
            if tag == "T":
                return tuple(items)
            if tag == "S":
                return set(items)
            if tag == "Z":
                return frozenset(items)
            if tag == "D":
                return {k: val for k, val in items}
            if tag == "C":
                return complex(*items)
        except (TypeError, ValueError):
            raise WireError("malformed message") from None
        raise WireError(f"unknown tag {tag!r}")

    def fill(self):
        for obj, entry in zip(self.objects, self.table, strict=False):
            attrs = self.value(entry.get("a"))
            if type(attrs) is not dict or not all(type(k) is str for k in attrs):
                raise WireError("malformed object")
            object.__getattribute__(obj, "__dict__").update(attrs)


def decode(text, classes=None):
    """The value of wire text; objects are rebuilt only with ``classes`` (name -> class)."""
    if len(text) > MAX_CHARS:
        raise WireError("message too large")
    try:
        msg = json.loads(text)
        if type(msg) is not dict or set(msg) != {"v", "o"} or type(msg["o"]) is not list:
            raise WireError("malformed message")
        dec = _Decoder(classes or {}, msg["o"])
        dec.fill()
        return dec.value(msg["v"])
    except (ValueError, TypeError, KeyError, RecursionError) as err:
        if isinstance(err, WireError):
            raise
        raise WireError(f"malformed message ({type(err).__name__})") from None
