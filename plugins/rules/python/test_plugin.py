"""The behaviour cases shared with the Rust and TypeScript versions, natively through the SDK's
test double (``pytest``)."""

import pathlib

import pytest
from sluice_plugin import exported, testing

import plugin  # noqa: F401  (registers the plugin with export())

CASES = testing.load_cases(pathlib.Path(__file__).parent.parent / "cases.json")


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_case(case):
    testing.check_case(exported(), case)
