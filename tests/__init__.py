"""The test suite (a package, so its helpers import as tests.helpers; pyproject's pythonpath puts the repo
root on sys.path for core and bench)."""
