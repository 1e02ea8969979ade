"""Helpers the tests import: round-off bounds, gold models, test data, generated cases."""
