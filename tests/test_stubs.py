"""The type stubs (.pyi) say what the compiled module and the functional steps take: the same
names, parameter names, kinds and defaults as the objects themselves, and a stub for every
public function of the compiled module."""
import ast
import inspect
import os

import pytest

import l2decay
from l2decay import _kernels, steps

STUB_DIR = os.path.dirname(l2decay.__file__)


def stub_functions(name):
    tree = ast.parse(open(os.path.join(STUB_DIR, name)).read())
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


def stub_parameters(node):
    """(name, kind, default source) of a stub's parameters, as inspect.Parameter names them."""
    a = node.args
    out = []
    positional = a.posonlyargs + a.args
    defaults = [None] * (len(positional) - len(a.defaults)) + [ast.unparse(d) for d in a.defaults]
    for k, (arg, default) in enumerate(zip(positional, defaults)):
        kind = "POSITIONAL_ONLY" if k < len(a.posonlyargs) else "POSITIONAL_OR_KEYWORD"
        out.append((arg.arg, kind, default))
    for arg, default in zip(a.kwonlyargs, a.kw_defaults):
        out.append((arg.arg, "KEYWORD_ONLY", None if default is None else ast.unparse(default)))
    return out


def runtime_parameters(obj):
    return [(p.name, p.kind.name, None if p.default is inspect.Parameter.empty else repr(p.default))
            for p in inspect.signature(obj).parameters.values()]


@pytest.mark.parametrize("stub,module", [("_kernels.pyi", _kernels), ("steps.pyi", steps)])
def test_stubs_match_the_signatures(stub, module):
    for name, node in stub_functions(stub).items():
        assert hasattr(module, name), f"{stub} has {name}, which {module.__name__} does not"
        assert stub_parameters(node) == runtime_parameters(getattr(module, name)), f"{stub}: {name}"


def test_every_public_function_of_the_compiled_module_has_a_stub():
    public = {n for n in dir(_kernels) if not n.startswith("_") and callable(getattr(_kernels, n))
              and not isinstance(getattr(_kernels, n), type)}
    assert public - set(stub_functions("_kernels.pyi")) == set()
