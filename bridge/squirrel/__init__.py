"""Squirrel 3 agent code: lexer, parser, scan, translator, runtime."""
