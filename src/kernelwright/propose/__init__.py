"""Proposers: offline template search (default) and the LLM agent, behind propose/base.py."""
