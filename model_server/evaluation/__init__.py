"""Streaming evaluation harness: protocol (split and batch loop), metrics, model registry, reports."""
