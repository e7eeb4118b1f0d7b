"""Command-line interface of lt4rec."""
