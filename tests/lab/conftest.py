"""The kernel lab's tests run where ``kslib.lab.available()`` says the machine can (root, netns,
iptables and nft: CI here), skip with its reason elsewhere, and leave no namespace behind."""
import os

import pytest

from kslib.lab import available, netns

OK, REASON = available()


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/lab/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.kernel)
            if not OK:
                item.add_marker(pytest.mark.skip(reason=f"kernel lab unavailable: {REASON}"))


@pytest.fixture(autouse=True, scope="module")
def no_namespace_left_behind():
    """After each module, this process owns no kslib namespace any more."""
    yield
    mine = [n for n in netns.listed() if netns.owner(n) == os.getpid()]
    assert mine == [], f"namespaces left behind: {mine}"
