// The TypeScript MCP SDK's own OAuth client against oauth.py + weather.py (tests/interop).
//
// Usage: node client.mjs <MCP server URL> <seconds to wait before the second tool call>
// The SDK discovers (RFC 9728, RFC 8414), registers (RFC 7591) and builds the authorization
// URL; this script prints it as `AUTHORIZE <url>` and reads one line from stdin: the redirect
// Location the test's headless browser landed on (code, state, iss). It then lists the tools,
// calls get_alerts, waits past the access token's lifetime and calls it again (the SDK refreshes
// on the 401). The last stdout line is a JSON summary for the test to check.

import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [serverUrl, waitSeconds] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const REDIRECT = "http://127.0.0.1:9/callback"; // loopback: the server accepts any port

class MemoryProvider {
  constructor() {
    this.client = undefined;
    this.saved = [];
    this.verifier = "";
    this.expectedState = "";
    this.authorizations = 0;
  }
  get redirectUrl() {
    return REDIRECT;
  }
  get clientMetadata() {
    return {
      client_name: "TypeScript SDK interop",
      redirect_uris: [REDIRECT],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  state() {
    this.expectedState = randomBytes(16).toString("base64url");
    return this.expectedState;
  }
  clientInformation() {
    return this.client;
  }
  saveClientInformation(info) {
    this.client = info;
  }
  tokens() {
    return this.saved.at(-1);
  }
  saveTokens(tokens) {
    this.saved.push(tokens);
  }
  redirectToAuthorization(url) {
    this.authorizations += 1;
    console.log(`AUTHORIZE ${url.href}`);
  }
  saveCodeVerifier(verifier) {
    this.verifier = verifier;
  }
  codeVerifier() {
    return this.verifier;
  }
}

const provider = new MemoryProvider();

async function connected() {
  const client = new Client({ name: "ts-interop", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(serverUrl), { authProvider: provider });
  try {
    await client.connect(transport);
    return client;
  } catch (error) {
    if (!(error instanceof UnauthorizedError)) throw error;
  }
  const { value: location } = await lines.next();
  const answer = new URL(location.trim()).searchParams;
  if (answer.get("state") !== provider.expectedState) throw new Error("state mismatch");
  if (answer.get("error")) throw new Error(`authorization refused: ${answer.get("error")}`);
  await transport.finishAuth(answer.get("code"));
  const signedIn = new Client({ name: "ts-interop", version: "1.0.0" });
  await signedIn.connect(
    new StreamableHTTPClientTransport(new URL(serverUrl), { authProvider: provider }),
  );
  return signedIn;
}

const text = (result) => result.content.map((block) => block.text ?? "").join(" ");

const client = await connected();
const tools = (await client.listTools()).tools.map((tool) => tool.name);
const first = await client.callTool({ name: "get_alerts", arguments: { state: "CA" } });
await new Promise((resolve) => setTimeout(resolve, Number(waitSeconds) * 1000));
const second = await client.callTool({ name: "get_alerts", arguments: { state: "CA" } });
await client.close();

const [initial, refreshed] = provider.saved;
console.log(
  JSON.stringify({
    tools,
    client_id: provider.client?.client_id ?? null,
    authorizations: provider.authorizations,
    token_saves: provider.saved.length,
    access_rotated: Boolean(refreshed) && refreshed.access_token !== initial.access_token,
    refresh_rotated: Boolean(refreshed) && refreshed.refresh_token !== initial.refresh_token,
    first: { is_error: Boolean(first.isError), text: text(first) },
    second: { is_error: Boolean(second.isError), text: text(second) },
  }),
);
process.exit(0);
