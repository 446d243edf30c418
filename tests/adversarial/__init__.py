"""Adversarial tests: property tests (hypothesis), fuzz targets (atheris) and the admin API
against its own OpenAPI document (schemathesis)."""
