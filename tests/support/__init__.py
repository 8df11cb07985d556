"""Helpers the test suite runs on (a throwaway PostgreSQL server)."""
