"""Packaged experiments (``commlearn experiment NAME``)."""
