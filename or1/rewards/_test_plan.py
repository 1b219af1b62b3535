"""What a problem's tests will ask the candidate (stdlib only; see _harness.py): the names
the test code reads but does not define, and the plan of candidate calls the judge can
send ahead in one batch when every argument is a literal the test computes itself."""

import ast
import builtins

import _wire


def prefetch_plan(job, scope):
    """The candidate's calls of every test, known before the tests run, or None.

    Only when each test is `def check(candidate)` made of asserts whose candidate calls
    all run exactly once, in source order, with arguments that the test's own names
    (the prefix and helpers) and literals compute: no loops, branches, `and`/`or`,
    comprehensions, lambdas, names of the candidate's, or candidate passed around.
    The arguments are computed here (they are the same values the test computes)."""
    if not job.get("entry") or free_names("\n".join(job["tests"]) + "\n" + job["helpers"], scope):
        return None
    plan, seq = [], 0
    for chunk in job["tests"]:
        calls = _literal_calls(chunk, scope)
        if calls is None:
            return None
        plan.append([(seq + j, a, k) for j, (a, k) in enumerate(calls)])
        seq += len(calls)
    return plan


_NO_PREFETCH = (ast.BoolOp, ast.IfExp, ast.Lambda, ast.comprehension, ast.NamedExpr, ast.Await)


def _literal_calls(chunk, scope):
    try:
        (fn,) = ast.parse(chunk).body
    except (SyntaxError, ValueError):
        return None
    if not isinstance(fn, ast.FunctionDef) or len(fn.args.args) != 1 or fn.args.vararg:
        return None
    param = fn.args.args[0].arg
    calls = []
    for stmt in fn.body:
        if not isinstance(stmt, ast.Assert):
            return None
        nodes = list(ast.walk(stmt.test))
        mine = [n for n in nodes if isinstance(n, ast.Call) and _is_name(n.func, param)]
        funcs = {id(n.func) for n in mine}
        if any(isinstance(n, _NO_PREFETCH) for n in nodes) or any(
            _is_name(n, param) and id(n) not in funcs for n in nodes
        ):
            return None
        for call in sorted(mine, key=lambda n: (n.lineno, n.col_offset)):
            values = _arguments(call, param, scope)
            if values is None:
                return None
            calls.append(values)
    return calls


def _is_name(node, name):
    return isinstance(node, ast.Name) and node.id == name


def _arguments(call, param, scope):
    """The encoded (args, kwargs) of a call, computed with the test's own names only."""
    parts = [*call.args, *(k.value for k in call.keywords)]
    if any(isinstance(a, ast.Starred) for a in call.args) or any(
        k.arg is None for k in call.keywords
    ):
        return None
    if any(_is_name(n, param) for a in parts for n in ast.walk(a)):
        return None
    try:
        values = [eval(compile(ast.Expression(a), "<test>", "eval"), dict(scope)) for a in parts]
        args, kwvalues = values[: len(call.args)], values[len(call.args) :]
        kwargs = {k.arg: v for k, v in zip(call.keywords, kwvalues, strict=True)}
        return _wire.encode(args), _wire.encode(kwargs)
    except Exception:
        return None


def free_names(source, scope):
    """Names the test code reads but does not define: they are the candidate's."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names = {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }
    defined = {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return sorted(names - defined - set(scope) - set(dir(builtins)))
