"""The OAuth 2.1 authorization server behind oauth.py: one module per concept or RFC."""
