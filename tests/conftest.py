import os

import pytest
import torch

# Tests run on 2 shared cores: one intra-op thread per test process keeps runs predictable.
torch.set_num_threads(int(os.environ.get("CNNZOO_TEST_THREADS", "1")))


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium (Debian's, never a downloaded one) for the browser tests of a module."""
    from playwright.sync_api import sync_playwright
    from test_web_browser import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _family_representatives() -> set[str]:
    """One model per registered family: the smallest input, then the fewest published parameters, then the
    first name in natural order (resnet20 before resnet110). From the registry alone: a new family gets one."""
    import re

    from cnnzoo.models import get_model_info, list_models

    def key(name: str):
        info = get_model_info(name)
        params = info.published.params if info.published and info.published.params else 0
        natural = [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]
        return (info.input_size[1] * info.input_size[2], params, natural)

    families: dict[str, list[str]] = {}
    for name in list_models():
        families.setdefault(get_model_info(name).family, []).append(name)
    return {min(names, key=key) for names in families.values()}


def pytest_collection_modifyitems(config, items):
    """Zoo-wide parametrized tests run every model in the full suite, one per family in the fast lane
    (``-m "not slow"``): a test with a parameter that names a registered model other than its family's
    representative is marked slow."""
    from cnnzoo.models import list_models

    zoo, keep = set(list_models()), _family_representatives()
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None:
            continue
        named = {v for v in callspec.params.values() if isinstance(v, str) and v in zoo}
        if named - keep:
            item.add_marker(pytest.mark.slow)
