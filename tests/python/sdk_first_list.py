"""A client that lists tools once, right after initialize, and calls one of them: what many
clients do at start (they ignore list_changed). Uses the official MCP Python SDK.

Usage: sdk_first_list.py URL TOOL                      (/sse: HTTP+SSE, /mcp: Streamable HTTP)
       sdk_first_list.py stdio TOOL EXE ARGS...        (starts EXE ARGS... and speaks stdio)
Calls TOOL with {"text": "first"} and prints one JSON line: the tools listed and the
call's text (or the error it got).
"""
import json
import sys

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client


def connect(target, rest):
    if target == "stdio":
        return stdio_client(StdioServerParameters(command=rest[0], args=rest[1:]))
    if target.rstrip("/").endswith("/mcp"):
        return streamable_http_client(target)
    return sse_client(target)


async def main(target, tool, *rest):
    async with connect(target, rest) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            with anyio.fail_after(60):
                tools = await session.list_tools()
                try:
                    result = await session.call_tool(tool, {"text": "first"})
                    outcome = result.content[0].text if result.content else None
                except Exception as e:  # the call's JSON-RPC error, to report
                    outcome = "error: %s" % e
            print(json.dumps({"tools": [t.name for t in tools.tools], "call": outcome}))


anyio.run(main, *sys.argv[1:])
