"""Scripted policies and (later) the collection workers and backends."""
