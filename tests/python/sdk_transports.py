"""The official MCP Python SDK calls `echo` on each named backend through the gateway.

Usage: sdk_transports.py URL BACKEND...   (URL ending in /mcp: Streamable HTTP; else HTTP+SSE)
Prints one JSON object: backend name -> the echoed text.
"""
import json
import sys

import anyio
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client


def connect(url):
    if url.rstrip("/").endswith("/mcp"):
        return streamable_http_client(url)
    return sse_client(url)


async def main(url, backends):
    out = {}
    async with connect(url) as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            for b in backends:
                result = await s.call_tool(f"{b}__echo", {"message": f"python via {b}"})
                out[b] = result.content[0].text
    print(json.dumps(out))


anyio.run(main, sys.argv[1], sys.argv[2:])
