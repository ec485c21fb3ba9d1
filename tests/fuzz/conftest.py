"""Hostile input: hypothesis profiles, a record snapshot, and the table of cases run.

Every test here is marked ``fuzz`` and runs in the normal suite. ``FUZZ_PROFILE`` picks the
budget: ``ci`` (the default: few examples, a fixed seed, so CI is quick and repeatable) or
``deep`` (``make fuzz``: many more examples, a fresh seed each run). At the end of the
session a table says how many cases each test actually ran: every call of its body,
shrinking included, inputs rejected by ``assume`` left out.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.errors import UnsatisfiedAssumption

_FUZZ_DIR = Path(__file__).parent
_SLOW_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]

settings.register_profile(
    "ci", max_examples=20, deadline=None, derandomize=True, suppress_health_check=_SLOW_OK, print_blob=True
)
settings.register_profile(
    "deep", max_examples=1000, deadline=None, suppress_health_check=_SLOW_OK, print_blob=True
)
PROFILE = os.environ.get("FUZZ_PROFILE", "ci")
settings.load_profile(PROFILE)

cases_run: Counter[str] = Counter()


def count_case(nodeid: str, n: int = 1) -> None:
    """For a test looping over a fixed table itself: ``n`` more cases run."""
    cases_run[nodeid] += n


def _counting(nodeid: str, inner: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(inner)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            result = inner(*args, **kwargs)
        except UnsatisfiedAssumption:
            raise  # rejected by ``assume``: not a case run
        except BaseException:
            cases_run[nodeid] += 1
            raise
        cases_run[nodeid] += 1
        return result

    return run


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _FUZZ_DIR not in Path(str(item.fspath)).parents:
            continue
        item.add_marker(pytest.mark.fuzz)
        test = getattr(item, "obj", None)
        hypothesis_handle = getattr(test, "hypothesis", None)
        if hypothesis_handle is not None:
            # hypothesis calls ``inner_test`` for every example; it is there to be wrapped.
            hypothesis_handle.inner_test = _counting(item.nodeid, hypothesis_handle.inner_test)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not cases_run:
        return
    terminalreporter.write_sep("-", f"fuzz cases run (FUZZ_PROFILE={PROFILE})")
    width = max(len(name) for name in cases_run)
    terminalreporter.write_line(f"{'test'.ljust(width)}  cases")
    for name, n in sorted(cases_run.items()):
        terminalreporter.write_line(f"{name.ljust(width)}  {n:>5}")
    terminalreporter.write_line(f"{'total'.ljust(width)}  {sum(cases_run.values()):>5}")


@pytest.fixture
def cases(request: pytest.FixtureRequest) -> Callable[[int], None]:
    """``cases(n)``: count ``n`` cases of a table-driven test in the summary."""
    return functools.partial(count_case, request.node.nodeid)


# The marketing tests' audience, sent campaign and webhook secrets, for the link and webhook fuzzers.
from tests.marketing.conftest import audience, sent_campaign, webhooks  # noqa: E402, F401
