"""OAuth for the CLI: the SDK's OAuthClientProvider plus the checks it leaves to us."""
