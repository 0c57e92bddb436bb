// The official MCP TypeScript SDK calls `echo` on each named backend through the gateway.
//
// Usage: node sdk_transports.mjs URL BACKEND...  (URL ending in /mcp: Streamable HTTP; else HTTP+SSE)
// Prints one JSON object: backend name -> the echoed text.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, ...backends] = process.argv.slice(2);
const transport = url.replace(/\/$/, "").endsWith("/mcp")
  ? new StreamableHTTPClientTransport(new URL(url))
  : new SSEClientTransport(new URL(url));
const client = new Client({ name: "gateway-ts-transports", version: "1.0.0" });
await client.connect(transport);
const out = {};
for (const b of backends) {
  const result = await client.callTool({ name: `${b}__echo`, arguments: { message: `typescript via ${b}` } });
  out[b] = result.content[0].text;
}
await client.close();
console.log(JSON.stringify(out));
