"""The official MCP Python SDK (its default mode) against the official filesystem and memory
servers behind the gateway, started on demand: it lists the tools and calls one of each.
Prints one JSON line.

Usage: sdk_on_demand.py URL
"""
import json
import sys

import anyio
from mcp import Client


def text_of(result):
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def main(url):
    out = {}
    async with Client(url) as c:
        out["tools"] = sorted(t.name for t in (await c.list_tools()).tools)
        out["dirs"] = text_of(await c.call_tool("fs__list_allowed_directories", {}))
        await c.call_tool("mem__create_entities", {"entities": [
            {"name": "gateway", "entityType": "program", "observations": ["runs on demand"]}]})
        out["graph"] = text_of(await c.call_tool("mem__read_graph", {}))
    print(json.dumps(out))


anyio.run(main, sys.argv[1])
