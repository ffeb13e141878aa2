"""The package's shape: layers import downwards only, modules and functions stay small,
architecture knowledge stays on the priors, one checkpoint writer."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nnft"
#: upper layers: nothing below them may import them (not even inside a function)
UPPER = ("nnft.app", "nnft.report")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def _name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(rel.parts).removesuffix(".__init__")


def _imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)


def test_lower_layers_never_import_the_app_or_report_layers():
    bad = []
    for path, tree in _modules():
        name = _name(path)
        if name.startswith(UPPER):
            continue
        bad += [f"{name} imports {imp}" for imp in _imports(tree) if imp.startswith(UPPER)]
    assert not bad, bad


def test_report_layer_does_not_import_the_app_layer():
    bad = [f"{_name(p)} imports {imp}" for p, t in _modules() if _name(p).startswith(
        "nnft.report") for imp in _imports(t) if imp.startswith("nnft.app")]
    assert not bad, bad


def test_modules_and_functions_are_small():
    long_modules = [f"{_name(p)}: {len(p.read_text().splitlines())} lines"
                    for p, _ in _modules() if len(p.read_text().splitlines()) > MAX_MODULE_LINES]
    long_functions = [
        f"{_name(p)}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for p, tree in _modules() for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long_modules and not long_functions, long_modules + long_functions


def test_no_architecture_dispatch_outside_the_priors():
    """``isinstance(prior, SomeNet)`` belongs on the prior (a method), not in callers."""
    prior_classes = {"CosNet", "GaussNet", "ScalarNet", "SpectralNet", "MLP"}
    bad = []
    for path, tree in _modules():
        if _name(path).startswith("nnft.priors"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance":
                names = {n.id if isinstance(n, ast.Name) else getattr(n, "attr", None)
                         for n in ast.walk(node.args[1])}
                if names & prior_classes:
                    bad.append(f"{_name(path)}:{node.lineno}")
    assert not bad, bad


@pytest.mark.parametrize("call", ["np.savez", "pickle.dump", "tempfile.mkstemp", "os.replace"])
def test_one_writer_of_checkpoints_and_files(call):
    """Files are written by nnft.engine.files / checkpoint only."""
    owners = {"nnft.engine.files", "nnft.engine.checkpoint"}
    mod, attr = call.split(".")
    bad = []
    for path, tree in _modules():
        if _name(path) in owners:
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr == attr
                    and getattr(node.value, "id", None) == mod):
                bad.append(f"{_name(path)}:{node.lineno}")
    assert not bad, bad
