// The official MCP TypeScript SDK client (legacy revisions only) through the gateway's /mcp
// to a backend that speaks only 2026-07-28 (backend 'mo'): a call, and the backend's
// input_required, which reaches this client as an ordinary elicitation request.
//
// Usage: node sdk_legacy_to_modern.mjs URL        Prints one JSON line.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const client = new Client({ name: "gateway-ts-legacy", version: "1.0.0" }, { capabilities: { elicitation: {} } });
const asked = [];
client.setRequestHandler(ElicitRequestSchema, async (request) => {
  asked.push(request.params.message);
  return { action: "accept", content: { name: "Linus" } };
});
await client.connect(new StreamableHTTPClientTransport(new URL(process.argv[2])));
const text = (r) => r.content.filter((c) => c.type === "text").map((c) => c.text).join("\n");
const out = {};
out.echo = text(await client.callTool({ name: "mo__echo", arguments: { text: "from TypeScript" } }));
out.greeting = text(await client.callTool({ name: "mo__ask_name", arguments: {} }));
out.asked = asked;
await client.close();
console.log(JSON.stringify(out));
