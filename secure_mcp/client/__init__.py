"""The CLI client: OAuth around the SDK's OAuthClientProvider, and a Claude chat loop."""
