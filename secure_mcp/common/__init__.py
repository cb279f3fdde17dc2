"""Pieces shared by the three programs: file locations, URL rules, shared credential files."""
