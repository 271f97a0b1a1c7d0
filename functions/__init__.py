"""Triggers only: one blueprint per caller family. Each handler authenticates, parses and
answers through `shared.web`; no business decision lives here."""
