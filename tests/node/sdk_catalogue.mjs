// The official MCP TypeScript SDK client against a profile in catalogue mode: it lists the
// tools (three), searches for a keyword, and calls the tool found through call_tool.
//
// Usage: node sdk_catalogue.mjs URL KEYWORD        Prints one JSON line.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const client = new Client({ name: "gateway-ts-catalogue", version: "1.0.0" });
await client.connect(new StreamableHTTPClientTransport(new URL(process.argv[2])));
const out = {};
out.tools = (await client.listTools()).tools.map((t) => t.name).sort();
const found = await client.callTool({ name: "search_tools", arguments: { query: process.argv[3] } });
out.found = found.structuredContent.tools.map((t) => t.name);
const called = await client.callTool({ name: "call_tool", arguments: { name: out.found[0], arguments: { n: 8 } } });
out.called = called.content[0].text;
await client.close();
console.log(JSON.stringify(out));
