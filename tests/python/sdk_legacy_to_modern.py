"""The official Python SDK's legacy session (initialize) through the gateway to a backend
that speaks only 2026-07-28: a call, and an elicitation the backend asks for with
input_required, which reaches this client as an ordinary elicitation request, and a call
the backend makes a task of (tasks extension), whose question reaches it the same way and
whose end is the call's answer. Prints one JSON line."""

import json
import sys

import anyio
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client

asked = []


async def elicitation(context, params):
    asked.append(params.message)
    return types.ElicitResult(action="accept", content={"name": "Grace", "seat": "12A"})


def text_of(result):
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def main(url):
    out = {}
    async with streamable_http_client(url) as (read, write, *_):
        async with ClientSession(read, write, elicitation_callback=elicitation) as s:
            init = await s.initialize()
            out["version"] = init.protocol_version
            out["tools"] = sorted(t.name for t in (await s.list_tools()).tools)
            out["echo"] = text_of(await s.call_tool("mo__echo", {"text": "from a legacy client"}))
            out["greeting"] = text_of(await s.call_tool("mo__ask_name", {}))
            out["booked"] = text_of(await s.call_tool("mo__book", {}))
    out["asked"] = asked
    print(json.dumps(out))


anyio.run(main, sys.argv[1])
