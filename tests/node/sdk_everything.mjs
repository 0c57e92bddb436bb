// The official MCP TypeScript SDK client against @modelcontextprotocol/server-everything,
// through the gateway's /mcp or /sse endpoint (backend 'ev').
//
// Usage: node sdk_everything.mjs URL
// Lists and reads resources, gets a prompt with arguments, and runs a sampling round trip
// (the server asks this client to sample; this client answers). Prints one JSON line.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CreateMessageRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const url = process.argv[2];
const client = new Client({ name: "gateway-ts-test", version: "1.0.0" }, { capabilities: { sampling: {} } });
let samplingRequests = 0;
client.setRequestHandler(CreateMessageRequestSchema, async (request) => {
  samplingRequests += 1;
  return {
    role: "assistant",
    model: "gateway-test-model",
    content: { type: "text", text: `sampled-by-typescript: ${request.params.messages.length} message(s)` },
  };
});

// Streamable HTTP for a URL ending in /mcp, the legacy SSE transport otherwise.
const transport = url.replace(/\/$/, "").endsWith("/mcp")
  ? new StreamableHTTPClientTransport(new URL(url))
  : new SSEClientTransport(new URL(url));
await client.connect(transport);
const out = {};
const server = client.getServerVersion();
out.server = server?.name;

const resources = await client.listResources();
out.resources = resources.resources.filter((r) => !r.uri.startsWith("mcp-gateway://")).length;
const doc = resources.resources.find((r) => r.uri.startsWith("demo://resource/static/document/"));
const read = await client.readResource({ uri: doc.uri });
out.read_ok = read.contents[0].uri === doc.uri && (read.contents[0].text ?? "").length > 0;
const templates = await client.listResourceTemplates();
out.templates = templates.resourceTemplates.map((t) => t.uriTemplate).filter((t) => t.startsWith("demo://")).sort();

const prompts = await client.listPrompts();
out.prompts = prompts.prompts.map((p) => p.name).sort();
const prompt = await client.getPrompt({ name: "ev__args-prompt", arguments: { city: "Lisbon" } });
out.prompt_text = prompt.messages[0].content.text;

const sampled = await client.callTool({ name: "ev__trigger-sampling-request", arguments: { prompt: "hi", maxTokens: 10 } });
out.sampling_requests = samplingRequests;
out.sampling_result = sampled.content.some((c) => c.type === "text" && c.text.includes("sampled-by-typescript"));

await client.close();
console.log(JSON.stringify(out));
