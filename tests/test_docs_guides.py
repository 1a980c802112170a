"""The docs tests of the guides (tests/test_docs.py's GUIDES): the same test as test_docs.py's, in a module
of its own, so that the two halves of the docs run on the two xdist workers."""

from test_docs import DOCS, GUIDES, docs_session, make_test_doc  # noqa: F401 (docs_session: the fixture)

test_doc = make_test_doc([d for d in DOCS if d.name in GUIDES])
