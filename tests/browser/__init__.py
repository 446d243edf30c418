"""Tests of the token page in a real headless browser."""
