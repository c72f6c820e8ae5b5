"""Problems generated offline by DeepMind's `mathematics-dataset` package, deterministic per seed.

The package (PyPI `mathematics-dataset`, 2019) predates numpy 2 and current sympy, and its
output depends on more than `random`'s seed. This module wraps it so that a seed alone decides
the problems:

* Import shim, applied once on first use (nothing in site-packages is touched): numpy 2 dropped
  `np.object` (aliased to `object`); sympy moved `base_solution_linear` from
  `sympy.solvers.diophantine` to `sympy.solvers.diophantine.diophantine` (aliased back).
* Three random sources, all seeded from the seed and swapped in only while a problem is being
  generated, so the caller's `random` / `numpy.random` / sympy states are left as they were:
  Python's `random`, `numpy.random`'s global RandomState, and sympy's own module-level
  `random.Random` (`sympy.core.random`; `sympy.ntheory.randprime` draws from it, and sympy
  seeds it from the OS at import, which made `numbers__is_prime` differ on every run).
* Two places where the package iterated over hashed sets are patched to iterate in a fixed
  order (same distribution, same code otherwise), which makes output independent of
  PYTHONHASHSEED and of object addresses:
  `composition.Context.pop` picked a variable letter with `random.choice(list(set_of_str))`
  (string hashes are salted per process), and `composition.expand_entities` shuffled
  `list(set_of_entities)` (identity hashes, i.e. memory addresses). Every module that names a
  variable or composes sub-problems (algebra, polynomials, `*_composed`, ...) went through one.
  The `arithmetic__*` modules never did: their output was already hash-independent.
* 23 modules (every `*_composed` one, `calculus__differentiate` and the polynomial
  manipulation ones listed in `NEEDS_NUMPY_1`) call `ndarray.itemset`, which numpy 2 removed;
  with numpy 2 they are refused with a `MafineError` up front (they work with numpy < 2).

Sampling follows the package's `generate.py`: train difficulties easy/medium/hard are the
thirds of each module's train entropy range (`modules.train(_make_entropy_fn(level, 3))`),
`interpolate` is `modules.test()` and `extrapolate` is `modules.test_extra()` (whose module
names differ, e.g. `arithmetic__add_or_sub_big`); problems with a question longer than 160 or
an answer longer than 30 characters are dropped, as `generate.sample_from_module` does.

Everything heavy (mathematics_dataset, sympy, numpy) is imported lazily, on the first call.
"""

from __future__ import annotations

import difflib
import functools
import random
import warnings
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from mafine.data.registry import Record
from mafine.errors import MafineError
from mafine.seeds import deepmind_seed

if TYPE_CHECKING:
    from mafine.data.settings import DeepMindSource

DIFFICULTIES = ("easy", "medium", "hard", "interpolate", "extrapolate")
_TRAIN_LEVELS = {"easy": 0, "medium": 1, "hard": 2}

# Modules whose generation calls `ndarray.itemset` (removed in numpy 2), found by sampling 300
# problems of every module at every difficulty: the polynomial manipulation modules always do,
# and every `*_composed` module can compose a polynomial-valued sub-problem.
NEEDS_NUMPY_1 = frozenset(
    {
        "calculus__differentiate",
        "polynomials__add",
        "polynomials__coefficient_named",
        "polynomials__collect",
        "polynomials__compose",
        "polynomials__expand",
    }
)


def needs_numpy_1(module: str) -> bool:
    """Whether `module` calls numpy APIs that numpy 2 removed (`ndarray.itemset`)."""
    return module in NEEDS_NUMPY_1 or module.endswith("_composed")


def source_records(source: DeepMindSource, seed: int) -> Iterator[Record]:
    """The `deepmind` source kind's records: generated problems, no ids."""
    for question, answer in iter_deepmind(source.module, source.difficulty, seed):
        yield None, question, answer


def describe(source: DeepMindSource) -> str:
    return f"deepmind/{source.module} ({source.difficulty})"


def iter_deepmind(module: str, difficulty: str, seed: int) -> Iterator[tuple[str, str]]:
    """Endless (question, answer) pairs from DeepMind's generator, deterministic for a seed.

    The same (module, difficulty, seed) gives the same sequence in any process, whatever
    PYTHONHASHSEED, and whatever else uses `random` or `numpy.random` in between (the stream
    keeps its own state). Different modules or difficulties get independent streams.
    Unknown names and modules that cannot run here raise `MafineError` at call time.
    Not thread-safe: generating swaps the process-wide random generators' states.
    """
    if difficulty not in DIFFICULTIES:
        raise MafineError(
            f"unknown DeepMind difficulty {difficulty!r}; use one of {', '.join(DIFFICULTIES)}"
        )
    pkg = _package()
    generator = _lookup(module, difficulty)
    if needs_numpy_1(module) and not pkg.has_itemset:
        raise _numpy_error(module)
    return _generate(pkg, module, difficulty, seed, generator)


def _generate(
    pkg: SimpleNamespace,
    module: str,
    difficulty: str,
    seed: int,
    generator: Callable[[], Any],
) -> Iterator[tuple[str, str]]:
    streams = _Streams(pkg, deepmind_seed(module, difficulty, seed))
    max_question = pkg.settings.MAX_QUESTION_LENGTH
    max_answer = pkg.settings.MAX_ANSWER_LENGTH
    batch = 1
    while True:
        # Swapping the random states costs ~0.3 ms, so problems are made in batches (growing
        # to 64) per swap; the sequence does not depend on the batching.
        problems: list[tuple[str, str]] = []
        with streams:
            while len(problems) < batch:
                try:
                    problem = generator()
                except AttributeError as exc:
                    if "itemset" in str(exc):
                        raise _numpy_error(module) from None
                    raise
                question, answer = str(problem.question), str(problem.answer)
                if len(question) > max_question or len(answer) > max_answer:
                    continue  # dropped, as generate.sample_from_module does
                problems.append((question.strip(), answer.strip()))
        yield from problems
        batch = min(2 * batch, 64)


def _numpy_error(module: str) -> MafineError:
    return MafineError(
        f"DeepMind module {module} needs numpy<2 (it calls ndarray.itemset, removed in "
        "numpy 2), which mafine does not install; choose another module, "
        "e.g. arithmetic__add_or_sub"
    )


class _Streams:
    """The generator's own states of Python's, numpy's and sympy's global random generators.

    Entering swaps them in (saving the caller's), leaving saves them and restores the caller's.
    The package draws from the global generators directly and has no way to pass a local one.
    """

    def __init__(self, pkg: SimpleNamespace, seed: int) -> None:
        self._pkg = pkg
        saved = self._capture()
        random.seed(seed)
        pkg.np.random.seed([(seed >> (32 * i)) & 0xFFFFFFFF for i in range(8)])
        pkg.sympy_random.seed(seed)
        self._state = self._capture()
        self._saved = saved
        self._restore(saved)

    def _capture(self) -> tuple[Any, ...]:
        srand = self._pkg.sympy_random
        return (
            random.getstate(),
            self._pkg.np.random.get_state(),
            srand.rng.getstate(),
            srand._assumptions_rng.getstate(),
        )

    def _restore(self, state: tuple[Any, ...]) -> None:
        srand = self._pkg.sympy_random
        random.setstate(state[0])
        self._pkg.np.random.set_state(state[1])
        srand.rng.setstate(state[2])
        srand._assumptions_rng.setstate(state[3])

    def __enter__(self) -> None:
        self._saved = self._capture()
        self._restore(self._state)

    def __exit__(self, *exc: object) -> None:
        self._state = self._capture()
        self._restore(self._saved)


def _lookup(module: str, difficulty: str) -> Callable[[], Any]:
    available = _modules(difficulty)
    if module in available:
        return available[module]
    names = sorted(available)
    close = difflib.get_close_matches(module, names, n=5, cutoff=0.6)
    elsewhere = [d for d in DIFFICULTIES if d != difficulty and module in _modules(d)]
    if elsewhere:
        head = (
            f"DeepMind module {module!r} has no {difficulty!r} variant "
            f"(it exists for {', '.join(elsewhere)})"
        )
    else:
        head = f"unknown DeepMind module {module!r} for difficulty {difficulty!r}"
    if close:
        raise MafineError(f"{head}; closest: {', '.join(close)}")
    raise MafineError(f"{head}; valid modules: {', '.join(names)}")


@functools.cache
def _modules(difficulty: str) -> dict[str, Callable[[], Any]]:
    """`family__name` -> problem-generating function, as generate.py's _filter_and_flatten."""
    modules = _package().modules
    if difficulty in _TRAIN_LEVELS:
        tree = modules.train(_entropy_fn(_TRAIN_LEVELS[difficulty], len(_TRAIN_LEVELS)))
    elif difficulty == "interpolate":
        tree = modules.test()
    else:
        tree = modules.test_extra()
    flat: dict[str, Callable[[], Any]] = {}

    def add(node: dict[str, Any], prefix: str | None) -> None:
        for key, value in node.items():
            name = f"{prefix}__{key}" if prefix is not None else key
            if isinstance(value, dict):
                add(value, name)
            else:
                flat[name] = value

    add(tree, None)
    return dict(sorted(flat.items()))


def _entropy_fn(level: int, num_levels: int) -> Callable[[tuple[float, float]], tuple]:
    """generate.py's `_make_entropy_fn`: the level-th of num_levels slices of a range."""
    lower = level / num_levels
    upper = (level + 1) / num_levels

    def modify_entropy(range_: tuple[float, float]) -> tuple[float, float]:
        length = range_[1] - range_[0]
        return (range_[0] + lower * length, range_[0] + upper * length)

    return modify_entropy


@functools.cache
def _package() -> SimpleNamespace:
    """Import mathematics_dataset once, with the numpy/sympy shim and the ordering patches."""
    import importlib

    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy 2 warns on looking up np.object
        if not hasattr(np, "object"):
            np.object = object  # type: ignore[attr-defined]
    diophantine = importlib.import_module("sympy.solvers.diophantine")
    if not hasattr(diophantine, "base_solution_linear"):
        moved = importlib.import_module("sympy.solvers.diophantine.diophantine")
        diophantine.base_solution_linear = moved.base_solution_linear
    sympy_random = importlib.import_module("sympy.core.random")
    try:
        from mathematics_dataset import generate_settings
        from mathematics_dataset.modules import modules
        from mathematics_dataset.util import composition
    except ImportError as exc:
        raise MafineError(
            f"cannot import DeepMind's generator (pip package mathematics-dataset): {exc}"
        ) from None
    _patch_ordering(composition)
    return SimpleNamespace(
        np=np,
        sympy_random=sympy_random,
        modules=modules,
        settings=generate_settings,
        has_itemset=hasattr(np.ndarray, "itemset"),
    )


def _patch_ordering(composition: Any) -> None:
    """Make the package's two hash-ordered iterations deterministic (see the module doc)."""
    if getattr(composition, "_mafine_patched", False):
        return

    def pop(self: Any) -> str:
        """Returns an unused symbol (and keeps track of it being used)."""
        allowed = (
            composition._ALLOWED_SYMBOLS.difference(self._relation_symbols)
            .difference(self._self_symbols)
            .difference(self._child_symbols)
        )
        if not allowed:
            raise ValueError("Ran out of symbols")
        symbol = random.choice(sorted(allowed))  # was random.choice(list(allowed))
        self._self_symbols.add(symbol)
        return symbol

    def expand_entities(context: Any, **kwargs: Any) -> tuple[str, dict[str, Any]]:
        """Returns prefix description and updated `**kwargs` (entities in a fixed order)."""
        kwargs = kwargs.copy()
        entities = dict.fromkeys(context.child_entities)  # was set(...): address order
        for key, maybe_entity in kwargs.items():
            if isinstance(maybe_entity, composition.Entity):
                entities[maybe_entity] = None
                kwargs[key] = maybe_entity.handle
        ordered = list(entities)
        random.shuffle(ordered)
        child_descriptions = []
        for entity in ordered:
            child_descriptions.append(entity.child_description)
            if not entity.expression_used:
                child_descriptions.append(entity.description)
        return " ".join(s for s in child_descriptions if s), kwargs

    composition.Context.pop = pop
    composition.expand_entities = expand_entities
    composition._mafine_patched = True
