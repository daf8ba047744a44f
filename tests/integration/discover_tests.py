"""Lists the test methods of Python test modules for CMake, without importing them.

The modules cannot be imported here: they refuse to load outside a fresh network
namespace (mgtest.require_private_netns). So the source is read with `ast`: in every
given test_*.py module, each top-level class that derives from unittest.TestCase (also
through a fixture class in a sibling module, e.g. busfixture.GuarddOnBusTest) and each
of its methods whose name starts with "test" (unittest's default testMethodPrefix),
own or inherited, is one test.

A module may say how ctest runs it, with literal module-level assignments:
    CTEST_LABEL = "dbus"                      # default: --label
    CTEST_UNSHARE = ["-n", "-m", "--propagation", "private"]   # default: ["-n"]
    CTEST_RESOURCE_LOCK = "system-files"      # default: none (ctest's RESOURCE_LOCK)

Output, one test per line:
    <label>.<module>.<method>|<module>.<Class>.<method>|<label>|<unshare args>|<lock>
Problems that would make a test silently not run are errors (exit 1); a class with
test methods that is not a TestCase is reported on stderr.

usage: discover_tests.py --label LABEL [--path DIR]... MODULE.py...
"""
import argparse
import ast
import os
import sys

TEST_PREFIX = "test"


class Modules:
    """Parsed modules, found by name in the search path (the module's own folder first)."""

    def __init__(self, path):
        self.path = path
        self.cache = {}

    def find(self, name, near):
        for d in [near] + self.path:
            candidate = os.path.join(d, name + ".py")
            if os.path.isfile(candidate):
                return self.load(candidate)
        return None

    def load(self, filename):
        filename = os.path.abspath(filename)
        if filename not in self.cache:
            with open(filename) as f:
                self.cache[filename] = Module(filename, ast.parse(f.read(), filename))
        return self.cache[filename]


class Module:
    def __init__(self, filename, tree):
        self.filename = filename
        self.dir = os.path.dirname(filename)
        self.name = os.path.splitext(os.path.basename(filename))[0]
        self.classes = {}   # name -> ast.ClassDef (top level only: what unittest loads)
        self.imported = {}  # local name -> ("module", name) or ("from", module, name)
        self.settings = {}
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                self.classes[node.name] = node
            elif isinstance(node, ast.Import):
                for a in node.names:
                    self.imported[a.asname or a.name] = ("module", a.name)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    self.imported[a.asname or a.name] = ("from", node.module, a.name)
            elif (isinstance(node, ast.Assign) and len(node.targets) == 1 and
                  isinstance(node.targets[0], ast.Name) and
                  node.targets[0].id.startswith("CTEST_")):
                self.settings[node.targets[0].id] = ast.literal_eval(node.value)


class Resolver:
    def __init__(self, modules):
        self.modules = modules
        self.memo = {}

    def base_class(self, module, expr):
        """(module, ClassDef) that `expr` (a base-class expression) names, "TestCase" for
        unittest.TestCase, or None when it is something else or cannot be found."""
        if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
            imp = module.imported.get(expr.value.id)
            if not imp or imp[0] != "module":
                return None
            if imp[1] == "unittest":
                return "TestCase" if expr.attr == "TestCase" else None
            other = self.modules.find(imp[1], module.dir)
            return (other, other.classes[expr.attr]) if other and expr.attr in other.classes else None
        if isinstance(expr, ast.Name):
            if expr.id in module.classes:
                return module, module.classes[expr.id]
            imp = module.imported.get(expr.id)
            if imp and imp[0] == "from":
                if imp[1] == "unittest":
                    return "TestCase" if imp[2] == "TestCase" else None
                other = self.modules.find(imp[1], module.dir)
                if other and imp[2] in other.classes:
                    return other, other.classes[imp[2]]
        return None

    def describe(self, module, cls, seen=()):
        """(is a TestCase, test method names in unittest's reach) of a class."""
        key = (module.filename, cls.name)
        if key in self.memo:
            return self.memo[key]
        if key in seen:
            return False, []
        methods = [n.name for n in cls.body
                   if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                   and n.name.startswith(TEST_PREFIX)]
        own = {n.name for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        is_test_case = False
        for expr in cls.bases:
            base = self.base_class(module, expr)
            if base == "TestCase":
                is_test_case = True
            elif base:
                base_is, inherited = self.describe(*base, seen=seen + (key,))
                is_test_case |= base_is
                methods += [m for m in inherited if m not in own and m not in methods]
        self.memo[key] = (is_test_case, methods)
        return self.memo[key]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--label", required=True)
    parser.add_argument("--path", action="append", default=[])
    parser.add_argument("modules", nargs="*")
    args = parser.parse_args()
    modules = Modules([os.path.abspath(p) for p in args.path])
    resolver = Resolver(modules)
    errors = []
    names = {}
    lines = []
    for filename in sorted(args.modules):
        module = modules.load(filename)
        label = module.settings.get("CTEST_LABEL", args.label)
        unshare = module.settings.get("CTEST_UNSHARE", ["-n"])
        lock = module.settings.get("CTEST_RESOURCE_LOCK", "")
        found = 0
        for cls in module.classes.values():
            is_test_case, methods = resolver.describe(module, cls)
            if not methods:
                continue
            if not is_test_case:
                print(f"{filename}: class {cls.name} has test methods but is not a "
                      "unittest.TestCase that could be traced here: not registered",
                      file=sys.stderr)
                continue
            for method in methods:
                name = f"{label}.{module.name}.{method}"
                target = f"{module.name}.{cls.name}.{method}"
                if name in names:
                    errors.append(f"{filename}: test name {name} twice ({names[name]} and "
                                  f"{target}): rename one of the methods")
                    continue
                names[name] = target
                lines.append(f"{name}|{target}|{label}|{' '.join(unshare)}|{lock}")
                found += 1
        if not found:
            errors.append(f"{filename}: no test method found in a unittest.TestCase class")
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
