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
