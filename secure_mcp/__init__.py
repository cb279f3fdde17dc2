"""Secure MCP: an OAuth 2.1 authorization server, a protected weather MCP server, and a client.

Where each specification is enforced, from the one-line citations in the code (modules relative
to this package; `;` separates the server side from the client side):

- OAuth 2.1 / RFC 6749 3.1, 4.1.1: the authorization request: oauth.authorize_request, oauth.forms
- OAuth 2.1 3.2, 4.1.3, 4.3: the token endpoint and its grants: oauth.token_endpoint
- OAuth 2.1 4.2: client_credentials: oauth.token_endpoint; client.auth.machine
- RFC 6749 2.3: client authentication: oauth.clients; client.auth.identity, client.auth.machine
- RFC 6749 3.3, 6: scopes and narrowing on refresh: oauth.scopes; weather.permissions
- RFC 6749 5.2: error responses: oauth.errors; client.auth.errors, client.auth.registration
- RFC 6750 2.1, 3.1: bearer tokens and challenges: weather.bearer, weather.errors; client.auth.steps
- RFC 7009: revocation: oauth.rfc7009; client.auth.revocation
- RFC 7517, 7518: signing keys and the JWKS: oauth.signing_keys, oauth.rfc9068
- RFC 7523 2.2, 3: private_key_jwt: oauth.rfc7523, oauth.clients; client.auth.machine
- RFC 7523 2.1 and RFC 8693: jwt-bearer, token exchange (SEP-1933, SEP-990):
  client.auth.assertion_grants
- RFC 7591: dynamic client registration: oauth.rfc7591, oauth.redirect_uris;
  client.auth.registration
- RFC 7636: PKCE S256: oauth.rfc7636, oauth.token_endpoint (4.6); client.auth.provider
- RFC 7662: introspection: oauth.rfc7662, oauth.resource_servers; weather.rfc7662
- RFC 8252 7.3: loopback redirect URIs: oauth.redirect_uris, common.uris; client.auth.loopback
- RFC 8252 8.6, RFC 9700 4.13: remembered consent: oauth.consents
- RFC 8414: authorization server metadata: oauth.rfc8414, common.well_known; weather.discovery
- RFC 8707: resource indicators: oauth.rfc8707; the audience: oauth.rfc9068, weather.rfc7662,
  weather.rfc9068
- RFC 8725: JWT best practices: weather.rfc9068, oauth.rfc7523
- RFC 9068: JWT access tokens: oauth.rfc9068, common.token_format; weather.rfc9068
- RFC 9110 15.5: 413, 421, 429: common.body_guard, common.hosts, oauth.limits
- RFC 9207: `iss` in the authorization response: oauth.authorize; client.auth.identity
- RFC 9449: DPoP: common.rfc9449, common.dpop_replay, oauth.dpop, oauth.token_endpoint (5, 10),
  weather.dpop, weather.bearer (7); client.auth.dpop
- RFC 9700 4.4: mix-up defence: client.auth.identity, client.auth.binding
- RFC 9700 4.14.2: refresh token rotation and reuse: oauth.token_endpoint, oauth.tokens
- RFC 9700 4.16: clickjacking: oauth.headers, oauth.pages
- RFC 9728: protected resource metadata: weather.app, common.well_known; client.auth.resource
- RFC 3986 6.2: the canonical resource URI: common.uris
- RFC 6265 8.5: cookies shared across ports: oauth.signin
- MCP client ID metadata documents: oauth.cimd, oauth.cimd_fetch
- RFC 9111 5.2: how long a metadata document is cached: oauth.cimd
"""
