"""The official MCP Python SDK's legacy SSE client against the gateway.

Usage: sdk_sse_client.py URL
Connects to URL (the gateway's /sse), initializes, lists tools, calls bash__bash twice
(a success and a failure), and prints one JSON line with what it saw. Exits non-zero on
any protocol error.
"""
import json
import sys

import anyio
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client


def connect(url):
    """Streamable HTTP for a URL ending in /mcp, the legacy SSE transport otherwise."""
    if url.rstrip("/").endswith("/mcp"):
        return streamable_http_client(url)
    return sse_client(url)


async def main(url):
    async with connect(url) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            tools = await session.list_tools()
            ok = await session.call_tool("bash__bash", {"command": "echo sdk-ok"})
            bad = await session.call_tool("bash__bash", {"command": "echo nope >&2; exit 4"})
            print(json.dumps({
                "server": init.server_info.name,
                "protocol": init.protocol_version,
                "tools": [t.name for t in tools.tools],
                "ok_text": ok.content[0].text,
                "ok_is_error": ok.is_error,
                "ok_structured": ok.structured_content,
                "bad_is_error": bad.is_error,
                "bad_structured": bad.structured_content,
            }))


anyio.run(main, sys.argv[1])
