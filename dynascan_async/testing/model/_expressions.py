"""DynamoDB's expression language for the model server: condition and projection expressions.

The model server has to refuse what DynamoDB refuses (undefined or unused placeholders,
reserved words used as names, operands of the wrong type, overlapping projection paths) and
to evaluate the way DynamoDB does (numbers as decimals, strings and binaries by their bytes,
a comparison of mismatched types is false, a missing attribute makes ``=`` false and ``<>``
true), so that a test that passes against it does not fail against the real service for a
reason the client could have seen. A general-purpose parser would not know those rules, so
this one is written for them.

Items are in the AttributeValue JSON form in which they travel (``{"S": "x"}``, binary as
base64 text). An expression is compiled once per request into plain closures over such
items, so a filter costs one call per item.
"""

from __future__ import annotations

__all__ = [
    "AttributeValue",
    "Item",
    "Path",
    "Condition",
    "ExpressionError",
    "Placeholders",
    "Projection",
    "canonical",
    "resolve",
    "parse_condition",
    "parse_projection",
    "RESERVED_WORDS",
]

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, TypeAlias

AttributeValue: TypeAlias = dict[str, Any]
Item: TypeAlias = Mapping[str, AttributeValue]
Path: TypeAlias = tuple[str | int, ...]
Condition: TypeAlias = Callable[[Item], bool]
_Getter: TypeAlias = Callable[[Item], AttributeValue | None]
# A projection path tree: each key leads to a subtree, or to None for "the whole value".
_Trie: TypeAlias = "dict[str | int, _Trie | None]"


class ExpressionError(ValueError):
    """An expression DynamoDB would refuse; the model answers ValidationException with it."""


# DynamoDB's reserved words (Amazon DynamoDB Developer Guide, "Reserved words in DynamoDB").
# An expression may not use one as a bare attribute name, in any case; a #placeholder may.
def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


RESERVED_WORDS: Final = _words(
    """
    ABORT ABSOLUTE ACTION ADD AFTER AGENT AGGREGATE ALL ALLOCATE ALTER ANALYZE AND ANY ARCHIVE
    ARE ARRAY AS ASC ASCII ASENSITIVE ASSERTION ASYMMETRIC AT ATOMIC ATTACH ATTRIBUTE AUTH
    AUTHORIZATION AUTHORIZE AUTO AVG BACK BACKUP BASE BATCH BEFORE BEGIN BETWEEN BIGINT BINARY
    BIT BLOB BLOCK BOOLEAN BOTH BREADTH BUCKET BULK BY BYTE CALL CALLED CALLING CAPACITY CASCADE
    CASCADED CASE CAST CATALOG CHAR CHARACTER CHECK CLASS CLOB CLOSE CLUSTER CLUSTERED
    CLUSTERING CLUSTERS COALESCE COLLATE COLLATION COLLECTION COLUMN COLUMNS COMBINE COMMENT
    COMMIT COMPACT COMPILE COMPRESS CONDITION CONFLICT CONNECT CONNECTION CONSISTENCY
    CONSISTENT CONSTRAINT CONSTRAINTS CONSTRUCTOR CONSUMED CONTINUE CONVERT COPY CORRESPONDING
    COUNT COUNTER CREATE CROSS CUBE CURRENT CURSOR CYCLE DATA DATABASE DATE DATETIME DAY
    DEALLOCATE DEC DECIMAL DECLARE DEFAULT DEFERRABLE DEFERRED DEFINE DEFINED DEFINITION DELETE
    DELIMITED DEPTH DEREF DESC DESCRIBE DESCRIPTOR DETACH DETERMINISTIC DIAGNOSTICS DIRECTORIES
    DISABLE DISCONNECT DISTINCT DISTRIBUTE DO DOMAIN DOUBLE DROP DUMP DURATION DYNAMIC EACH
    ELEMENT ELSE ELSEIF EMPTY ENABLE END EQUAL EQUALS ERROR ESCAPE ESCAPED EVAL EVALUATE
    EXCEEDED EXCEPT EXCEPTION EXCEPTIONS EXCLUSIVE EXEC EXECUTE EXISTS EXIT EXPLAIN EXPLODE
    EXPORT EXPRESSION EXTENDED EXTERNAL EXTRACT FAIL FALSE FAMILY FETCH FIELDS FILE FILTER
    FILTERING FINAL FINISH FIRST FIXED FLATTERN FLOAT FOR FORCE FOREIGN FORMAT FORWARD FOUND
    FREE FROM FULL FUNCTION FUNCTIONS GENERAL GENERATE GET GLOB GLOBAL GO GOTO GRANT GREATER
    GROUP GROUPING HANDLER HASH HAVE HAVING HEAP HIDDEN HOLD HOUR IDENTIFIED IDENTITY IF IGNORE
    IMMEDIATE IMPORT IN INCLUDING INCLUSIVE INCREMENT INCREMENTAL INDEX INDEXED INDEXES
    INDICATOR INFINITE INITIALLY INLINE INNER INNTER INOUT INPUT INSENSITIVE INSERT INSTEAD INT
    INTEGER INTERSECT INTERVAL INTO INVALIDATE IS ISOLATION ITEM ITEMS ITERATE JOIN KEY KEYS LAG
    LANGUAGE LARGE LAST LATERAL LEAD LEADING LEAVE LEFT LENGTH LESS LEVEL LIKE LIMIT LIMITED
    LINES LIST LOAD LOCAL LOCALTIME LOCALTIMESTAMP LOCATION LOCATOR LOCK LOCKS LOG LOGED LONG
    LOOP LOWER MAP MATCH MATERIALIZED MAX MAXLEN MEMBER MERGE METHOD METRICS MIN MINUS MINUTE
    MISSING MOD MODE MODIFIES MODIFY MODULE MONTH MULTI MULTISET NAME NAMES NATIONAL NATURAL
    NCHAR NCLOB NEW NEXT NO NONE NOT NULL NULLIF NUMBER NUMERIC OBJECT OF OFFLINE OFFSET OLD ON
    ONLINE ONLY OPAQUE OPEN OPERATOR OPTION OR ORDER ORDINALITY OTHER OTHERS OUT OUTER OUTPUT
    OVER OVERLAPS OVERRIDE OWNER PAD PARALLEL PARAMETER PARAMETERS PARTIAL PARTITION
    PARTITIONED PARTITIONS PATH PERCENT PERCENTILE PERMISSION PERMISSIONS PIPE PIPELINED PLAN
    POOL POSITION PRECISION PREPARE PRESERVE PRIMARY PRIOR PRIVATE PRIVILEGES PROCEDURE
    PROCESSED PROJECT PROJECTION PROPERTY PROVISIONING PUBLIC PUT QUERY QUIT QUORUM RAISE
    RANDOM RANGE RANK RAW READ READS REAL REBUILD RECORD RECURSIVE REDUCE REF REFERENCE
    REFERENCES REFERENCING REGEXP REGION REINDEX RELATIVE RELEASE REMAINDER RENAME REPEAT
    REPLACE REQUEST RESET RESIGNAL RESOURCE RESPONSE RESTORE RESTRICT RESULT RETURN RETURNING
    RETURNS REVERSE REVOKE RIGHT ROLE ROLES ROLLBACK ROLLUP ROUTINE ROW ROWS RULE RULES SAMPLE
    SATISFIES SAVE SAVEPOINT SCAN SCHEMA SCOPE SCROLL SEARCH SECOND SECTION SEGMENT SEGMENTS
    SELECT SELF SEMI SENSITIVE SEPARATE SEQUENCE SERIALIZABLE SESSION SET SETS SHARD SHARE
    SHARED SHORT SHOW SIGNAL SIMILAR SIZE SKEWED SMALLINT SNAPSHOT SOME SOURCE SPACE SPACES
    SPARSE SPECIFIC SPECIFICTYPE SPLIT SQL SQLCODE SQLERROR SQLEXCEPTION SQLSTATE SQLWARNING
    START STATE STATIC STATUS STORAGE STORE STORED STREAM STRING STRUCT STYLE SUB SUBMULTISET
    SUBPARTITION SUBSTRING SUBTYPE SUM SUPER SYMMETRIC SYNONYM SYSTEM TABLE TABLESAMPLE TEMP
    TEMPORARY TERMINATED TEXT THAN THEN THROUGHPUT TIME TIMESTAMP TIMEZONE TINYINT TO TOKEN
    TOTAL TOUCH TRAILING TRANSACTION TRANSFORM TRANSLATE TRANSLATION TREAT TRIGGER TRIM TRUE
    TRUNCATE TTL TUPLE TYPE UNDER UNDO UNION UNIQUE UNIT UNKNOWN UNLOGGED UNNEST UNPROCESSED
    UNSIGNED UNTIL UPDATE UPPER URL USAGE USE USER USERS USING UUID VACUUM VALUE VALUED VALUES
    VARCHAR VARIABLE VARIANCE VARINT VARYING VIEW VIEWS VIRTUAL VOID WAIT WHEN WHENEVER WHERE
    WHILE WINDOW WITH WITHIN WITHOUT WORK WRAPPED WRITE YEAR ZONE
    """
)

_TYPES: Final = ("S", "N", "B", "SS", "NS", "BS", "BOOL", "NULL", "L", "M")
_ORDERED_TYPES: Final = frozenset({"S", "N", "B"})
_CONDITION_FUNCTIONS: Final = frozenset(
    {"attribute_exists", "attribute_not_exists", "attribute_type", "begins_with", "contains"}
)
_COMPARATORS: Final = frozenset({"=", "<>", "<", "<=", ">", ">="})
_MAX_IN_OPERANDS: Final = 100

_TOKEN: Final = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<nameref>\#[A-Za-z0-9_]+)
    | (?P<valueref>:[A-Za-z0-9_]+)
    | (?P<index>[0-9]+)
    | (?P<op><>|<=|>=|=|<|>)
    | (?P<punct>[(),.\[\]])
    """,
    re.VERBOSE,
)


# --- values -------------------------------------------------------------------------------


def _binary(text: str) -> bytes:
    return base64.b64decode(text)


def canonical(value: AttributeValue) -> tuple[str, Any]:
    """A hashable form of a value in which DynamoDB-equal values, and only they, are equal.

    Numbers compare as decimals (``1.0 = 1``), sets ignore their order, binaries compare
    by their bytes whatever their base64 spelling.
    """
    ((kind, inner),) = value.items()
    if kind == "N":
        return kind, Decimal(inner)
    if kind == "B":
        return kind, _binary(inner)
    if kind == "SS":
        return kind, frozenset(inner)
    if kind == "NS":
        return kind, frozenset(Decimal(n) for n in inner)
    if kind == "BS":
        return kind, frozenset(_binary(b) for b in inner)
    if kind == "L":
        return kind, tuple(canonical(v) for v in inner)
    if kind == "M":
        return kind, frozenset((k, canonical(v)) for k, v in inner.items())
    return kind, inner  # S, BOOL, NULL


def _ordered(value: AttributeValue | None) -> tuple[str, Any] | None:
    """The value as something ``<`` works on, for the types DynamoDB orders (S, N, B)."""
    if value is None:
        return None
    if "S" in value:
        return "S", value["S"]  # code point order is UTF-8 byte order
    if "N" in value:
        return "N", Decimal(value["N"])
    if "B" in value:
        return "B", _binary(value["B"])
    return None


def _kind(value: AttributeValue) -> str:
    return next(iter(value))


def _size(value: AttributeValue | None) -> AttributeValue | None:
    """``size(path)``: bytes of a string (UTF-8) or binary, elements of a set, list or map;
    nothing for the types without a size (numbers, booleans, null)."""
    if value is None:
        return None
    ((kind, inner),) = value.items()
    if kind == "S":
        return {"N": str(len(inner.encode("utf-8", "surrogatepass")))}
    if kind == "B":
        return {"N": str(len(_binary(inner)))}
    if kind in ("SS", "NS", "BS", "L", "M"):
        return {"N": str(len(inner))}
    return None


def resolve(item: Item, path: Path) -> AttributeValue | None:
    """The value at a document path, or None where the path leads nowhere."""
    value: AttributeValue | None = item.get(path[0])  # type: ignore[arg-type]
    for element in path[1:]:
        if value is None:
            return None
        if isinstance(element, int):
            elements = value.get("L")
            value = elements[element] if elements is not None and element < len(elements) else None
        else:
            members = value.get("M")
            value = members.get(element) if members is not None else None
    return value


def _path_text(path: Path) -> str:
    return "[" + ", ".join(f"[{e}]" if isinstance(e, int) else e for e in path) + "]"


# --- placeholders -------------------------------------------------------------------------


class Placeholders:
    """A request's ExpressionAttributeNames and ExpressionAttributeValues, and their use.

    Every expression of one request shares one instance, because DynamoDB's rule that each
    placeholder must be used is about the request, not about one expression.
    """

    def __init__(
        self,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, AttributeValue] | None = None,
    ) -> None:
        if names is not None and not names:
            raise ExpressionError("ExpressionAttributeNames must not be empty")
        if values is not None and not values:
            raise ExpressionError("ExpressionAttributeValues must not be empty")
        for key in names or {}:
            if not key.startswith("#"):
                raise ExpressionError(
                    f"ExpressionAttributeNames contains invalid key: Syntax error; key: {key!r}"
                )
        for key in values or {}:
            if not key.startswith(":"):
                raise ExpressionError(
                    f"ExpressionAttributeValues contains invalid key: Syntax error; key: {key!r}"
                )
        self._names = dict(names or {})
        self._values = dict(values or {})
        self._used_names: set[str] = set()
        self._used_values: set[str] = set()

    def name(self, token: str, label: str) -> str:
        try:
            name = self._names[token]
        except KeyError:
            raise ExpressionError(
                f"Invalid {label}: An expression attribute name used in the document path is "
                f"not defined; attribute name: {token}"
            ) from None
        self._used_names.add(token)
        return name

    def value(self, token: str, label: str) -> AttributeValue:
        try:
            value = self._values[token]
        except KeyError:
            raise ExpressionError(
                f"Invalid {label}: An expression attribute value used in expression is not "
                f"defined; attribute value: {token}"
            ) from None
        self._used_values.add(token)
        return value

    def check_all_used(self) -> None:
        """Raise if a name or value was given that no expression of the request used."""
        unused_names = sorted(set(self._names) - self._used_names)
        if unused_names:
            raise ExpressionError(
                "Value provided in ExpressionAttributeNames unused in expressions: "
                f"keys: {{{', '.join(unused_names)}}}"
            )
        unused_values = sorted(set(self._values) - self._used_values)
        if unused_values:
            raise ExpressionError(
                "Value provided in ExpressionAttributeValues unused in expressions: "
                f"keys: {{{', '.join(unused_values)}}}"
            )


# --- tokens and the parser ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    at: int


@dataclass(frozen=True, slots=True)
class _Operand:
    get: _Getter
    path: Path | None = None  # set for a document path
    const: AttributeValue | None = None  # set for a :value
    text: str = ""


def _tokenize(text: str, label: str) -> list[_Token]:
    tokens: list[_Token] = []
    at = 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None:
            raise ExpressionError(
                f'Invalid {label}: Syntax error; token: "{text[at]}", near: "{text[at : at + 8]}"'
            )
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append(_Token(kind, match.group(), at))
        at = match.end()
    return tokens


class _Parser:
    """Recursive descent over DynamoDB's grammar, precedence NOT > AND > OR."""

    def __init__(self, text: str, label: str, placeholders: Placeholders) -> None:
        self.text = text
        self.label = label
        self.placeholders = placeholders
        self.tokens = _tokenize(text, label)
        self.at = 0
        if not self.tokens:
            raise ExpressionError(f"Invalid {label}: The expression can not be empty;")

    # token helpers

    def peek(self, ahead: int = 0) -> _Token | None:
        at = self.at + ahead
        return self.tokens[at] if at < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise ExpressionError(f'Invalid {self.label}: Syntax error; token: "<EOF>", near: ""')
        self.at += 1
        return token

    def syntax_error(self, token: _Token | None = None) -> ExpressionError:
        token = token or self.peek()
        if token is None:
            return ExpressionError(f'Invalid {self.label}: Syntax error; token: "<EOF>", near: ""')
        near = self.text[token.at : token.at + len(token.text) + 8]
        return ExpressionError(
            f'Invalid {self.label}: Syntax error; token: "{token.text}", near: "{near}"'
        )

    def is_punct(self, text: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token is not None and token.kind in ("punct", "op") and token.text == text

    def expect(self, text: str) -> None:
        token = self.take()
        if token.text != text:
            raise self.syntax_error(token)

    def is_keyword(self, word: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "name" and token.text.upper() == word

    def error(self, message: str) -> ExpressionError:
        return ExpressionError(f"Invalid {self.label}: {message}")

    def done(self) -> None:
        if self.peek() is not None:
            raise self.syntax_error()

    # paths

    def path(self) -> Path:
        elements: list[str | int] = [self.path_name()]
        while True:
            if self.is_punct("."):
                self.take()
                elements.append(self.path_name())
            elif self.is_punct("["):
                self.take()
                token = self.take()
                if token.kind != "index":
                    raise self.syntax_error(token)
                self.expect("]")
                elements.append(int(token.text))
            else:
                return tuple(elements)

    def path_name(self) -> str:
        token = self.take()
        if token.kind == "nameref":
            return self.placeholders.name(token.text, self.label)
        if token.kind != "name":
            raise self.syntax_error(token)
        if token.text.upper() in RESERVED_WORDS:
            raise self.error(
                f"Attribute name is a reserved keyword; reserved keyword: {token.text}"
            )
        return token.text

    # conditions

    def condition(self) -> Condition:
        left = self.conjunction()
        while self.is_keyword("OR"):
            self.take()
            right = self.conjunction()
            left = _either(left, right)
        return left

    def conjunction(self) -> Condition:
        left = self.negation()
        while self.is_keyword("AND"):
            self.take()
            right = self.negation()
            left = _both(left, right)
        return left

    def negation(self) -> Condition:
        if self.is_keyword("NOT"):
            self.take()
            inner = self.negation()
            return lambda item: not inner(item)
        return self.primary()

    def primary(self) -> Condition:
        token = self.peek()
        if token is None:
            raise self.syntax_error()
        if self.is_punct("("):
            self.take()
            inner = self.condition()
            self.expect(")")
            return inner
        if token.kind == "name" and self.is_punct("(", 1) and token.text in _CONDITION_FUNCTIONS:
            return self.function()
        left = self.operand()
        if self.is_keyword("BETWEEN"):
            self.take()
            low = self.operand()
            if not self.is_keyword("AND"):
                raise self.syntax_error()
            self.take()
            high = self.operand()
            return self.between(left, low, high)
        if self.is_keyword("IN"):
            self.take()
            self.expect("(")
            choices = [self.operand()]
            while self.is_punct(","):
                self.take()
                choices.append(self.operand())
            self.expect(")")
            return self.among(left, choices)
        comparator = self.peek()
        if comparator is None or comparator.kind != "op":
            raise self.syntax_error()
        self.take()
        return self.compare(comparator.text, left, self.operand())

    def operand(self) -> _Operand:
        token = self.peek()
        if token is None:
            raise self.syntax_error()
        if token.kind == "valueref":
            self.take()
            value = self.placeholders.value(token.text, self.label)
            return _Operand(lambda item: value, const=value, text=token.text)
        if token.kind == "name" and self.is_punct("(", 1):
            if token.text == "size":
                self.take()
                self.expect("(")
                argument = self.operand()
                self.expect(")")
                path = self.require_path("size", argument)
                return _Operand(lambda item: _size(resolve(item, path)), text="size")
            if token.text in _CONDITION_FUNCTIONS:
                raise self.error(
                    "The function is not allowed to be used this way in an expression; "
                    f"function: {token.text}"
                )
            raise self.error(f"Invalid function name; function: {token.text}")
        if token.kind in ("name", "nameref"):
            path = self.path()
            return _Operand(lambda item: resolve(item, path), path=path, text=_path_text(path))
        raise self.syntax_error(token)

    def require_path(self, function: str, operand: _Operand) -> Path:
        if operand.path is None:
            raise self.error(
                f"Operator or function requires a document path; operator or function: {function}"
            )
        return operand.path

    def check_operand_type(self, operator: str, operand: _Operand, allowed: frozenset[str]) -> None:
        if operand.const is not None and _kind(operand.const) not in allowed:
            raise self.error(
                "Incorrect operand type for operator or function; operator or function: "
                f"{operator}, operand type: {_kind(operand.const)}"
            )

    def compare(self, operator: str, left: _Operand, right: _Operand) -> Condition:
        get_left, get_right = left.get, right.get
        if operator in ("=", "<>"):
            equal = operator == "="

            def equality(item: Item) -> bool:
                a, b = get_left(item), get_right(item)
                same = a is not None and b is not None and canonical(a) == canonical(b)
                return same is equal

            return equality
        for operand in (left, right):
            self.check_operand_type(operator, operand, _ORDERED_TYPES)
        test = _ORDERINGS[operator]

        def ordering(item: Item) -> bool:
            a, b = _ordered(get_left(item)), _ordered(get_right(item))
            return a is not None and b is not None and a[0] == b[0] and test(a[1], b[1])

        return ordering

    def between(self, subject: _Operand, low: _Operand, high: _Operand) -> Condition:
        for operand in (subject, low, high):
            self.check_operand_type("BETWEEN", operand, _ORDERED_TYPES)
        if low.const is not None and high.const is not None:
            lo, hi = _ordered(low.const), _ordered(high.const)
            if lo is not None and hi is not None and lo[0] == hi[0] and lo[1] > hi[1]:
                raise self.error(
                    "The BETWEEN operator requires upper bound to be greater than or equal to "
                    f"lower bound; lower bound operand: {low.text}, upper bound operand: "
                    f"{high.text}"
                )
        get, get_low, get_high = subject.get, low.get, high.get

        def inside(item: Item) -> bool:
            value, lo, hi = _ordered(get(item)), _ordered(get_low(item)), _ordered(get_high(item))
            if value is None or lo is None or hi is None:
                return False
            if not value[0] == lo[0] == hi[0]:
                return False
            return bool(lo[1] <= value[1] <= hi[1])

        return inside

    def among(self, subject: _Operand, choices: list[_Operand]) -> Condition:
        if len(choices) > _MAX_IN_OPERANDS:
            raise self.error(f"Too many operands in IN; maximum: {_MAX_IN_OPERANDS}")
        get = subject.get
        if all(choice.const is not None for choice in choices):
            constants = frozenset(canonical(c.const) for c in choices if c.const is not None)

            def member(item: Item) -> bool:
                value = get(item)
                return value is not None and canonical(value) in constants

            return member
        getters = [choice.get for choice in choices]

        def member_of_any(item: Item) -> bool:
            value = get(item)
            if value is None:
                return False
            wanted = canonical(value)
            for getter in getters:
                candidate = getter(item)
                if candidate is not None and canonical(candidate) == wanted:
                    return True
            return False

        return member_of_any

    def function(self) -> Condition:
        name = self.take().text
        self.expect("(")
        arguments = [self.operand()]
        while self.is_punct(","):
            self.take()
            arguments.append(self.operand())
        self.expect(")")
        wanted = 1 if name in ("attribute_exists", "attribute_not_exists") else 2
        if len(arguments) != wanted:
            raise self.error(
                "Incorrect number of operands for operator or function; operator or function: "
                f"{name}, number of operands: {len(arguments)}"
            )
        path = self.require_path(name, arguments[0])
        if name == "attribute_exists":
            return lambda item: resolve(item, path) is not None
        if name == "attribute_not_exists":
            return lambda item: resolve(item, path) is None
        second = arguments[1]
        if name == "attribute_type":
            return self.attribute_type(path, second)
        if name == "begins_with":
            self.check_operand_type(name, second, frozenset({"S", "B"}))
            return _begins_with(path, second.get)
        return _contains(path, second.get)

    def attribute_type(self, path: Path, operand: _Operand) -> Condition:
        self.check_operand_type("attribute_type", operand, frozenset({"S"}))
        if operand.const is None:
            raise self.error(
                "Incorrect operand type for operator or function; operator or function: "
                "attribute_type, operand type: path"
            )
        wanted = operand.const["S"]
        if wanted not in _TYPES:
            raise self.error(
                f"Invalid attribute type name found; type: {wanted}, valid types: "
                f"{{{','.join(_TYPES)}}}"
            )

        def has_type(item: Item) -> bool:
            value = resolve(item, path)
            return value is not None and wanted in value

        return has_type


_ORDERINGS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
}


def _either(left: Condition, right: Condition) -> Condition:
    return lambda item: left(item) or right(item)


def _both(left: Condition, right: Condition) -> Condition:
    return lambda item: left(item) and right(item)


def _begins_with(path: Path, get_prefix: _Getter) -> Condition:
    def begins_with(item: Item) -> bool:
        value, prefix = resolve(item, path), get_prefix(item)
        if value is None or prefix is None:
            return False
        if "S" in value and "S" in prefix:
            return bool(value["S"].startswith(prefix["S"]))
        if "B" in value and "B" in prefix:
            return _binary(value["B"]).startswith(_binary(prefix["B"]))
        return False

    return begins_with


def _contains(path: Path, get_operand: _Getter) -> Condition:
    def contains(item: Item) -> bool:
        value, operand = resolve(item, path), get_operand(item)
        if value is None or operand is None:
            return False
        ((kind, inner),) = value.items()
        if kind == "S":
            return "S" in operand and operand["S"] in inner
        if kind in ("SS", "NS", "BS"):
            element = kind[0]
            return element in operand and canonical(operand) in {
                canonical({element: member}) for member in inner
            }
        if kind == "L":
            wanted = canonical(operand)
            return any(canonical(member) == wanted for member in inner)
        return False

    return contains


def parse_condition(text: str, placeholders: Placeholders, label: str) -> Condition:
    """Compile a condition expression (a FilterExpression or ConditionExpression).

    ``label`` names the parameter in error messages, as DynamoDB does ("Invalid
    FilterExpression: ..."). Raises :class:`ExpressionError`.
    """
    parser = _Parser(text, label, placeholders)
    condition = parser.condition()
    parser.done()
    return condition


# --- projections --------------------------------------------------------------------------


class Projection:
    """A compiled ProjectionExpression: which document paths an answer keeps.

    Nested paths keep their nesting; list indexes select elements, which come back in index
    order as a shorter list, as DynamoDB returns them.
    """

    __slots__ = ("_trie", "paths")

    def __init__(self, paths: tuple[Path, ...], label: str) -> None:
        self.paths = paths
        self._trie: _Trie = {}
        for number, path in enumerate(paths):
            self._insert(path, paths[:number], label)

    def _insert(self, path: Path, earlier: tuple[Path, ...], label: str) -> None:
        node = self._trie
        for depth, element in enumerate(path):
            last = depth == len(path) - 1
            if node and isinstance(next(iter(node)), int) != isinstance(element, int):
                other = next(p for p in earlier if p[:depth] == path[:depth])
                raise ExpressionError(
                    f"Invalid {label}: Two document paths conflict with each other; must remove "
                    f"or rewrite one of these paths; path one: {_path_text(other)}, path two: "
                    f"{_path_text(path)}"
                )
            if element in node:
                child = node[element]
                if child is None or last:
                    other = next(p for p in earlier if p[: depth + 1] == path[: depth + 1])
                    raise ExpressionError(
                        f"Invalid {label}: Two document paths overlap with each other; must "
                        "remove or rewrite one of these paths; path one: "
                        f"{_path_text(other)}, path two: {_path_text(path)}"
                    )
                node = child
            elif last:
                node[element] = None
            else:
                child = {}
                node[element] = child
                node = child

    def apply(self, item: Item) -> dict[str, AttributeValue]:
        """The item cut down to the projected paths (attributes that do not exist are absent)."""
        return _project_map(item, self._trie)


def _project_map(members: Mapping[str, AttributeValue], trie: _Trie) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    for key, sub in trie.items():
        assert isinstance(key, str)  # map keys; Projection refuses a mix with indexes
        value = members.get(key)
        if value is None:
            continue
        if sub is None:
            out[key] = value
            continue
        projected = _project_value(value, sub)
        if projected is not None:
            out[key] = projected
    return out


def _project_value(value: AttributeValue, trie: _Trie) -> AttributeValue | None:
    if isinstance(next(iter(trie)), int):
        elements = value.get("L")
        if elements is None:
            return None
        kept: list[AttributeValue] = []
        for index in sorted(trie, key=int):
            assert isinstance(index, int)
            if index >= len(elements):
                continue
            sub = trie[index]
            element = elements[index] if sub is None else _project_value(elements[index], sub)
            if element is not None:
                kept.append(element)
        return {"L": kept} if kept else None
    members = value.get("M")
    if members is None:
        return None
    inner = _project_map(members, trie)
    return {"M": inner} if inner else None


def parse_projection(
    text: str, placeholders: Placeholders, label: str = "ProjectionExpression"
) -> Projection:
    """Compile a ProjectionExpression: document paths separated by commas."""
    parser = _Parser(text, label, placeholders)
    paths = [parser.path()]
    while parser.is_punct(","):
        parser.take()
        paths.append(parser.path())
    parser.done()
    return Projection(tuple(paths), label)
