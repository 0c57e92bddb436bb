"""The official MCP Python SDK against @modelcontextprotocol/server-everything, through the
gateway. Backends: 'ev' (shared) and 'evs' (one instance per session).

Usage: sdk_everything.py URL   (ending in /mcp: Streamable HTTP; else HTTP+SSE)
Exercises resources (list, templates, read, subscribe + update), prompts with arguments,
completions, progress, sampling, elicitation, logging and roots, answering the server's
requests from this client. Prints one JSON line of what it saw; exits non-zero on failure.
"""
import json
import sys

import anyio
import mcp.types as types
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client


def connect(url):
    """Streamable HTTP for a URL ending in /mcp, the legacy SSE transport otherwise."""
    if url.rstrip("/").endswith("/mcp"):
        return streamable_http_client(url)
    return sse_client(url)

seen = {"updates": [], "logs": [], "sampling": 0, "elicitation": 0, "roots": 0}


async def sampling(context, params):
    seen["sampling"] += 1
    return types.CreateMessageResult(
        role="assistant", model="gateway-test-model",
        content=types.TextContent(type="text", text="sampled-by-python"))


async def elicitation(context, params):
    seen["elicitation"] += 1
    return types.ElicitResult(action="accept", content={"name": "Ada", "check": True})


async def roots(context):
    seen["roots"] += 1
    return types.ListRootsResult(roots=[types.Root(uri="file:///python-root", name="py")])


async def logging_cb(params):
    seen["logs"].append(params.level)


async def messages(message):
    if isinstance(message, types.ResourceUpdatedNotification):
        seen["updates"].append(str(message.params.uri))


async def wait_for(pred, what, seconds=15):
    with anyio.fail_after(seconds):
        while not pred():
            await anyio.sleep(0.05)


def text_of(result):
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")


async def main(url):
    out = {}
    async with connect(url) as (read, write):
        async with ClientSession(read, write, sampling_callback=sampling,
                                 elicitation_callback=elicitation, list_roots_callback=roots,
                                 logging_callback=logging_cb, message_handler=messages) as s:
            await s.initialize()
            tools = [t.name for t in (await s.list_tools()).tools]
            out["has_tools"] = all(f"{b}__echo" in tools for b in ("ev", "evs"))

            resources = (await s.list_resources()).resources
            out["resources"] = len(resources)
            templates = [t.uri_template for t in (await s.list_resource_templates()).resource_templates]
            out["templates"] = templates
            uri = "demo://resource/dynamic/text/1"
            read_result = await s.read_resource(uri)
            out["read_uri"] = str(read_result.contents[0].uri)

            await s.subscribe_resource(uri)
            await s.call_tool("ev__toggle-subscriber-updates", {})
            await wait_for(lambda: seen["updates"], "a resource update")
            out["updated"] = seen["updates"][0]
            await s.call_tool("ev__toggle-subscriber-updates", {})

            prompts = [p.name for p in (await s.list_prompts()).prompts]
            out["prompts"] = sorted(p for p in prompts if p.startswith("ev__"))
            prompt = await s.get_prompt("ev__args-prompt", {"city": "Paris", "state": "TX"})
            out["prompt_text"] = prompt.messages[0].content.text

            done = await s.complete(types.PromptReference(type="ref/prompt", name="ev__completable-prompt"),
                                    {"name": "department", "value": "Eng"})
            out["completion"] = done.completion.values

            progress = []

            async def on_progress(value, total, message):
                progress.append(value)

            await s.call_tool("ev__trigger-long-running-operation", {"duration": 1, "steps": 3},
                              progress_callback=on_progress)
            out["progress"] = progress

            sampled = await s.call_tool("ev__trigger-sampling-request", {"prompt": "hello"})
            out["sampling_result"] = "sampled-by-python" in text_of(sampled)

            elicited = await s.call_tool("ev__trigger-elicitation-request", {})
            out["elicitation_result"] = "Ada" in text_of(elicited)

            await s.set_logging_level("debug")
            await s.call_tool("ev__toggle-simulated-logging", {})
            await wait_for(lambda: seen["logs"], "a log message")
            await s.call_tool("ev__toggle-simulated-logging", {})

            # The per-session instance asks this client for its roots after initializing.
            await wait_for(lambda: seen["roots"], "a roots/list request")
            listed = await s.call_tool("evs__get-roots-list", {})
            out["roots_seen_by_server"] = "python-root" in text_of(listed)
    out.update({k: seen[k] for k in ("sampling", "elicitation", "roots")})
    out["logs"] = len(seen["logs"]) > 0
    print(json.dumps(out))


anyio.run(main, sys.argv[1])
